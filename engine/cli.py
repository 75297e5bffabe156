"""The `saymap` command: a thin wrapper per command, the work lives in the library.

Each command module exposes `register(subparsers)` that adds its parser and sets `func`
(a callable taking the parsed namespace and returning an exit code). Command modules import
nothing heavy at the top, so `saymap info` does not pay for torch; they import it when they
run. The CLI is part of the service, above both the engine's library and the trainer, so it
dispatches the training commands too.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from saymap.engine.commands import info, segment, serve
from saymap.engine.errors import SaymapError, disk_full, explain
from saymap.engine.version import __version__
from saymap.training.commands import data, evaluate, scorecard, train

# In the order `saymap --help` lists them.
COMMANDS = (segment, info, serve, data, train, evaluate, scorecard)

log = logging.getLogger("saymap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saymap", description="Segment remote-sensing rasters from a sentence."
    )
    parser.add_argument("--version", action="version", version=f"saymap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the same clean-up as Ctrl-C runs (temporary
    files removed) instead of the default instant exit that leaves them behind."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="saymap: %(levelname)s: %(message)s",
    )
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"saymap: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    except (SaymapError, OSError) as exc:
        full = disk_full(exc, getattr(args, "output", None))
        if full is None and not isinstance(exc, SaymapError):
            raise  # a bug, not bad input: the traceback is what a report needs
        # One clear line on stderr, non-zero exit: the contract for bad input.
        print(f"saymap: error: {explain(full or exc)}", file=sys.stderr)
        return 2
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

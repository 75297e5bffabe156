"""The `saymap` command: a thin wrapper per command, the work lives in the library.

Each command module exposes `register(subparsers)` that adds its parser and sets `func`
(a callable taking the parsed namespace and returning an exit code). Modules are imported
lazily per command so `saymap info` does not pay for torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from saymap.engine.errors import SaymapError, disk_full, explain
from saymap.engine.version import __version__

# (command name, module that registers it). Order is the order `saymap --help` lists them.
COMMANDS: list[tuple[str, str]] = [
    ("segment", "saymap.engine.commands.segment"),
    ("info", "saymap.engine.commands.info"),
    ("serve", "saymap.engine.commands.serve"),
    ("data", "saymap.training.commands.data"),
    ("train", "saymap.training.commands.train"),
    ("eval", "saymap.training.commands.evaluate"),
    ("scorecard", "saymap.training.commands.scorecard"),
]

log = logging.getLogger("saymap")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saymap", description="Segment remote-sensing rasters from a sentence."
    )
    parser.add_argument("--version", action="version", version=f"saymap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in COMMANDS:
        if wanted is not None and wanted != name:
            sub.add_parser(name, help=f"(see `saymap {name} --help`)")
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command not built yet in this checkout
        module.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the same clean-up as Ctrl-C runs (temporary
    files removed) instead of the default instant exit that leaves them behind."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
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

"""The `saymap` command: a thin wrapper per command, the work lives in the library.

Each command module exposes `register(subparsers)` that adds its parser and sets `func`
(a callable taking the parsed namespace and returning an exit code). Modules are imported
lazily per command so `saymap info` does not pay for torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from saymap.engine.errors import SaymapError
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="saymap: %(levelname)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except SaymapError as exc:
        # One clear line on stderr, non-zero exit: the contract for bad input.
        print(f"saymap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saymap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

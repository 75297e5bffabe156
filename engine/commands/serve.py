"""`saymap serve`: run the engine's local HTTP service (what the QGIS plugin talks to)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from saymap.engine import paths
from saymap.engine.server.launch import REMOTE_RISK, choose_token, serve
from saymap.engine.server.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the local HTTP engine the QGIS plugin talks to",
        description="Serve the engine on loopback; writes <data-dir>/engine.json and a token.",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (needs --token-file; read the warning it prints)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="use the token in this file instead of a random one (required with --allow-remote)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="engine data folder (default: the user data folder)"
    )
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="do not load the active model at start (it loads with the first job instead)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.data_dir is not None:
        # Everything below (paths.data_dir, the registry) reads the folder from here.
        os.environ["SAYMAP_DATA_DIR"] = str(args.data_dir.resolve())

    if not 0 <= args.port <= 65535:
        raise SystemExit(f"saymap serve: error: --port must be 0..65535, got {args.port}")
    token = choose_token(args.host, args.allow_remote, args.token_file)
    if args.allow_remote:
        print(f"saymap: warning: {REMOTE_RISK}", file=sys.stderr, flush=True)
    settings = Settings(data_dir=paths.data_dir(), token=token, host=args.host)
    serve(
        settings,
        args.port,
        preload=not args.no_preload,
        announce=lambda line: print(line, flush=True),
    )
    return 0

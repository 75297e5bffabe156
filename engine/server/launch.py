"""Starting the engine: token, socket, port file, uvicorn; and cleaning up on a clean stop.

The port file is written only once uvicorn is accepting connections, so a client that finds
it can connect at once; it is removed on a clean shutdown (a stale one, left by a killed
engine, is recognised by its dead pid).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import os
import secrets
import signal
import socket
import stat
import string
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from saymap.engine.errors import AccessError
from saymap.engine.server.settings import API_VERSION, Settings, is_loopback
from saymap.engine.server.store import now_iso
from saymap.engine.version import __version__

log = logging.getLogger(__name__)

MIN_TOKEN_BITS = 256  # 32 random bytes
_TOKEN_ALPHABETS = [
    frozenset(string.digits),
    frozenset(string.hexdigits.lower()),
    frozenset(string.hexdigits.upper() + string.digits),
    frozenset(string.ascii_letters + string.digits + "-_="),  # token_urlsafe / base64url
    frozenset(string.ascii_letters + string.digits + "+/="),  # base64
]
REMOTE_RISK = (
    "--allow-remote exposes the engine to the network: anyone who learns the token can make "
    "it read any raster and write files wherever this user may, and plain HTTP sends the "
    "token in clear text. Use it only on a trusted network, behind a firewall or a TLS proxy."
)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> None:
    """Write a file readable by this user only (mode 0600), atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def token_strength_bits(token: str) -> float:
    """A rough upper bound on the token's entropy: its length times the bits of the smallest
    usual alphabet (decimal, hex, base64...) that holds all of its characters."""
    if not token:
        return 0.0
    chars = set(token)
    for alphabet in _TOKEN_ALPHABETS:
        if chars <= alphabet:
            size = len(alphabet)
            break
    else:
        size = 95  # printable ASCII
    if len(chars) < min(size, 16) // 2:  # "aaaa…" or "abab…": long, but no secret
        return len(chars) * math.log2(size)
    return len(token) * math.log2(size)


def read_token_file(path: Path) -> str:
    """The token in `path`, refused when others may read the file or when it is weaker than
    MIN_TOKEN_BITS (32 random bytes, what `secrets.token_urlsafe(32)` gives)."""
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessError(f"cannot read the token file {path}: {exc}") from exc
    if token_strength_bits(token) < MIN_TOKEN_BITS:
        raise AccessError(
            f"the token in {path} is too short or too regular: use at least "
            f"{MIN_TOKEN_BITS // 8} random bytes "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if os.name == "posix" and mode & 0o077:
        raise AccessError(
            f"the token file {path} may be read by other users (mode {stat.S_IMODE(mode):o}); "
            f"make it private first: chmod 600 {path}"
        )
    return token


def choose_token(host: str, allow_remote: bool, token_file: Path | None) -> str:
    """The token to require; refuses a non-loopback host unless allowed and given a token."""
    if not is_loopback(host):
        if not allow_remote:
            raise AccessError(
                f"refusing to listen on {host}: the engine listens on 127.0.0.1 only; "
                "pass --allow-remote (with --token-file) if you really mean it"
            )
        if token_file is None:
            raise AccessError(
                "--allow-remote needs --token-file FILE: a remote client cannot read the "
                f"engine's own token file, so the token must be one you share on purpose. "
                f"{REMOTE_RISK}"
            )
    return read_token_file(token_file) if token_file is not None else new_token()


def running_engine(port_file: Path) -> dict[str, Any] | None:
    """The port file's content if the engine it names still answers, else None.

    A live pid is not enough: a killed engine stays a zombie until its parent reaps it, and
    the pid may have been reused; the engine must answer on its port with its token."""
    try:
        info = json.loads(port_file.read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's: only its answer tells
    return info if engine_answers(info) else None


def engine_answers(info: dict[str, Any], timeout: float = 2.0) -> bool:
    """Whether the engine a port file describes accepts its own token (GET /v1/jobs)."""
    try:
        host = str(info["host"])
        port = int(info["port"])
        token = Path(info["token_path"]).read_text(encoding="utf-8").strip()
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return False
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    url_host = f"[{host}]" if ":" in host else host
    try:
        connection.request(
            "GET",
            "/v1/jobs?limit=1",
            headers={"Authorization": f"Bearer {token}", "Host": f"{url_host}:{port}"},
        )
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only when it does, and
    # without it every keep-alive answer waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AccessError(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.set_inheritable(True)
    return sock


class _Terminated(BaseException):
    """SIGTERM, raised where the process can still clean up (not the default instant exit)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


class _Server(uvicorn.Server):
    """uvicorn, plus a callback once it is really accepting connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._on_ready()


def serve(
    settings: Settings,
    port: int = 0,
    *,
    preload: bool = True,
    announce: Callable[[str], None] = log.info,
) -> None:
    """Run the engine until SIGINT/SIGTERM; blocks. `settings.token` is already chosen."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # the job history and token are this user's alone
        settings.data_dir.chmod(0o700)
    other = running_engine(settings.port_file)
    if other is not None:
        raise AccessError(
            f"an engine (pid {other.get('pid')}) already serves {settings.data_dir} on port "
            f"{other.get('port')}; stop it first or use another --data-dir"
        )
    from saymap.engine.server.app import create_app  # torch: only once we know we will serve

    write_private(settings.token_path, settings.token + "\n")
    sock = bind(settings.host, port)
    actual_port = sock.getsockname()[1]
    url_host = f"[{settings.host}]" if ":" in settings.host else settings.host

    def ready() -> None:
        info = {
            "host": settings.host,
            "port": actual_port,
            "pid": os.getpid(),
            "version": __version__,
            "api_version": API_VERSION,
            "token_path": str(settings.token_path),
            "started_at": now_iso(),
        }
        write_private(settings.port_file, json.dumps(info, indent=2) + "\n")
        announce(f"saymap engine listening on http://{url_host}:{actual_port}")

    config = uvicorn.Config(
        create_app(settings, preload=preload),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler it
    # found; with Python's default that kills the process before the port file is removed.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        _Server(config, ready).run(sockets=[sock])
    except _Terminated:
        log.info("stopped by SIGTERM")
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        sock.close()
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(settings.port_file.read_text())["pid"] == os.getpid():
                settings.port_file.unlink()

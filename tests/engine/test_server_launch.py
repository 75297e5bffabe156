"""Starting the engine: host rules, tokens, private files, the socket, stale port files."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from saymap.engine.errors import AccessError
from saymap.engine.server.launch import (
    MIN_TOKEN_BITS,
    bind,
    choose_token,
    is_loopback,
    new_token,
    running_engine,
    token_strength_bits,
    write_private,
)


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.org"))


def test_tokens(tmp_path: Path) -> None:
    first, second = choose_token("127.0.0.1", False, None), choose_token("127.0.0.1", False, None)
    assert first != second and token_strength_bits(first) >= MIN_TOKEN_BITS
    with pytest.raises(AccessError, match="--allow-remote"):
        choose_token("0.0.0.0", False, None)
    with pytest.raises(AccessError, match="--token-file"):
        choose_token("0.0.0.0", True, None)
    given = tmp_path / "token"
    token = new_token()
    write_private(given, token + "\n")
    assert choose_token("0.0.0.0", True, given) == token
    with pytest.raises(AccessError, match="cannot read"):
        choose_token("127.0.0.1", False, tmp_path / "missing")


@pytest.mark.parametrize(
    "weak",
    ["x" * 64, "ab" * 40, "0123456789abcdef" * 2, "correct horse battery staple", "a" * 31],
)
def test_a_token_file_weaker_than_32_random_bytes_is_refused(tmp_path: Path, weak: str) -> None:
    given = tmp_path / "token"
    write_private(given, weak + "\n")
    with pytest.raises(AccessError, match="too short or too regular"):
        choose_token("0.0.0.0", True, given)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_token_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    given = tmp_path / "token"
    given.write_text(new_token() + "\n")
    os.chmod(given, mode)
    with pytest.raises(AccessError, match="chmod 600"):
        choose_token("0.0.0.0", True, given)


def test_private_files_are_0600_and_replace_atomically(tmp_path: Path) -> None:
    target = tmp_path / "token"
    target.write_text("old")
    os.chmod(target, 0o644)
    write_private(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["token"]  # no temp file left


def test_the_socket_is_tcp_so_asyncio_turns_nagle_off() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; without it each
    # keep-alive answer waited ~40 ms for the client's delayed ACK.
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] > 0
        sock.listen()
        with pytest.raises(AccessError, match="cannot listen"):
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


def test_a_port_file_of_a_dead_engine_is_stale(tmp_path: Path) -> None:
    port_file = tmp_path / "engine.json"
    assert running_engine(port_file) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    port_file.write_text(json.dumps({"pid": int(dead.stdout), "port": 1}))
    assert running_engine(port_file) is None
    # A live pid that is no engine (reused, or a zombie): it does not answer on the port.
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        port_file.write_text(json.dumps({"pid": alive.pid, "port": 1}))
        assert running_engine(port_file) is None
    finally:
        alive.kill()
        alive.wait()
    port_file.write_text("not json")
    assert running_engine(port_file) is None

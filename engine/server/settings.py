"""One settings object per server, cached; tests build their own and pass it to create_app."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from saymap.engine import paths

API_VERSION = "1"
TOKEN_FILE = "token"
PORT_FILE = "engine.json"
JOBS_DB = "jobs.sqlite3"
MAX_BODY_BYTES = 1 << 20  # requests carry paths and sentences, never pixels


def is_loopback(host: str) -> bool:
    """True for a host only this machine can reach (the engine's default exposure)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """What a running engine needs to know; immutable once the server starts."""

    data_dir: Path
    token: str
    host: str = "127.0.0.1"
    max_body_bytes: int = MAX_BODY_BYTES
    # A segment job's progress is written to SQLite at most this often (state changes always).
    progress_write_interval_s: float = 0.5

    @property
    def token_path(self) -> Path:
        return self.data_dir / TOKEN_FILE

    @property
    def port_file(self) -> Path:
        return self.data_dir / PORT_FILE

    @property
    def jobs_db(self) -> Path:
        return self.data_dir / JOBS_DB


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment: the data folder and the token `saymap serve` wrote there."""
    data_dir = paths.data_dir()
    token_path = data_dir / TOKEN_FILE
    token = token_path.read_text(encoding="utf-8").strip() if token_path.is_file() else ""
    return Settings(data_dir=data_dir, token=token)

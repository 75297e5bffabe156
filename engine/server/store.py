"""Job records in SQLite (`<data_dir>/jobs.sqlite3`): the history survives a restart.

Each row also lists the files a job may leave half-written (`cleanup`), saved before the
job starts, so an engine killed mid-job can remove them when it comes back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TERMINAL_STATES = frozenset({"done", "failed", "cancelled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    progress REAL NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    request TEXT NOT NULL,
    result TEXT,
    metrics TEXT,
    error TEXT,
    cleanup TEXT NOT NULL
)
"""
_JSON_COLUMNS = ("request", "result", "metrics", "cleanup")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class JobRecord:
    """One job as stored; `cleanup` holds paths or glob patterns of possible partial outputs."""

    id: str
    kind: str
    state: str
    progress: float
    message: str
    created_at: str
    request: dict[str, Any]
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None
    cleanup: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def copy(self) -> JobRecord:
        return dataclasses.replace(
            self,
            request=dict(self.request),
            result=None if self.result is None else dict(self.result),
            metrics=None if self.metrics is None else dict(self.metrics),
            cleanup=list(self.cleanup),
        )

    def public(self) -> dict[str, Any]:
        """The record as the API shows it (cleanup is the engine's business)."""
        values = dataclasses.asdict(self)
        values.pop("cleanup")
        return values


class JobStore:
    """A single connection shared by the server's threads, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # This user's alone (requests name their files); SQLite gives -wal and -shm its mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL: a reader never waits for the worker's write; NORMAL is durable across a kill -9.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, record: JobRecord) -> None:
        values = dataclasses.asdict(record)
        for column in _JSON_COLUMNS:
            values[column] = None if values[column] is None else json.dumps(values[column])
        columns = list(values)
        updates = ", ".join(f"{c}=excluded.{c}" for c in columns if c != "id")
        sql = (
            f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}"
        )
        with self._lock:
            self._db.execute(sql, [values[c] for c in columns])

    def load_all(self) -> list[JobRecord]:
        """Every job, oldest first."""
        names = [f.name for f in dataclasses.fields(JobRecord)]
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(names)} FROM jobs ORDER BY seq").fetchall()
        records = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            for column in _JSON_COLUMNS:
                if values[column] is not None:
                    values[column] = json.loads(values[column])
            values["cleanup"] = values["cleanup"] or []
            records.append(JobRecord(**values))
        return records

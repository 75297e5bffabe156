"""The job queue: one worker thread runs device-heavy jobs one at a time; readers never wait.

Records live in memory for fast polling and are written through to SQLite (progress at most
every `progress_write_interval_s`, state changes at once). On start, jobs a killed engine
left queued or running are marked failed ("engine restarted") and the temporary files they
recorded are removed, by exact name.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from saymap.engine.errors import Cancelled, SaymapError, disk_full, explain
from saymap.engine.server.store import JobRecord, JobStore, now_iso

log = logging.getLogger(__name__)

RESTARTED = "engine restarted"
_GLOB_MAGIC = re.compile(r"[*?[]")  # what the cleanup lists of older engines were made of
Runner = Callable[["JobContext"], dict[str, Any]]


def finite_metrics(values: dict[str, Any]) -> dict[str, float]:
    """Keep the numeric, finite values: JSON has no NaN and the contract says float."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[str(key)] = float(value)
    return out


def remove_partials(paths: Iterable[str]) -> list[str]:
    """Remove the temporary files and folders a job recorded, by their exact names.

    Never a pattern: a record of an older engine that lists glob patterns (which matched the
    user's own newer files too) is left alone, whatever it names.
    """
    paths = list(paths)
    if any(_GLOB_MAGIC.search(p) for p in paths):
        log.warning("not removing %s: recorded by an older engine as patterns", paths)
        return []
    removed = []
    for name in paths:
        path = Path(name)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove partial output %s: %s", path, exc)
    return removed


class JobContext:
    """What a runner sees: its request, a cancel flag, and ways to report progress."""

    def __init__(
        self, manager: JobManager, job_id: str, request: dict[str, Any], prepared: Any = None
    ) -> None:
        self._manager = manager
        self.job_id = job_id
        self.request = request
        self.prepared = prepared  # what the preflight worked out (a segment job's plan)
        self.cancel = threading.Event()
        # The job's final message when it stops on a cancel: a runner that keeps work for a
        # later run (a collection's finished units) says so here.
        self.cancel_message = "cancelled by request"

    def progress(self, fraction: float, message: str | None = None) -> None:
        self._manager._update_progress(self.job_id, fraction, message)

    def metrics(self, values: dict[str, Any]) -> None:
        """Latest training metrics (step, loss, lr, val_iou...), also sent as an SSE event."""
        self._manager._update_metrics(self.job_id, values)

    def set_cleanup(self, paths: list[str]) -> None:
        """Record, before creating them, the exact temporary files or folders (never a final
        output, never a pattern) this job may leave if the engine is killed."""
        self._manager._set_cleanup(self.job_id, paths)

    def raise_if_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled by request")


class JobManager:
    def __init__(
        self,
        store: JobStore,
        runners: dict[str, Runner],
        *,
        progress_write_interval_s: float = 0.5,
    ) -> None:
        self._store = store
        self._runners = runners
        self._write_interval = progress_write_interval_s
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._records: dict[str, JobRecord] = {}
        self._versions: dict[str, int] = {}
        self._metric_events: dict[str, list[dict[str, float]]] = {}
        self._queue: deque[str] = deque()
        # In memory only: a job never outlives its engine (a restart fails it, see start).
        self._prepared: dict[str, Any] = {}
        self._running: JobContext | None = None
        self._last_write: dict[str, float] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> list[JobRecord]:
        """Load the history, fail what a previous engine left unfinished, start the worker."""
        recovered = []
        for record in self._store.load_all():
            if not record.terminal:
                removed = remove_partials(record.cleanup)
                record.state, record.error, record.message = "failed", RESTARTED, RESTARTED
                record.finished_at = now_iso()
                self._store.save(record)
                recovered.append(record)
                log.info("job %s was unfinished: marked failed, removed %s", record.id, removed)
            self._records[record.id] = record
            self._versions[record.id] = 0
        self._thread = threading.Thread(target=self._work, name="saymap-jobs", daemon=True)
        self._thread.start()
        return recovered

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the running job, drop the queue, and wait for the worker to finish."""
        with self._lock:
            self._stopping = True
            while self._queue:
                self._finish_locked(
                    self._records[self._queue.popleft()], "cancelled", "engine stopped first"
                )
            if self._running is not None:
                self._running.cancel.set()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the running job did not stop within %.0f s", timeout)

    # -- readers ---------------------------------------------------------------------------

    def submit(self, kind: str, request: dict[str, Any], prepared: Any = None) -> JobRecord:
        """Queue a checked request; `prepared` (the preflight's work) is handed to the runner."""
        if kind not in self._runners:
            raise ValueError(f"no runner for job kind {kind!r}")
        record = JobRecord(
            id=uuid.uuid4().hex,
            kind=kind,
            state="queued",
            progress=0.0,
            message="waiting for the device",
            created_at=now_iso(),
            request=request,
        )
        with self._lock:
            if self._stopping:
                raise SaymapError("the engine is shutting down; start it again and resubmit")
            self._store.save(record)
            self._records[record.id] = record
            self._versions[record.id] = 0
            self._queue.append(record.id)
            if prepared is not None:
                self._prepared[record.id] = prepared
            self._wake.notify_all()
            return record.copy()

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            record = self._records.get(job_id)
            return None if record is None else record.copy()

    def list(self, limit: int = 100) -> list[JobRecord]:
        """Newest first."""
        with self._lock:
            ids = list(self._records)[-limit:] if limit > 0 else []
            return [self._records[i].copy() for i in reversed(ids)]

    def unfinished(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first."""
        with self._lock:
            return [r.copy() for r in self._records.values() if not r.terminal]

    def snapshot(
        self, job_id: str, metrics_from: int = 0
    ) -> tuple[JobRecord, int, list[dict[str, float]]] | None:
        """The record, its change counter and the metric events after `metrics_from` (for SSE)."""
        with self._lock:
            record = self._records.get(job_id)
            if record is None:
                return None
            events = self._metric_events.get(job_id, [])[metrics_from:]
            return record.copy(), self._versions[job_id], list(events)

    def cancel(self, job_id: str) -> JobRecord | None:
        """A queued job is cancelled at once; a running one is asked to stop within a batch."""
        with self._lock:
            record = self._records.get(job_id)
            if record is None:
                return None
            if record.state == "queued":
                self._queue.remove(job_id)
                self._finish_locked(record, "cancelled", "cancelled before it started")
            elif record.state == "running" and self._running is not None:
                self._running.cancel.set()
                record.message = "cancelling: stopping after the current batch"
                self._bump_locked(record, persist=True)
            return record.copy()

    def close(self) -> None:
        self._store.close()

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                record = self._records[self._queue.popleft()]
                prepared = self._prepared.pop(record.id, None)
                context = JobContext(self, record.id, record.request, prepared)
                self._running = context
                record.state, record.started_at = "running", now_iso()
                record.message = "starting"
                self._bump_locked(record, persist=True)
            try:
                self._run(record, context)
            finally:
                with self._lock:
                    self._running = None

    def _run(self, record: JobRecord, context: JobContext) -> None:
        runner = self._runners[record.kind]
        try:
            result = runner(context)
        except Cancelled:
            self._finish(record, "cancelled", context.cancel_message)
        except SaymapError as exc:
            text = explain(disk_full(exc, record.request.get("output")) or exc)
            self._finish(record, "failed", text, error=text)
        except Exception as exc:  # a bug, but the worker must survive to run the next job
            full = disk_full(exc, record.request.get("output"))
            if full is not None:
                text = str(full)
            else:
                log.exception("job %s failed unexpectedly", record.id)
                text = f"internal error ({type(exc).__name__}: {exc}); please report it"
            self._finish(record, "failed", text, error=text)
        else:
            self._finish(record, "done", "done", result=result)

    def _finish(self, record: JobRecord, state: str, message: str, **values: Any) -> None:
        # No file removal here: a runner that stops leaves nothing by its own contract, and
        # a pattern match now could hit a file someone else wrote meanwhile. `cleanup` is for
        # an engine that was killed and never reached this line.
        with self._lock:
            self._finish_locked(record, state, message, **values)

    def _finish_locked(self, record: JobRecord, state: str, message: str, **values: Any) -> None:
        record.state, record.message = state, message
        record.finished_at = now_iso()
        self._prepared.pop(record.id, None)  # a job cancelled while queued never ran
        if state == "done":
            record.progress = 1.0
        record.error = values.get("error")
        if "result" in values:
            record.result = values["result"]
        self._bump_locked(record, persist=True)

    # -- updates from the runner (worker thread) ---------------------------------------------

    def _bump_locked(self, record: JobRecord, *, persist: bool) -> None:
        self._versions[record.id] += 1
        now = os.times().elapsed
        if persist or now - self._last_write.get(record.id, 0.0) >= self._write_interval:
            self._store.save(record)
            self._last_write[record.id] = now

    def _update_progress(self, job_id: str, fraction: float, message: str | None) -> None:
        with self._lock:
            record = self._records[job_id]
            if record.terminal:
                return
            if math.isfinite(fraction):
                record.progress = min(1.0, max(record.progress, float(fraction)))
            if message and not (self._running and self._running.cancel.is_set()):
                record.message = message
            self._bump_locked(record, persist=False)

    def _update_metrics(self, job_id: str, values: dict[str, Any]) -> None:
        clean = finite_metrics(values)
        with self._lock:
            record = self._records[job_id]
            record.metrics = {**(record.metrics or {}), **clean}
            self._metric_events.setdefault(job_id, []).append(clean)
            self._bump_locked(record, persist=False)

    def _set_cleanup(self, job_id: str, paths: list[str]) -> None:
        with self._lock:
            record = self._records[job_id]
            record.cleanup = list(paths)
            self._bump_locked(record, persist=True)

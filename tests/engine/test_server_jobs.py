"""The job queue on a real SQLite file: order, cancel, persistence and restart recovery."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from saymap.engine.errors import OutputError
from saymap.engine.server.jobs import RESTARTED, JobContext, JobManager, remove_partials
from saymap.engine.server.store import JobRecord, JobStore, now_iso


def _wait(manager: JobManager, job_id: str, states: set[str]) -> JobRecord:
    deadline = time.monotonic() + 10
    while (record := manager.get(job_id)) is not None and record.state not in states:
        assert time.monotonic() < deadline, record
        time.sleep(0.01)
    assert record is not None
    return record


def _blocking_runner(gate: threading.Event, started: threading.Event) -> Any:
    def run(context: JobContext) -> dict[str, Any]:
        started.set()
        context.progress(0.25, "a quarter")
        context.metrics({"step": 1, "loss": float("nan"), "lr": 0.1})
        while not gate.wait(0.01):
            context.raise_if_cancelled()
        return {"output": None, "n_features": 3, "model": "m"}

    return run


def test_one_job_at_a_time_cancel_and_history(tmp_path: Path) -> None:
    gate, started = threading.Event(), threading.Event()
    runners = {"segment": _blocking_runner(gate, started)}
    manager = JobManager(JobStore(tmp_path / "jobs.sqlite3"), runners)
    manager.start()
    try:
        first = manager.submit("segment", {"n": 1})
        second = manager.submit("segment", {"n": 2})
        third = manager.submit("segment", {"n": 3})
        assert started.wait(5)
        deadline = time.monotonic() + 5
        while (running := manager.get(first.id)).metrics is None:  # reported just after start
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert running.progress == 0.25 and running.metrics == {"step": 1.0, "lr": 0.1}
        assert manager.get(second.id).state == "queued"
        cancelled = manager.cancel(second.id)
        assert cancelled.state == "cancelled" and cancelled.started_at is None
        manager.cancel(first.id)
        assert _wait(manager, first.id, {"cancelled", "done"}).state == "cancelled"
        gate.set()
        done = _wait(manager, third.id, {"done"})
        assert done.result == {"output": None, "n_features": 3, "model": "m"}
        assert done.progress == 1.0
        assert [r.id for r in manager.list()] == [third.id, second.id, first.id]
    finally:
        manager.stop()
        manager.close()
    # The history survives in SQLite.
    stored = {r.id: r.state for r in JobStore(tmp_path / "jobs.sqlite3").load_all()}
    assert stored == {first.id: "cancelled", second.id: "cancelled", third.id: "done"}


def test_failures_keep_the_worker_alive(tmp_path: Path) -> None:
    def refuse(context: JobContext) -> dict[str, Any]:
        if context.request["how"] == "refused":
            raise OutputError("the output folder vanished")
        raise ZeroDivisionError("a bug")

    manager = JobManager(JobStore(tmp_path / "jobs.sqlite3"), {"segment": refuse})
    manager.start()
    try:
        refused = manager.submit("segment", {"how": "refused"})
        bug = manager.submit("segment", {"how": "bug"})
        assert _wait(manager, refused.id, {"failed"}).error == "the output folder vanished"
        failed = _wait(manager, bug.id, {"failed"})
        assert "ZeroDivisionError" in failed.error and "report" in failed.error
    finally:
        manager.stop()
        manager.close()


def test_restart_fails_unfinished_jobs_and_removes_their_partial_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    store = JobStore(tmp_path / "jobs.sqlite3")
    started = now_iso()
    partial = out / ".result.gpkg.r.saymap-job"  # the job's own folder, as recorded
    partial.mkdir()
    (partial / "result.gpkg").write_text("half")
    # Written by the user after the job started (e.g. with the CLI): newer than the job,
    # and named like what the old pattern-based clean-up matched. Both must survive.
    users_file = out / "result.gpkg"
    users_file.write_text("the user's newer file")
    users_notes = out / "result.gpkg-notes.txt"
    users_notes.write_text("notes")
    running = JobRecord(
        id="r",
        kind="segment",
        state="running",
        progress=0.4,
        message="",
        created_at=started,
        request={},
        started_at=started,
        cleanup=[str(partial)],
    )
    queued = JobRecord(
        id="q",
        kind="segment",
        state="queued",
        progress=0.0,
        message="",
        created_at=started,
        request={},
    )
    done = JobRecord(
        id="d",
        kind="segment",
        state="done",
        progress=1.0,
        message="",
        created_at=started,
        request={},
    )
    for record in (done, running, queued):
        store.save(record)
    store.close()

    manager = JobManager(JobStore(tmp_path / "jobs.sqlite3"), {"segment": lambda c: {}})
    recovered = manager.start()
    try:
        assert sorted(r.id for r in recovered) == ["q", "r"]
        for job_id in ("r", "q"):
            record = manager.get(job_id)
            assert record.state == "failed" and record.error == RESTARTED
        assert manager.get("d").state == "done"
        assert not partial.exists()
        assert users_file.read_text() == "the user's newer file"
        assert users_notes.read_text() == "notes"
    finally:
        manager.stop()
        manager.close()


def test_remove_partials_takes_exact_names_never_patterns(tmp_path: Path) -> None:
    target = tmp_path / "x.gpkg"
    target.write_text("x")
    notes = tmp_path / "x.gpkg-notes.txt"
    notes.write_text("mine")
    # What an older engine recorded: patterns that matched the user's files too.
    legacy = [str(tmp_path / ".x.*.tmp.gpkg*"), str(target), str(tmp_path / "x.gpkg-*")]
    assert remove_partials(legacy) == []
    assert target.exists() and notes.exists()
    temp = tmp_path / ".x.gpkg.j.saymap-job"
    temp.mkdir()
    assert remove_partials([str(temp), str(tmp_path / "gone")]) == [str(temp)]
    assert not temp.exists() and target.exists() and notes.exists()


def test_stop_cancels_the_running_job(tmp_path: Path) -> None:
    gate, started = threading.Event(), threading.Event()
    manager = JobManager(
        JobStore(tmp_path / "jobs.sqlite3"), {"segment": _blocking_runner(gate, started)}
    )
    manager.start()
    running = manager.submit("segment", {})
    waiting = manager.submit("segment", {})
    assert started.wait(5)
    manager.stop(timeout=5)
    assert manager.get(running.id).state == "cancelled"
    assert manager.get(waiting.id).state == "cancelled"
    with pytest.raises(Exception, match="shutting down"):
        manager.submit("segment", {})
    manager.close()

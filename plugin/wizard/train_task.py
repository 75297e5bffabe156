"""Follow a train job as a QgsTask: metrics and progress come back to the GUI by signals.

Stopping the task (QGIS closing, the wizard closing) only stops following: the job goes
on in the engine and the wizard can reattach. Only `request_cancel()` (the Cancel button)
deletes the job on the engine.
"""

from __future__ import annotations

import time

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..call_task import task_error  # noqa: TID252 (the plugin folder name varies)
from ..engine_client import Endpoint, EngineClient, JobInfo  # noqa: TID252 (the plugin folder name varies)
from ..jobs import POLL_S, cancel_job  # noqa: TID252 (the plugin folder name varies)

TRAIN_KIND = "train"


def running_train_jobs(client: EngineClient) -> list[JobInfo]:
    """Train jobs the engine still runs or queues, newest first (for reattaching)."""
    jobs = [j for j in client.jobs() if j.kind == TRAIN_KIND and not j.terminal]
    return sorted(jobs, key=lambda j: j.created_at, reverse=True)


class TrainFollowTask(QgsTask):
    """Polls one train job until it ends, is cancelled by the user, or the task stops."""

    updated = pyqtSignal(object)  # JobInfo, every poll while the job runs
    ended = pyqtSignal(object)  # JobInfo in a terminal state, or None when following stopped
    failed = pyqtSignal(str)  # the engine could not be reached

    def __init__(self, endpoint: Endpoint, job: JobInfo) -> None:
        super().__init__(
            f"SayMap: training {job.request.get('name', job.id)}", QgsTask.Flag.CanCancel
        )
        self.endpoint = endpoint
        self.job = job
        self.error = ""
        self._cancel_job = False

    def request_cancel(self) -> None:
        """The user's Cancel: delete the job on the engine, then follow it to its end."""
        self._cancel_job = True

    def run(self) -> bool:
        client = EngineClient(self.endpoint)
        try:
            while not self.job.terminal and not self.isCanceled():
                if self._cancel_job:
                    self.job = cancel_job(client, self.job.id)
                    break
                time.sleep(POLL_S)
                self.job = client.job(self.job.id)
                self.setProgress(max(0.0, min(100.0, self.job.progress * 100.0)))
                if not self.job.terminal:
                    # The end goes out once, by `ended` on the main thread, after this task
                    # is done: a page that offered Retry on a terminal poll could be clicked
                    # while the wizard still followed this task, and the click did nothing.
                    self.updated.emit(self.job)
        except Exception as exc:  # a worker thread's boundary
            self.error = task_error(exc)
            return False
        return True

    def finished(self, result: bool) -> None:
        if not result:
            self.failed.emit(self.error or "following the training job stopped")
        elif self.job.terminal:
            self.ended.emit(self.job)
        else:
            self.ended.emit(None)

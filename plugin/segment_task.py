"""The toolbar's run as a QgsTask: progress in the task manager, Cancel cancels the job,
the GUI never waits. run() works in a worker thread; finished() hands back on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qgis.core import QgsRasterBlockFeedback, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .call_task import task_problem
from .engine_client import Endpoint, EngineClient, JobInfo, SegmentRequest
from .errors import JobCancelled
from .jobs import follow_segment
from .messages import Problem
from .raster_export import ExportPlan, write_export
from .request import join_prompts


class SegmentTask(QgsTask):
    """Export (when needed), post /v1/segment, follow the job; never raises out of run()."""

    status = pyqtSignal(str)  # the engine's message for the job, for the toolbar

    def __init__(
        self,
        endpoint: Endpoint,
        request: SegmentRequest,
        on_done: Callable[[JobInfo], None],
        on_failed: Callable[[Problem], None],
        on_cancelled: Callable[[], None],
        exports: Sequence[ExportPlan] = (),
    ) -> None:
        super().__init__(f"SayMap: {join_prompts(request.prompts)}", QgsTask.Flag.CanCancel)
        self.endpoint = endpoint
        self.request = request
        self.exports = tuple(exports)  # written first; the request already names their paths
        self.job: JobInfo | None = None
        self.problem: Problem | None = None
        self.was_cancelled = False
        self._on_done = on_done
        self._on_failed = on_failed
        self._on_cancelled = on_cancelled

    def run(self) -> bool:
        try:
            for number, export in enumerate(self.exports, start=1):
                of = f" ({number} of {len(self.exports)})" if len(self.exports) > 1 else ""
                self.status.emit(f"exporting the raster for the engine{of}")
                write_export(export, QgsRasterBlockFeedback())
                if self.isCanceled():
                    raise JobCancelled("Cancelled; no layer was added.")
            client = EngineClient(self.endpoint)
            self.job = follow_segment(client, self.request, self._progress, self.isCanceled)
        except JobCancelled:
            self.was_cancelled = True
            return False
        except Exception as exc:  # a worker thread's boundary
            self.problem = task_problem(exc)
            return False
        return True

    def _progress(self, job: JobInfo) -> None:
        """The job's overall progress, and the engine's words for where it is (a collection
        says "raster 3 of 16 (tile_03.tif): 40 of 96 tiles")."""
        self.job = job
        self.setProgress(max(0.0, min(100.0, job.progress * 100.0)))
        if job.message:
            self.status.emit(job.message)

    def detach(self) -> None:
        """Forget the callbacks (plugin unload); the worker still cancels the job."""
        self._on_done = self._on_failed = lambda _value: None
        self._on_cancelled = lambda: None

    def finished(self, result: bool) -> None:
        if result and self.job is not None:
            self._on_done(self.job)
        elif self.was_cancelled or (self.isCanceled() and self.problem is None):
            self._on_cancelled()
        else:
            self._on_failed(
                self.problem or Problem("failed", "The SayMap task stopped without an answer.")
            )

"""A small line chart of training loss and validation IoU, drawn with QPainter
(QtCharts is not part of QGIS's Qt here)."""

from __future__ import annotations

from qgis.PyQt.QtCore import QPointF, QRectF, Qt
from qgis.PyQt.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

LOSS_COLOR = QColor(31, 119, 180)
IOU_COLOR = QColor(214, 39, 40)
MARGIN = 36


class LossPlot(QWidget):
    """Loss (left axis, own scale) and validation IoU (right axis, 0..1) against step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss: list[tuple[int, float]] = []
        self.val_iou: list[tuple[int, float]] = []
        self.total_steps = 1
        self.setMinimumSize(360, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def clear(self, total_steps: int = 1) -> None:
        self.loss, self.val_iou, self.total_steps = [], [], max(1, total_steps)
        self.update()

    def add(self, step: int, loss: float, val_iou: float | None = None) -> None:
        """One point per step; a repeated step replaces nothing (polls may see it twice)."""
        if not self.loss or step > self.loss[-1][0]:
            self.loss.append((step, loss))
        if val_iou is not None and (not self.val_iou or self.val_iou[-1][1] != val_iou):
            self.val_iou.append((step, val_iou))
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), Qt.GlobalColor.white)
        area = QRectF(MARGIN, 12, self.width() - 2 * MARGIN, self.height() - 12 - MARGIN)
        painter.setPen(QPen(Qt.GlobalColor.gray, 1))
        painter.drawRect(area)
        top = max((v for _, v in self.loss), default=1.0) or 1.0
        painter.setPen(LOSS_COLOR)
        painter.drawText(QPointF(2, area.top() + 10), f"{top:.2f}")
        painter.drawText(QPointF(2, area.bottom()), "0")
        painter.setPen(IOU_COLOR)
        painter.drawText(QPointF(area.right() + 4, area.top() + 10), "1.0")
        painter.drawText(QPointF(area.right() + 4, area.bottom()), "0")
        painter.setPen(Qt.GlobalColor.black)
        painter.drawText(QPointF(area.left(), area.bottom() + 16), "0")
        painter.drawText(QPointF(area.right() - 40, area.bottom() + 16), f"{self.total_steps}")
        painter.drawText(QPointF(area.center().x() - 60, area.bottom() + 30), "step")
        painter.setPen(LOSS_COLOR)
        painter.drawText(QPointF(area.left() + 6, area.top() + 14), "loss")
        painter.setPen(IOU_COLOR)
        painter.drawText(QPointF(area.left() + 50, area.top() + 14), "validation IoU")
        self._line(painter, area, self.loss, top, LOSS_COLOR)
        self._line(painter, area, self.val_iou, 1.0, IOU_COLOR, dots=True)
        painter.end()

    def _line(
        self,
        painter: QPainter,
        area: QRectF,
        points: list[tuple[int, float]],
        top: float,
        color: QColor,
        dots: bool = False,
    ) -> None:
        def at(step: int, value: float) -> QPointF:
            x = area.left() + area.width() * min(step, self.total_steps) / self.total_steps
            y = area.bottom() - area.height() * max(0.0, min(value / top, 1.0))
            return QPointF(x, y)

        polygon = QPolygonF([at(s, v) for s, v in points])
        painter.setPen(QPen(color, 2))
        painter.drawPolyline(polygon)
        if dots:
            painter.setBrush(color)
            for point in polygon:
                painter.drawEllipse(point, 3, 3)

"""The plugin's messages in QGIS's message bar, with buttons that offer the way out.

The bar owns its items: the user closes one with ×, or a newer one pushes it out, and the
bar deletes it. So the plugin never keeps an item it did not check: each one is forgotten
when it is destroyed, and unload takes away only the items still alive (sip.isdeleted), never
a wrapper whose C++ object is gone ("wrapped C/C++ object … has been deleted" on quit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qgis.core import Qgis
from qgis.gui import QgsMessageBar, QgsMessageBarItem
from qgis.PyQt import sip
from qgis.PyQt.QtWidgets import QPushButton

TITLE = "SayMap"


class MessageBoard:
    """Pushes SayMap messages onto one message bar and can take its own away again."""

    def __init__(self, bar: Callable[[], QgsMessageBar]) -> None:
        self._bar = bar
        self._items: list[QgsMessageBarItem] = []

    def say(
        self,
        text: str,
        level: Qgis.MessageLevel = Qgis.MessageLevel.Info,
        duration: int = 8,
        buttons: Sequence[tuple[str, Callable[[], None]]] = (),
        title: str = TITLE,
    ) -> QgsMessageBarItem:
        """Push a message; each (label, slot) button runs its slot and closes the message.
        Messages with buttons stay until closed (duration 0), so the way out is not missed."""
        bar = self._bar()
        widget = bar.createMessage(title, text)
        for label, slot in buttons:
            button = QPushButton(label, widget)
            button.clicked.connect(_then_close(slot, widget, bar))
            widget.layout().addWidget(button)
        item = bar.pushWidget(widget, level, 0 if buttons else duration)
        self._keep(item)
        return item

    def _keep(self, item: QgsMessageBarItem) -> None:
        self._items = [i for i in self._items if not sip.isdeleted(i)]
        self._items.append(item)
        item.destroyed.connect(lambda *_: self._forget(item))

    def _forget(self, item: QgsMessageBarItem) -> None:
        self._items = [i for i in self._items if i is not item]

    def items(self) -> list[QgsMessageBarItem]:
        """The SayMap messages still on the bar."""
        return [i for i in self._items if not sip.isdeleted(i)]

    def clear(self) -> None:
        """Take every SayMap message still shown off the bar (plugin unload)."""
        bar = self._bar()
        for item in self.items():
            bar.popWidget(item)
        self._items = []


def _then_close(
    slot: Callable[[], None], widget: QgsMessageBarItem, bar: QgsMessageBar
) -> Callable[[], None]:
    def clicked() -> None:
        if not sip.isdeleted(widget):
            bar.popWidget(widget)
        slot()

    return clicked

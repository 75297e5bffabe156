"""Help ▸ About SayMap: the plugin's version, where its guide is, and the model card of the
engine's active model (what it was trained on, its classes and working resolution, its known
limits), read from GET /v1/models when an engine runs."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from qgis.PyQt import sip
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .call_task import call_in_background
from .engine_client import Endpoint, EngineClient, ModelList
from .engine_launcher import EngineConnection
from .paths import HELP_URL, plugin_metadata

# Card entries shown first, with their labels; the rest follow under their own keys.
CARD_FIELDS = (
    ("name", "Model"),
    ("classes", "Classes"),
    ("gsd_m", "Working resolution (m per pixel)"),
    ("gsd_range_m", "Made for rasters of (m per pixel)"),
    ("method", "Training method"),
    ("backbone", "Backbone"),
    ("trained_at", "Trained"),
    ("known_limits", "Known limits"),
)


def describe_card(name: str, card: Mapping[str, Any]) -> str:
    """The model card as a short HTML table a person reads (the long evaluation entries,
    dictionaries of numbers, are left to the card file itself)."""
    rows = [f"<tr><th align='left'>Registered as</th><td>{html.escape(name)}</td></tr>"]
    for key, label in CARD_FIELDS:
        value = card.get(key)
        if value in (None, "", [], {}):
            continue
        if key == "gsd_range_m" and isinstance(value, list | tuple) and len(value) == 2:
            text = f"{value[0]:g}–{value[1]:g}"
        elif key == "known_limits" and isinstance(value, list | tuple):
            text = "<ul>" + "".join(f"<li>{html.escape(str(v))}</li>" for v in value) + "</ul>"
            rows.append(f"<tr><th align='left' valign='top'>{label}</th><td>{text}</td></tr>")
            continue
        elif isinstance(value, list | tuple):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append(f"<tr><th align='left'>{label}</th><td>{html.escape(text)}</td></tr>")
    return "<table cellspacing='4'>" + "".join(rows) + "</table>"


class AboutDialog(QDialog):
    """Version, guide and the active model's card; asks a running engine, starts none
    unless the user presses “Start the engine”."""

    def __init__(self, connection: EngineConnection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About SayMap")
        self.setMinimumWidth(560)
        self.connection = connection
        self.models: ModelList | None = None
        meta = plugin_metadata()
        self.version = meta.get("version", "unknown")
        header = QLabel(
            f"<h3>SayMap {html.escape(self.version)}</h3>"
            f"<p>{html.escape(meta.get('description', ''))}</p>"
            f"<p>Guide: <a href='{HELP_URL}'>{html.escape(HELP_URL)}</a><br>"
            f"Source: {html.escape(meta.get('repository', ''))} · "
            f"Issues: {html.escape(meta.get('tracker', ''))}</p>",
            self,
        )
        header.setWordWrap(True)
        header.setOpenExternalLinks(True)
        self.card_view = QTextBrowser(self)
        self.card_view.setOpenExternalLinks(True)
        self.card_view.setMinimumHeight(260)
        self.card_view.setHtml("<p>Asking the engine for the active model's card…</p>")
        self.start_button = QPushButton("Start the engine", self)
        self.start_button.setToolTip("Start the engine to read the active model's card")
        self.start_button.setVisible(False)
        self.start_button.clicked.connect(self._start)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addWidget(QLabel("<b>Active model</b>", self))
        layout.addWidget(self.card_view)
        layout.addWidget(self.start_button)
        layout.addWidget(buttons)
        connection.probe(self._query, self._not_running)

    def _start(self) -> None:
        self.start_button.setEnabled(False)
        self.card_view.setHtml("<p>Starting the engine…</p>")
        self.connection.ensure(self._query, self._not_running)

    def _query(self, endpoint: Endpoint) -> None:
        if sip.isdeleted(self):
            return
        client = EngineClient(endpoint)
        call_in_background("SayMap: model card", client.models, self._show, self._not_running)

    def _show(self, models: ModelList) -> None:
        if sip.isdeleted(self):
            return
        self.models = models
        self.start_button.setVisible(False)
        active = next((m for m in models.models if m.name == models.active), None)
        if active is None:
            self.card_view.setHtml(f"<p>The active model {html.escape(models.active)} is not "
                                   "registered in the engine.</p>")  # fmt: skip
            return
        self.card_view.setHtml(describe_card(active.name, active.card))

    def _not_running(self, reason: str) -> None:
        if sip.isdeleted(self):
            return
        self.card_view.setHtml(
            "<p>No engine answers, so the active model's card cannot be read "
            f"({html.escape(reason)}).</p>"
        )
        self.start_button.setVisible(True)
        self.start_button.setEnabled(True)

    def card_text(self) -> str:
        return self.card_view.toPlainText()

"""Models stay warm: each (model, device) pair is loaded once and kept for the next job."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from saymap.engine.model import load_model

log = logging.getLogger(__name__)


class ModelCache:
    """A small LRU of loaded models; loading holds a lock so two jobs never load one twice."""

    def __init__(self, max_models: int = 2) -> None:
        self._max = max_models
        self._lock = threading.Lock()  # guards the dict; held only for a moment
        self._load_lock = threading.Lock()  # held while loading, so readers never wait on it
        self._models: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, name: str, folder: Path, device: Any) -> Any:
        """The model `name` (stored in `folder`) on `device`, loading it on first use."""
        key = (name, str(device))
        with self._load_lock:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            log.info("loading model %s on %s", name, device)
            model = load_model(folder, device=device)
            with self._lock:
                self._models[key] = model
                while len(self._models) > self._max:
                    evicted, _ = self._models.popitem(last=False)
                    log.info("unloading model %s@%s", *evicted)
            return model

    def loaded(self) -> list[str]:
        with self._lock:
            return [f"{name}@{device}" for name, device in self._models]

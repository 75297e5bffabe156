"""The RRSIS model (after LAVT, RRSIS/LGCE, RMSIN and BTDNet), one module per paper concept."""

from saymap.engine.model.checkpoint import (
    load_model,
    read_card,
    read_config,
    save_model,
)
from saymap.engine.model.configuration import NAMED_CONFIGS, SaymapConfig
from saymap.engine.model.modeling import SaymapModel
from saymap.engine.model.outputs import SegmentationOutput, TextFeatures

__all__ = [
    "NAMED_CONFIGS",
    "SaymapConfig",
    "SaymapModel",
    "SegmentationOutput",
    "TextFeatures",
    "load_model",
    "read_card",
    "read_config",
    "save_model",
]

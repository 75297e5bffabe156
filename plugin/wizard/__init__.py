"""The fine-tune wizard: teach the engine's model from the analyst's own layers."""

from .wizard import FineTuneWizard

__all__ = ["FineTuneWizard"]

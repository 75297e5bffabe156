"""What the wizard's input pages share in how they look: one colour for the reason Next is
disabled, so the Data, Sentences and Settings pages say it alike."""

from __future__ import annotations

WHY_STYLE = "color: #b00020;"  # the reason Next is disabled, in a colour that reads as one

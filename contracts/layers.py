"""The one vocabulary of video layers, from the publisher to what a classroom receives.

A camera publishes up to two simulcast encodings, ``high`` and ``low`` (their RTP stream
ids); a screen share one, ``high``. A subscriber receives one of them, or ``audio``: its
video held back (a link too weak for the low layer, or a pin). A subscriber may pin one of
those or leave the choice to the SFU (``auto``).
"""

from __future__ import annotations

from typing import Literal

SimulcastLayer = Literal["high", "low"]
ReceivedLayer = Literal["high", "low", "audio"]
LayerPin = Literal["auto", "high", "low", "audio"]

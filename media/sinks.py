"""What a Producer delivers its encoded frames to.

A browser's Consumer is one kind of sink; a recorder or an HLS packager (consumers that are
not browsers) are others: they get the same shared frames, never decoded, and ask for a
keyframe through the producer when they need one (to start, or after a gap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from media.frames import EncodedFrame
    from media.producer import Producer


class FrameSink(Protocol):
    # The loss (of 256) its receiver last reported and when: a producer's audio FEC is sized
    # for the worst subscriber. A sink without a network link reports 0.
    fraction_lost: int
    fraction_lost_at: float

    def on_frame(self, producer: Producer, frame: EncodedFrame) -> None:
        """A complete encoded frame (shared by every sink: do not modify it)."""

    def on_gap(self, producer: Producer) -> None:
        """Frames of ``producer`` were lost for good: resume at its next keyframe."""

    def on_cut(self, producer: Producer) -> None:
        """``producer`` dropped a frame its source cut short: resume at a keyframe."""

    def wants(self, producer: Producer) -> bool:
        """Whether it waits for ``producer``'s frames now (only then is a keyframe asked for)."""

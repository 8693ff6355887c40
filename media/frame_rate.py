"""Each video layer's frame rate as it reaches the SFU, and the slideshow rule.

The teacher console keeps its camera's resolution under pressure (``degradationPreference:
"maintain-resolution"``, ``web/js/sfu-client.js``): when its uplink shrinks, Chromium's
encoder keeps the high layer at 720p and drops frames instead. Measured with the teacher's
uplink capped at 1 Mbps (``tests/media/test_weak_links.py``): the high layer arrived at
3–8 fps (250–470 kbps) for as long as the cap lasted, while the low layer kept 22–30 fps;
the classrooms, whose own links were fine, were forwarded the high layer and watched a
slideshow at 4–8 fps. A classroom's downlink estimate cannot see this (the high layer's
bitrate *fell*, so it fits better than ever): the rule looks at what the publisher sends.

**The slideshow rule.** A layer is a slideshow while, over the last ``FPS_WINDOW_S``, it
arrives at under ``SLOW_SHARE`` of the next smaller layer's rate (the same camera), and that
smaller layer arrives at ``FLUID_FPS`` or more; the condition must hold for ``DOWN_AFTER_S``.
Subscribers are then given the smaller layer (the allocation leaves the slideshow out, as it
does a layer that lost frames). It is a layer again once it arrives at ``RECOVERED_SHARE``
of the smaller layer's rate for ``UP_AFTER_S``; going back up then follows the allocation's
usual evidence rules (margin, probe).

- Relative, not absolute: the smaller layer shows what the camera captures. A first
  version used a fixed 10 fps floor; under the 1 Mbps cap the high layer wavered between
  8 and 15 fps (a 2 s window averaging 9-12) while low kept 28-30, so on a quiet machine
  the rule rarely fired and the classrooms watched 720p at 9-12 fps with a freeze at every
  burst. Half the camera's rate is where motion visibly stutters next to what the smaller
  layer shows (a hand writing on the blackboard becomes jumps): the capped-uplink test
  measured 18.6-29.6 fps at the classroom with this rule, 2.9-13.1 without it. A high layer
  at 20 of 30 fps is kept: 720p stays the better picture for a lesson.
- The smaller layer must itself be fluid (``FLUID_FPS``): a camera that captures slowly (a
  document camera at 5-8 fps) or a publisher short of CPU makes both layers slow, and then
  the smaller one gains nothing; the rule never fires there.
- The window (2 s) smooths arrival bursts (a 720p keyframe behind a cap arrives as a
  burst) and is also the minimum observation: no layer is judged before it has been seen
  that long. With ``DOWN_AFTER_S`` a layer must have been slow for 2-3 s in all: one stall
  of a second at 30 fps leaves 15 fps in the window and changes nothing (stalls and lost
  frames are ``Producer.broken``'s business).
- Recovery needs 3/4 of the smaller layer's rate for 3 s: the gap between 1/2 and 3/4 and
  the longer hold keep a layer hovering around the threshold from switching every
  classroom back and forth, each switch costing a keyframe on the very uplink that is
  short; 3 s is short enough that the classroom has HD again well within the 30 s after
  the uplink recovers.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

FPS_WINDOW_S = 2.0
SLOW_SHARE = 0.5
FLUID_FPS = 10.0
DOWN_AFTER_S = 1.0
RECOVERED_SHARE = 0.75
UP_AFTER_S = 3.0
# The layers from the largest down (contracts.layers' simulcast layers).
LAYER_ORDER = ("high", "low")


class FrameRateMeter:
    """Frames that arrived in the last ``window`` seconds, per second (a sliding window:
    ``FrameClock``'s rate for the stats is a tumbling one, which lags a collapse by up to
    two windows)."""

    def __init__(self, window: float = FPS_WINDOW_S) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._first: float | None = None

    def tick(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._times.append(now)
        self._forget(now)

    def fps(self, now: float) -> float | None:
        """None until the stream has been observed for a whole window."""
        if self._first is None or now - self._first < self.window:
            return None
        self._forget(now)
        return len(self._times) / self.window

    def _forget(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()


def is_slow(fps: float, smaller_fps: float) -> bool:
    return smaller_fps >= FLUID_FPS and fps < SLOW_SHARE * smaller_fps


def is_recovered(fps: float, smaller_fps: float) -> bool:
    return fps >= RECOVERED_SHARE * smaller_fps


@dataclass
class Slideshow:
    """The slideshow rule's verdict on one layer, with its hysteresis."""

    active: bool = False
    since: float = math.inf  # when the condition for changing the verdict began to hold
    changes: int = 0  # how often the verdict changed, and when it last did (monotonic)
    changed_at: float = -math.inf

    def update(self, now: float, fps: float | None, smaller_fps: float | None) -> bool:
        if fps is None or smaller_fps is None:  # not observed long enough: no verdict yet
            self.since = math.inf
            return self.active
        flip = is_recovered(fps, smaller_fps) if self.active else is_slow(fps, smaller_fps)
        if not flip:
            self.since = math.inf
            return self.active
        self.since = min(self.since, now)
        if now - self.since >= (UP_AFTER_S if self.active else DOWN_AFTER_S):
            self.active, self.since = not self.active, math.inf
            self.changes += 1
            self.changed_at = now
        return self.active


def without_slideshows(
    rates: Mapping[str, float],
    fps: Mapping[str, float | None],
    verdicts: Mapping[str, Slideshow],
    now: float,
) -> dict[str, float]:
    """The layers (by bitrate) a subscriber may be given: not one that is a slideshow next
    to the smaller layer below it. ``verdicts`` holds each layer's ``Slideshow`` state."""
    present = [layer for layer in LAYER_ORDER if layer in rates]
    usable = dict(rates)
    for layer, smaller in itertools.pairwise(present):
        verdict = verdicts.get(layer)
        if verdict is not None and verdict.update(now, fps.get(layer), fps.get(smaller)):
            del usable[layer]
    return usable


def best_layer(verdicts: Mapping[str, Slideshow]) -> str:
    """The best layer a subscriber can be given ("audio" if none): the largest that is not
    a slideshow (a new subscriber does not start on one, and a classroom moved off one is
    not "held below the best layer" by its own link)."""
    present = [layer for layer in LAYER_ORDER if layer in verdicts]
    fluid = [layer for layer in present[:-1] if not verdicts[layer].active] + present[-1:]
    return fluid[0] if fluid else "audio"

"""The slideshow rule (media/frame_rate.py), fed synthetic frame arrivals and bitrates the
way the SFU measures them, through the layer choice the router makes once a second."""

from __future__ import annotations

from media.allocation import VideoDemand, allocate
from media.frame_rate import (
    DOWN_AFTER_S,
    FPS_WINDOW_S,
    UP_AFTER_S,
    FrameRateMeter,
    Slideshow,
    best_layer,
    without_slideshows,
)

HIGH, LOW, AUDIO = 2_500_000.0, 150_000.0, 40_000.0
TICK = 1.0  # the worker's layer_interval


class Lesson:
    """A teacher's two camera layers as the SFU receives them, and one classroom on a link
    that carries everything (its estimate never decides here: only the rule does)."""

    def __init__(self, estimate: float = 10 * HIGH) -> None:
        self.now = 0.0
        self.meters = {"high": FrameRateMeter(), "low": FrameRateMeter()}
        self.verdicts = {"high": Slideshow(), "low": Slideshow()}
        self.rates = {"high": HIGH, "low": LOW}
        self.estimate = estimate
        self.layer = "high"
        self.probe: float | None = None
        self._next = {"high": 0.0, "low": 0.0}

    def run(self, seconds: float, high_fps: float, low_fps: float = 30.0) -> list[str]:
        """Frames arrive at these rates for ``seconds``; the layer after each tick."""
        layers = []
        end = self.now + seconds
        while self.now < end - 1e-9:
            tick_end = self.now + TICK
            for layer, fps in (("high", high_fps), ("low", low_fps)):
                if fps <= 0:
                    self._next[layer] = tick_end
                    continue
                t = max(self._next[layer], self.now)
                while t < tick_end:
                    self.meters[layer].tick(t)
                    t += 1.0 / fps
                self._next[layer] = t
            self.now = tick_end
            layers.append(self._choose())
        return layers

    def _choose(self) -> str:
        fps = {layer: m.fps(self.now) for layer, m in self.meters.items()}
        usable = without_slideshows(self.rates, fps, self.verdicts, self.now)
        demand = VideoDemand(key="teacher", rates=usable, current=self.layer)  # type: ignore[arg-type]
        allocation = allocate(self.estimate, AUDIO, [demand])
        self.layer, self.probe = allocation.layers["teacher"], allocation.probe_bps
        return self.layer


def test_the_meter_judges_nothing_before_a_whole_window_and_counts_a_sliding_one() -> None:
    meter = FrameRateMeter()
    for i in range(30):
        meter.tick(i / 30)
    assert meter.fps(1.0) is None  # seen for 1 s of a 2 s window
    for i in range(30, 90):
        meter.tick(i / 30)
    assert meter.fps(3.0) == 30.0
    assert meter.fps(4.0) == 15.0  # a second without frames
    assert meter.fps(5.5) == 0.0


def test_a_collapsed_high_layer_moves_the_classroom_to_low_within_the_window() -> None:
    lesson = Lesson()
    assert lesson.run(10, high_fps=30) == ["high"] * 10
    # the teacher's uplink is capped: 720p at 4 fps, the low layer still at 28 fps
    after = lesson.run(6, high_fps=4, low_fps=28)
    first_low = after.index("low") + 1  # seconds after the collapse
    # the window has to forget the fluid frames, then the collapse has to last
    assert first_low <= FPS_WINDOW_S + DOWN_AFTER_S + TICK, after
    assert after[first_low - 1 :] == ["low"] * (len(after) - first_low + 1), after
    assert best_layer(lesson.verdicts) == "low"


def test_a_brief_dip_or_a_slower_high_layer_changes_nothing() -> None:
    lesson = Lesson()
    lesson.run(10, high_fps=30)
    assert lesson.run(1, high_fps=0) == ["high"]  # a one-second stall (Producer.broken's)
    assert lesson.run(5, high_fps=30) == ["high"] * 5
    assert lesson.run(1, high_fps=5) == ["high"]  # one slow second
    assert lesson.run(5, high_fps=30) == ["high"] * 5
    # 720p at 20 fps next to 180p at 30: a blackboard reads better at 720p
    assert lesson.run(10, high_fps=20) == ["high"] * 10
    assert lesson.verdicts["high"].changes == 0


def test_the_rule_is_relative_to_what_the_camera_captures() -> None:
    """A capped 720p layer wavers around 9-12 fps while low keeps 30: a slideshow next to
    it (a fixed 10 fps floor rarely saw it). Next to a 15 fps camera the same 9 fps is not."""
    capped = Lesson()
    capped.run(10, high_fps=30)
    after = capped.run(8, high_fps=11, low_fps=30)
    assert after[-3:] == ["low"] * 3, after
    slow_camera = Lesson()
    slow_camera.run(10, high_fps=15, low_fps=15)
    assert slow_camera.run(8, high_fps=9, low_fps=15) == ["high"] * 8
    assert slow_camera.verdicts["high"].changes == 0


def test_a_slow_camera_is_not_a_slideshow() -> None:
    """Both layers slow (a document camera at 6 fps, a publisher short of CPU): the
    smaller one is no more fluid, so the classroom keeps the picture it can read."""
    lesson = Lesson()
    assert lesson.run(15, high_fps=6, low_fps=6) == ["high"] * 15


def test_it_does_not_flap_while_the_high_layer_hovers_and_comes_back_after_recovery() -> None:
    lesson = Lesson()
    lesson.run(10, high_fps=30)
    lesson.run(6, high_fps=4, low_fps=28)
    assert lesson.layer == "low"
    # hovering around the threshold, and one fluid second: still low
    for fps in (9, 12, 8, 13, 11, 30, 9, 12):
        assert lesson.run(1, high_fps=fps) == ["low"], fps
    # fluid again: high once it has been fluid for UP_AFTER_S (after the window fills)
    back = lesson.run(10, high_fps=30)
    first_high = back.index("high") + 1
    assert UP_AFTER_S <= first_high <= FPS_WINDOW_S + UP_AFTER_S + TICK, back
    assert back[first_high - 1 :] == ["high"] * (len(back) - first_high + 1), back
    assert lesson.verdicts["high"].changes == 2  # down once, up once


def test_going_back_up_still_needs_evidence_from_the_classrooms_link() -> None:
    """The rule only makes high a candidate again; a classroom whose estimate fell while it
    received the low layer gets high after a probe shows its link carries it."""
    lesson = Lesson()
    lesson.run(10, high_fps=30)
    lesson.run(6, high_fps=4, low_fps=28)
    assert lesson.layer == "low"
    lesson.estimate = 4 * LOW  # what the link showed while it carried low
    back = lesson.run(10, high_fps=30)
    assert back == ["low"] * 10
    assert lesson.probe is not None and lesson.probe >= HIGH  # ... so it probes for high
    lesson.estimate = 10 * HIGH  # the probe succeeded
    assert lesson.run(1, high_fps=30) == ["high"]

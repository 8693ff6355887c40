"""The whole-link allocation of one subscriber's downlink estimate, rule by rule."""

from __future__ import annotations

from media.allocation import KEEP, KEEP_SMALLEST, UP, VideoDemand, allocate

HIGH, LOW, AUDIO = 2_500_000.0, 150_000.0, 40_000.0
RATES = {"high": HIGH, "low": LOW}


def teacher(current: str = "high", **kw: object) -> VideoDemand:
    return VideoDemand(key="teacher", rates=RATES, current=current, priority=0, **kw)  # type: ignore[arg-type]


def test_one_overuse_signal_does_not_drop_a_lesson_to_180p() -> None:
    # GCC's answer to one overuse is 0.85 x what was acknowledged
    dip = 0.85 * (HIGH + AUDIO)
    assert allocate(dip, AUDIO, [teacher()]).layers == {"teacher": "high"}
    assert KEEP <= 0.85


def test_a_link_that_carries_less_goes_down_and_audio_only_is_the_last_step() -> None:
    assert allocate(0.7 * HIGH + AUDIO, AUDIO, [teacher()]).layers == {"teacher": "low"}
    assert allocate(KEEP_SMALLEST * LOW + AUDIO + 1, AUDIO, [teacher("low")]).layers == {
        "teacher": "low"
    }
    assert allocate(0.5 * LOW + AUDIO, AUDIO, [teacher("low")]).layers == {"teacher": "audio"}


def test_going_up_needs_a_margin() -> None:
    assert allocate(HIGH * UP * 0.99 + AUDIO, AUDIO, [teacher("low")]).layers == {"teacher": "low"}
    assert allocate(HIGH * UP + AUDIO, AUDIO, [teacher("low")]).layers == {"teacher": "high"}


def test_audio_first_then_priority_order() -> None:
    stage = VideoDemand(key="stage", rates=RATES, current="high", priority=2)
    # room for one high layer and one low: the teacher (priority 0) gets high
    got = allocate(HIGH + LOW + AUDIO + 10_000, AUDIO, [stage, teacher()]).layers
    assert got == {"teacher": "high", "stage": "low"}
    # the audio is taken out before any video: without it, no video fits
    assert allocate(AUDIO, AUDIO, [teacher()]).layers == {"teacher": "audio"}


def test_a_pin_is_the_best_a_consumer_gets_and_a_probe_is_asked_for_what_is_missing() -> None:
    pinned = VideoDemand(key="patrol", rates=RATES, current="low", pinned="low")
    result = allocate(10 * HIGH, AUDIO, [pinned])
    assert result.layers == {"patrol": "low"} and result.probe_bps is None
    short = allocate(LOW * 2 + AUDIO, AUDIO, [teacher("low")])
    assert short.layers == {"teacher": "low"} and short.probe_bps == (HIGH + AUDIO) * UP


def test_a_dip_of_the_estimate_is_followed_after_a_second_a_collapse_at_once() -> None:
    from media.downlink import DOWN_HOLD_S, FallHold

    hold = FallHold()
    assert hold.update(0.0, 3e6, 0.0) == 3e6
    assert hold.update(0.1, 2.2e6, 0.0) == 3e6  # one overuse signal: held
    assert hold.update(0.5, 2.3e6, 0.0) == 3e6
    assert hold.update(DOWN_HOLD_S + 0.2, 2.3e6, 0.0) == 2.3e6  # it lasted: followed
    assert hold.update(DOWN_HOLD_S + 0.3, 4e6, 0.0) == 4e6  # a rise: at once
    assert hold.update(DOWN_HOLD_S + 0.4, 1.5e6, 0.0) == 1.5e6  # below half: at once
    hold.clear()
    hold.update(0.0, 3e6, 0.0)
    assert hold.update(0.1, 2.2e6, 0.2) == 2.2e6  # a lossy link: at once

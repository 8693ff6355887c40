"""The fast paths of district validation say exactly what the full walks said.

``BellSchedule`` settles the clash-free case by set sizes and ``check_references`` looks
free slots up in a per-school set (both for province-scale parsing); these pin the messages
and locations of the cases those shortcuts skip, and that parsing leaves the cycle collector
as it found it.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from pydantic import ValidationError

from scheduler.demo import demo_district
from scheduler.district_checks import parse_district
from scheduler.gc_pause import gc_paused
from scheduler.io.district_edits import Edited, Rejected, ReplaceDistrict, apply


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(demo_district().model_dump_json())
    return raw


def _errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        parse_district(json.dumps(raw))
    return [("/".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.value.errors()]


def test_a_period_number_twice_names_the_first_clash() -> None:
    raw = _raw()
    periods = raw["schools"][0]["bell_schedules"][0]["periods"]
    periods[2]["number"] = periods[1]["number"]
    periods[2]["weekdays"] = ["wed", "tue"]
    [(loc, msg)] = _errors(raw)
    assert loc == "schools/0/bell_schedules/0"
    # Walked in order: period 3 (renumbered) lists wed first, and period 2 had it already.
    assert msg == f"Value error, period {periods[1]['number']} is defined twice on wed"


def test_a_weekday_twice_in_one_period() -> None:
    raw = _raw()
    raw["schools"][1]["bell_schedules"][0]["periods"][0]["weekdays"] = ["mon", "fri", "mon"]
    [(loc, msg)] = _errors(raw)
    assert loc == "schools/1/bell_schedules/0"
    assert msg == "Value error, period 1 is defined twice on mon"


def test_the_same_number_on_other_days_is_no_clash() -> None:
    raw = _raw()
    periods = raw["schools"][0]["bell_schedules"][0]["periods"]
    periods[0]["weekdays"] = ["mon", "tue"]
    periods.append({**periods[0], "weekdays": ["wed", "thu", "fri"]})
    parse_district(json.dumps(raw))


def test_slots_and_offering_periods_a_school_lacks() -> None:
    raw = _raw()
    school = raw["offerings"][0]["school"]
    for sched in next(s for s in raw["schools"] if s["id"] == school)["bell_schedules"]:
        for period in sched["periods"]:
            if period["number"] == raw["offerings"][0]["period"]:
                period["weekdays"] = [d for d in period["weekdays"] if d != "fri"] or ["sat"]
    raw["offerings"][0]["weekday"] = "fri"
    raw["demands"][1]["free_periods"][1] = {"weekday": "sun", "period": 1}
    demand_school = raw["demands"][1]["school"]
    errors = _errors(raw)
    # Every offering of that school at that period on fri is refused, then the demand's slot.
    assert errors[0] == (
        "offerings/0/period",
        f"school {school!r} has no period {raw['offerings'][0]['period']} on fri",
    )
    assert {msg for loc, msg in errors[:-1]} == {errors[0][1]}
    assert errors[-1] == (
        "demands/1/free_periods/1",
        f"school {demand_school!r} has no period 1 on sun",
    )


def test_parsing_leaves_the_collector_as_it_was() -> None:
    document = demo_district().model_dump_json().encode()
    assert gc.isenabled()
    assert isinstance(apply(None, ReplaceDistrict(document)), Edited)
    assert isinstance(apply(None, ReplaceDistrict(b"{")), Rejected)
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            parse_district(document)
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()

"""The checks a district needs beyond its models' own fields, and parsing a whole district.

``check_references`` makes the cross-record checks a single field cannot (unknown school
ids, duplicate ids, a teaching day without bell times, ...) with errors that point at the
exact field; ``parse_district`` is the models' parse followed by them.
"""

from __future__ import annotations

import re
from datetime import date

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from scheduler.clock import teaching_days
from scheduler.domain import Demand, District
from scheduler.gc_pause import gc_paused
from scheduler.pairings import pairing_errors


def _error(loc: tuple[str | int, ...], message: str, value: object) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("reference", message), loc=loc, input=value)


def check_references(district: District) -> None:
    """Cross-record checks; raises a ValidationError whose locs point at the exact field."""
    errors: list[InitErrorDetails] = []
    schools = district.school_index()
    # (period, weekday) pairs each school's bells define in some season, built once per school
    # when first needed: scanning the bells for every free slot of every demand was the bulk of
    # checking a province (~670,000 slots at 80,000 classes).
    slots_of: dict[str, set[tuple[int, str]]] = {}

    def slots_for(school_id: str) -> set[tuple[int, str]]:
        slots = slots_of.get(school_id)
        if slots is None:
            slots = slots_of[school_id] = {
                (p.number, day)
                for b in schools[school_id].bell_schedules
                for p in b.periods
                for day in p.weekdays
            }
        return slots

    id_lists: list[tuple[str, list[str]]] = [
        ("schools", [s.id for s in district.schools]),
        ("offerings", [o.id for o in district.offerings]),
        ("demands", [d.id for d in district.demands]),
    ]
    for kind, ids in id_lists:
        seen: set[str] = set()
        for i, item_id in enumerate(ids):
            if item_id in seen:
                errors.append(_error((kind, i, "id"), f"duplicate id {item_id!r}", item_id))
            seen.add(item_id)
    offering_ids = {o.id for o in district.offerings}
    for i, o in enumerate(district.offerings):
        if o.school not in schools:
            errors.append(
                _error(("offerings", i, "school"), f"unknown school {o.school!r}", o.school)
            )
        elif (o.period, o.weekday) not in slots_for(o.school):
            errors.append(
                _error(
                    ("offerings", i, "period"),
                    f"school {o.school!r} has no period {o.period} on {o.weekday.value}",
                    o.period,
                )
            )
    classes: dict[str, Demand] = {}
    for i, d in enumerate(district.demands):
        if d.school not in schools:
            errors.append(
                _error(("demands", i, "school"), f"unknown school {d.school!r}", d.school)
            )
        first = classes.setdefault(d.class_id, d)
        if first.school != d.school or first.grade != d.grade:
            errors.append(
                _error(
                    ("demands", i, "class_id"),
                    f"class {d.class_id!r} appears with another school or grade",
                    d.class_id,
                )
            )
        if d.school not in schools:
            continue
        slots = slots_for(d.school)
        for j, slot in enumerate(d.free_periods):
            if (slot.period, slot.weekday) not in slots:
                errors.append(
                    _error(
                        ("demands", i, "free_periods", j),
                        f"school {d.school!r} has no period {slot.period} on {slot.weekday.value}",
                        slot.period,
                    )
                )
    pair_lists: list[tuple[str, list[tuple[str, str]]]] = [
        ("pins", [(p.class_id, p.offering_id) for p in district.pins]),
        ("bans", [(b.class_id, b.offering_id) for b in district.bans]),
    ]
    for kind, pairs in pair_lists:
        for i, (class_id, offering_id) in enumerate(pairs):
            if class_id not in classes:
                errors.append(
                    _error((kind, i, "class_id"), f"unknown class {class_id!r}", class_id)
                )
            if offering_id not in offering_ids:
                errors.append(
                    _error(
                        (kind, i, "offering_id"), f"unknown offering {offering_id!r}", offering_id
                    )
                )
    errors += _season_gaps(district)
    if district.pairings:
        errors += pairing_errors(district)
    for tz_ok in [re.fullmatch(r"[A-Za-z_]+(/[A-Za-z_]+)*", district.term.timezone)]:
        if tz_ok is None:
            errors.append(
                _error(("term", "timezone"), "not a timezone name", district.term.timezone)
            )
    if errors:
        raise ValidationError.from_exception_data("District", errors)


def _season_gaps(district: District) -> list[InitErrorDetails]:
    """A school whose seasons leave a teaching day without bell times has no lesson that day,
    and a weekly match must hold on every teaching day: such a school gets no match at all
    (a season ending 02-28 where the next starts 03-15 served nothing)."""
    days = [td.day for td in teaching_days(district.term)]
    gaps_of: dict[tuple[tuple[str | None, str | None], ...], list[date]] = {}
    errors: list[InitErrorDetails] = []
    for i, school in enumerate(district.schools):
        key = tuple((b.start, b.end) for b in school.bell_schedules)
        gaps = gaps_of.get(key)
        if gaps is None:
            gaps = gaps_of[key] = [d for d in days if school.schedule_on(d) is None]
        if gaps:
            errors.append(
                _error(
                    ("schools", i, "bell_schedules"),
                    f"school {school.id!r} has no bell schedule on {len(gaps)} teaching "
                    f"day(s) of the term, the first {gaps[0].isoformat()}",
                    school.id,
                )
            )
    return errors


def parse_district(raw: str | bytes) -> District:
    """Parse and fully validate a district JSON document."""
    with gc_paused():
        district = District.model_validate_json(raw)
        check_references(district)
    return district

"""An independent check of every hard constraint, in domain terms (not the solver's rows).

Used by tests and after loading a timetable from a file: a published timetable must pass.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from scheduler.clock import period_interval
from scheduler.domain import District
from scheduler.pairings import Reach
from scheduler.solver.candidates import OverlapBook
from scheduler.timetable import Timetable


def violations(district: District, timetable: Timetable) -> list[str]:
    policy = district.policy
    schools = district.school_index()
    offerings = {o.id: o for o in district.offerings}
    demands = {d.id: d for d in district.demands}
    banned = {(b.class_id, b.offering_id) for b in district.bans}
    book = OverlapBook(district)
    reach = Reach(district)
    out: list[str] = []
    per_demand: Counter[str] = Counter()
    per_class_slot: Counter[tuple[str, str, int]] = Counter()
    per_day: Counter[tuple[str, str]] = Counter()
    seats: Counter[str] = Counter()
    teachers_of: dict[str, set[str]] = defaultdict(set)
    up: Counter[tuple[str, str, int]] = Counter()
    down: Counter[tuple[str, str, int]] = Counter()
    bw = policy.stream_mbps
    for a in timetable.assignments:
        o, d = offerings.get(a.offering_id), demands.get(a.demand_id)
        if o is None or d is None:
            out.append(f"{a.demand_id}->{a.offering_id}: unknown offering or demand")
            continue
        where = f"{d.id}->{o.id}"
        if (o.grade, o.subject, o.edition) != (d.grade, d.subject, d.edition):
            out.append(f"{where}: grade/subject/edition differ")
        if a.weekday != o.weekday or not any(
            s.weekday == a.weekday and s.period == a.remote_period for s in d.free_periods
        ):
            out.append(f"{where}: not in a free period on the offering's weekday")
        minutes = book.overlap(o.school, o.period, d.school, a.remote_period, o.weekday)
        if minutes < policy.min_overlap_minutes:
            out.append(f"{where}: overlap {minutes} < {policy.min_overlap_minutes}")
        if (d.class_id, o.id) in banned:
            out.append(f"{where}: banned")
        if not reach.allows(d.school, d.subject, o.school):
            what = "no pairing lets it serve" if reach.paired else "crosses regions"
            out.append(f"{where}: {what}")
        per_demand[d.id] += 1
        per_class_slot[(d.class_id, a.weekday.value, a.remote_period)] += 1
        per_day[(d.id, a.weekday.value)] += 1
        seats[o.id] += 1
        teachers_of[d.id].add(o.teacher)
        down[(o.school, o.weekday.value, o.period)] += 1
        up[(d.school, a.weekday.value, a.remote_period)] += 1
        down[(d.school, a.weekday.value, a.remote_period)] += 1
    out += [
        f"{k}: {n} periods > needed"
        for k, n in per_demand.items()
        if n > demands[k].periods_per_week
    ]
    out += [f"class {k}: {n} streams at once" for k, n in per_class_slot.items() if n > 1]
    if policy.one_per_day:
        out += [f"{k}: {n} periods on one day" for k, n in per_day.items() if n > 1]
    out += [f"{k}: {n} > capacity" for k, n in seats.items() if n > offerings[k].max_remote]
    if policy.same_teacher == "hard":
        out += [f"{k}: several teachers" for k, ts in teachers_of.items() if len(ts) > 1]
    load: Counter[str] = Counter(offerings[k].teacher for k in seats)
    out += [
        f"teacher {t}: {n} streams > load" for t, n in load.items() if n > policy.teacher_load(t)
    ]
    for k in seats:
        o = offerings[k]
        up[(o.school, o.weekday.value, o.period)] += 1
    for (school, day, period), n in up.items():
        if n * bw > schools[school].uplink_mbps + 1e-9:
            out.append(f"school {school} {day} {period}: uplink {n * bw} Mbps > capacity")
    for (school, day, period), n in down.items():
        if n * bw > schools[school].downlink_mbps + 1e-9:
            out.append(f"school {school} {day} {period}: downlink {n * bw} Mbps > capacity")
    spans: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
    for k in seats:
        o = offerings[k]
        region = schools[o.school].region.key(policy.region_level)
        span = period_interval(schools[o.school], o.period, o.weekday)
        if region in policy.sfu_capacity and span is not None:
            spans[(region, o.weekday.value)].append((span[0], span[1], 1))
    for (region, day), items in spans.items():
        for start, _, _ in items:
            used = sum(n for s, e, n in items if s <= start < e)
            if used > policy.sfu_capacity[region]:
                out.append(f"SFU {region} {day} at {start}: {used} lesson rooms > capacity")
    held = {(a.class_id, a.offering_id) for a in timetable.assignments}
    impossible = set(timetable.stats.impossible_pins)
    for pin in district.pins:
        if (
            pin.class_id,
            pin.offering_id,
        ) not in held and f"{pin.class_id}->{pin.offering_id}" not in impossible:
            out.append(f"pin {pin.class_id}->{pin.offering_id} not honoured")
    return out

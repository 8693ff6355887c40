"""District validation, CSV round trip and iCalendar output."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from icalendar import Calendar
from pydantic import ValidationError

from scheduler.demo import demo_district
from scheduler.district_checks import parse_district
from scheduler.io import csvio, ical
from scheduler.solver.solve import SolveOptions, solve


def locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return ["/".join(str(p) for p in e["loc"]) for e in exc.value.errors()]


def test_invalid_district_points_at_field() -> None:
    raw = json.loads(demo_district().model_dump_json())
    raw["offerings"][3]["school"] = "nowhere"
    raw["demands"][2]["free_periods"][0]["period"] = 9  # teaching points have 6 periods
    raw["pins"] = [{"class_id": "jd-1-g3", "offering_id": "missing"}]
    with pytest.raises(ValidationError) as exc:
        parse_district(json.dumps(raw))
    assert locs(exc) == ["offerings/3/school", "demands/2/free_periods/0", "pins/0/offering_id"]
    raw = json.loads(demo_district().model_dump_json())
    raw["schools"][0]["bell_schedules"][0]["periods"][1]["end"] = "07:00"
    raw["demands"][0]["periods_per_week"] = 0
    with pytest.raises(ValidationError) as exc:
        parse_district(json.dumps(raw))
    assert locs(exc) == ["schools/0/bell_schedules/0/periods/1", "demands/0/periods_per_week"]


def test_csv_round_trip() -> None:
    d = demo_district()
    assert csvio.import_bells(csvio.export_bells(d.schools)) == d.schools
    assert csvio.import_offerings(csvio.export_offerings(d.offerings)) == d.offerings
    assert csvio.import_demands(csvio.export_demands(d.demands)) == d.demands


def test_csv_errors_point_at_line_and_column() -> None:
    text = csvio.export_offerings(demo_district().offerings).splitlines()
    cells = text[3].split(",")
    cells[text[0].split(",").index("weekday")] = "someday"
    text[3] = ",".join(cells)
    with pytest.raises(ValidationError) as exc:
        csvio.import_offerings("\n".join(text))
    assert locs(exc) == ["offerings/4/weekday"]
    bells = csvio.export_bells(demo_district().schools).splitlines()
    bells[2] = bells[2].replace("08:50", "8h50", 1)
    with pytest.raises(ValidationError) as exc:
        csvio.import_bells("\n".join(bells))
    assert locs(exc)[0].startswith("bells/3/")
    with pytest.raises(ValidationError) as exc:
        csvio.import_demands("id,school\nx,y\n")
    assert locs(exc) == ["demands/1/class_id"]


def _events(data: bytes) -> list[dict[str, object]]:
    cal = Calendar.from_ical(data)
    out = []
    for ev in cal.walk("VEVENT"):
        exdates = [
            d.dt
            for prop in (
                ev.get("exdate") if isinstance(ev.get("exdate"), list) else [ev.get("exdate")]
            )
            if prop
            for d in prop.dts
        ]
        rdates = [
            d.dt
            for prop in (
                ev.get("rdate") if isinstance(ev.get("rdate"), list) else [ev.get("rdate")]
            )
            if prop
            for d in prop.dts
        ]
        out.append(
            {
                "uid": str(ev["uid"]),
                "start": ev["dtstart"].dt,
                "rrule": ev["rrule"],
                "exdate": exdates,
                "rdate": rdates,
            }
        )
    return out


def test_icalendar_holidays_makeup_days_and_seasons() -> None:
    d = demo_district()
    tt = solve(d, SolveOptions(workers=0))
    events = _events(ical.class_calendar(d, tt, "jd-3-g1"))  # music Mon 6 and Thu 6
    mon = sorted((e for e in events if e["start"].isoweekday() == 1), key=lambda e: e["start"])
    # Summer schedule (afternoons 30 min later) until 30 Sep, then winter.
    assert [e["start"] for e in mon] == [
        datetime(2026, 9, 7, 15, 30, tzinfo=mon[0]["start"].tzinfo),
        datetime(2026, 10, 5, 15, 0, tzinfo=mon[0]["start"].tzinfo),
    ]
    assert str(mon[0]["start"].tzinfo) == "Asia/Shanghai"
    # Sun 27 Sep follows Monday's timetable (summer), the National Day Monday is excluded.
    assert [x.date() for x in mon[0]["rdate"]] == [date(2026, 9, 27)]
    assert [x.date() for x in mon[1]["exdate"]] == [date(2026, 10, 5)]
    assert mon[0]["rrule"]["FREQ"] == ["WEEKLY"]
    fri = _events(ical.class_calendar(d, tt, "jd-5-g2"))  # music Tue 6 and Fri 6
    winter_fri = [e for e in fri if e["start"].isoweekday() == 5 and e["start"].month == 10]
    assert [x.date() for x in winter_fri[0]["rdate"]] == [date(2026, 10, 10)]
    assert [x.date() for x in winter_fri[0]["exdate"]] == [date(2026, 10, 2)]
    # Stable UIDs: exporting again (or after an unrelated change) gives the same ids.
    again = _events(ical.class_calendar(d, solve(d, SolveOptions(workers=0)), "jd-3-g1"))
    assert sorted(e["uid"] for e in again) == sorted(e["uid"] for e in events)
    assert len({e["uid"] for e in events}) == len(events)


def test_teacher_and_school_calendars(tmp_path: Path) -> None:
    d = demo_district()
    tt = solve(d, SolveOptions(workers=0))
    zhang = _events(ical.teacher_calendar(d, tt, "张老师"))
    assert {e["start"].isoweekday() for e in zhang} == {1, 3}  # his grade-3 Mon/Wed lessons stream
    assert all(e["start"].hour == 10 and e["start"].minute == 0 for e in zhang)  # A's period 3
    paths = ical.export_all(d, tt, tmp_path)
    assert (tmp_path / "school" / "jd-3.ics") in paths
    assert all(Calendar.from_ical(p.read_bytes()) for p in paths)

"""CSV import/export for what a coordinator keeps in a spreadsheet.

Four files: bell schedules (one row per school, season and period), offerings, demands and
pairings (one row per pairing: a region or a school on each side, the subjects separated by
``;``, empty for every subject). Errors point at the file, the line (1 = header) and the
column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from scheduler.domain import (
    BellSchedule,
    Demand,
    District,
    MonthDay,
    Offering,
    Pairing,
    Period,
    Region,
    School,
    Slot,
    Weekday,
)
from scheduler.pairings import pairing_errors

CsvKind = Literal["bells", "offerings", "demands", "pairings"]
CSV_KINDS: tuple[CsvKind, ...] = ("bells", "offerings", "demands", "pairings")

BELL_COLUMNS = [
    "school_id", "school_name", "province", "city", "county", "uplink_mbps", "downlink_mbps",
    "season", "season_start", "season_end", "period", "start", "end", "weekdays",
]  # fmt: skip
OFFERING_COLUMNS = list(Offering.model_fields)
DEMAND_COLUMNS = list(Demand.model_fields)
PAIRING_COLUMNS = ["serving_region", "serving_school", "served_region", "served_school", "subjects"]
# Subjects in one cell (a subject name never holds it: domain.SubjectName).
SUBJECT_SEPARATOR = ";"


def _write(columns: list[str], rows: Iterable[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def slots_text(slots: list[Slot]) -> str:
    return " ".join(f"{s.weekday.value}{s.period}" for s in slots)


def export_bells(schools: list[School]) -> str:
    rows: list[dict[str, object]] = []
    for s in schools:
        for b in s.bell_schedules:
            for p in b.periods:
                rows.append(
                    {
                        "school_id": s.id, "school_name": s.name, "province": s.region.province,
                        "city": s.region.city, "county": s.region.county,
                        "uplink_mbps": s.uplink_mbps, "downlink_mbps": s.downlink_mbps,
                        "season": b.season, "season_start": b.start or "", "season_end": b.end or "",
                        "period": p.number, "start": p.start.strftime("%H:%M"),
                        "end": p.end.strftime("%H:%M"), "weekdays": " ".join(w.value for w in p.weekdays),
                    }
                )  # fmt: skip
    return _write(BELL_COLUMNS, rows)


def export_offerings(offerings: list[Offering]) -> str:
    return _write(OFFERING_COLUMNS, (o.model_dump(mode="json") for o in offerings))


def export_demands(demands: list[Demand]) -> str:
    rows = []
    for d in demands:
        row = d.model_dump(mode="json")
        row["free_periods"] = slots_text(d.free_periods)
        rows.append(row)
    return _write(DEMAND_COLUMNS, rows)


def export_pairings(pairings: list[Pairing]) -> str:
    rows: list[dict[str, object]] = []
    for p in pairings:
        rows.append(
            {
                "serving_region": p.serving.region or "", "serving_school": p.serving.school or "",
                "served_region": p.served.region or "", "served_school": p.served.school or "",
                "subjects": SUBJECT_SEPARATOR.join(p.subjects) if p.subjects is not None else "",
            }
        )  # fmt: skip
    return _write(PAIRING_COLUMNS, rows)


def _reader(text: str, kind: str, columns: list[str]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    required = {"bells": BELL_COLUMNS, "offerings": ["id", "teacher", "school", "grade", "subject",
                "edition", "weekday", "period"], "demands": ["id", "class_id", "school", "grade",
                "subject", "edition", "periods_per_week", "free_periods"],
                "pairings": PAIRING_COLUMNS}[kind]  # fmt: skip
    missing = [c for c in missing if c in required]
    if missing:
        raise _errors(
            [
                InitErrorDetails(
                    type=PydanticCustomError("csv", f"missing column {missing[0]!r}"),
                    loc=(kind, 1, missing[0]),
                    input=None,
                )
            ]
        )
    return [
        {k: v for k, v in row.items() if k is not None and v not in (None, "")} for row in reader
    ]


def _errors(details: list[InitErrorDetails]) -> ValidationError:
    return ValidationError.from_exception_data("csv", details)


def _relocate(
    exc: ValidationError, kind: str, line: int, column_of: dict[str, str] | None = None
) -> list[InitErrorDetails]:
    out = []
    for err in exc.errors(include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        if column_of is not None:
            field = column_of.get(field, field)
        out.append(
            InitErrorDetails(
                type=PydanticCustomError("csv", err["msg"]),
                loc=(kind, line, field),
                input=err.get("input"),
            )
        )
    return out


def _parse_slots(text: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for token in text.replace(",", " ").split():
        out.append({"weekday": token[:3].lower(), "period": token[3:]})
    return out


def import_offerings(text: str) -> list[Offering]:
    items, errors = [], []
    for n, row in enumerate(_reader(text, "offerings", OFFERING_COLUMNS), start=2):
        try:
            items.append(Offering.model_validate(row))
        except ValidationError as exc:
            errors += _relocate(exc, "offerings", n)
    if errors:
        raise _errors(errors)
    return items


def import_demands(text: str) -> list[Demand]:
    items, errors = [], []
    for n, row in enumerate(_reader(text, "demands", DEMAND_COLUMNS), start=2):
        data: dict[str, object] = dict(row)
        data["free_periods"] = _parse_slots(row.get("free_periods", ""))
        try:
            items.append(Demand.model_validate(data))
        except ValidationError as exc:
            errors += _relocate(exc, "demands", n)
    if errors:
        raise _errors(errors)
    return items


def import_pairings(text: str) -> list[Pairing]:
    """Pairings; an error names the column (``serving_school``) or, for a side with neither
    or both of its cells, the side (``serving``)."""
    items, errors = [], []
    for n, row in enumerate(_reader(text, "pairings", PAIRING_COLUMNS), start=2):
        data: dict[str, object] = {
            side: {k: row[f"{side}_{k}"] for k in ("region", "school") if f"{side}_{k}" in row}
            for side in ("serving", "served")
        }
        if "subjects" in row:
            data["subjects"] = row["subjects"].split(SUBJECT_SEPARATOR)
        try:
            items.append(Pairing.model_validate(data))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = [str(p) for p in err["loc"]]
                column = "_".join(loc[:2]) if loc[:1] != ["subjects"] else "subjects"
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError("csv", err["msg"]),
                        loc=("pairings", n, column),
                        input=err.get("input"),
                    )
                )
    if errors:
        raise _errors(errors)
    return items


def check_pairing_rows(district: District) -> None:
    """The reference checks of pairings that came from a sheet (unknown school or region, a
    repeat), pointing at its lines and columns instead of the JSON list."""
    errors = []
    for err in pairing_errors(district):
        loc = err["loc"]
        assert isinstance(loc[1], int)
        column = "_".join(str(p) for p in loc[2:4])
        errors.append(
            InitErrorDetails(type=err["type"], loc=("pairings", loc[1] + 2, column), input=None)
        )
    if errors:
        raise _errors(errors)


class _BellRow(BaseModel):
    school_id: str
    school_name: str
    province: str
    city: str
    county: str
    uplink_mbps: float
    downlink_mbps: float
    season: str = "all-year"
    season_start: MonthDay | None = None
    season_end: MonthDay | None = None
    period: Period


def import_bells(text: str) -> list[School]:
    """Schools with their bell schedules (rows of one school share its name, region, links)."""
    rows: list[tuple[int, _BellRow]] = []
    errors: list[InitErrorDetails] = []
    column_of = {"period": "period"}
    for n, raw in enumerate(_reader(text, "bells", BELL_COLUMNS), start=2):
        data: dict[str, object] = {
            k: v for k, v in raw.items() if k not in ("period", "start", "end", "weekdays")
        }
        data["period"] = {
            "number": raw.get("period"), "start": raw.get("start"), "end": raw.get("end"),
            **({"weekdays": raw["weekdays"].split()} if raw.get("weekdays") else {}),
        }  # fmt: skip
        try:
            rows.append((n, _BellRow.model_validate(data)))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = [str(p) for p in err["loc"]]
                column = loc[1] if loc[:1] == ["period"] and len(loc) > 1 else loc[0] if loc else ""
                column = {"number": "period"}.get(column, column_of.get(column, column))
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError("csv", err["msg"]),
                        loc=("bells", n, column),
                        input=err.get("input"),
                    )
                )
    if errors:
        raise _errors(errors)
    grouped: dict[str, list[tuple[int, _BellRow]]] = {}
    for n, row in rows:
        grouped.setdefault(row.school_id, []).append((n, row))
    schools = []
    for sid, items in grouped.items():
        first_line, first = items[0]
        seasons: dict[str, list[_BellRow]] = {}
        for _, row in items:
            seasons.setdefault(row.season, []).append(row)
        try:
            schedules = [
                BellSchedule(
                    season=name,
                    start=rs[0].season_start,
                    end=rs[0].season_end,
                    periods=[r.period for r in rs],
                )
                for name, rs in seasons.items()
            ]
            schools.append(
                School(
                    id=sid, name=first.school_name,
                    region=Region(province=first.province, city=first.city, county=first.county),
                    uplink_mbps=first.uplink_mbps, downlink_mbps=first.downlink_mbps,
                    bell_schedules=schedules,
                )
            )  # fmt: skip
        except ValidationError as exc:
            errors += _relocate(exc, "bells", first_line)
    if errors:
        raise _errors(errors)
    return schools


WEEKDAY_VALUES = [w.value for w in Weekday]

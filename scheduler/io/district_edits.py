"""Changes to the stored district as pure functions of bytes, so they can run in a child process.

A province's district is ~18 MB of JSON (5,000 offerings, 26,599 demands): validating it holds
the GIL for seconds, and a thread would stall the event loop just the same. ``apply`` takes the
stored document and a change, and returns the new document (compact JSON, as stored) and the
reply, or why the change is refused; everything in and out is plain data that pickles cheaply
(a ``District`` object would cost more to unpickle than to parse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from contracts.errors import ErrorDetail, error_details
from scheduler.district_checks import check_references
from scheduler.domain import Ban, District, Pairing, Pin
from scheduler.gc_pause import gc_paused
from scheduler.io import csvio


@dataclass(frozen=True)
class ReplaceDistrict:
    """A whole district JSON document."""

    document: bytes | bytearray

    @property
    def size(self) -> int:
        return len(self.document)


@dataclass(frozen=True)
class ImportCsv:
    """One CSV file replacing the district's bells (schools), offerings, demands or pairings."""

    kind: csvio.CsvKind
    data: bytes | bytearray

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class EditPair:
    """Add or remove a coordinator pin or ban."""

    field: Literal["pins", "bans"]
    add: bool
    class_id: str
    offering_id: str

    @property
    def size(self) -> int:
        return 0


@dataclass(frozen=True)
class EditPairing:
    """Add a pairing (unless an equal one is there) or remove the equal one."""

    add: bool
    pairing: Pairing

    @property
    def size(self) -> int:
        return 0


Change = ReplaceDistrict | ImportCsv | EditPair | EditPairing


@dataclass(frozen=True)
class Edited:
    document: str
    district_id: str
    reply: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    status: int
    message: str
    details: list[ErrorDetail] = field(default_factory=list)


def apply(stored: str | None, change: Change) -> Edited | Rejected:
    """The district after ``change`` (``stored`` is the current one), fully validated."""
    with gc_paused():
        return _apply(stored, change)


def _apply(stored: str | None, change: Change) -> Edited | Rejected:
    try:
        if isinstance(change, ReplaceDistrict):
            district = District.model_validate_json(change.document or b"{}")
            reply: dict[str, Any] = {
                "id": district.id,
                "schools": len(district.schools),
                "offerings": len(district.offerings),
                "demands": len(district.demands),
            }
        else:
            assert stored is not None, "editing needs a stored district"
            current = District.model_validate_json(stored)
            if isinstance(change, ImportCsv):
                edited = _import_csv(current, change)
                if isinstance(edited, Rejected):
                    return edited
                district, rows = edited
                reply = {"kind": change.kind, "replaced": True, "rows": rows}
            elif isinstance(change, EditPairing):
                district, reply = _edit_pairing(current, change)
            else:
                district, reply = _edit_pair(current, change)
        check_references(district)
    except ValidationError as exc:
        details = error_details(exc)
        first = details[0] if details else {"loc": "", "msg": "invalid"}
        return Rejected(422, f"{first['loc'] or 'body'}: {first['msg']}", details)
    return Edited(district.model_dump_json(), district.id, reply)


def export_csv(stored: str, kind: csvio.CsvKind) -> str:
    """One CSV file of the stored district."""
    with gc_paused():
        district = District.model_validate_json(stored)
    if kind == "bells":
        return csvio.export_bells(district.schools)
    if kind == "offerings":
        return csvio.export_offerings(district.offerings)
    if kind == "pairings":
        return csvio.export_pairings(district.pairings)
    return csvio.export_demands(district.demands)


def _import_csv(district: District, change: ImportCsv) -> tuple[District, int] | Rejected:
    try:
        text = bytes(change.data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(400, f"CSV must be UTF-8 (byte {exc.start} is not)")
    if change.kind == "bells":
        schools = csvio.import_bells(text)
        if not schools:
            message = "a district needs at least one school's bells: the CSV has no rows"
            return Rejected(
                422, f"bells/1: {message}", [{"loc": "bells/1", "msg": message, "type": "csv"}]
            )
        rows = sum(len(b.periods) for s in schools for b in s.bell_schedules)
        return district.model_copy(update={"schools": schools}), rows
    if change.kind == "offerings":
        offerings = csvio.import_offerings(text)
        return district.model_copy(update={"offerings": offerings}), len(offerings)
    if change.kind == "pairings":
        # An empty sheet (its header alone) is a district without pairings again.
        pairings = csvio.import_pairings(text)
        edited = district.model_copy(update={"pairings": pairings})
        csvio.check_pairing_rows(edited)
        return edited, len(pairings)
    demands = csvio.import_demands(text)
    return district.model_copy(update={"demands": demands}), len(demands)


def _edit_pair(district: District, change: EditPair) -> tuple[District, dict[str, Any]]:
    key = (change.class_id, change.offering_id)
    pairs: list[Pin | Ban] = [
        p for p in getattr(district, change.field) if (p.class_id, p.offering_id) != key
    ]
    if change.add:
        kind = Pin if change.field == "pins" else Ban
        pairs.append(kind(class_id=change.class_id, offering_id=change.offering_id))
    edited = district.model_copy(update={change.field: pairs})
    return edited, {change.field: [p.model_dump() for p in pairs]}


def _edit_pairing(district: District, change: EditPairing) -> tuple[District, dict[str, Any]]:
    # Adding one that is there already keeps it where it is: the sheet's order stays.
    kept = [p for p in district.pairings if change.add or p != change.pairing]
    if change.add and change.pairing not in kept:
        kept.append(change.pairing)
    edited = district.model_copy(update={"pairings": kept})
    return edited, {"pairings": [p.model_dump(mode="json") for p in kept]}

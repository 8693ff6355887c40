"""Which master schools may teach which classes: the region policy and the pairings (结对帮扶).

The rule (``domain.Pairing`` says it in full): a class takes offerings of its own region
(``policy.region_level``); offerings of other regions when ``policy.cross_region`` is on and
the district names no pairing, or, once it names any, only those a pairing lets serve it for
the demand's subject.

``Reach`` answers that for a province without scanning pairings per candidate. Every school
has four *references* (``s:`` + its id, ``r:`` + its province, city and county keys); a pairing
joins one reference to another. A class's *sources* for a subject are the references whose
offerings it may take: its own region at the policy level, plus the ``serving`` side of every
pairing whose ``served`` side is one of the class school's references and whose subjects
include the subject. An offering is allowed when one of its school's references is a source.
Sources are a small frozenset, cached per (school, subject), and the same value for every class
of a county that no school-level pairing singles out, so callers cache their own work by it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic_core import InitErrorDetails, PydanticCustomError

from scheduler.domain import District, Party

LEVELS: tuple[Literal["province", "city", "county"], ...] = ("province", "city", "county")
# The sources of every class when any region may serve any other (no pairings, cross-region on).
EVERYWHERE: frozenset[str] = frozenset({"*"})

Sources = frozenset[str]


def party_ref(party: Party) -> str:
    """The reference a pairing's side names."""
    return f"s:{party.school}" if party.school is not None else f"r:{party.region}"


class Reach:
    """Whether the region policy and the pairings let a class's school take an offering."""

    def __init__(self, district: District) -> None:
        policy = district.policy
        level = policy.region_level
        self.paired = bool(district.pairings)
        self.everywhere = policy.cross_region and not self.paired
        # What a class is told when an offering of another region is not allowed.
        self.refusal: Literal["no_partner", "cross_region"] = (
            "no_partner" if self.paired else "cross_region"
        )
        self.region_of: dict[str, str] = {s.id: s.region.key(level) for s in district.schools}
        self.refs_of: dict[str, tuple[str, ...]] = {
            s.id: (f"s:{s.id}", *(f"r:{s.region.key(lv)}" for lv in LEVELS))
            for s in district.schools
        }
        # served reference -> (serving reference, subjects or None for all), in district order
        self._serving_of: dict[str, list[tuple[str, frozenset[str] | None]]] = defaultdict(list)
        for p in district.pairings:
            subjects = frozenset(p.subjects) if p.subjects is not None else None
            self._serving_of[party_ref(p.served)].append((party_ref(p.serving), subjects))
        self.serving_refs: frozenset[str] = frozenset(
            party_ref(p.serving) for p in district.pairings
        )
        self._sources: dict[tuple[str, str], Sources] = {}

    def sources(self, school: str, subject: str) -> Sources:
        """The references whose offerings of ``subject`` a class of ``school`` may take."""
        if self.everywhere:
            return EVERYWHERE
        key = (school, subject)
        found = self._sources.get(key)
        if found is None:
            refs = {f"r:{self.region_of[school]}"}
            for ref in self.refs_of[school]:
                for serving, subjects in self._serving_of.get(ref, ()):
                    if subjects is None or subject in subjects:
                        refs.add(serving)
            found = self._sources[key] = frozenset(refs)
        return found

    def index_refs(self, school: str) -> tuple[str, ...]:
        """The references to index a master school's offerings by: its own region's, and
        those of its references that serve in some pairing (sources use no others)."""
        own = f"r:{self.region_of[school]}"
        return (own, *(r for r in self.refs_of[school] if r != own and r in self.serving_refs))

    def serves(self, sources: Sources, master_school: str) -> bool:
        """Whether an offering of ``master_school`` is allowed to a class with ``sources``."""
        return sources is EVERYWHERE or not sources.isdisjoint(self.refs_of[master_school])

    def allows(self, school: str, subject: str, master_school: str) -> bool:
        """Whether a class of ``school`` may take ``master_school``'s offering of ``subject``."""
        return self.serves(self.sources(school, subject), master_school)


def _error(loc: tuple[str | int, ...], message: str, value: object) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("reference", message), loc=loc, input=value)


def pairing_errors(district: District) -> list[InitErrorDetails]:
    """Pairings naming a school or region no school of the district is in, and repeats."""
    schools = {s.id for s in district.schools}
    regions = {s.region.key(level) for s in district.schools for level in LEVELS}
    errors: list[InitErrorDetails] = []
    first: dict[tuple[str, str, tuple[str, ...] | None], int] = {}
    for i, p in enumerate(district.pairings):
        for side, party in (("serving", p.serving), ("served", p.served)):
            if party.school is not None and party.school not in schools:
                errors.append(
                    _error(
                        ("pairings", i, side, "school"),
                        f"unknown school {party.school!r}",
                        party.school,
                    )
                )
            if party.region is not None and party.region not in regions:
                errors.append(
                    _error(
                        ("pairings", i, side, "region"),
                        f"unknown region {party.region!r}: no school's province, city or county "
                        "key (e.g. 41/4117/411721)",
                        party.region,
                    )
                )
        key = (
            party_ref(p.serving),
            party_ref(p.served),
            tuple(p.subjects) if p.subjects is not None else None,
        )
        if first.setdefault(key, i) != i:
            errors.append(
                _error(
                    ("pairings", i), "repeats an earlier pairing (same sides and subjects)", None
                )
            )
    return errors

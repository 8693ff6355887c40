"""Pairings (结对帮扶): who may serve whom across regions, and what an unmet class is told
(on the three counties of ``support.counties``)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from pydantic import ValidationError
from support.counties import A, B, C, serves, three_counties

from scheduler.district_checks import parse_district
from scheduler.domain import Ban, District, Pairing, Party
from scheduler.solver.candidates import build_candidates, candidates_for
from scheduler.solver.solve import SolveOptions, solve
from scheduler.solver.verify import violations
from scheduler.synthetic import bans_for_pairings, province
from scheduler.timetable import Timetable

INLINE = SolveOptions(time_limit=10, workers=0)


def pairs(district: District) -> set[tuple[str, str]]:
    cs = build_candidates(district)
    return {
        (district.demands[d].id, district.offerings[o].id)
        for d, o in zip(cs.demand.tolist(), cs.offering.tolist(), strict=True)
    }


def reasons(tt: Timetable, demand_id: str) -> dict[str, str]:
    return {r.code: r.message for u in tt.unmet if u.demand_id == demand_id for r in u.reasons}


def test_a_pairing_lets_the_served_county_take_the_serving_one_and_not_the_reverse() -> None:
    a_serves_b = Pairing(serving=serves(A), served=serves(B))
    # cross_region is off: the pairing alone opens A's offerings to B's classes.
    assert pairs(three_counties(a_serves_b)) == {
        ("r-b-en", "a-en-mon"),
        ("r-b-music", "a-music-tue"),
    }
    # B does not serve A (r-a-en only fits B's Wednesday lesson), nor A serve C.
    without = pairs(three_counties())
    assert ("r-b-en", "a-en-mon") not in without
    # With pairings named, cross_region on no longer opens the rest: C stays unserved.
    assert pairs(three_counties(a_serves_b, cross_region=True)) == pairs(three_counties(a_serves_b))
    everywhere = pairs(three_counties(cross_region=True))
    assert {("r-a-en", "b-en-wed"), ("r-c-en", "a-en-mon")} <= everywhere


def test_a_pairing_for_some_subjects_opens_only_those() -> None:
    music_only = Pairing(serving=serves(A), served=serves(B), subjects=["音乐"])
    got = pairs(three_counties(music_only))
    assert ("r-b-music", "a-music-tue") in got
    assert ("r-b-en", "a-en-mon") not in got


def test_school_and_city_sides() -> None:
    # One master school for one remote school in another city; its neighbour gets nothing.
    school_pair = Pairing(serving=serves(school="m-a"), served=serves(school="r-c"))
    got = pairs(three_counties(school_pair))
    assert ("r-c-en", "a-en-mon") in got and ("r-c2-en", "a-en-mon") not in got
    # A city serving a county: both of the city's counties' master schools.
    city = Pairing(serving=serves("41/4101"), served=serves(C))
    got = pairs(three_counties(city))
    assert {("r-c-en", "a-en-mon"), ("r-c2-en", "a-en-mon")} <= got
    # A county serving a school of its own city adds nothing to what the region allows.
    inside = Pairing(serving=serves(A), served=serves(school="r-b"))
    assert pairs(three_counties(inside)) == pairs(
        three_counties(Pairing(serving=serves(A), served=serves(B)))
    )


def test_only_a_non_partner_offers_it_the_class_is_told_so() -> None:
    district = three_counties(Pairing(serving=serves(A), served=serves(B)))
    tt = solve(district, INLINE)
    assert violations(district, tt) == []
    assert tt.stats.served == 2  # r-b's 英语 and 音乐; A and C have no partner
    why = reasons(tt, "r-c-en")
    assert set(why) == {"no_partner"}
    # Every offering of its need from a school not paired with it, whatever its time (as
    # cross_region lists them: class-independent, so computed once per county and need).
    assert why["no_partner"] == (
        "offerings a-en-mon, b-en-wed are at schools no pairing (结对) lets serve this class "
        "in this subject"
    )
    # r-a's only fitting lesson is B's, and B does not serve A; its own county's is on Monday.
    assert set(reasons(tt, "r-a-en")) == {"free_periods_conflict", "no_partner"}
    (unmet,) = [u for u in tt.unmet if u.demand_id == "r-a-en"]
    assert [r.offering_ids for r in unmet.reasons if r.code == "no_partner"] == [["b-en-wed"]]
    # Without pairings the same class is told the region policy's reason, as before.
    before = solve(three_counties(), INLINE)
    assert set(reasons(before, "r-c-en")) == {"cross_region"}


def test_a_banned_class_is_explained_by_the_same_rule() -> None:
    # A class with bans takes the per-offering path of rejections.py, not the shared one.
    district = three_counties(Pairing(serving=serves(A), served=serves(B)))
    banned = district.model_copy(
        update={"bans": [Ban(class_id="r-c-g3", offering_id="a-music-tue")]}
    )
    tt = solve(banned, INLINE)
    assert set(reasons(tt, "r-c-en")) == {"no_partner"}


def test_verify_flags_a_match_no_pairing_allows() -> None:
    open_district = three_counties(cross_region=True)
    tt = solve(open_district, INLINE)
    assert any(a.demand_id == "r-c-en" for a in tt.assignments)
    paired = three_counties(Pairing(serving=serves(A), served=serves(B)), cross_region=True)
    assert "r-c-en->a-en-mon: no pairing lets it serve" in violations(paired, tt)


def test_unknown_sides_repeats_and_shapes_are_refused_at_the_field() -> None:
    raw = json.loads(three_counties().model_dump_json())
    raw["pairings"] = [
        {"serving": {"region": A}, "served": {"school": "nowhere"}},
        {"serving": {"region": "41/9999"}, "served": {"region": B}},
        {"serving": {"region": A}, "served": {"region": B}, "subjects": ["英语"]},
        {"serving": {"region": A}, "served": {"region": B}, "subjects": ["英语"]},
    ]
    with pytest.raises(ValidationError) as exc:
        parse_district(json.dumps(raw))
    errors = {"/".join(map(str, e["loc"])): e["msg"] for e in exc.value.errors()}
    assert errors == {
        "pairings/0/served/school": "unknown school 'nowhere'",
        "pairings/1/serving/region": "unknown region '41/9999': no school's province, city or "
        "county key (e.g. 41/4117/411721)",
        "pairings/3": "repeats an earlier pairing (same sides and subjects)",
    }
    for bad in (
        {"serving": {"region": A, "school": "m-a"}, "served": {"region": B}},
        {"serving": {}, "served": {"region": B}},
        {"serving": {"region": A}, "served": {"region": A}},
        {"serving": {"region": A}, "served": {"region": B}, "subjects": []},
        {"serving": {"region": A}, "served": {"region": B}, "subjects": ["英语", "英语"]},
    ):
        with pytest.raises(ValidationError):
            Pairing.model_validate(bad)


def test_a_ring_of_pairings_gives_the_candidates_its_bans_gave() -> None:
    """The same partner ring, said with four pairings or with a ban on every other pair."""
    ring = province(seed=7, offerings=160, classes=240, regions=4, partner_ring=True)
    assert len(ring.pairings) == 4
    as_bans = bans_for_pairings(ring)
    assert len(as_bans.bans) > 100 * len(ring.pairings)
    got, expected = build_candidates(ring), build_candidates(as_bans)
    columns = ("demand", "offering", "day", "remote_period", "overlap", "demand_start")
    assert all(np.array_equal(getattr(got, c), getattr(expected, c)) for c in columns)
    closed = build_candidates(ring.model_copy(update={"pairings": []}))
    assert len(got) > len(closed)  # the ring opened matches the closed province had not


@pytest.mark.parametrize("seed", range(6))
def test_any_pairings_give_the_candidates_their_bans_give(seed: int) -> None:
    """Random pairings, sides at every level (a province serving a county holds the class's own
    county too; a school inside a serving region), some per subject: the merged sources give
    the pairs, in the order, that the same rule said as bans gives."""
    rng = random.Random(seed)
    base = province(seed=seed, offerings=120, classes=160, regions=4)
    schools = base.schools
    sides = sorted(
        {f"r:{s.region.key(level)}" for s in schools for level in ("province", "city", "county")}
        | {f"s:{s.id}" for s in rng.sample(schools, 12)}
    )
    pairings: dict[str, Pairing] = {}
    while len(pairings) < 12:
        serving, served = rng.sample(sides, 2)
        subjects = rng.choice([None, ["英语"], ["音乐", "科学"]])
        p = Pairing(
            serving=Party(**{"school" if serving[0] == "s" else "region": serving[2:]}),
            served=Party(**{"school" if served[0] == "s" else "region": served[2:]}),
            subjects=subjects,
        )
        pairings[p.model_dump_json()] = p
    paired = parse_district(
        base.model_copy(update={"pairings": list(pairings.values())}).model_dump_json()
    )
    got, expected = build_candidates(paired), build_candidates(bans_for_pairings(paired))
    columns = ("demand", "offering", "day", "remote_period", "overlap", "demand_start")
    assert all(np.array_equal(getattr(got, c), getattr(expected, c)) for c in columns)
    # The province is closed (cross_region off): pairings only open (five seeds of six do).
    assert len(got) >= len(build_candidates(base))


def test_changed_pairings_build_the_candidates_afresh() -> None:
    base = three_counties()
    first = candidates_for(base)
    paired = base.model_copy(
        update={
            "pairings": [Pairing(serving=serves(A), served=serves(B))],
            "offerings": base.offerings[:2],
        }
    )
    again = candidates_for(paired)
    assert again.book is not first.book  # not derived from the unpaired set
    assert pairs(paired) == {
        (paired.demands[d].id, paired.offerings[o].id)
        for d, o in zip(again.demand.tolist(), again.offering.tolist(), strict=True)
    }

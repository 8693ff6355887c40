"""A district without pairings solves exactly as it did before pairings existed.

``data/solved_before_pairings.json`` holds the assignments and the unmet demand with every
reason of three districts, solved by the commit before pairings came in: the demo county, and
a three-county synthetic province with cross-region matching off and on. Pairings change the
candidate generation and the explanations, so any drift in either shows here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler.demo import demo_district
from scheduler.domain import District
from scheduler.solver.solve import SolveOptions, solve
from scheduler.synthetic import province

BEFORE = Path(__file__).parent / "data" / "solved_before_pairings.json"


def _province(cross_region: bool) -> District:
    district = province(seed=5, offerings=60, classes=90, regions=3)
    policy = district.policy.model_copy(update={"cross_region": cross_region})
    return district.model_copy(update={"policy": policy})


DISTRICTS: dict[str, Callable[[], District]] = {
    "demo": demo_district,
    "province_closed": lambda: _province(False),
    "province_open": lambda: _province(True),
}


def _solved(district: District) -> dict[str, Any]:
    tt = solve(district, SolveOptions(workers=0, time_limit=30))
    return {
        "served": tt.stats.served,
        "bound": tt.stats.bound,
        "assignments": [a.model_dump(mode="json") for a in tt.assignments],
        "unmet": [u.model_dump(mode="json") for u in tt.unmet],
    }


@pytest.mark.parametrize("name", sorted(DISTRICTS))
def test_a_district_without_pairings_solves_as_before(name: str) -> None:
    before = json.loads(BEFORE.read_text(encoding="utf-8"))[name]
    district = DISTRICTS[name]()
    assert _solved(district) == before

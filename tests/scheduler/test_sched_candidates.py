"""The candidate set a re-solve derives from the previous district's equals a fresh build."""

from __future__ import annotations

import numpy as np

from scheduler.domain import District
from scheduler.solver.candidates import CandidateSet, build_candidates, candidates_for
from scheduler.synthetic import province


def same(a: CandidateSet, b: CandidateSet) -> bool:
    columns = ("demand", "offering", "day", "remote_period", "overlap", "demand_start")
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in columns)


def test_candidates_after_cancelling_offerings_equal_a_fresh_build() -> None:
    base = province(seed=3, offerings=60, classes=90, regions=2)
    first = candidates_for(base)
    assert same(first, build_candidates(base))
    kept = [o for k, o in enumerate(base.offerings) if k % 7 != 3]
    changed = base.model_copy(update={"offerings": kept, "pins": []})
    derived = candidates_for(changed)
    assert derived.district is changed
    assert derived.book is first.book  # derived, not rebuilt
    assert len(derived) < len(first)
    assert same(derived, build_candidates(changed))


def test_other_changes_build_afresh() -> None:
    base = province(seed=4, offerings=40, classes=60, regions=2)
    candidates_for(base)
    variants: list[District] = [
        # an offering added back in another place is not a removal
        base.model_copy(update={"offerings": [*base.offerings[1:], base.offerings[0]]}),
        base.model_copy(update={"demands": base.demands[:-1]}),
        base.model_copy(
            update={"policy": base.policy.model_copy(update={"min_overlap_minutes": 20})}
        ),
    ]
    for variant in variants:
        candidates_for(base)
        got = candidates_for(variant)
        assert same(got, build_candidates(variant))

"""A partner ring (结对帮扶) on the province: candidate generation with pairings vs without.

    .venv/bin/python benchmarks/scheduler_pairings.py [--offerings 5000 --classes 20000 ...]

The synthetic province's counties form a ring, each serving the next (16 pairings). Prints the
candidate pairs and the best-of-``--repeat`` seconds of ``build_candidates`` for the closed
province (no pairings, cross-region off: today's benchmark), the ring said with pairings, and
with ``--bans`` the same ring said the old way (cross-region on and a ban on every pair the
ring refuses: millions of bans, slow to build); then how many bans that takes, ``--solve``
adds a MIP solve of the ring. Ends with a RESULT line.
"""

from __future__ import annotations

import argparse
import time

from scheduler.domain import District
from scheduler.pairings import Reach
from scheduler.solver.candidates import build_candidates
from scheduler.solver.solve import SolveOptions, solve
from scheduler.solver.verify import violations
from scheduler.synthetic import bans_for_pairings, province


def best_seconds(district: District, repeat: int) -> tuple[int, float]:
    """Candidate pairs and the fastest of ``repeat`` builds (each from a cold overlap book)."""
    best = float("inf")
    pairs = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        pairs = len(build_candidates(district))
        best = min(best, time.perf_counter() - t0)
    return pairs, best


def refused_pairs(district: District) -> int:
    """The bans the ring would need: same-need (demand, offering) pairs no pairing allows
    (a class of the synthetic province needs a subject once, so one ban each)."""
    reach = Reach(district)
    schools: dict[tuple[int, str, str], list[str]] = {}
    for o in district.offerings:
        schools.setdefault((o.grade, o.subject, o.edition), []).append(o.school)
    refused = 0
    for d in district.demands:
        sources = reach.sources(d.school, d.subject)
        for school in schools.get((d.grade, d.subject, d.edition), []):
            refused += not reach.serves(sources, school)
    return refused


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--offerings", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=20000)
    parser.add_argument("--regions", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bans", action="store_true", help="also time the ring said as bans")
    parser.add_argument("--solve", action="store_true", help="also solve the ring (MIP)")
    parser.add_argument("--time-limit", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    ring = province(args.seed, args.offerings, args.classes, args.regions, partner_ring=True)
    closed = ring.model_copy(update={"pairings": []})
    print(
        f"province seed={args.seed}: {len(ring.offerings)} offerings, {len(ring.demands)} "
        f"demands, {args.regions} counties, {len(ring.pairings)} pairings in a ring"
    )
    rows = [("closed (no pairings)", *best_seconds(closed, args.repeat))]
    rows.append(("ring as pairings", *best_seconds(ring, args.repeat)))
    bans = refused_pairs(ring)
    if args.bans:
        as_bans = bans_for_pairings(ring)
        rows.append((f"ring as {len(as_bans.bans)} bans", *best_seconds(as_bans, args.repeat)))
    print()
    print(f"{'candidates of':<28}{'pairs':>10}{'seconds':>10}{'x closed':>10}")
    for name, pairs, seconds in rows:
        print(f"{name:<28}{pairs:>10}{seconds:>10.2f}{seconds / rows[0][2]:>10.2f}")
    print(f"\nthe ring said as bans needs {bans} bans; as pairings {len(ring.pairings)} lines")
    served = ""
    if args.solve:
        tt = solve(ring, SolveOptions(time_limit=args.time_limit, workers=args.workers))
        assert violations(ring, tt) == []
        s = tt.stats
        print(
            f"ring solved: served {s.served} of {s.demanded} (bound {s.bound}, gap "
            f"{s.gap_pct:.3f} %) in {s.seconds:.2f} s"
        )
        served = f" ring_served={s.served} ring_bound={s.bound}"
    print(
        f"RESULT scheduler_pairings closed_seconds={rows[0][2]:.2f} ring_seconds={rows[1][2]:.2f} "
        f"ratio={rows[1][2] / rows[0][2]:.2f} closed_pairs={rows[0][1]} ring_pairs={rows[1][1]} "
        f"bans_needed={bans}{served}"
    )


if __name__ == "__main__":
    main()

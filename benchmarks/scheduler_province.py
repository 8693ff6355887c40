"""Province-scale 专递课堂 matching: greedy vs decomposed HiGHS MIP, then a re-solve.

    .venv/bin/python benchmarks/scheduler_province.py [--offerings 5000 --classes 20000 ...]
    .venv/bin/python benchmarks/scheduler_province.py --partner-ring   # counties paired in a ring
    .venv/bin/python benchmarks/scheduler_province.py --scale 4 --time-limit 60 --no-resolve

``--scale`` multiplies offerings and classes (4: 20,000 x 80,000, a large province; issue 14's
limits: parse <= 10 s, wall <= limit + 10 %, <= 2 GB per process, gap <= 0.5 %). Parsing is
timed the way ``PUT /district`` does it (``district_edits.apply`` on the JSON bytes), in a
fresh child process so its time and peak RSS are its own.

Prints greedy and MIP side by side (served periods, bound, gap, seconds) and a re-solve after
cancelling offerings and adding pins (seconds, pairs changed vs pairs forced to change), and ends
with a RESULT line.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from scheduler.domain import District, Pin
from scheduler.gc_pause import gc_paused
from scheduler.io.district_edits import Edited, ReplaceDistrict, apply
from scheduler.solver.candidates import build_candidates
from scheduler.solver.solve import SolveOptions, solve, solve_keeping_late
from scheduler.solver.verify import violations
from scheduler.synthetic import province
from scheduler.timetable import Progress, Timetable


def changed_district(
    district: District, tt: Timetable, seed: int, cancel: int, pins: int
) -> District:
    """Cancel ``cancel`` streamed offerings and pin ``pins`` new (class, offering) pairs."""
    rng = random.Random(seed)
    streamed = sorted({a.offering_id for a in tt.assignments})
    gone = set(rng.sample(streamed, k=min(cancel, len(streamed))))
    kept = district.model_copy(
        update={"offerings": [o for o in district.offerings if o.id not in gone]}
    )
    cs = build_candidates(kept)
    held = {(a.class_id, a.offering_id) for a in tt.assignments}
    busy_classes = {a.class_id for a in tt.assignments}
    pairs = (
        (kept.demands[di].class_id, kept.offerings[oi].id)
        for di, oi in zip(cs.demand.tolist(), cs.offering.tolist(), strict=True)
    )
    pool = [pair for pair in pairs if pair not in held]
    rng.shuffle(pool)
    chosen: list[Pin] = []
    used_classes: set[str] = set()
    used_offerings: set[str] = set()
    for cls, oid in pool:
        if len(chosen) == pins:
            break
        if cls in used_classes or oid in used_offerings:
            continue
        # Half the pins move classes that already have lessons (they displace something).
        if (cls in busy_classes) != (len(chosen) % 2 == 0):
            continue
        used_classes.add(cls)
        used_offerings.add(oid)
        chosen.append(Pin(class_id=cls, offering_id=oid))
    return kept.model_copy(update={"pins": chosen})


def _parse_in_child(path: str) -> tuple[float, float]:
    """Seconds to parse, check and re-dump the district as an upload is, and this process's
    peak RSS in MB (ru_maxrss is KiB on Linux)."""
    document = Path(path).read_bytes()
    t0 = time.perf_counter()
    result = apply(None, ReplaceDistrict(document))
    seconds = time.perf_counter() - t0
    assert isinstance(result, Edited), result
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_seconds(district: District) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "district.json"
        path.write_text(district.model_dump_json())
        # spawn: a fork would inherit the generator's heap and count it as the parser's.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(_parse_in_child, (str(path),))


def peak_rss_mb() -> tuple[float, float]:
    """Peak RSS of this process and of its largest child, MB: the solver workers are kept
    between solves (still running, so RUSAGE_CHILDREN misses them): their VmHWM is read."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for p in multiprocessing.active_children():
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                child = max(child, int(line.split()[1]))
    return own / 1024, child / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--offerings", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=20000)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies --offerings and --classes"
    )
    parser.add_argument(
        "--no-resolve", action="store_true", help="skip the greedy and the re-solve"
    )
    parser.add_argument("--regions", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--partner-ring",
        action="store_true",
        help="each county also serves the next (pairings; benchmarks/scheduler_pairings.py)",
    )
    args = parser.parse_args()
    offerings, classes = round(args.offerings * args.scale), round(args.classes * args.scale)

    t0 = time.perf_counter()
    district = province(args.seed, offerings, classes, args.regions, partner_ring=args.partner_ring)
    gen = time.perf_counter() - t0
    demanded = sum(d.periods_per_week for d in district.demands)
    print(
        f"province seed={args.seed}: {len(district.offerings)} offerings, {len(district.demands)} demands "
        f"({demanded} periods) in {len(district.schools)} schools, {args.regions} regions, "
        f"{len(district.pairings)} pairings; generated in {gen:.1f} s"
    )
    parse_s, parse_rss = parse_seconds(district)
    print(f"parsed as an upload in {parse_s:.1f} s, peak RSS {parse_rss:.0f} MB (own process)")
    sys.stdout.flush()

    greedy = None
    if not args.no_resolve:
        greedy = solve(district, SolveOptions(mip=False, time_limit=args.time_limit))
        assert violations(district, greedy) == []
    phases: dict[str, float] = {}  # when each phase began, s into the solve

    def began(p: Progress) -> None:
        phases.setdefault(p.phase, time.monotonic() - w0)

    w0 = time.monotonic()
    solved = solve_keeping_late(
        district,
        SolveOptions(time_limit=args.time_limit, workers=args.workers),
        progress=began,
    )
    wall = time.monotonic() - w0
    mip = solved.timetable
    late = sum(u.reasons[0].code == "not_explained" for u in mip.unmet)
    # What a solve job does next (scheduler/jobs.py): explain those after the result.
    l0 = time.monotonic()
    if solved.late is not None:
        with gc_paused():
            explained = solved.late.explain_late(lambda done, total: None, lambda: False)
        assert explained is not None
        still = sum(u.reasons[0].code == "not_explained" for u in explained)
        assert still == 0 and len(explained) == len(mip.unmet), (still, len(explained))
    late_s = time.monotonic() - l0
    own_rss, child_rss = peak_rss_mb()
    assert violations(district, mip) == []
    print()
    print(f"{'method':<22}{'served':>10}{'bound':>10}{'gap %':>8}{'seconds':>10}")
    if greedy is not None:
        print(
            f"{'greedy (matching only)':<22}{greedy.stats.served:>10}{'':>10}{'':>8}{greedy.stats.greedy_seconds:>10.2f}"
        )
        print(
            f"{'greedy (+candidates)':<22}{greedy.stats.served:>10}{'':>10}{'':>8}{greedy.stats.seconds:>10.2f}"
        )
    print(
        f"{'MIP (HiGHS, parts)':<22}{mip.stats.served:>10}{mip.stats.bound:>10}{mip.stats.gap_pct:>8.3f}"
        f"{mip.stats.seconds:>10.2f}   bound proven at {mip.stats.bound_seconds:.2f} s, "
        f"parts {mip.stats.parts_optimal}/{mip.stats.parts} optimal, "
        f"{mip.stats.candidates} candidate pairs, {args.workers} workers"
    )
    print(
        f"wall {wall:.1f} s for a {args.time_limit:g} s limit (explanations included), "
        f"peak RSS {own_rss:.0f} MB main process, {child_rss:.0f} MB largest child (solver workers, upload parse), "
        f"{len(mip.unmet)} unmet demands, "
        f"{late} not explained in time (all explained {late_s:.1f} s after the result), "
        f"{len(mip.stats.part_faults)} part faults"
    )
    print("phases began at: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))

    resolved = ""
    if not args.no_resolve:
        changed = changed_district(district, mip, args.seed, cancel=50, pins=30)
        t1 = time.perf_counter()
        again = solve(
            changed, SolveOptions(time_limit=args.time_limit, workers=args.workers), previous=mip
        )
        resolve_seconds = time.perf_counter() - t1
        assert violations(changed, again) == []
        print()
        print(
            f"re-solve after cancelling 50 offerings and adding {len(changed.pins)} pins: "
            f"{resolve_seconds:.2f} s, served {again.stats.served} (bound {again.stats.bound}), "
            f"pairs changed {again.stats.changed} vs forced {again.stats.forced} "
            f"of {len(mip.assignments)} published"
        )
        assert greedy is not None
        resolved = (
            f" greedy_served={greedy.stats.served} resolve_seconds={resolve_seconds:.1f}"
            f" changed={again.stats.changed} forced={again.stats.forced}"
        )
    print(
        f"RESULT scheduler_province scale={args.scale:g} parse_s={parse_s:.1f} "
        f"parse_rss_mb={parse_rss:.0f} limit_s={args.time_limit:g} wall_s={wall:.1f} "
        f"served={mip.stats.served} bound={mip.stats.bound} gap_pct={mip.stats.gap_pct:.3f} "
        f"seconds={mip.stats.seconds:.1f} bound_seconds={mip.stats.bound_seconds:.1f} "
        f"peak_rss_mb={own_rss:.0f} child_peak_rss_mb={child_rss:.0f} unmet={len(mip.unmet)} "
        f"not_explained={late} late_explain_s={late_s:.1f}{resolved}"
    )


if __name__ == "__main__":
    main()

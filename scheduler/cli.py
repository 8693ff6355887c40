"""`sanke schedule ...`: solve, explain and export from files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from scheduler.district_checks import parse_district
from scheduler.domain import District
from scheduler.io import ical
from scheduler.solver.solve import SolveOptions, solve
from scheduler.timetable import Timetable


def _load_district(path: Path) -> District:
    return parse_district(path.read_bytes())


def _errors(exc: ValidationError) -> str:
    return "\n".join(
        f"  {'/'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
    )


def cmd_solve(args: argparse.Namespace) -> int:
    try:
        district = _load_district(Path(args.district))
        previous = (
            Timetable.model_validate_json(Path(args.previous).read_bytes())
            if args.previous
            else None
        )
    except (OSError, ValidationError) as exc:
        detail = _errors(exc) if isinstance(exc, ValidationError) else str(exc)
        print(f"invalid input:\n{detail}", file=sys.stderr)
        return 2
    options = SolveOptions(time_limit=args.time_limit, workers=args.workers)
    timetable = solve(district, options, previous=previous)
    Path(args.output).write_text(timetable.model_dump_json(indent=2), encoding="utf-8")
    s = timetable.stats
    print(
        f"served {s.served}/{s.demanded} periods (bound {s.bound}, gap {s.gap_pct:.2f} %, "
        f"greedy {s.greedy_served}) in {s.seconds:.1f} s; {len(timetable.unmet)} demands unmet"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        timetable = Timetable.model_validate_json(Path(args.timetable).read_bytes())
    except (OSError, ValidationError) as exc:
        print(f"cannot read timetable: {exc}", file=sys.stderr)
        return 2
    assignments, unmet = timetable.for_class(args.class_id)
    if not assignments and not unmet:
        print(f"class {args.class_id} has no demand in this timetable", file=sys.stderr)
        return 1
    for a in assignments:
        print(
            f"{a.weekday.value} period {a.remote_period}: {a.teacher} ({a.offering_id}, "
            f"{a.master_school} period {a.master_period}, overlap {a.overlap_minutes} min)"
        )
    for u in unmet:
        print(f"unmet {u.subject} ({u.demand_id}): {u.missing_periods} period(s)")
        for r in u.reasons:
            print(f"  [{r.code}] {r.message}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        district = _load_district(Path(args.district))
        timetable = Timetable.model_validate_json(Path(args.timetable).read_bytes())
    except (OSError, ValidationError) as exc:
        print(f"invalid input: {exc}", file=sys.stderr)
        return 2
    paths = ical.export_all(district, timetable, Path(args.ics))
    print(f"wrote {len(paths)} calendars under {args.ics}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schedule = subparsers.add_parser("schedule", help="专递课堂 timetable matching")
    sub = schedule.add_subparsers(dest="schedule_command", required=True)
    p = sub.add_parser("solve", help="match demands to offerings")
    p.add_argument("district", help="district JSON")
    p.add_argument("-o", "--output", required=True, help="timetable JSON to write")
    p.add_argument("--time-limit", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2, help="solver processes (0: in process)")
    p.add_argument("--previous", help="published timetable JSON: re-solve keeping its pairs")
    p.set_defaults(func=cmd_solve)
    p = sub.add_parser("explain", help="a class's lessons and why demand is unmet")
    p.add_argument("timetable")
    p.add_argument("--class", dest="class_id", required=True)
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser("export", help="iCalendar files per classroom, teacher and school")
    p.add_argument("--ics", required=True, metavar="DIR")
    p.add_argument("--district", required=True, help="district JSON")
    p.add_argument("--timetable", required=True, help="timetable JSON")
    p.set_defaults(func=cmd_export)

"""Prometheus metrics of the timetable solver."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from scheduler.timetable import Timetable

SOLVER_SECONDS = Histogram(
    "sanke_solver_seconds",
    "Wall time of a timetable solve",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40, 90, 180, 600),
)
SOLVER_UNMET_PERIODS = Gauge(
    "sanke_solver_unmet_periods", "Demanded periods the last solve left unmet"
)
SOLVER_SERVED_PERIODS = Gauge("sanke_solver_served_periods", "Periods the last solve served")
SOLVER_GAP_RATIO = Gauge(
    "sanke_solver_gap_ratio", "Proven optimality gap of the last solve (0 = optimal)"
)


def observe_solve(timetable: Timetable) -> None:
    stats = timetable.stats
    SOLVER_SECONDS.observe(stats.seconds)
    SOLVER_UNMET_PERIODS.set(sum(u.missing_periods for u in timetable.unmet))
    SOLVER_SERVED_PERIODS.set(stats.served)
    SOLVER_GAP_RATIO.set(stats.gap_pct / 100)

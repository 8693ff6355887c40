"""The solver's output: assignments, unmet demand with reasons, and solve statistics."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scheduler.domain import Weekday

ReasonCode = Literal[
    "no_offering",  # no offering of that grade/subject/edition
    "no_overlap",  # offerings exist but none overlaps a free period by the minimum
    "offering_full",  # overlapping offerings are full (names the classes holding the seats)
    "free_periods_conflict",  # the class's free periods are taken or too few
    "one_per_day",  # the only candidates fall on days the subject is already taught
    "teacher_load",  # the teachers of the overlapping offerings reached their weekly load
    "bandwidth",  # school bandwidth at that time
    "sfu_capacity",  # the region's SFU is full at that time
    "same_teacher",  # only other teachers' offerings remain and same-teacher is hard
    "banned",  # the coordinator banned every remaining offering
    "cross_region",  # only other regions offer it and cross-region matching is off
    "no_partner",  # only schools that no pairing lets serve this class offer it (结对)
    "solver_limit",  # a free pair exists: the time limit stopped the search
    "not_explained",  # the time limit ended before this demand's reasons were worked out
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Assignment(Model):
    demand_id: str
    class_id: str
    school: str
    offering_id: str
    teacher: str
    master_school: str
    weekday: Weekday
    master_period: int
    remote_period: int
    overlap_minutes: int


class Reason(Model):
    code: ReasonCode
    message: str
    offering_ids: list[str] = Field(default_factory=list)
    class_ids: list[str] = Field(default_factory=list)
    best_overlap_minutes: int | None = None


class Unmet(Model):
    demand_id: str
    class_id: str
    subject: str
    missing_periods: int
    reasons: list[Reason]


class PartFault(Model):
    """A part of the matching that did not finish normally: its worker process died (killed,
    out of memory) or was stopped at the deadline. The part keeps what it had (``kept``)."""

    part: int
    step: Literal["relaxation", "branch_and_bound", "polish"]
    reason: str
    # What the part's pairs in the timetable are: the last incumbent its worker streamed,
    # its phase-1 result (a polish lost), or the greedy start.
    kept: Literal["incumbent", "phase1", "greedy"]
    variables: int


class SolveStats(Model):
    method: Literal["greedy", "mip"] = "mip"
    served: int = 0
    demanded: int = 0
    bound: int = 0
    gap_pct: float = 0.0
    # Served by the warm start: the greedy (a MIP re-solve: the published pairs that still fit).
    greedy_served: int = 0
    seconds: float = 0.0
    greedy_seconds: float = 0.0
    bound_seconds: float = 0.0  # when the last part's proven bound (phase 1) came in
    parts: int = 0
    parts_optimal: int = 0
    candidates: int = 0
    changed: int = 0  # published pairs not kept
    forced: int = 0  # published pairs that could not be kept (no longer candidates)
    impossible_pins: list[str] = Field(default_factory=list)
    cancelled: bool = False
    # Parts whose worker died or was stopped at the deadline (empty: every part finished).
    part_faults: list[PartFault] = Field(default_factory=list)


class Timetable(Model):
    district_id: str
    version: int | None = None
    assignments: list[Assignment]
    unmet: list[Unmet]
    stats: SolveStats

    def for_class(self, class_id: str) -> tuple[list[Assignment], list[Unmet]]:
        return (
            [a for a in self.assignments if a.class_id == class_id],
            [u for u in self.unmet if u.class_id == class_id],
        )


class Progress(Model):
    phase: Literal[
        "queued", "candidates", "greedy", "mip", "explain", "done", "failed", "cancelled"
    ]
    parts_done: int = 0
    parts_total: int = 0
    served: int = 0
    bound: int | None = None
    message: str = ""

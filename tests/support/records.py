"""Teaching-record bodies for the records tests."""

from __future__ import annotations

from lessons.records import SessionOutcome


def outcome(i: int) -> SessionOutcome:
    """The i-th held lesson of one day (distinct times, so distinct hashes)."""
    return SessionOutcome(
        session_id=f"s-{i}",
        offering_id=None,
        teacher="张老师",
        master_school="xian-shiyan",
        subject="英语",
        date="2026-11-02",
        outcome="held",
        starts_at=1_800_000_000.0 + i,
        ends_at=1_800_002_400.0 + i,
    )

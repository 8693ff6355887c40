"""Prometheus metrics of lessons: outcomes, live and scheduled lessons, reconnects."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECONNECTS = Counter(
    "sanke_reconnects_total",
    "Joins of a lesson participant after its link dropped (a fault leave)",
    ["role"],
)
LESSONS = Counter(
    "sanke_lessons_total",
    "Lesson sessions recorded, by outcome (held/missed/cancelled) and master school",
    ["outcome", "school"],
)
LESSONS_MISSED = Counter(
    "sanke_lessons_missed_total",
    "Lessons marked missed (no teacher 10 minutes after the start), by master school",
    ["school"],
)
LESSONS_LIVE = Gauge("sanke_lessons_live", "Lesson sessions live now")
LESSONS_SCHEDULED_TODAY = Gauge(
    "sanke_lessons_scheduled_today",
    "Lesson sessions on today's timetable (Asia/Shanghai), by state",
    ["state"],
)
INGEST_OFFERS = Counter(
    "sanke_ingest_offers_total",
    "Offers of classroom-hardware sources (WHIP), by kind and outcome (accepted or the "
    "error code: lesson_not_open, invalid_sdp, rate_limited, …)",
    ["kind", "outcome"],
)
INGEST_PUBLISHING = Gauge(
    "sanke_ingest_publishing",
    "Classroom-hardware sources publishing as a lesson's teacher through this process, by "
    "kind and master school",
    ["kind", "school"],
)
RECORDINGS_BYTES = Gauge(
    "sanke_recordings_bytes",
    "Bytes the finished recordings of the replay library take, by master school ('-': none "
    "known); from the shared catalogue, so every process recording or sweeping reports the "
    "same total (take max, not sum, across processes)",
    ["school"],
)

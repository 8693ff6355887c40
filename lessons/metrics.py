"""Prometheus metrics of lessons: outcomes, live and scheduled lessons, reconnects, and the
classroom-hardware sources the lessons pull or take pushes from."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from contracts.media import PullStatus

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


class SourceCollector:
    """Per classroom-hardware source pulled or pushed now (an RTSP camera, an RTMP encoder),
    from the SFU's pull status at each supervisor look: its state, the input bitrate and fps
    of its main stream, its reconnects. Labels ``kind``, ``school`` and ``source`` (the
    source's id: bounded by the coordinators' registrations); a source's series exist while
    this process supervises its pull and vanish when the lesson ends or it is deleted, like
    a lesson's stream series."""

    STATES = ("connecting", "connected", "reconnecting", "refused", "unauthorized")

    def __init__(self) -> None:
        self._readings: dict[str, tuple[tuple[str, str, str], PullStatus]] = {}

    def set(self, source_id: str, kind: str, school: str, status: PullStatus) -> None:
        self._readings[source_id] = ((kind, school, source_id), status)

    def drop(self, source_id: str) -> None:
        self._readings.pop(source_id, None)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # values only at collect time

    def collect(self) -> Iterator[Metric]:
        labels = ["kind", "school", "source"]
        state = GaugeMetricFamily(
            "sanke_ingest_source_state",
            "a pulled or pushed source's main stream state: 1 for its state, 0 for the others "
            "(connecting: waiting for the camera or encoder; reconnecting: its picture was "
            "lost; refused: a setting classrooms cannot play; unauthorized: wrong credentials)",
            labels=[*labels, "state"],
        )
        bitrate = GaugeMetricFamily(
            "sanke_ingest_source_bitrate_bps",
            "the input bitrate of a source's main stream as the SFU receives it, bits/s",
            labels=labels,
        )
        fps = GaugeMetricFamily(
            "sanke_ingest_source_fps",
            "the frame rate of a source's main stream as the SFU receives it",
            labels=labels,
        )
        reconnects = CounterMetricFamily(
            "sanke_ingest_source_reconnects",
            "times the SFU opened a source's main stream again (or took its encoder's push "
            "again) after it went away, during this lesson",
            labels=labels,
        )
        for series, status in list(self._readings.values()):
            for name in self.STATES:
                state.add_metric([*series, name], 1.0 if status.state == name else 0.0)
            connected = status.state == "connected"
            bitrate.add_metric(list(series), (status.bitrate_bps or 0.0) if connected else 0.0)
            fps.add_metric(list(series), (status.fps or 0.0) if connected else 0.0)
            reconnects.add_metric(list(series), float(status.reconnects))
        yield from (state, bitrate, fps, reconnects)


SOURCES = SourceCollector()
REGISTRY.register(SOURCES)

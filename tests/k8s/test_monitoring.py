"""Alert rules (promtool) and the Grafana dashboard refer to metrics Sanke really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
METRIC = re.compile(r"\b(sanke_[a-z_]+)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is required (apt-get install -y prometheus)")
    return subprocess.run(["promtool", *args], cwd=MONITORING, capture_output=True, text=True)


def exported_metric_names() -> set[str]:
    """Every sanke_ metric family a Sanke process can export."""
    from prometheus_client import REGISTRY

    import contracts.store.metrics
    import lessons.metrics
    import media.instruments
    import scheduler.metrics
    import signaling.metrics
    from media.metrics import COUNTERS, GAUGES

    del media.instruments, scheduler.metrics, signaling.metrics, contracts.store.metrics
    del lessons.metrics
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("sanke_")}
    names |= {f"sanke_stream_{n}" for n in [*COUNTERS, *GAUGES]}
    names |= {"sanke_quality_score", "sanke_sfu_rooms", "sanke_sfu_peer_connections"}
    names |= {"sanke_media_connections", "sanke_media_bytes"}  # media.ip_metrics
    return names


def referenced(expr: str) -> set[str]:
    out = set()
    for name in METRIC.findall(expr):
        for suffix in ("_bucket", "_count", "_sum", "_total"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        out.add(name)
    return out


def test_alert_rules_pass_promtool_checks_and_unit_tests() -> None:
    check = promtool("check", "rules", "alerts.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    unit = promtool("test", "rules", "alerts_test.yaml")
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((MONITORING / "alerts_test.yaml").read_text(encoding="utf-8"))
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert alerts == tested


def test_alerts_and_dashboard_use_exported_metrics() -> None:
    exported = exported_metric_names()
    normalized = {n.removesuffix("_total") for n in exported}
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(referenced(e) for e in exprs))
    assert used, "no sanke_ metric referenced"
    assert used <= normalized, f"not exported: {sorted(used - normalized)}"


def test_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["timezone"] == "Asia/Shanghai"
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needed in (
        "sanke_lessons_live",
        "sanke_quality_score",
        "sanke_stream_loss_ratio",
        "sanke_stream_jitter_seconds",
        "sanke_stream_rtt_seconds",
        "sanke_stream_freezes_total",
        'sanke_lessons_total{outcome="held"}',
        "sanke_solver_",
    ):
        assert needed in exprs, needed
    assert {p["type"] for p in dashboard["panels"]} >= {"heatmap", "table", "stat", "timeseries"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))

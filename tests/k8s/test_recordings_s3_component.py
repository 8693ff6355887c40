"""The component ``k8s/components/recordings-s3`` (finished recordings to object storage): added
to the production overlay it renders valid objects, gives the SFU nodes and the scheduler the
bucket's settings from sanke-config and its credentials from the Secret the component names,
and those settings parse into the bucket's settings the code reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sanke-recordings-s3"


def _render(tmp_path: Path) -> list[dict[str, Any]]:
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", k8s)
    overlay = k8s / "overlays" / "with-s3"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../production\ncomponents:\n  - ../../components/recordings-s3\n"
    )
    kubectl = shutil.which("kustomize") or shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("neither kustomize nor kubectl found: run scripts/system-deps.sh")
    command = [kubectl, "build" if kubectl.endswith("kustomize") else "kustomize", str(overlay)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def test_the_s3_component_configures_the_sfu_and_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = _render(tmp_path)
    (config,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("sanke-config")
    ]
    data = config["data"]
    assert (
        "SANKE_RECORDINGS_S3_SECRET_KEY" not in data
        and "SANKE_RECORDINGS_S3_ACCESS_KEY" not in data
    )
    for wanted in ("sanke-sfu", "sanke-scheduler"):
        (workload,) = [
            o
            for o in objects
            if o["metadata"]["name"] == wanted and "template" in o.get("spec", {})
        ]
        kubernetes_validate.validate(
            workload, kubernetes_validate.utils.latest_version(), strict=True
        )
        (container,) = [
            c
            for c in workload["spec"]["template"]["spec"]["containers"]
            if c["name"] in ("sfu", "scheduler")
        ]
        env = {e["name"]: e for e in container["env"]}
        for name, key in (("ACCESS_KEY", "access-key"), ("SECRET_KEY", "secret-key")):
            ref = env[f"SANKE_RECORDINGS_S3_{name}"]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == (SECRET, key)
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]

    from sanke.settings import Settings

    for name, value in data.items():
        if name.startswith("SANKE_RECORDINGS_S3_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SANKE_RECORDINGS_S3_ACCESS_KEY", "id")
    monkeypatch.setenv("SANKE_RECORDINGS_S3_SECRET_KEY", "key")
    s3 = Settings(token_secret="x" * 40).recordings_s3()
    assert s3 is not None and s3.bucket == data["SANKE_RECORDINGS_S3_BUCKET"]
    assert s3.endpoint.startswith("https://")


def test_the_component_tells_how_to_create_its_secret() -> None:
    text = (ROOT / "k8s/components/recordings-s3/kustomization.yaml").read_text()
    assert f"create secret generic {SECRET}" in text
    assert "--from-literal=access-key=" in text and "--from-literal=secret-key=" in text

"""The Kubernetes manifests (k8s/): render every overlay, validate, cross-check.

Offline and without a cluster: ``kustomize build`` or ``kubectl kustomize`` renders
(Debian's kubernetes-client is enough; scripts/system-deps.sh installs it), the
kubernetes-validate package holds the API schemas. Prometheus Operator objects have
no core schema: they are checked structurally here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="needs PyYAML (a kubernetes-validate dependency)")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="needs kubernetes-validate (the test extra)"
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ["dev", "production"]
NAMESPACE = "sanke"
SANKE_IMAGE = re.compile(r"^(?:.+/)?sanke(?::[\w.-]+)?$")
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}

# The Secret production creates by hand (README, "Deploying to a cluster"): its keys.
EXTERNAL_SECRET = "sanke-secrets"
EXTERNAL_SECRET_KEYS = {"token-secret", "records-key", "turn-secret"}

# What each `sanke` subcommand cannot run without in a cluster (beyond defaults).
REQUIRED_ENV = {
    "signaling": {"REDIS_URL", "SANKE_TOKEN_SECRET", "SANKE_RECORDS_KEY"},
    "sfu": {"REDIS_URL", "SANKE_NODE_ID", "SANKE_SFU_ADDRESS", "SANKE_DRAIN_GRACE_SECONDS"},
    "scheduler": {"REDIS_URL", "SANKE_TOKEN_SECRET", "SANKE_RECORDS_KEY"},
}
# Never a literal in a manifest, never in a ConfigMap.
SECRET_ENV = {"SANKE_TOKEN_SECRET", "SANKE_RECORDS_KEY"}
DRAIN_GRACE_SECONDS = 2700


# --------------------------------------------------------------------------- render


def _renderer() -> list[str]:
    if explicit := os.environ.get("KUSTOMIZE"):
        return [*explicit.split(), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    pytest.fail(
        "neither kustomize nor kubectl found: run scripts/system-deps.sh "
        "(apt-get install kubernetes-client)"
    )


@cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [*_renderer(), str(K8S / path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"rendering k8s/{path} failed:\n{proc.stderr}"
    docs = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    assert docs, f"k8s/{path} rendered nothing"
    return tuple(docs)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def objects(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(f"overlays/{overlay}")


def of_kind(objs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(objs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec["containers"], *(spec.get("initContainers", []) if init else [])]


def sanke_containers(objs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(subcommand, container) for every container running the sanke image."""
    for workload in workloads(objs):
        for container in containers(workload):
            if SANKE_IMAGE.match(container["image"]):
                yield container["args"][0], container


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (or a Service's plain map) against labels."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def declared_ports(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for c in containers(workload, init=False) for p in c.get("ports", [])]


def port_declared(workload: dict[str, Any], port: int | str, protocol: str = "TCP") -> bool:
    for declared in declared_ports(workload):
        if declared.get("protocol", "TCP") != protocol:
            continue
        if port in (declared.get("name"), declared["containerPort"]):
            return True
    return False


# ------------------------------------------------------------------ render + schema


def test_every_overlay_renders_into_the_namespace(objects: tuple[dict[str, Any], ...]) -> None:
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"{key} twice"
        seen.add(key)
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, key
    assert ("Namespace", NAMESPACE) in seen


def _schema_versions() -> list[str]:
    versions = kubernetes_validate.utils.all_versions()
    return sorted({versions[0], versions[-1]})


@pytest.mark.parametrize("path", ["overlays/dev", "overlays/production", "monitoring"])
def test_objects_match_the_kubernetes_schemas(path: str) -> None:
    """Strict: unknown fields fail too. Oldest and newest schema the package ships."""
    problems = []
    for obj in render(path):
        if obj["kind"] in CRD_KINDS:
            continue  # no core schema: test_monitoring_objects_are_well_formed
        for version in _schema_versions():
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(p) for p in exc.path)
                problems.append(
                    f"{obj['kind']}/{obj['metadata']['name']} @{version} {where}: {exc.message}"
                )
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(exc.message)
    assert not problems, "\n".join(problems)


def test_only_known_kinds(objects: tuple[dict[str, Any], ...]) -> None:
    known = {
        "Namespace", "ConfigMap", "Secret", "Service", "Deployment", "StatefulSet",
        "DaemonSet", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
        "Ingress", "PersistentVolumeClaim", *CRD_KINDS,
    }  # fmt: skip
    assert {o["kind"] for o in objects} <= known


# ------------------------------------------------------------------- cross-references


def test_services_select_pods_and_target_declared_ports(
    objects: tuple[dict[str, Any], ...],
) -> None:
    for service in of_kind(objects, "Service"):
        name = service["metadata"]["name"]
        selected = [
            w for w in workloads(objects) if matches(service["spec"]["selector"], pod_labels(w))
        ]
        assert selected, f"Service {name} selects no pod template"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload in selected:
                assert port_declared(workload, target, port.get("protocol", "TCP")), (
                    f"Service {name} targets {target}, not declared by {workload['metadata']['name']}"
                )


def test_workload_selectors_match_their_templates(objects: tuple[dict[str, Any], ...]) -> None:
    for workload in workloads(objects):
        assert matches(workload["spec"]["selector"], pod_labels(workload)), workload["metadata"]
        assert pod_labels(workload).get("app.kubernetes.io/part-of") == "sanke"


def test_statefulset_service_is_headless(objects: tuple[dict[str, Any], ...]) -> None:
    for sts in of_kind(objects, "StatefulSet"):
        service = named(objects, "Service", sts["spec"]["serviceName"])
        assert service["spec"].get("clusterIP") == "None"
        assert matches(service["spec"]["selector"], pod_labels(sts))


@cache
def app_get_routes(
    command: str, *, any_method: bool = False, metrics_port: int | None = None
) -> frozenset[str]:
    """GET (or all) routes of the HTTP app a ``sanke`` subcommand serves on its port."""
    if command == "sfu":
        from sanke.sfu_main import _http

        app = _http(None)  # type: ignore[arg-type]  # handlers only use the node when called
    else:  # signaling, scheduler, serve: the composition root
        from sanke.app import create_app
        from sanke.settings import Settings

        serves = command if command in ("signaling", "scheduler") else "all"
        app = create_app(
            Settings(token_secret="x" * 40, dev=True, media=False, metrics_port=metrics_port),
            serves=serves,  # type: ignore[arg-type]
        )
    return frozenset(
        route.resource.canonical
        for route in app.router.routes()
        if (any_method or route.method in ("GET", "*")) and route.resource is not None
    )


def test_probes_hit_real_routes_on_declared_ports(objects: tuple[dict[str, Any], ...]) -> None:
    for workload in workloads(objects):
        for container in containers(workload):
            sanke = bool(SANKE_IMAGE.match(container["image"]))
            routes = routes_on(objects, container, "http") if sanke else frozenset()
            assert not sanke or {"/healthz", "/readyz"} <= routes
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(kind)
                if not probe:
                    assert not sanke or kind == "startupProbe", f"{container['name']} lacks {kind}"
                    continue
                where = f"{workload['metadata']['name']}/{container['name']} {kind}"
                if "httpGet" in probe:
                    assert port_declared(workload, probe["httpGet"]["port"]), where
                    if sanke:
                        expected = "/readyz" if kind == "readinessProbe" else "/healthz"
                        assert probe["httpGet"]["path"] == expected, where
                        assert probe["httpGet"]["path"] in routes, where
                elif "tcpSocket" in probe:
                    assert port_declared(workload, probe["tcpSocket"]["port"]), where
                else:
                    assert "exec" in probe, where


def literal_env(objs: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    """The container's variables whose values the manifests spell out."""
    out: dict[str, str] = {}
    for name, source in container_env(objs, container).items():
        if "value" in source:
            out[name] = source["value"]
        elif "configMap" in source:
            out[name] = named(objs, "ConfigMap", source["configMap"])["data"][name]
    return out


def routes_on(
    objs: tuple[dict[str, Any], ...], container: dict[str, Any], port: Any
) -> frozenset[str]:
    """GET routes a sanke container serves on one of its ports (a name or a number)."""
    from signaling.metrics_http import metrics_app

    command = container["args"][0]
    env = literal_env(objs, container)
    metrics_port = int(env["SANKE_METRICS_PORT"]) if "SANKE_METRICS_PORT" in env else None
    numbers = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    number = numbers.get(port, port)
    if command != "sfu" and metrics_port is not None and number == metrics_port:
        app = metrics_app(None)
        return frozenset(r.resource.canonical for r in app.router.routes() if r.resource)
    return app_get_routes(command, metrics_port=metrics_port)


def test_containers_have_requests_and_limits(objects: tuple[dict[str, Any], ...]) -> None:
    for workload in workloads(objects):
        for container in containers(workload):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (
                    f"{workload['metadata']['name']}/{container['name']} {part}"
                )


def test_pods_run_unprivileged_as_the_image_user(objects: tuple[dict[str, Any], ...]) -> None:
    uid = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert uid, "Dockerfile must set a numeric USER"
    for workload in workloads(objects):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec.get("automountServiceAccountToken") is False
        for container in containers(workload):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
        if any(SANKE_IMAGE.match(c["image"]) for c in containers(workload)):
            assert spec["securityContext"]["runAsUser"] == int(uid.group(1))


# ---------------------------------------------------------------------------- env


@cache
def settings_env() -> dict[str, bool]:
    """Every environment variable the Settings model reads → whether it has a default."""
    from pydantic import AliasChoices

    from sanke.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, bool] = {}
    for field_name, field in Settings.model_fields.items():
        aliases = [f"{prefix}{field_name}".upper()]
        if isinstance(field.validation_alias, AliasChoices):
            aliases = [a for a in field.validation_alias.choices if isinstance(a, str)]
            aliases = [a.upper() for a in aliases if a.upper() == a or a.startswith(prefix)]
        elif isinstance(field.validation_alias, str):
            aliases = [field.validation_alias.upper()]
        for alias in aliases:
            names[alias] = not field.is_required()
    return names


@cache
def source_env_reads() -> dict[str, bool]:
    """os.environ / getenv reads in the packages → whether the read has a default."""
    reads: dict[str, bool] = {}
    pattern = re.compile(
        r"""(?:os\.environ\.get|os\.getenv|getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']\s*(,)?"""
        r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
    )
    for package in ("sanke", "signaling", "scheduler", "media"):
        for path in (ROOT / package).rglob("*.py"):
            for m in pattern.finditer(path.read_text(encoding="utf-8")):
                if m.group(1):
                    reads[m.group(1)] = reads.get(m.group(1), True) and bool(m.group(2))
                else:
                    reads[m.group(3)] = False
    return reads


def container_env(
    objs: tuple[dict[str, Any], ...], container: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Variable → its source: {"value": ...} | {"configMap": name} | valueFrom | {"secret": name}."""
    env: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = named(objs, "ConfigMap", source["configMapRef"]["name"])
            for key in config.get("data", {}):
                env[source.get("prefix", "") + key] = {"configMap": config["metadata"]["name"]}
        if "secretRef" in source:
            env.update(
                {
                    k: {"secret": source["secretRef"]["name"]}
                    for k in secret_keys(objs, source["secretRef"]["name"])
                }
            )
    for item in container.get("env", []):
        env[item["name"]] = item.get("valueFrom") or {"value": item.get("value", "")}
    return env


def secret_keys(objs: tuple[dict[str, Any], ...], name: str) -> set[str]:
    found = [s for s in of_kind(objs, "Secret") if s["metadata"]["name"] == name]
    if found:
        return set(found[0].get("data", {})) | set(found[0].get("stringData", {}))
    assert name == EXTERNAL_SECRET, f"Secret {name} is neither rendered nor the documented one"
    return EXTERNAL_SECRET_KEYS


def test_every_env_var_the_code_reads_is_set_or_defaulted(
    objects: tuple[dict[str, Any], ...],
) -> None:
    reads = {**settings_env(), **source_env_reads()}
    found_commands = set()
    for command, container in sanke_containers(objects):
        found_commands.add(command)
        env = container_env(objects, container)
        for name, has_default in reads.items():
            assert has_default or name in env, f"{command}: {name} is required and not set"
        missing = REQUIRED_ENV.get(command, set()) - set(env)
        assert not missing, f"sanke {command} needs {sorted(missing)}"
    assert found_commands == set(REQUIRED_ENV)


def test_every_sanke_env_var_set_is_one_the_code_knows(
    objects: tuple[dict[str, Any], ...],
) -> None:
    """Catches typos: a misspelt SANKE_* variable is silently ignored by the settings."""
    known = set(settings_env()) | set(source_env_reads())
    for command, container in sanke_containers(objects):
        for name in container_env(objects, container):
            if name.startswith("SANKE_") or name == "REDIS_URL":
                assert name in known, f"sanke {command}: {name} is read by nothing"


def test_settings_in_manifests_are_valid_values(
    objects: tuple[dict[str, Any], ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The literal values parse with the real Settings model, and from nothing else."""
    from sanke.settings import Settings

    for command, container in sanke_containers(objects):
        for name in os.environ:
            if name.startswith("SANKE_") or name == "REDIS_URL":
                monkeypatch.delenv(name)
        for name, source in container_env(objects, container).items():
            if name not in settings_env():
                continue
            if "value" in source:
                value = source["value"]
            elif "configMap" in source:
                value = named(objects, "ConfigMap", source["configMap"])["data"][name]
            else:
                continue  # from a Secret or the downward API: known only in the cluster
            if "$(" not in value:
                monkeypatch.setenv(name, value)
        settings = Settings(token_secret="x" * 40)
        assert settings.redis_url, command
        (http,) = [
            p for p in declared_ports(_workload_of(objects, container)) if p["name"] == "http"
        ]
        assert settings.port == http["containerPort"], f"sanke {command} listens elsewhere"
        monkeypatch.undo()


def _workload_of(objs: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, Any]:
    return next(w for w in workloads(objs) if any(c is container for c in containers(w)))


def test_secrets_come_from_secrets(objects: tuple[dict[str, Any], ...]) -> None:
    for command, container in sanke_containers(objects):
        env = container_env(objects, container)
        for name in SECRET_ENV & set(env):
            source = env[name]
            ref = source.get("secretKeyRef")
            assert ref or "secret" in source, f"sanke {command}: {name} must come from a Secret"
            if ref:
                assert ref["key"] in secret_keys(objects, ref["name"]), (command, name)
    for config in of_kind(objects, "ConfigMap"):
        assert not SECRET_ENV & set(config.get("data", {})), config["metadata"]["name"]
    for workload in workloads(objects):
        for container in containers(workload):
            for item in container.get("env", []):
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secret_keys(objects, ref["name"]), item


def test_the_readme_creates_the_external_secret() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploying to a cluster") :]
    assert f"create secret generic {EXTERNAL_SECRET}" in section
    for key in EXTERNAL_SECRET_KEYS:
        assert f"--from-literal={key}=" in section, key
    assert "kubectl apply -k k8s/overlays/production" in section


def test_the_cli_has_every_command_the_manifests_run(objects: tuple[dict[str, Any], ...]) -> None:
    import argparse

    from sanke.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = {command for command, _ in sanke_containers(objects)}
    assert commands <= set(sub.choices), sorted(commands - set(sub.choices))


# ------------------------------------------------------------------ scaling, HA, SFU


def test_hpa_and_pdb_point_at_real_workloads(objects: tuple[dict[str, Any], ...]) -> None:
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        target = named(objects, ref["kind"], ref["name"])
        assert ref["kind"] == "Deployment" and ref["apiVersion"] == "apps/v1"
        assert (
            hpa["spec"]["minReplicas"] <= target["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
        )
        for container in containers(target):
            assert "cpu" in container["resources"]["requests"], "Utilization needs a CPU request"
    pdbs = of_kind(objects, "PodDisruptionBudget")
    assert pdbs
    for pdb in pdbs:
        selected = [
            w for w in workloads(objects) if matches(pdb["spec"]["selector"], pod_labels(w))
        ]
        assert selected, f"PDB {pdb['metadata']['name']} selects nothing"
    signaling = named(objects, "Deployment", "sanke-signaling")
    assert any(matches(p["spec"]["selector"], pod_labels(signaling)) for p in pdbs)


def test_sfu_runs_on_the_host_network_and_drains(objects: tuple[dict[str, Any], ...]) -> None:
    (sfu,) = [w for w in workloads(objects) if any(a == "sfu" for a in _args(w))]
    assert sfu["kind"] in {"DaemonSet", "StatefulSet"}
    spec = pod_spec(sfu)
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    (container,) = [c for c in spec["containers"] if c["args"][0] == "sfu"]
    env = container_env(objects, container)
    drain = int(env["SANKE_DRAIN_GRACE_SECONDS"]["value"])
    assert drain >= DRAIN_GRACE_SECONDS
    assert spec["terminationGracePeriodSeconds"] > drain
    assert env["SANKE_NODE_ID"]["fieldRef"]["fieldPath"] in {"metadata.name", "spec.nodeName"}
    assert env["SANKE_SFU_ADDRESS"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert int(env["SANKE_SFU_CAPACITY"]["value"]) >= 1
    cpu = container["resources"]["limits"]["cpu"]
    assert 1 <= float(cpu) <= 4


def test_sfu_records_to_a_shared_volume(objects: tuple[dict[str, Any], ...]) -> None:
    """Every SFU pod records to one claim (ReadWriteMany in production) at
    SANKE_RECORDINGS_DIR, writable for the image's user, and signs with the records key."""
    (sfu,) = [w for w in workloads(objects) if any(a == "sfu" for a in _args(w))]
    spec = pod_spec(sfu)
    (container,) = [c for c in spec["containers"] if c["args"][0] == "sfu"]
    env = container_env(objects, container)
    directory = env["SANKE_RECORDINGS_DIR"]["value"]
    assert "secretKeyRef" in env["SANKE_RECORDS_KEY"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    claim = named(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] in (["ReadWriteMany"], ["ReadWriteOnce"])
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


def test_production_records_to_read_write_many() -> None:
    claims = [o for o in render("overlays/production") if o["kind"] == "PersistentVolumeClaim"]
    assert [c["spec"]["accessModes"] for c in claims] == [["ReadWriteMany"]]


def _args(workload: dict[str, Any]) -> list[str]:
    return [c.get("args", [""])[0] for c in containers(workload, init=False)]


def test_redis_is_persistent_with_aof(objects: tuple[dict[str, Any], ...]) -> None:
    redis = named(objects, "StatefulSet", "redis")
    (server,) = [c for c in containers(redis) if c["name"] == "redis"]
    args = server["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    mounts = {m["name"] for m in server["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]}
    assert "data" in mounts & claims
    config = named(objects, "ConfigMap", _config_name(objects))
    host = re.match(r"rediss?://([^:/]+)", config["data"]["REDIS_URL"])
    assert host and named(objects, "Service", host.group(1).split(".")[0])


def _config_name(objs: tuple[dict[str, Any], ...]) -> str:
    (name,) = {
        s["configMapRef"]["name"]
        for _, c in sanke_containers(objs)
        for s in c.get("envFrom", [])
        if "configMapRef" in s
    }
    return str(name)


def test_coturn_relays_for_strict_nat(objects: tuple[dict[str, Any], ...]) -> None:
    coturn = named(objects, "DaemonSet", "coturn")
    spec = pod_spec(coturn)
    assert spec["hostNetwork"] is True
    for protocol in ("UDP", "TCP"):
        assert port_declared(coturn, 3478, protocol)
    (init,) = spec["initContainers"]
    assert "static-auth-secret" in " ".join(init["command"])
    (secret_ref,) = [e["valueFrom"]["secretKeyRef"] for e in init["env"]]
    assert secret_ref["key"] in secret_keys(objects, secret_ref["name"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    conf = named(objects, "ConfigMap", volumes["config"]["configMap"]["name"])["data"][
        "turnserver.conf"
    ]
    options = dict(
        line.partition("=")[::2] for line in conf.splitlines() if line and line[0] != "#"
    )
    assert "use-auth-secret" in options
    assert "static-auth-secret" not in options, "the secret belongs in the Secret"
    low, high = int(options["min-port"]), int(options["max-port"])
    for reserved in (range(30000, 32768), range(32768, 61000)):  # NodePorts, SFU ephemeral
        assert high < reserved.start or low >= reserved.stop
    ice = named(objects, "ConfigMap", _config_name(objects))["data"]["SANKE_ICE_SERVERS"]
    for url in filter(None, ice.split(",")):
        assert re.match(r"^(stun|turns?):[^:?]+:3478(\?transport=(udp|tcp))?$", url), url


# ---------------------------------------------------------------- network policies


def _ns_labels(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


def allowed(
    objs: tuple[dict[str, Any], ...],
    *,
    source_ns: str,
    source_labels: dict[str, str] | None,
    source_ip: str | None = None,
    target: dict[str, Any],
    port: str | int,
) -> bool:
    """NetworkPolicy ingress semantics for a connection to a workload's pods."""
    labels = pod_labels(target)
    policies = [
        p for p in of_kind(objs, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and matches(p["spec"]["podSelector"], labels)
    ]  # fmt: skip
    if not policies:
        return True
    (declared,) = [d for d in declared_ports(target) if port in (d.get("name"), d["containerPort"])]
    aliases = {declared["containerPort"], declared.get("name")} - {None}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") in aliases for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    if source_ip and ipaddress.ip_address(source_ip) in ipaddress.ip_network(
                        peer["ipBlock"]["cidr"]
                    ):
                        return True
                    continue
                if source_labels is None:
                    continue
                ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
                ns_ok = (
                    matches(ns_sel, _ns_labels(source_ns))
                    if ns_sel is not None
                    else source_ns == NAMESPACE
                )
                pod_ok = matches(pod_sel, source_labels) if pod_sel is not None else True
                if ns_ok and pod_ok:
                    return True
    return False


def test_network_policies(objects: tuple[dict[str, Any], ...]) -> None:
    signaling = named(objects, "Deployment", "sanke-signaling")
    scheduler = named(objects, "Deployment", "sanke-scheduler")
    redis = named(objects, "StatefulSet", "redis")
    sfu = named(objects, "DaemonSet", "sanke-sfu")
    ingress = {
        "source_ns": "ingress-nginx",
        "source_labels": {"app.kubernetes.io/name": "ingress-nginx"},
    }
    prometheus = {
        "source_ns": "monitoring",
        "source_labels": {"app.kubernetes.io/name": "prometheus"},
    }
    stranger = {"source_ns": "default", "source_labels": {"app": "anything"}}

    assert allowed(objects, **ingress, target=signaling, port="http")
    assert allowed(objects, **ingress, target=scheduler, port="http")
    assert not allowed(objects, **ingress, target=redis, port="redis")
    for client in (signaling, scheduler, sfu):
        assert allowed(
            objects, source_ns=NAMESPACE, source_labels=pod_labels(client), target=redis, port=6379
        ), client["metadata"]["name"]
    # The SFU is on the host network: its connections come from a node address.
    assert allowed(
        objects, source_ns="", source_labels=None, source_ip="10.1.2.3", target=redis, port=6379
    )
    for target, port in ((signaling, "metrics"), (scheduler, "metrics"), (redis, "metrics")):
        assert allowed(objects, **prometheus, target=target, port=port), target["metadata"]["name"]
    for target in (signaling, scheduler):  # the ingress controller never reaches metrics
        assert not allowed(objects, **ingress, target=target, port="metrics")
    for target, port in ((signaling, "http"), (redis, "redis"), (redis, "metrics")):
        assert not allowed(objects, **stranger, target=target, port=port)
    assert not allowed(
        objects,
        source_ns="monitoring",
        source_labels={"app": "grafana"},
        target=redis,
        port="redis",
    )
    for policy in of_kind(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                if isinstance(p["port"], str):
                    assert any(
                        port_declared(w, p["port"])
                        for w in workloads(objects)
                        if matches(policy["spec"]["podSelector"], pod_labels(w))
                    ), (policy["metadata"]["name"], p["port"])


# ---------------------------------------------------------------------- production


def test_production_is_highly_available_behind_tls() -> None:
    objs = render("overlays/production")
    signaling = named(objs, "Deployment", "sanke-signaling")
    assert signaling["spec"]["replicas"] > 1
    assert named(objs, "HorizontalPodAutoscaler", "sanke-signaling")["spec"]["minReplicas"] > 1
    anti = pod_spec(signaling)["affinity"]["podAntiAffinity"]
    terms = [t.get("podAffinityTerm", t) for v in anti.values() for t in v]
    assert any(matches(t["labelSelector"], pod_labels(signaling)) for t in terms)
    for _, container in sanke_containers(objs):
        assert container["image"] != "sanke", "production pulls from a registry"

    ingresses = of_kind(objs, "Ingress")
    assert ingresses
    for ingress in ingresses:
        _check_ingress(objs, ingress)
    assert any(
        p["path"] == "/" for i in ingresses for r in i["spec"]["rules"] for p in r["http"]["paths"]
    ), "/ws"


def _check_ingress(objs: tuple[dict[str, Any], ...], ingress: dict[str, Any]) -> None:
    tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    assert all(t.get("secretName") for t in ingress["spec"]["tls"])
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts, f"{rule['host']} served without TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = named(objs, "Service", backend["name"])
            assert any(
                backend["port"].get("name") == p.get("name")
                or backend["port"].get("number") == p["port"]
                for p in service["spec"]["ports"]
            ), backend
            (workload,) = [
                w for w in workloads(objs) if matches(service["spec"]["selector"], pod_labels(w))
            ]
            (command,) = [a for a in _args(workload) if a in REQUIRED_ENV]
            routes = app_get_routes(command, any_method=True)
            prefix = path["path"]
            assert prefix == "/" or any(r.startswith(prefix) for r in routes), (command, prefix)


# The APIs only ``sanke scheduler`` serves (and ``sanke serve``): solve jobs run there, off
# the pods that carry lessons' WebSockets, and the lesson clock with them.
SCHEDULER_PREFIXES = (
    "/api/v1/schedule",
    "/api/v1/lessons",
    "/api/v1/devices",
    "/api/v1/device",
    "/api/v1/records",
    "/api/v1/audit",
    "/api/v1/sources",
    "/api/v1/replays",
)


def test_the_scheduler_apis_are_served_by_the_scheduler_only() -> None:
    """``sanke signaling`` serves no schedule or lessons route, ``sanke scheduler`` serves them
    and no WebSocket, and the production Ingress sends each of those paths to the scheduler
    Service (the longest matching path over the host's Ingresses)."""
    signaling = app_get_routes("signaling", any_method=True)
    scheduler = app_get_routes("scheduler", any_method=True)
    everything = app_get_routes("serve", any_method=True)
    for prefix in SCHEDULER_PREFIXES:
        assert not [r for r in signaling if r.startswith(prefix)], prefix
        assert [r for r in scheduler if r.startswith(prefix)], prefix
        assert [r for r in everything if r.startswith(prefix)], prefix
    assert "/ws" in signaling and "/ws" not in scheduler and "/ws" in everything
    assert {"/healthz", "/readyz"} <= signaling & scheduler
    objs = render("overlays/production")
    paths = [
        (p["path"], p["backend"]["service"]["name"])
        for i in of_kind(objs, "Ingress")
        for r in i["spec"]["rules"]
        for p in r["http"]["paths"]
    ]
    for route in sorted(scheduler - signaling):
        if route.startswith("/web") or route == "/":
            continue
        _, backend = max((p for p in paths if route.startswith(p[0])), key=lambda p: len(p[0]))
        assert backend == "sanke-scheduler", (route, backend)


def _nginx_size(value: str) -> int:
    """An nginx size (``1m``, ``512k``, bytes) in bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


def test_ingress_body_limits_are_the_apps() -> None:
    """Each body route gets, through the Ingress path that serves it (the longest matching
    prefix over every Ingress of the host), the same limit the app enforces: a larger one
    at the Ingress would let nginx buffer what the app refuses, a smaller one would refuse
    what the app accepts (a province's district)."""
    from scheduler.district_api import BODY_LIMITS
    from signaling.bodies import JSON_MAX_BYTES

    objs = render("overlays/production")
    served: list[tuple[str, int, str]] = []  # (prefix, proxy-body-size, backend)
    for ingress in of_kind(objs, "Ingress"):
        size = ingress["metadata"].get("annotations", {})[
            "nginx.ingress.kubernetes.io/proxy-body-size"
        ]
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["pathType"] == "Prefix"
                served.append((path["path"], _nginx_size(size), path["backend"]["service"]["name"]))
    from sanke.app import create_app
    from sanke.settings import Settings

    app = create_app(Settings(token_secret="x" * 40, dev=True, media=False))
    bodies = {
        r.resource.canonical
        for r in app.router.routes()
        if r.method in ("POST", "PUT", "PATCH", "DELETE") and r.resource is not None
    }
    for route in sorted(bodies):
        matching = [
            s for s in served if s[0] == "/" or route == s[0] or route.startswith(s[0] + "/")
        ]
        prefix, size, backend = max(matching, key=lambda s: len(s[0]))
        assert size == BODY_LIMITS.get(route, JSON_MAX_BYTES), (route, prefix, size)
        if route.startswith("/api/v1/schedule"):
            # Large inputs are parsed in a child process: the scheduler's pods have the memory.
            assert backend == "sanke-scheduler", (route, backend)


def test_dev_is_single_replica_without_operator_objects() -> None:
    objs = render("overlays/dev")
    assert named(objs, "Deployment", "sanke-signaling")["spec"]["replicas"] == 1
    assert not {o["kind"] for o in objs} & (CRD_KINDS | {"Ingress"})
    assert "nodeSelector" not in pod_spec(named(objs, "DaemonSet", "sanke-sfu"))


# ---------------------------------------------------------------------- monitoring


def _monitoring() -> tuple[dict[str, Any], ...]:
    return render("overlays/production")


def test_monitoring_objects_are_well_formed() -> None:
    """No core schema for the Prometheus Operator's kinds: their required structure."""
    rendered = render("monitoring")
    # Besides the operator's kinds, only the Grafana dashboard ConfigMap (test_monitoring.py).
    assert {o["kind"] for o in rendered} == CRD_KINDS | {"ConfigMap"}
    objs = [o for o in rendered if o["kind"] in CRD_KINDS]
    for obj in objs:
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
        assert obj["metadata"]["name"] and obj["metadata"]["namespace"] == NAMESPACE
        spec = obj["spec"]
        if obj["kind"] == "ServiceMonitor":
            assert set(spec) <= {"selector", "endpoints", "jobLabel", "namespaceSelector"}
            assert spec["endpoints"] and all(e["port"] and e["path"] for e in spec["endpoints"])
        elif obj["kind"] == "PodMonitor":
            assert set(spec) <= {"selector", "podMetricsEndpoints", "jobLabel", "namespaceSelector"}
            assert spec["podMetricsEndpoints"]
            assert all(e["port"] and e["path"] for e in spec["podMetricsEndpoints"])
        else:
            assert set(spec) == {"groups"}
            for group in spec["groups"]:
                assert group["name"] and group["rules"]
                for rule in group["rules"]:
                    assert ("alert" in rule) != ("record" in rule), rule
                    assert isinstance(rule["expr"], str) and rule["expr"].strip()
                    if "alert" in rule:
                        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
                        assert rule["annotations"]["summary"]
                        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]


def _jobs(objs: tuple[dict[str, Any], ...]) -> dict[str, tuple[dict[str, Any], str, str]]:
    """Prometheus `job` label → (scraped workload, container port, path) for every monitor."""
    jobs: dict[str, tuple[dict[str, Any], str, str]] = {}
    for monitor in of_kind(objs, "ServiceMonitor"):
        for service in of_kind(objs, "Service"):
            if matches(monitor["spec"]["selector"], service["metadata"].get("labels", {})):
                for endpoint in monitor["spec"]["endpoints"]:
                    (port,) = [
                        p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]
                    ]
                    for w in workloads(objs):
                        if matches(service["spec"]["selector"], pod_labels(w)):
                            jobs[service["metadata"]["name"]] = (
                                w,
                                port["targetPort"],
                                endpoint["path"],
                            )
    for monitor in of_kind(objs, "PodMonitor"):
        job_label = monitor["spec"].get("jobLabel")
        for w in workloads(objs):
            if matches(monitor["spec"]["selector"], pod_labels(w)):
                job = (
                    pod_labels(w)[job_label]
                    if job_label
                    else f"{NAMESPACE}/{monitor['metadata']['name']}"
                )
                for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                    jobs[job] = (w, endpoint["port"], endpoint["path"])
    return jobs


def test_monitors_scrape_every_sanke_component_on_metrics_routes() -> None:
    objs = _monitoring()
    jobs = _jobs(objs)
    scraped = {w["metadata"]["name"] for w, _, _ in jobs.values()}
    assert {"sanke-signaling", "sanke-scheduler", "sanke-sfu", "redis"} <= scraped
    for job, (workload, port, path) in jobs.items():
        assert port_declared(workload, port), (job, port)
        for container in containers(workload):  # sanke containers: a real route on that port
            if SANKE_IMAGE.match(container["image"]) and container["args"][0] in REQUIRED_ENV:
                assert path in routes_on(objs, container, port), (job, port, path)


def test_metrics_are_never_behind_the_ingress() -> None:
    """The Ingress reaches signaling and scheduler on `http`: /metrics must not be there (it
    names schools and classrooms and shows who is connected), only on the metrics port that
    Prometheus scrapes and no Ingress path names."""
    objs = _monitoring()
    backends = {
        (p["backend"]["service"]["name"], p["backend"]["service"]["port"].get("name"))
        for ingress in of_kind(objs, "Ingress")
        for r in ingress["spec"]["rules"]
        for p in r["http"]["paths"]
    }
    assert backends
    jobs = _jobs(objs)
    for service_name, port_name in backends:
        service = named(objs, "Service", service_name)
        (port,) = [p for p in service["spec"]["ports"] if p.get("name") == port_name]
        (workload,) = [
            w for w in workloads(objs) if matches(service["spec"]["selector"], pod_labels(w))
        ]
        for container in containers(workload):
            assert "/metrics" not in routes_on(objs, container, port["targetPort"]), (
                f"{service_name}:{port_name} serves /metrics to the Ingress"
            )
        scraped = jobs[service_name]
        assert scraped[1] != port["targetPort"], f"{service_name} is scraped on its public port"
        assert "/metrics" in routes_on(objs, containers(workload)[0], scraped[1])


def _rules(objs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [
        r for o in of_kind(objs, "PrometheusRule") for g in o["spec"]["groups"] for r in g["rules"]
    ]


def test_alert_rules_refer_to_real_jobs() -> None:
    objs = _monitoring()
    rules = _rules(objs)
    names = [r.get("alert") or r.get("record") for r in rules]
    assert len(names) == len(set(names)), "duplicate rule names"
    assert "SanKeRedisDown" in names
    jobs = _jobs(objs)
    for rule in rules:
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, f"{names[rules.index(rule)]}: no monitor yields job={job}"
        for metric in re.findall(r"\b(sanke_[a-z0-9_]+)", rule["expr"]):
            assert re.fullmatch(r"sanke_[a-z0-9_]+", metric)


def test_plain_alert_file_is_part_of_the_prometheus_rule() -> None:
    """k8s/monitoring/alerts.yaml (promtool format), when present, is shipped whole."""
    plain = K8S / "monitoring" / "alerts.yaml"
    if not plain.exists():
        pytest.skip("no k8s/monitoring/alerts.yaml")
    groups = yaml.safe_load(plain.read_text(encoding="utf-8"))["groups"]
    shipped = {
        g["name"]: g
        for o in of_kind(render("monitoring"), "PrometheusRule")
        for g in o["spec"]["groups"]
    }
    for group in groups:
        assert shipped.get(group["name"]) == group, f"group {group['name']} differs"


# ---------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_the_one_image() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r'^ENTRYPOINT \["sanke"\]$', text, re.M)
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    for package in ("sanke", "signaling", "scheduler", "media", "web"):
        assert re.search(rf"^COPY {package} ", text, re.M), package

"""The folders are the architecture: which component may import which (docs/architecture.md).

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a dependency
hidden there is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A component may import itself and these. The order is the layering: a component imports
# only components listed before it, so there are no cycles between them.
ALLOWED: dict[str, set[str]] = {
    "contracts": set(),
    "media": {"contracts"},
    "signaling": {"contracts"},
    "scheduler": {"contracts", "signaling"},
    "lessons": {"contracts", "signaling", "scheduler"},
    # The processes: they wire the components together.
    "sanke": {"contracts", "media", "signaling", "scheduler", "lessons"},
}
# Modules of an allowed component that a component still must not import.
FORBIDDEN_MODULES: dict[str, set[str]] = {
    # The SFU speaks in media events; only signaling knows the WebSocket protocol.
    "media": {"contracts.protocol"},
}
# The scheduler's domain: districts, bell schedules and term calendars, and the timetable.
SCHEDULER_DOMAIN = {
    "scheduler.domain",
    "scheduler.district_checks",
    "scheduler.pairings",
    "scheduler.timetable",
    "scheduler.clock",
    # Parsing a district with the cycle collector paused (parse_district uses it): no imports.
    "scheduler.gc_pause",
}
# (importer, imported component) → the only modules of it the importer may use.
ONLY_MODULES: dict[tuple[str, str], set[str]] = {
    # The scheduler uses signaling's HTTP plumbing (authorization, OpenAPI, bodies, the
    # audit log, rate limits), never its rooms or connections: a scheduler service runs
    # without them.
    ("scheduler", "signaling"): {
        "signaling.http_auth",
        "signaling.openapi",
        "signaling.bodies",
        "signaling.audit",
        "signaling.ratelimit",
    },
    # The Store core knows no component's models or messages.
    ("contracts.store", "contracts"): {"contracts.store"},
    # Lessons read the timetable's domain and its repository, never the solver or the API:
    # a lesson process runs no solve.
    ("lessons", "scheduler"): {
        "scheduler.domain",
        "scheduler.timetable",
        "scheduler.clock",
        "scheduler.repository",
    },
    # The processes mount the scheduler's API and CLI, load the demo and solve it once.
    ("sanke", "scheduler"): {
        "scheduler.api",
        "scheduler.cli",
        "scheduler.demo",
        "scheduler.solver.solve",
    },
    # Inside the scheduler the solver and the file formats build on the domain alone and not
    # on each other, so either can change (or move to a process of its own) without the other.
    ("scheduler.solver", "scheduler"): SCHEDULER_DOMAIN | {"scheduler.solver"},
    ("scheduler.io", "scheduler"): SCHEDULER_DOMAIN | {"scheduler.io"},
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # ``from contracts import protocol`` names the module too
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _within(module: str, prefixes: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(component: str) -> list[str]:
    out = []
    for path in sorted((ROOT / component).rglob("*.py")):
        importer = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for line, module in imports_of(path):
            top = module.split(".")[0]
            if top not in ALLOWED:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if top != component and top not in ALLOWED[component]:
                out.append(where)
            elif _within(module, FORBIDDEN_MODULES.get(component, set())):
                out.append(where + " (a module it must not use)")
            for (who, what), only in ONLY_MODULES.items():
                if _within(importer, {who}) and top == what and not _within(module, only):
                    out.append(where + f" ({who} may use only {sorted(only)} of {what})")
    return out


@pytest.mark.parametrize("component", sorted(ALLOWED))
def test_a_component_imports_only_what_its_layer_allows(component: str) -> None:
    assert (ROOT / component / "__init__.py").exists(), f"{component} is not a package"
    assert violations(component) == []


def test_the_layers_have_no_cycles() -> None:
    order = list(ALLOWED)
    for component, allowed in ALLOWED.items():
        assert all(order.index(a) < order.index(component) for a in allowed), component


def test_every_python_package_is_a_component_the_rules_know() -> None:
    """A new top-level package gets its rules here (and its place in docs/architecture.md),
    instead of escaping them."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "benchmarks", "scripts"} == set(ALLOWED)


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from signaling.service import RoomService\n"
        "def f() -> None:\n"
        "    from contracts import protocol\n"
    )
    assert [m for _, m in imports_of(sample)] == [
        "__future__",
        "__future__.annotations",
        "typing",
        "typing.TYPE_CHECKING",
        "signaling.service",
        "signaling.service.RoomService",
        "contracts",
        "contracts.protocol",
    ]


def test_the_documented_layers_are_the_tested_ones() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for component, allowed in ALLOWED.items():
        line = next((ln for ln in doc.splitlines() if ln.startswith(f"| `{component}/`")), None)
        assert line is not None, f"docs/architecture.md has no row for {component}/"
        documented = {part.strip(" `/") for part in line.split("|")[3].split(",") if part.strip()}
        assert documented - {"—"} == allowed, (component, documented)

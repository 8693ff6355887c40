"""Schemathesis against /openapi.json: every route, valid and invalid input, a token of every
role (and none, and a forged one), on a throwaway app it may wipe (issue 15, the campaign).

What must hold for every request: no 5xx, and every 4xx is a JSON error with a code. The run
is bounded (``SANKE_FUZZ_EXAMPLES`` per operation, 25 by default, half valid and half invalid
input; a fixed seed unless ``SANKE_FUZZ_SEED`` says otherwise) to stay well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from support.harness import Harness
from support.threaded_app import ThreadedApp

from contracts.rooms import Role
from lessons.models import LessonSession, RemoteClass
from sanke.app import create_app
from sanke.settings import Settings
from scheduler.api import RUNNER_KEY
from scheduler.demo import demo_district
from scheduler.solver.solve import SolveOptions, solve
from signaling.openapi import build_openapi

EXAMPLES = int(os.environ.get("SANKE_FUZZ_EXAMPLES", "25"))
# Generating whole districts is slow (~1.5 s each): fewer of them.
FEWER = {"PUT /api/v1/schedule/district": 4}
SEED = int(os.environ.get("SANKE_FUZZ_SEED", "15"))
MIN = 60.0


@schemathesis.serializer("application/sdp", "application/trickle-ice-sdpfrag")
def _sdp_text(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """The WHIP bodies (an SDP offer, a trickle-ICE fragment) go on the wire as text."""
    return value if isinstance(value, bytes) else str(value).encode()


def _schema() -> Any:
    """The document the running app serves (built the same way, before it runs)."""
    app = create_app(Settings(token_secret="x" * 40, dev=True, media=False))
    return schemathesis.openapi.from_dict(build_openapi(app))


SCHEMA = _schema()
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}


@dataclass
class World:
    base: str
    tokens: list[str | None]
    known: dict[str, list[str]]  # path parameter → ids that exist
    http: requests.Session


def _seed(app: ThreadedApp) -> tuple[list[str | None], dict[str, list[str]]]:
    """A district, a published timetable, lessons, a room and a device; a token per role."""
    h: Harness = app.harness

    async def build() -> tuple[list[str | None], dict[str, list[str]]]:
        coordinator = h.tokens.mint(subject="fuzz-c", role=Role.coordinator)
        auth = {"Authorization": f"Bearer {coordinator}"}
        demo = demo_district()
        monday = date.today() - timedelta(days=date.today().weekday())
        term = demo.term.model_copy(update={"first_day": monday, "holidays": [], "makeup_days": []})
        district = demo.model_copy(update={"term": term})
        await h.session.put(
            h.url("/api/v1/schedule/district"), data=district.model_dump_json(), headers=auth
        )
        timetable = await asyncio.to_thread(solve, district, SolveOptions(workers=0, time_limit=10))
        version = await h.app[RUNNER_KEY].repo.add(timetable)
        await h.session.post(
            h.url(f"/api/v1/schedule/timetables/{version}/publish"), json={}, headers=auth
        )
        await h.room("room-1")
        soon = time.time() + 3600
        session = LessonSession(
            id="fuzz.lesson", room_id="fuzz.lesson", offering_id="off-1", district_id="d",
            teacher="张老师", master_school="xian-shiyan", master_classroom="3-1", subject="英语",
            grade=3, date=time.strftime("%Y-%m-%d"), starts_at=soon, ends_at=soon + 40 * MIN,
            opens_at=soon - 10 * MIN, closes_at=soon + 50 * MIN,
            remotes=[RemoteClass(class_id="jd-1-g3", school="jd-1")],
        )  # fmt: skip
        await h.sessions.put(session)
        reply = await h.session.post(
            h.url("/api/v1/devices"),
            json={"class_id": demo.demands[0].class_id, "school": demo.demands[0].school},
            headers=auth,
        )
        device = await reply.json()
        job = await (
            await h.session.post(h.url("/api/v1/schedule/jobs"), json={}, headers=auth)
        ).json()
        tokens: list[str | None] = [
            coordinator,
            h.tokens.mint(subject="fuzz-a", role=Role.admin),
            h.tokens.mint(subject="fuzz-t", role=Role.teacher, room="room-1"),
            h.tokens.mint(
                subject="fuzz-k", role=Role.classroom, room="room-1", classroom_id="jd-1-g3"
            ),
            h.tokens.mint(subject="fuzz-v", role=Role.viewer, room="room-1"),
            h.tokens.mint(subject="fuzz-o", role=Role.observer, room="room-1"),
            device["credential"],
            None,
            "not.a.token",
        ]
        known = {
            "room_id": ["room-1", "fuzz.lesson"],
            "session_id": ["fuzz.lesson"],
            "device_id": [device["device"]["id"]],
            "job": [job["id"]],
            "version": [str(version), "published"],
            "kind": ["bells", "offerings", "demands", "classroom", "teacher", "school"],
            "key": [demo.demands[0].class_id, demo.offerings[0].teacher, "xian-shiyan"],
        }
        return tokens, known

    return app.run(build(), timeout=120)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    app = ThreadedApp(solver_workers=0)
    with app as h:
        tokens, known = _seed(app)
        http = requests.Session()
        yield World(h.url("/").rstrip("/"), tokens, known, http)
        http.close()


def _strategy(op: Any, world: World) -> st.SearchStrategy[Any]:
    names = [p.name for p in op.path_parameters]
    fixed = {n: st.sampled_from(world.known[n]) for n in names if n in world.known}
    cases = [op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)]
    if fixed:
        # Real ids too: most random ids only reach the 404.
        cases += [
            st.fixed_dictionaries(fixed).flatmap(
                lambda params, mode=mode: op.as_strategy(mode, path_parameters=params)
            )
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    return st.one_of(*cases)


def _check(response: requests.Response, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(
                f"{where}: {response.status_code} not JSON: {response.text[:300]}"
            ) from None
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict) and isinstance(error.get("code"), str) and error["code"], (
            f"{where}: {response.status_code} without an error code: {response.text[:300]}"
        )


def _order(label: str) -> tuple[int, str]:
    """Reads first, then changes, removals last (a revoked device fails every device route)."""
    method = label.split()[0]
    return ({"GET": 0, "POST": 1, "PUT": 1, "DELETE": 2}.get(method, 1), label)


@pytest.mark.parametrize("label", sorted(OPERATIONS, key=_order))
def test_no_5xx_and_every_4xx_is_a_json_error(world: World, label: str) -> None:
    op = OPERATIONS[label]

    @seed(SEED)
    @settings(
        max_examples=min(EXAMPLES, FEWER.get(label, EXAMPLES)),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(op, world), token=st.sampled_from(world.tokens))
    def run(case: Any, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = case.call(base_url=world.base, session=world.http, headers=headers, timeout=30)
        _check(response, f"{label} {case.as_curl_command(headers=headers)}")

    run()


def test_the_document_is_the_one_served(world: World) -> None:
    served = world.http.get(f"{world.base}/openapi.json", timeout=10).json()
    assert sorted(served["paths"]) == sorted(json.loads(json.dumps(SCHEMA.raw_schema))["paths"])

"""Pairings in and out: the district JSON, the pairings sheet (CSV) and the HTTP API, where bad
input gets a 4xx JSON error that names the field and changes nothing."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from support.counties import A, B, C, serves, three_counties
from support.scheduler_client import scheduler_client

from scheduler.district_checks import parse_district
from scheduler.domain import Pairing
from scheduler.io import csvio
from scheduler.io.district_edits import ImportCsv, Rejected, apply

BASE = "/api/v1/schedule"
RING = [
    Pairing(serving=serves(A), served=serves(B)),
    Pairing(serving=serves(B), served=serves(C), subjects=["英语", "音乐"]),
    Pairing(serving=serves(school="m-a"), served=serves(school="r-c2"), subjects=["英语"]),
    Pairing(serving=serves("41/4101"), served=serves(C)),
]
SHEET = (
    "serving_region,serving_school,served_region,served_school,subjects\n"
    f"{A},,{B},,\n"
    f"{B},,{C},,英语;音乐\n"
    ",m-a,,r-c2,英语\n"
    f"41/4101,,{C},,\n"
)


def test_the_district_json_keeps_pairings_byte_for_byte() -> None:
    district = three_counties(*RING)
    text = district.model_dump_json()
    again = parse_district(text)
    assert again.pairings == RING
    assert again.model_dump_json() == text
    # A document of a release before pairings (no such key) is a district without them.
    old = json.loads(text)
    del old["pairings"]
    assert parse_district(json.dumps(old)).pairings == []


def test_the_pairings_sheet_round_trips_byte_for_byte() -> None:
    assert csvio.export_pairings(RING) == SHEET
    assert csvio.import_pairings(SHEET) == RING
    assert csvio.export_pairings(csvio.import_pairings(SHEET)) == SHEET
    assert csvio.import_pairings("\ufeff" + SHEET) == RING  # Excel's byte-order mark


def locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return ["/".join(str(p) for p in e["loc"]) for e in exc.value.errors()]


def test_sheet_errors_point_at_line_and_column() -> None:
    header = SHEET.splitlines()[0]
    bad = "\n".join(
        [
            header,
            f"{A},m-a,{B},,",  # line 2: two serving cells
            f"{A},,,,",  # line 3: nobody served
            f"{A},,{B},,英语;英语",  # line 4: a subject twice
            f"{A},,{A},,",  # line 5: one side twice
        ]
    )
    with pytest.raises(ValidationError) as exc:
        csvio.import_pairings(bad)
    assert locs(exc) == ["pairings/2/serving", "pairings/3/served", "pairings/4/", "pairings/5/"]
    with pytest.raises(ValidationError) as exc:
        csvio.import_pairings("serving_region,served_region\nx,y\n")
    assert locs(exc) == ["pairings/1/serving_school"]
    # References are checked against the district at the sheet's lines too.
    stored = three_counties().model_dump_json()
    sheet = f"{header}\n{A},,,nowhere,\n41/9,,{B},,\n{A},,,nowhere,\n"
    result = apply(stored, ImportCsv("pairings", sheet.encode()))
    assert isinstance(result, Rejected) and result.status == 422
    assert [(d["loc"], d["msg"]) for d in result.details] == [
        ("pairings/2/served_school", "unknown school 'nowhere'"),
        (
            "pairings/3/serving_region",
            "unknown region '41/9': no school's province, city or county key (e.g. 41/4117/411721)",
        ),
        ("pairings/4/served_school", "unknown school 'nowhere'"),
        ("pairings/4/", "repeats an earlier pairing (same sides and subjects)"),
    ]


async def test_pairings_over_http() -> None:
    client, auth = await scheduler_client()
    try:
        assert (await client.post(f"{BASE}/pairings", json={})).status == 401
        put = await client.put(
            f"{BASE}/district", data=three_counties().model_dump_json(), headers=auth
        )
        assert put.status == 200

        async def stored() -> str:
            return await (await client.get(f"{BASE}/district", headers=auth)).text()

        a_to_b = {"serving": {"region": A}, "served": {"region": B}}
        added = await client.post(f"{BASE}/pairings", json=a_to_b, headers=auth)
        assert added.status == 200
        assert (await added.json())["pairings"] == [
            {
                "serving": {"school": None, "region": A},
                "served": {"school": None, "region": B},
                "subjects": None,
            }
        ]
        again = await client.post(f"{BASE}/pairings", json=a_to_b, headers=auth)
        assert len((await again.json())["pairings"]) == 1  # adding it twice keeps one
        before = await stored()

        # Unknown school or region: 422 naming the field, nothing stored.
        for body, loc, words in [
            ({"serving": {"region": A}, "served": {"school": "nowhere"}},
             "pairings/1/served/school", "unknown school 'nowhere'"),
            ({"serving": {"region": "41/9"}, "served": {"region": B}},
             "pairings/1/serving/region", "unknown region '41/9'"),
        ]:  # fmt: skip
            bad = await client.post(f"{BASE}/pairings", json=body, headers=auth)
            assert bad.status == 422
            error = (await bad.json())["error"]
            assert error["code"] == "invalid_request"
            assert [d["loc"] for d in error["details"]] == [loc]
            assert words in error["details"][0]["msg"]
            assert await stored() == before
        # A body that is no pairing at all: 422 from the model, nothing stored.
        for body in (
            {"serving": {"region": A, "school": "m-a"}, "served": {"region": B}},
            {"serving": {"region": A}},
            {"serving": {"region": A}, "served": {"region": B}, "subjects": []},
            {"serving": {"region": A}, "served": {"region": B}, "grades": [3]},
        ):
            bad = await client.post(f"{BASE}/pairings", json=body, headers=auth)
            assert bad.status == 422, body
            assert (await bad.json())["error"]["details"]
            assert await stored() == before
        assert (await client.post(f"{BASE}/pairings", data=b"{", headers=auth)).status in (400, 422)

        # The sheet: replace, read back byte for byte; a bad sheet changes nothing.
        sheet = await client.put(f"{BASE}/district/csv/pairings", data=SHEET.encode(), headers=auth)
        assert sheet.status == 200 and (await sheet.json())["rows"] == len(RING)
        got = await client.get(f"{BASE}/district/csv/pairings", headers=auth)
        assert got.status == 200 and await got.text() == SHEET
        before = await stored()
        broken = SHEET + ",m-a,,nowhere,\n"
        bad = await client.put(f"{BASE}/district/csv/pairings", data=broken.encode(), headers=auth)
        assert bad.status == 422
        details = (await bad.json())["error"]["details"]
        assert [d["loc"] for d in details] == ["pairings/6/served_school"]
        assert await stored() == before

        # Remove one; removing one that is not there changes nothing.
        gone = await client.delete(
            f"{BASE}/pairings",
            json={"serving": {"region": "41/4101"}, "served": {"region": C}},
            headers=auth,
        )
        assert gone.status == 200 and len((await gone.json())["pairings"]) == len(RING) - 1
        again = await client.delete(
            f"{BASE}/pairings", json=a_to_b | {"subjects": ["美术"]}, headers=auth
        )
        assert again.status == 200 and len((await again.json())["pairings"]) == len(RING) - 1
        assert parse_district(await stored()).pairings == RING[:-1]
    finally:
        await client.close()

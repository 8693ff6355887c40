"""国密 access tokens (HMAC-SM3, JWT alg HS-SM3) and SM3-hashed device credentials: each mode
accepts its own tokens only; devices authenticate in gm mode and across a switch."""

from __future__ import annotations

import json

import jwt
import pytest
from support.harness import SECRET as SECRET_OF_HARNESS
from support.harness import running_app

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from contracts.store import Store
from lessons.devices import DEVICES, DeviceRegistration, DeviceRegistry
from signaling.gm import hmac_sm3, sm3_hex
from signaling.tokens import GM_ALGORITHM, TokenService

SECRET = "k" * 40


def test_gm_tokens_are_hmac_sm3_and_verify_in_gm_mode() -> None:
    gm = TokenService(SECRET, crypto="gm")
    token = gm.mint(subject="kiosk-7", role=Role.classroom, room="room-1")
    assert jwt.get_unverified_header(token)["alg"] == GM_ALGORITHM == "HS-SM3"
    signing_input, _, signature = token.rpartition(".")
    expected = jwt.utils.base64url_encode(hmac_sm3(SECRET.encode(), signing_input.encode()))
    assert signature == expected.decode()  # really HMAC-SM3 over the JWS signing input
    claims = gm.verify(token)
    assert claims.sub == "kiosk-7" and claims.room == "room-1"


def test_each_mode_refuses_the_other_modes_tokens() -> None:
    gm, default = TokenService(SECRET, crypto="gm"), TokenService(SECRET)
    for minter, verifier in ((gm, default), (default, gm)):
        token = minter.mint(subject="s", role=Role.teacher, room="room-1")
        with pytest.raises(SankeError) as info:
            verifier.verify(token)
        assert info.value.code is ErrorCode.token_invalid


def test_a_gm_token_with_another_secret_or_edited_claims_is_refused() -> None:
    gm = TokenService(SECRET, crypto="gm")
    foreign = TokenService("o" * 40, crypto="gm").mint(subject="s", role=Role.admin)
    header, payload, signature = gm.mint(subject="s", role=Role.viewer).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["role"] = "admin"
    edited = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    for token in (foreign, f"{header}.{edited}.{signature}"):
        with pytest.raises(SankeError) as info:
            gm.verify(token)
        assert info.value.code is ErrorCode.token_invalid


async def test_device_credentials_are_sm3_hashed_in_gm_mode(store: Store) -> None:
    gm = DeviceRegistry(store, "gm")
    registered = await gm.register(DeviceRegistration(class_id="jd-1-g3", school="jd-1"))
    stored = json.loads(await store.hget(DEVICES, registered.device.id) or "{}")
    secret = registered.credential.split(".")[2]
    assert stored["secret_sm3"] == sm3_hex(secret.encode()) and "secret_sha256" not in stored
    assert "secret" not in json.dumps(registered.device.model_dump())
    device = await gm.authenticate(registered.credential)
    assert device.id == registered.device.id
    with pytest.raises(SankeError):
        await gm.authenticate(registered.credential[:-1] + ("A" if secret[-1] != "A" else "B"))
    await gm.revoke(device.id)
    with pytest.raises(SankeError) as info:
        await gm.authenticate(registered.credential)
    assert info.value.code is ErrorCode.forbidden


async def test_devices_keep_their_hash_across_a_switch_of_mode(store: Store) -> None:
    before = await DeviceRegistry(store).register(DeviceRegistration(class_id="c", school="s"))
    stored = json.loads(await store.hget(DEVICES, before.device.id) or "{}")
    assert "secret_sha256" in stored and "secret_sm3" not in stored  # default mode as before
    after = await DeviceRegistry(store, "gm").register(DeviceRegistration(class_id="c", school="s"))
    for registry in (DeviceRegistry(store), DeviceRegistry(store, "gm")):
        for registered in (before, after):
            assert (await registry.authenticate(registered.credential)).id == registered.device.id


async def test_a_gm_server_accepts_gm_tokens_only_and_signs_records_with_sm2(
    store: Store,
) -> None:
    from lessons.records import GM_ALG
    from sanke.app import LESSON_SERVICE_KEY

    async with running_app(store, crypto="gm") as h:
        gm_token = TokenService(SECRET_OF_HARNESS, crypto="gm").mint(
            subject="c", role=Role.coordinator
        )
        default_token = h.tokens.mint(subject="c", role=Role.coordinator)
        url = h.url("/api/v1/devices")
        ok = await h.session.get(url, headers={"Authorization": f"Bearer {gm_token}"})
        assert ok.status == 200
        refused = await h.session.get(url, headers={"Authorization": f"Bearer {default_token}"})
        assert refused.status == 401
        lessons = h.server.app[LESSON_SERVICE_KEY]
        assert lessons.records.keys.alg == GM_ALG

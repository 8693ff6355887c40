"""The classroom devices repository on both stores (memory and a real Redis): register, get,
list, revoke, and authenticating with the credential shown once. (The gm-mode hashes and a
switch of mode are in tests/signaling/test_tokens_gm.py.)"""

from __future__ import annotations

import json

import pytest

from contracts.errors import ErrorCode, SankeError
from contracts.store import Store
from lessons.devices import DEVICES, DeviceRegistration, DeviceRegistry


def registration(class_id: str, school: str, name: str = "") -> DeviceRegistration:
    return DeviceRegistration(class_id=class_id, school=school, name=name)


async def refused(registry: DeviceRegistry, credential: str | None) -> SankeError:
    with pytest.raises(SankeError) as info:
        await registry.authenticate(credential)
    return info.value


async def test_register_then_get_and_authenticate(store: Store) -> None:
    registry = DeviceRegistry(store)
    registered = await registry.register(registration("jd-1-g3", "jd-1", "三年级一班"))
    prefix, device_id, secret = registered.credential.split(".")
    assert (prefix, device_id) == ("dev", registered.device.id)
    assert "secret" not in json.dumps(registered.device.model_dump())

    device = await registry.get(device_id)
    assert device is not None
    assert (device.class_id, device.school, device.name) == ("jd-1-g3", "jd-1", "三年级一班")
    assert device.revoked_at is None
    # The store keeps a hash of the credential, never the credential.
    assert secret not in (await store.hget(DEVICES, device_id) or "")

    assert (await registry.authenticate(registered.credential)).id == device_id
    # Another process on the same store knows the device too.
    assert (await DeviceRegistry(store).authenticate(registered.credential)).id == device_id


async def test_get_of_an_unknown_device_is_none(store: Store) -> None:
    assert await DeviceRegistry(store).get("nope") is None


async def test_list_is_every_device_by_school_then_class(store: Store) -> None:
    registry = DeviceRegistry(store)
    assert await registry.list() == []
    for class_id, school in (("c-2", "s-b"), ("c-1", "s-b"), ("c-9", "s-a")):
        await registry.register(registration(class_id, school))
    assert [(d.school, d.class_id) for d in await registry.list()] == [
        ("s-a", "c-9"),
        ("s-b", "c-1"),
        ("s-b", "c-2"),
    ]


async def test_a_revoked_device_no_longer_authenticates(store: Store) -> None:
    registry = DeviceRegistry(store)
    kept = await registry.register(registration("c-1", "s"))
    lost = await registry.register(registration("c-2", "s"))

    revoked = await registry.revoke(lost.device.id)
    assert revoked.revoked_at is not None
    assert (await refused(registry, lost.credential)).code is ErrorCode.forbidden
    assert (await refused(DeviceRegistry(store), lost.credential)).status == 403
    assert (await registry.authenticate(kept.credential)).id == kept.device.id

    # Revoking again changes nothing: the first revocation's time stays.
    assert (await registry.revoke(lost.device.id)).revoked_at == revoked.revoked_at
    stored = await registry.get(lost.device.id)
    assert stored is not None and stored.revoked_at == revoked.revoked_at
    assert [d.revoked_at is None for d in await registry.list()] == [True, False]


async def test_revoking_an_unknown_device_is_not_found(store: Store) -> None:
    with pytest.raises(SankeError) as info:
        await DeviceRegistry(store).revoke("nope")
    assert (info.value.code, info.value.status) == (ErrorCode.not_found, 404)


async def test_wrong_or_malformed_credentials_are_refused(store: Store) -> None:
    registry = DeviceRegistry(store)
    registered = await registry.register(registration("c-1", "s"))
    _, device_id, secret = registered.credential.split(".")
    assert (await refused(registry, None)).code is ErrorCode.token_missing
    assert (await refused(registry, "")).code is ErrorCode.token_missing
    wrong_secret = f"dev.{device_id}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    for credential in (
        wrong_secret,
        f"dev.unknown.{secret}",
        f"tok.{device_id}.{secret}",
        f"dev.{device_id}",
        "not a credential",
    ):
        error = await refused(registry, credential)
        assert (error.code, error.status) == (ErrorCode.token_invalid, 401), credential

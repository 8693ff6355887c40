"""Classroom devices: registered once, then they find and join their lessons by themselves.

The credential (``dev.<id>.<secret>``) is shown once at registration; the store keeps only
its SHA-256 (SM3 with ``SANKE_CRYPTO=gm``), so a leaked store does not leak credentials.
Revoking is immediate. A device keeps the hash it was registered with: one registered before
a switch of mode still authenticates; registering it again moves it to the new hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from contracts.store import Store
from signaling.gm import sm3_hex
from signaling.names import clean_name, name_problem

DEVICES = "h:devices"


class DeviceRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_id: str = Field(min_length=1, max_length=128, description="a class of the district")
    school: str = Field(min_length=1, max_length=128, description="the class's school")
    name: str = Field(default="", max_length=100, description="shown to the room")

    @field_validator("name")
    @classmethod
    def _displayable(cls, name: str) -> str:
        # A device joins as a classroom: no controls, no teacher label.
        problem = name_problem(name, Role.classroom)
        if problem is not None:
            raise ValueError(problem)
        return clean_name(name, limit=100)


class Device(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    class_id: str
    school: str
    name: str = ""
    # Exactly one of them: the credential's SHA-256 (default mode) or SM3 (gm mode).
    secret_sha256: str | None = Field(default=None, exclude_if=lambda v: v is None)
    secret_sm3: str | None = Field(default=None, exclude_if=lambda v: v is None)
    created_at: float
    revoked_at: float | None = None

    @model_validator(mode="after")
    def _one_hash(self) -> Device:
        if (self.secret_sha256 is None) == (self.secret_sm3 is None):
            raise ValueError("a device has exactly one of secret_sha256, secret_sm3")
        return self

    def matches(self, secret: str) -> bool:
        if self.secret_sm3 is not None:
            return hmac.compare_digest(self.secret_sm3, sm3_hex(secret.encode()))
        assert self.secret_sha256 is not None
        return hmac.compare_digest(self.secret_sha256, _hash(secret))


class DeviceView(BaseModel):
    id: str
    class_id: str
    school: str
    name: str
    created_at: float
    revoked_at: float | None


class RegisteredDevice(BaseModel):
    device: DeviceView
    credential: str = Field(description="shown once; the device sends it as a Bearer token")


def view(device: Device) -> DeviceView:
    return DeviceView(**device.model_dump(exclude={"secret_sha256", "secret_sm3"}))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class DeviceRegistry:
    def __init__(self, store: Store, crypto: Literal["default", "gm"] = "default") -> None:
        self.store = store
        self.crypto = crypto

    async def register(self, body: DeviceRegistration) -> RegisteredDevice:
        device_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        device = Device(
            id=device_id,
            class_id=body.class_id,
            school=body.school,
            name=body.name,
            secret_sha256=_hash(secret) if self.crypto != "gm" else None,
            secret_sm3=sm3_hex(secret.encode()) if self.crypto == "gm" else None,
            created_at=time.time(),
        )
        await self.store.hset(DEVICES, device_id, device.model_dump_json())
        return RegisteredDevice(device=view(device), credential=f"dev.{device_id}.{secret}")

    async def get(self, device_id: str) -> Device | None:
        raw = await self.store.hget(DEVICES, device_id)
        return Device.model_validate_json(raw) if raw else None

    async def list(self) -> list[Device]:
        devices = [
            Device.model_validate_json(raw) for raw in (await self.store.hgetall(DEVICES)).values()
        ]
        return sorted(devices, key=lambda d: (d.school, d.class_id, d.id))

    async def revoke(self, device_id: str) -> Device:
        device = await self.get(device_id)
        if device is None:
            raise SankeError(ErrorCode.not_found, f"no device {device_id}", 404)
        if device.revoked_at is None:
            device.revoked_at = time.time()
            await self.store.hset(DEVICES, device_id, device.model_dump_json())
        return device

    async def authenticate(self, credential: str | None) -> Device:
        if not credential:
            raise SankeError(ErrorCode.token_missing, "a device credential is required", 401)
        parts = credential.split(".")
        if len(parts) != 3 or parts[0] != "dev":
            raise SankeError(ErrorCode.token_invalid, "not a device credential", 401)
        device = await self.get(parts[1])
        if device is None or not device.matches(parts[2]):
            raise SankeError(ErrorCode.token_invalid, "unknown device or wrong credential", 401)
        if device.revoked_at is not None:
            raise SankeError(ErrorCode.forbidden, "this device has been revoked", 403)
        return device

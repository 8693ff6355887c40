"""Settings: one pydantic model, read from ``SANKE_*`` environment variables and CLI flags."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contracts.rooms import RoomKind
from lessons.recording_store import S3Settings
from media.ice_policy import DEFAULT_DENY as DEFAULT_ICE_DENY
from media.ice_policy import IcePolicy, parse_networks

# Lists come from the environment comma-separated (SANKE_HOST=0.0.0.0,::).
CommaList = Annotated[list[str], NoDecode]


def parse_kind_days(items: list[str]) -> dict[RoomKind, float]:
    """``["broadcast:365", "dedicated:7"]`` as days per room kind; ValueError naming a bad one."""
    found: dict[RoomKind, float] = {}
    for item in items:
        kind, sep, days = item.partition(":")
        try:
            room_kind = RoomKind(kind.strip())
            value = float(days)
        except ValueError:
            raise ValueError(
                f"{item!r} is not kind:days (kinds {[k.value for k in RoomKind]})"
            ) from None
        if not sep or not 0 < value <= 36500:
            raise ValueError(f"{item!r}: days must be 0 < days <= 36500")
        found[room_kind] = value
    return found


# Known to everyone: the server refuses it unless in demo/dev mode.
DEFAULT_TOKEN_SECRET = "sanke-insecure-dev-secret-change-me-0000"


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def default_data_dir() -> Path:
    """Where one machine's server keeps its files: ``$XDG_DATA_HOME/sanke``
    (~/.local/share/sanke)."""
    base = os.environ.get("XDG_DATA_HOME", "") or str(Path.home() / ".local" / "share")
    return Path(base) / "sanke"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANKE_", extra="ignore")

    host: CommaList = Field(
        default=["0.0.0.0", "::"],
        description="addresses to bind (IPv4 and IPv6); comma-separated in the environment",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP/WebSocket port")
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SANKE_REDIS_URL", "REDIS_URL", "redis_url"),
        description="Redis URL; set → distributed mode (state in Redis)",
    )
    key_prefix: str = Field(default="sanke:", description="namespace of every Redis key")
    token_secret: str = Field(
        default=DEFAULT_TOKEN_SECRET, min_length=32, description="HS256 secret for access tokens"
    )
    token_ttl_seconds: int = Field(
        default=3600, ge=60, le=86400 * 366, description="default lifetime of a minted token"
    )
    token_leeway_seconds: float = Field(
        default=5,
        ge=0,
        le=60,
        description="clock difference tolerated between hosts: a token counts this long past exp",
    )
    demo: bool = Field(default=False, description="load the demo district; allows the dev secret")
    dev: bool = Field(default=False, description="development mode; allows the dev secret")
    node_id: str = Field(default_factory=_default_node_id, description="this process's id")
    ws_max_message_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1 << 20, description="largest WebSocket message accepted"
    )
    ws_rate_per_second: float = Field(
        default=20.0, gt=0, description="sustained client messages per second per connection"
    )
    ws_rate_burst: int = Field(default=60, ge=1, description="burst of client messages allowed")
    ws_rate_violations_before_close: int = Field(
        default=20, ge=1, description="rate-limited messages tolerated before closing (code 4008)"
    )
    heartbeat_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a participant silent (no message, no pong) this long is removed",
    )
    join_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a connection must send join within this time"
    )
    rate_token_mints_per_minute: int = Field(
        default=120,
        ge=1,
        le=100_000,
        description="token-minting requests per caller and minute (tokens, session tokens, "
        "device join tokens); more get 429",
    )
    rate_device_registrations_per_minute: int = Field(
        default=60, ge=1, le=100_000, description="device registrations per caller and minute"
    )
    room_max_participants: int = Field(
        default=64, ge=1, le=10_000, description="default capacity of a new room"
    )
    ice_servers: CommaList = Field(
        default_factory=list,
        description="STUN/TURN URLs handed to clients (comma-separated), e.g. turn:turn.example:3478",
    )
    ice_remote_allow: CommaList = Field(
        default_factory=list,
        description="CIDRs (comma-separated) of client candidates the SFU checks before the "
        "client checked it; empty: only addresses that sent an authenticated check "
        "(docs/security.md, ICE)",
    )
    ice_remote_deny: CommaList = Field(
        default_factory=lambda: list(DEFAULT_ICE_DENY),
        description="CIDRs the SFU never sends STUN to nor answers (default: unspecified, "
        "link-local incl. 169.254.169.254, multicast, reserved, broadcast)",
    )
    ice_prflx_wait_seconds: float = Field(
        default=20.0,
        gt=0,
        le=300,
        description="how long the SFU waits for a client's first ICE check when it holds "
        "back the client's signalled candidates",
    )
    records_key: str | None = Field(
        default=None,
        min_length=32,
        description="HMAC key signing teaching records; its own secret, never derived from "
        "the token secret (unset: the key file)",
    )
    records_key_file: str | None = Field(
        default=None,
        description="file holding the records key, generated (mode 0600) when missing; "
        "default ~/.local/share/sanke/records.key for `sanke serve`",
    )
    records_previous_keys: CommaList = Field(
        default_factory=list,
        description="earlier records keys (comma-separated), only to verify what they signed "
        "before a rotation",
    )
    crypto: Literal["default", "gm"] = Field(
        default="default",
        description="gm: 国密 — teaching records SM3 + SM2, tokens HMAC-SM3 (JWT alg HS-SM3), "
        "device credentials SM3; default: SHA-256, HMAC-SHA256, HS256",
    )
    records_sm2_key: str | None = Field(
        default=None,
        min_length=64,
        description="SM2 private key (hex) signing teaching records in gm mode "
        "(unset: the SM2 key file)",
    )
    records_sm2_key_file: str | None = Field(
        default=None,
        description="file holding the SM2 records private key (`sanke records keygen --gm`); "
        "default ~/.local/share/sanke/records-sm2.key for `sanke serve`",
    )
    records_sm2_public_keys: CommaList = Field(
        default_factory=list,
        description="SM2 public keys (hex, comma-separated) that verify records: earlier keys "
        "after a rotation, or an auditor's (the first is the current one)",
    )
    lesson_open_before_minutes: float = Field(
        default=10, ge=0, le=120, description="a lesson room opens this long before the start"
    )
    lesson_close_after_minutes: float = Field(
        default=10, ge=0, le=120, description="grace after the end before the room closes"
    )
    lesson_missed_after_minutes: float = Field(
        default=10, ge=1, le=60, description="no teacher this long after the start → missed"
    )
    lesson_tick_seconds: float = Field(
        default=5.0, gt=0, le=60, description="how often lesson states advance"
    )
    sfu_capacity: int = Field(
        default=50, ge=1, le=10_000, description="lesson rooms one SFU node hosts at once"
    )
    sfu_region: str = Field(
        default="",
        description="region an SFU node serves (province/city/county codes, e.g. 41/4117/411721); "
        "the scheduler's SFU capacity per region is the sum of its nodes' capacities",
    )
    sfu_address: str = Field(
        default="", description="the SFU node's public address (informational, for operators)"
    )
    rtmp_port: int = Field(
        default=1935,
        ge=0,
        le=65535,
        description="RTMP port a process with an SFU listens on for pushes (OBS, 录播 hosts; "
        "binds the addresses of SANKE_HOST); 0: no RTMP",
    )
    rtmp_public_url: str = Field(
        default="",
        pattern=r"^(rtmp://\S+)?$",
        description="the RTMP server URL encoders are given, e.g. rtmp://sanke.example.com:1935"
        "/live (default: rtmp://localhost:<rtmp_port>/live)",
    )
    rtmp_max_bitrate_kbps: int = Field(
        default=20_000, ge=100, description="an RTMP publisher sending more is cut off"
    )
    rtmp_max_connections: int = Field(
        default=200, ge=1, description="RTMP connections one process takes at once"
    )
    heap_trim_seconds: float = Field(
        default=60,
        ge=0,
        description="how often a process with an SFU hands freed native memory back "
        "(glibc malloc_trim; 0: never)",
    )
    drain_grace_seconds: float = Field(
        default=2700,
        ge=0,
        description="on SIGTERM an SFU node waits this long for live lessons to end (45 min)",
    )
    turn_secret: str | None = Field(
        default=None,
        min_length=16,
        description="coturn static-auth-secret: TURN URLs get short-lived credentials",
    )
    turn_credential_ttl_seconds: int = Field(
        default=6 * 3600, ge=60, le=86400 * 7, description="lifetime of a TURN credential"
    )
    media: bool = Field(
        default=True,
        description="run the SFU worker in this process (with REDIS_URL and media off, use SFU nodes)",
    )
    recordings_dir: str | None = Field(
        default=None,
        description="where an SFU writes lesson recordings (fragmented while written, "
        "`.partial`; moved to `<room>/<time>-<teacher>-part<n>.mp4` when finished); "
        "default ~/.local/share/sanke/recordings",
    )
    record_kinds: CommaList = Field(
        default_factory=lambda: [RoomKind.master.value, RoomKind.broadcast.value],
        description="room kinds whose lessons are recorded (comma-separated: master, "
        "broadcast, dedicated; empty: none); 专递 (dedicated) is off by default",
    )
    recording_keyframe_seconds: float = Field(
        default=2.0,
        gt=0.2,
        le=60,
        description="while recording, the teacher's camera is asked for a keyframe this often "
        "(what a crash loses at most; docs/recording.md for its bitrate cost)",
    )
    recordings_retention_days: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description="finished recordings older than this many days are deleted, each "
        "deletion a teaching record (unset: kept until an operator deletes them)",
    )
    recordings_retention_days_by_kind: CommaList = Field(
        default_factory=list,
        description="retention per room kind, overriding recordings_retention_days for those "
        "kinds (comma-separated kind:days, e.g. broadcast:365,dedicated:7)",
    )
    recordings_s3_endpoint: str | None = Field(
        default=None,
        description="S3-compatible object storage for finished recordings (MinIO, Aliyun OSS, "
        "Tencent COS): host[:port] or https://… (http:// for no TLS); unset: the directory",
    )
    recordings_s3_bucket: str | None = Field(default=None, description="the recordings bucket")
    recordings_s3_access_key: str | None = Field(default=None, description="its access key id")
    recordings_s3_secret_key: str | None = Field(
        default=None, repr=False, description="its secret key (from a Secret)"
    )
    recordings_s3_region: str = Field(
        default="us-east-1", description="the bucket's region (e.g. oss-cn-hangzhou, ap-beijing)"
    )
    recordings_s3_prefix: str = Field(
        default="", max_length=200, description="object keys start with it (e.g. sanke/)"
    )
    recordings_s3_keep_local: bool = Field(
        default=False, description="keep the node's copy of a part after its verified upload"
    )
    recordings_s3_uploads: int = Field(
        default=2, ge=1, le=16, description="uploads at once per process"
    )
    recordings_s3_retry_seconds: float = Field(
        default=60.0, ge=0.1, le=86400, description="a failed upload is tried again this often"
    )
    recordings_s3_url_seconds: int = Field(
        default=4 * 3600,
        ge=60,
        le=7 * 86400,
        description="lifetime of the presigned URL the replay library redirects a player to",
    )
    recording_checkpoint_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="while recording, the SHA-256 of the file written so far goes into the "
        "teaching records this often (covers a part a crash cuts short)",
    )
    hls_dir: str | None = Field(
        default=None,
        description="where an SFU writes live HLS (docs/hls.md); default "
        "~/.local/share/sanke/hls for sanke serve; a sanke sfu node packages only when set",
    )
    hls_kinds: CommaList = Field(
        default_factory=lambda: [RoomKind.master.value, RoomKind.broadcast.value],
        description="room kinds sent as live HLS (comma-separated; empty: none)",
    )
    hls_url_key: str | None = Field(
        default=None,
        min_length=16,
        description="the PrivateKey of the signed HLS URLs (Aliyun/Tencent CDN URL auth type A; "
        "give the CDN the same); unset: derived from the token secret",
    )
    hls_url_ttl_seconds: float = Field(
        default=4 * 3600.0,
        ge=60,
        le=7 * 86400,
        description="a signed HLS URL is valid this long after its timestamp (the CDN's "
        "有效时长 must be the same)",
    )
    hls_public_base: str = Field(
        default="",
        max_length=300,
        description="where viewers fetch /hls from, e.g. https://cdn.example.cn (empty: this app)",
    )
    hls_segment_seconds: float = Field(
        default=1.0, ge=0.5, le=10, description="HLS segments are cut at a keyframe this long"
    )
    hls_keyframe_seconds: float = Field(
        default=1.0,
        gt=0.2,
        le=10,
        description="while HLS runs, each camera layer is asked for a keyframe this often "
        "(segments are cut at keyframes; docs/hls.md for its cost)",
    )
    hls_window: int = Field(default=6, ge=3, le=60, description="segments in a live playlist")
    hls_playlist_type: Literal["live", "event"] = Field(
        default="live", description="live: a sliding window; event: every segment kept"
    )
    tls_cert: str | None = Field(
        default=None,
        description="PEM certificate (with its chain): the app speaks HTTPS/WSS and sends HSTS "
        "(docs/security.md, certificates); needs tls_key",
    )
    tls_key: str | None = Field(default=None, description="PEM private key of tls_cert")
    tls_reload_seconds: float = Field(
        default=300,
        gt=0,
        le=86400,
        description="how often the certificate files are checked for a renewal (reloaded "
        "without a restart)",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="serve /metrics only on this port (its own listener; the public port "
        "answers 404); unset: on the app's port",
    )
    metrics_host: CommaList = Field(
        default_factory=list,
        description="addresses the metrics port binds (comma-separated; default: host)",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="when set, /metrics needs Authorization: Bearer <this token>",
    )
    http_body_idle_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="a request body that delivers nothing for this long gets 408 (nginx's "
        "client_body_timeout)",
    )
    solver_workers: int = Field(
        default=2, ge=0, le=64, description="spawned processes that solve MIP parts (0: in-process)"
    )
    schedule_job_lease_seconds: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="a solve job's lease: a scheduler replica that stops renewing it this long "
        "(killed, hung) leaves its job failed",
    )
    schedule_job_retention_seconds: float = Field(
        default=7 * 86400.0, gt=0, description="how long a finished solve job's status is kept"
    )
    schedule_keep_versions: int = Field(
        default=50,
        ge=1,
        description="timetable versions kept in the store (the newest; the published one always)",
    )
    upload_offload_bytes: int = Field(
        default=1 << 20,
        ge=0,
        description="district uploads and edits over this many bytes are parsed in a child "
        "process, off the event loop",
    )
    log_level: str = Field(default="INFO", description="logging level")

    @field_validator(
        "host",
        "ice_servers",
        "records_previous_keys",
        "records_sm2_public_keys",
        "ice_remote_allow",
        "ice_remote_deny",
        "metrics_host",
        "record_kinds",
        "hls_kinds",
        "recordings_retention_days_by_kind",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ice_remote_allow", "ice_remote_deny")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("record_kinds", "hls_kinds")
    @classmethod
    def _room_kinds(cls, value: list[str]) -> list[str]:
        known = {k.value for k in RoomKind}
        unknown = [k for k in value if k not in known]
        if unknown:
            raise ValueError(f"unknown room kinds {unknown}: use {sorted(known)}")
        return value

    @field_validator("rtmp_port", mode="before")
    @classmethod
    def _rtmp_off(cls, value: object) -> object:
        return 0 if isinstance(value, str) and not value.strip() else value  # empty: off

    def rtmp_server_url(self) -> str:
        """What encoders are told to push to (OBS: Server); the stream key goes after it."""
        return self.rtmp_public_url or f"rtmp://localhost:{self.rtmp_port or 1935}/live"

    @field_validator("recordings_retention_days_by_kind")
    @classmethod
    def _kind_days(cls, value: list[str]) -> list[str]:
        parse_kind_days(value)
        return value

    def retention_by_kind(self) -> dict[RoomKind, float]:
        return parse_kind_days(self.recordings_retention_days_by_kind)

    def recordings_s3(self) -> S3Settings | None:
        """The object store's settings, None when finished recordings stay in the
        directory."""
        if not self.recordings_s3_endpoint:
            return None
        missing = [
            name
            for name in ("bucket", "access_key", "secret_key")
            if not getattr(self, f"recordings_s3_{name}")
        ]
        if missing:
            raise ValueError(
                "SANKE_RECORDINGS_S3_ENDPOINT needs "
                + ", ".join(f"SANKE_RECORDINGS_S3_{m.upper()}" for m in missing)
            )
        return S3Settings(
            endpoint=self.recordings_s3_endpoint,
            bucket=self.recordings_s3_bucket or "",
            access_key=self.recordings_s3_access_key or "",
            secret_key=self.recordings_s3_secret_key or "",
            region=self.recordings_s3_region,
            prefix=self.recordings_s3_prefix,
            uploads=self.recordings_s3_uploads,
            url_seconds=self.recordings_s3_url_seconds,
        )

    def recordings_path(self) -> Path:
        return (
            Path(self.recordings_dir) if self.recordings_dir else default_data_dir() / "recordings"
        )

    def recorded_kinds(self) -> list[RoomKind]:
        return [RoomKind(k) for k in self.record_kinds]

    def hls_room_kinds(self) -> list[RoomKind]:
        return [RoomKind(k) for k in self.hls_kinds]

    def hls_path(self) -> Path:
        return Path(self.hls_dir) if self.hls_dir else default_data_dir() / "hls"

    def hls_signing_key(self) -> str:
        """The URL key: the operator's (shared with the CDN), else one derived from the
        token secret, the same in every process of a deployment."""
        if self.hls_url_key:
            return self.hls_url_key
        return hmac.new(
            self.token_secret.encode(), b"sanke-hls-url-key", hashlib.sha256
        ).hexdigest()

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key (--tls-cert, --tls-key)")
        return self

    def ice_policy(self) -> IcePolicy:
        return IcePolicy(
            allow=self.ice_remote_allow,
            deny=self.ice_remote_deny,
            prflx_wait_seconds=self.ice_prflx_wait_seconds,
        )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def insecure_secret(self) -> bool:
        return self.token_secret == DEFAULT_TOKEN_SECRET

    def check_secure(self) -> None:
        """Refuse to run in production with the well-known development secret."""
        if self.insecure_secret and not (self.demo or self.dev):
            raise SystemExit(
                "refusing to start: SANKE_TOKEN_SECRET is the public development default. "
                "Set SANKE_TOKEN_SECRET to a random string of at least 32 characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
                "or pass --demo / --dev for a local trial."
            )

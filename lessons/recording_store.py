"""Where finished recordings are kept for every serving pod: S3-compatible object storage.

Two places a finished part can be (docs/recording.md, "Storage"):

- **the recordings directory** (``SANKE_RECORDINGS_DIR``; the default, and in a cluster a
  ReadWriteMany volume every pod mounts): the SFU writes the part there and that is its final
  place — nothing to do here;
- **a bucket** (``SANKE_RECORDINGS_S3_*``: MinIO, Aliyun OSS, Tencent COS, AWS): the part is
  still written to the node's directory, then uploaded here to ``<prefix><room>/<name>.mp4``,
  verified, and only then catalogued (``lessons.recording_uploads``).

The client is the ``minio`` package (MinIO's own Python SDK): small (urllib3 only), typed,
speaks SigV4 to any S3-compatible service (it knows Aliyun OSS's virtual-host style) and
presigns URLs locally; boto3 would bring botocore's 100 MB of service models for one service
and no types. Its calls block, so every one runs in a thread, at most ``uploads`` at once.

Verification of an upload: the object's size, and its ETag against the one computed from the
local file (MD5 for a single PUT; MD5 of the parts' MD5s + ``-N`` for a multipart upload of
``PART_SIZE`` parts, what S3, MinIO and COS return). A service whose ETag is computed
otherwise (OSS's multipart ETag, encryption with KMS) gets the object read back and its
SHA-256 compared instead: slower, as sure.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

PART_SIZE = 16 * 1024 * 1024  # multipart uploads in 16 MiB parts (S3's minimum is 5 MiB)
READ_CHUNK = 1 << 20
MAX_URL_SECONDS = 7 * 86400  # what SigV4 allows


class S3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(
        description="host[:port] or a URL (https://oss-cn-hangzhou.aliyuncs.com); "
        "http:// means no TLS"
    )
    bucket: str = Field(min_length=3, max_length=63)
    access_key: str = Field(min_length=1)
    secret_key: str = Field(min_length=1, repr=False)
    region: str = Field(default="us-east-1", description="given, so nothing asks the service")
    prefix: str = Field(default="", max_length=200, description="keys start with it (a folder/)")
    uploads: int = Field(default=2, ge=1, le=16, description="uploads at once per process")
    attempts: int = Field(default=3, ge=1, le=10, description="tries of one upload in a row")
    backoff_seconds: float = Field(default=1.0, ge=0, le=60, description="before the 2nd try")
    url_seconds: int = Field(
        default=4 * 3600, ge=60, le=MAX_URL_SECONDS, description="lifetime of a presigned URL"
    )


class UploadFailed(Exception):
    """The part is not (verified) in the bucket: its local file must be kept."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    name: str  # relative to the prefix, as the catalogue names the part
    size: int
    modified_at: float
    sha256: str | None  # what the uploader put in its metadata


def _split_endpoint(endpoint: str) -> tuple[str, bool]:
    if endpoint.startswith("http://"):
        return endpoint.removeprefix("http://").rstrip("/"), False
    return endpoint.removeprefix("https://").rstrip("/"), True


def expected_etag(path: Path, size: int, part_size: int = PART_SIZE) -> str:
    """The ETag S3 gives ``path`` uploaded as the client does: one PUT up to ``part_size``,
    else a multipart upload of ``part_size`` parts."""
    with path.open("rb") as f:
        if size <= part_size:
            digest = hashlib.md5(usedforsecurity=False)
            while chunk := f.read(READ_CHUNK):
                digest.update(chunk)
            return digest.hexdigest()
        parts = []
        while True:
            part = hashlib.md5(usedforsecurity=False)
            left = part_size
            while left and (chunk := f.read(min(READ_CHUNK, left))):
                part.update(chunk)
                left -= len(chunk)
            if left == part_size:
                break
            parts.append(part.digest())
        return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


class S3RecordingStore:
    """A bucket holding the finished parts, by their catalogue names under ``prefix``."""

    kind = "s3"

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        host, secure = _split_endpoint(settings.endpoint)
        self.client = Minio(
            host,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=secure,
            region=settings.region,
            # our own tries with backoff (``put``): the client's urllib3 retries only a little,
            # so an object store that is down fails a try in seconds, not a minute
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=5, read=60),
                maxsize=settings.uploads + 2,
                retries=urllib3.Retry(
                    total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
                ),
            ),
        )
        self.bucket = settings.bucket
        self._slots = asyncio.Semaphore(settings.uploads)

    def key(self, name: str) -> str:
        return self.settings.prefix + name

    # --- uploading ------------------------------------------------------------------
    async def put(self, local: Path, name: str, sha256: str) -> None:
        """Upload ``local`` as ``name`` and verify it; retried with backoff. Raises
        ``UploadFailed`` when it is not verified in the bucket after the last try."""
        delay = self.settings.backoff_seconds
        for attempt in range(1, self.settings.attempts + 1):
            try:
                async with self._slots:
                    await asyncio.to_thread(self._put_blocking, local, name, sha256)
                return
            except FileNotFoundError:
                raise
            except Exception as exc:
                if attempt == self.settings.attempts:
                    raise UploadFailed(f"{name}: {exc}") from exc
                log.warning(
                    "upload of %s failed (try %d): %s; again in %.1f s", name, attempt, exc, delay
                )
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _put_blocking(self, local: Path, name: str, sha256: str) -> None:
        size = local.stat().st_size
        etag = expected_etag(local, size)
        self.client.fput_object(
            self.bucket,
            self.key(name),
            str(local),
            content_type="video/mp4",
            metadata={"sha256": sha256},
            part_size=PART_SIZE,
        )
        stat = self.client.stat_object(self.bucket, self.key(name))
        if stat.size != size:
            raise UploadFailed(f"{name}: {stat.size} bytes in the bucket, {size} here")
        if (stat.etag or "").strip('"').lower() == etag:
            return
        # an ETag computed otherwise (OSS multipart, KMS): read it back
        if self._sha256_blocking(name) != sha256:
            raise UploadFailed(f"{name}: the object's SHA-256 is not the part's")

    def _sha256_blocking(self, name: str) -> str:
        digest = hashlib.sha256()
        response = self.client.get_object(self.bucket, self.key(name))
        try:
            for chunk in response.stream(READ_CHUNK):
                digest.update(chunk)
        finally:
            response.close()
            response.release_conn()
        return digest.hexdigest()

    async def sha256(self, name: str) -> str:
        """The SHA-256 of the object as stored (reads it whole)."""
        return await asyncio.to_thread(self._sha256_blocking, name)

    # --- reading and deleting ---------------------------------------------------------
    def play_url(self, name: str, seconds: float | None = None) -> str:
        """A presigned GET URL of the part (computed here, no request), expiring after
        ``seconds`` (at most the setting's)."""
        limit = self.settings.url_seconds
        lifetime = limit if seconds is None else max(1, min(int(seconds), limit))
        return self.client.presigned_get_object(
            self.bucket, self.key(name), expires=timedelta(seconds=lifetime)
        )

    def origin(self) -> str:
        """Where its presigned URLs point (scheme://host[:port]): a page's media-src."""
        parts = urlsplit(self.play_url("origin-check.mp4", 60))
        return f"{parts.scheme}://{parts.netloc}"

    async def exists(self, name: str) -> bool:
        def blocking() -> bool:
            try:
                self.client.stat_object(self.bucket, self.key(name))
                return True
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                    return False
                raise

        return await asyncio.to_thread(blocking)

    async def list(self) -> list[StoredObject]:
        """Every finished part in the bucket (under the prefix)."""

        def blocking() -> list[StoredObject]:
            found = []
            for obj in self.client.list_objects(
                self.bucket, prefix=self.settings.prefix or None, recursive=True
            ):
                name = (obj.object_name or "").removeprefix(self.settings.prefix)
                if not name.endswith(".mp4") or obj.last_modified is None:
                    continue
                found.append(StoredObject(name, obj.size or 0, obj.last_modified.timestamp(), None))
            return found

        return await asyncio.to_thread(blocking)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, self.key(name))

    async def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (a MinIO of one's own; a cloud bucket is
        made by its console, and a key that may not create buckets just logs)."""

        def blocking() -> None:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

        try:
            await asyncio.to_thread(blocking)
        except Exception:
            log.exception("the recordings bucket %s could not be checked or made", self.bucket)

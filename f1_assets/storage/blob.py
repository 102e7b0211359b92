"""The blob store: one interface, two backends (a local directory, a Google Cloud Storage bucket).

It holds the raw archive of Jolpica's pages (`JolpicaClient.archive_key`, and the pages quarantined from
it), the Jolpica database dumps (`ingest_dump.blob_key`) and the per-race Parquet objects of the Parquet
IO manager (`raw_telemetry`). Keys are `/`-separated relative paths
(`jolpica/2023/1/laps.json@limit=100@offset=0.json.gz`, `telemetry/season=2023/round=05/telemetry.parquet`).
FastF1's own cache is a local directory (`FastF1Resource.effective_cache_dir`), not a blob.
"""

from __future__ import annotations

import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath

from f1_assets import settings
from f1_assets.settings import ConfigError, redact_url, writable_dir

URL_VARIABLE = settings.BLOB_URL


def _check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or ".." in parts or "\\" in key:
        raise ValueError(f"invalid blob key {key!r}: must be a relative path without '..'")
    return key


class BlobStore(ABC):
    """Bytes by key. Writes are whole-object: a reader never sees half an object."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store `data` under `key`; returns the object's URL."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object; no error when absent."""

    @abstractmethod
    def url(self, key: str) -> str:
        """Where the object lives (file path or gs:// URL), for metadata."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key` (metadata only: the object is not read)."""


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: an interrupted write never replaces the previous object
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        start = base if base.is_dir() else base.parent
        if not start.exists():
            return []
        keys = []
        for path in start.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return str(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class GCSBlobStore(BlobStore):
    """A bucket and prefix on Google Cloud Storage.

    Credentials come only from the environment (Application Default Credentials); none at all is a
    ConfigError naming F1_BLOB_URL, raised when the store is made. With STORAGE_EMULATOR_HOST set
    (tests: gcp-storage-emulator on 127.0.0.1) the client talks to the emulator anonymously.
    """

    def __init__(self, bucket: str, prefix: str = "", project: str | None = None):
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(project=project or "f1-assets-test", credentials=AnonymousCredentials())
        else:
            try:
                client = storage.Client(project=project)
            except DefaultCredentialsError:
                raise ConfigError(
                    f"{URL_VARIABLE}=gs://{bucket}/{prefix}: no Google Cloud credentials found. Set "
                    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run `gcloud auth "
                    "application-default login`, or run under a service account (GKE Workload Identity)"
                ) from None
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._bucket = client.bucket(bucket)

    def _name(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        # a single-request upload is atomic on GCS: readers see the old or the new object
        self._bucket.blob(self._name(key)).upload_from_string(data, content_type=content_type)
        return self.url(key)

    def get(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self._bucket.blob(self._name(key)).download_as_bytes()
        except NotFound:
            return None

    def list(self, prefix: str) -> list[str]:
        full = self._name(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(blob.name[cut:] for blob in self._bucket.list_blobs(prefix=full))

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._bucket.blob(self._name(key)).delete()
        except NotFound:
            pass

    def url(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(key)}"

    def exists(self, key: str) -> bool:
        return self._bucket.blob(self._name(key)).exists()  # one metadata request, no download


_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


def blob_store_from_url(url: str) -> BlobStore:
    """`gs://bucket/prefix` → GCS; anything else is a local directory path (made if missing).

    A URL that can never work (another scheme, no bucket, an unwritable directory, GCS without
    credentials) is a ConfigError naming F1_BLOB_URL, with any password in it masked."""
    shown = redact_url(url)
    if url.startswith("gs://"):
        rest = url[len("gs://") :]
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(f"{URL_VARIABLE}={shown!r} is not a blob URL: expected gs://bucket/prefix")
        return GCSBlobStore(bucket, prefix)
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(f"{URL_VARIABLE}={shown!r} is not a blob URL: expected a local path, file:///path or gs://")
    return LocalBlobStore(writable_dir(url.removeprefix("file://"), URL_VARIABLE))

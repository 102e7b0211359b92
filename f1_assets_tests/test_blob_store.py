"""Blob store backends against real storage: a temp directory and gcp-storage-emulator (GCS API)."""

import io

import pandas as pd
import pytest

from f1_assets.settings import ConfigError
from f1_assets.storage.blob import BlobStore, GCSBlobStore, LocalBlobStore, blob_store_from_url
from f1_assets_tests.gcs_emulator import BUCKET, gcs_emulator


@pytest.fixture(scope="module")
def emulator():
    with gcs_emulator() as host:
        yield host


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    request.getfixturevalue("emulator")
    return blob_store_from_url(f"gs://{BUCKET}/run-{tmp_path.name}")


def test_put_get_list_delete(store: BlobStore):
    assert store.get("a/b.txt") is None
    url = store.put("a/b.txt", b"hello", "text/plain")
    assert url == store.url("a/b.txt")
    store.put("a/c/d.bin", b"\x00\x01")
    store.put("z.txt", b"z")
    assert store.get("a/b.txt") == b"hello"
    assert store.list("a/") == ["a/b.txt", "a/c/d.bin"]
    assert store.list("") == ["a/b.txt", "a/c/d.bin", "z.txt"]
    store.put("a/b.txt", b"replaced")
    assert store.get("a/b.txt") == b"replaced"
    store.delete("a/b.txt")
    store.delete("a/b.txt")  # absent: no error
    assert store.get("a/b.txt") is None
    assert store.list("a/") == ["a/c/d.bin"]
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put("../escape", b"x")


def test_parquet_round_trip(store: BlobStore):
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "t": pd.to_timedelta([1, 2, 3], unit="s"),
            "d": pd.to_datetime(["2018-04-29 12:00:00.123", "2018-04-29 12:00:01.000", "2018-04-29 12:00:02.500"]),
            "s": ["a", None, "c"],
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put("x/season=2018/round=04/t.parquet", buffer.getvalue())
    back = pd.read_parquet(io.BytesIO(store.get("x/season=2018/round=04/t.parquet")))
    pd.testing.assert_frame_equal(back, frame)


def test_gcs_url_and_prefix(emulator, tmp_path):
    store = blob_store_from_url(f"gs://{BUCKET}/pre/fix")
    assert isinstance(store, GCSBlobStore)
    store.put("k.txt", b"1")
    assert store.url("k.txt") == f"gs://{BUCKET}/pre/fix/k.txt"
    assert blob_store_from_url(f"gs://{BUCKET}").list("pre/") == ["pre/fix/k.txt"]
    store.delete("k.txt")


def test_gcs_without_credentials_is_a_config_error(monkeypatch, tmp_path):
    """No Application Default Credentials anywhere: the store is refused when made, naming F1_BLOB_URL,
    instead of every step failing (and retrying) on its first upload."""
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(ConfigError, match="F1_BLOB_URL=gs://bucket/raw: no Google Cloud credentials") as raised:
        blob_store_from_url("gs://bucket/raw")
    assert raised.value.allow_retries is False


def test_local_store_directory_is_made_and_checked(tmp_path):
    store = blob_store_from_url(f"file://{tmp_path / 'new' / 'blobs'}")
    assert isinstance(store, LocalBlobStore) and (tmp_path / "new" / "blobs").is_dir()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="F1_BLOB_URL: .*a-file/blobs is not a writable directory"):
        blob_store_from_url(str(tmp_path / "a-file" / "blobs"))

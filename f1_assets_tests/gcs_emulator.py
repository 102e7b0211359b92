"""Start `gcp-storage-emulator` (PyPI) in a subprocess on 127.0.0.1 for the blob-store tests.

Used by `test_blob_store.py` and `test_telemetry.py`. The emulator runs in memory on a free port
with one bucket created at start; `STORAGE_EMULATOR_HOST` points google-cloud-storage at it (the
`GCSBlobStore` then uses anonymous credentials). Note: the emulator ignores `if_generation_match`,
so conditional-write semantics cannot be tested against it.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUCKET = "f1-assets-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _executable() -> list[str]:
    beside_python = Path(sys.executable).with_name("gcp-storage-emulator")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("gcp-storage-emulator")
    if not found:
        raise RuntimeError("gcp-storage-emulator is not installed: pip install -e '.[dev]'")
    return [found]


@contextmanager
def gcs_emulator(bucket: str = BUCKET) -> Iterator[str]:
    """Run the emulator; yields its host URL with STORAGE_EMULATOR_HOST set, restores env after."""
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*_executable(), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
         "--default-bucket", bucket, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gcp-storage-emulator exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{host}/storage/v1/b/{bucket}", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gcp-storage-emulator did not answer on {host}") from None
                time.sleep(0.1)
        os.environ["STORAGE_EMULATOR_HOST"] = host
        yield host
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""The real recorded upstream data the tests and benches read, carried in the repository.

`data/recorded.tar.xz` is the whole `shared/data` folder of the workplace (Jolpica responses and
replay pages, the Jolpica CSV dump, F1 live-timing streams and FastF1 schedule files; its own
README.md and manifest.json inside say where each file came from). It is unpacked once per content
hash into `.recorded/<hash>/` at the repository root (git-ignored), so a clone alone tests itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = Path(__file__).resolve().parent / "data" / "recorded.tar.xz"


def recorded_data_dir() -> Path:
    """The unpacked `data/` folder (README.md, jolpica/, jolpica-replay/, jolpica-dump/, livetiming/,
    schedule/); unpacked on first use, atomically (a killed unpack leaves nothing half-made)."""
    if not ARCHIVE.is_file():
        raise FileNotFoundError(f"{ARCHIVE} is missing: the recorded upstream data ships with the repository")
    digest = hashlib.sha256(ARCHIVE.read_bytes()).hexdigest()[:16]
    target = REPO / ".recorded" / digest
    if not (target / "data").is_dir():
        target.parent.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=target.parent))
        try:
            with tarfile.open(ARCHIVE, "r:xz") as archive:
                archive.extractall(staging, filter="data")
            try:
                os.replace(staging, target)
            except OSError:  # another process unpacked the same archive first
                if not (target / "data").is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target / "data"

"""A URL's password never leaves the process: not on stdout/stderr, not in the run's event log, the run
index, job snapshots or compute logs (the whole DAGSTER_HOME), not in pipeline_audit_log.

Real runs with a secret in F1_WAREHOUSE_URL or F1_BLOB_URL: `dagster asset materialize` in a
subprocess (the step fails inside the run; its executor tries to audit it) and the `f1-assets` CLI
(refused before any run: exit 2 for a URL that can never work, 1 for a host that does not answer).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from f1_assets import cli
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets_tests.helpers import synthetic_schedule
from f1_assets_tests.jolpica_server import JolpicaReplayServer

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "s3cretPW"
NO_RETRIES = '{"execution": {"config": {"multiprocess": {"retries": {"disabled": {}}}}}}'

CASES = {
    # a typo in the scheme: the URL never parses as PostgreSQL
    "scheme_typo": {"F1_WAREHOUSE_URL": f"postgresq://u:{SECRET}@127.0.0.1:5432/x"},
    # parses, reaches the server, can never log in
    "unknown_role": {"F1_WAREHOUSE_URL": f"postgresql://f1_no_such_role:{SECRET}@127.0.0.1:5432/test"},
    # parses, nobody listens (retryable: run with retries disabled to keep the test short)
    "unreachable": {"F1_WAREHOUSE_URL": f"postgresql://u:{SECRET}@127.0.0.1:1/test"},
    # a blob URL with userinfo; the warehouse works, so the failed run's audit rows are written
    "blob_url": {"F1_BLOB_URL": f"gs://u:{SECRET}@bucket/raw"},
}


def _grep(root: Path) -> list[str]:
    """Files under `root` holding the secret (SQLite run/event storage, compute logs, anything)."""
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_no_password_in_any_output_or_storage(tmp_path, monkeypatch, capfd):
    schedule = synthetic_schedule(2024, [(1, dt.date(2024, 3, 2), False)])
    procs, cli_outputs = {}, {}
    with JolpicaReplayServer(schedule) as server:
        envs = {}
        for name, env_vars in CASES.items():
            case = tmp_path / name
            (case / "dagster_home").mkdir(parents=True)
            (case / "cli_home").mkdir()
            (case / "dagster_home" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
            envs[name] = {"DAGSTER_HOME": str(case / "dagster_home"), "F1_HOME": str(case / "f1_home"),
                          "F1_WAREHOUSE_URL": f"duckdb:///{case / 'warehouse.duckdb'}",
                          "F1_JOLPICA_URL": server.base_url, "F1_SETTLE_DAYS": "36500", **env_vars}
            with open(case / "dagster.out", "w") as out, open(case / "dagster.err", "w") as err:
                procs[name] = subprocess.Popen(
                    [str(BIN / "dagster"), "asset", "materialize", "-m", "f1_assets.definitions", "--select",
                     "raw_races", "--partition", "2024", "--config-json", NO_RETRIES],
                    cwd=REPO, env={**os.environ, **envs[name]}, stdout=out, stderr=err)
        # meanwhile the f1-assets CLI, in this process, refuses each setting before any run
        for name in CASES:
            for variable, value in {**envs[name], "DAGSTER_HOME": str(tmp_path / name / "cli_home")}.items():
                monkeypatch.setenv(variable, value)
            capfd.readouterr()
            code = cli.main(["race", "2024-01"])
            cli_outputs[name] = (code, *capfd.readouterr())
            for variable in envs[name]:
                monkeypatch.delenv(variable)
        for proc in procs.values():
            proc.wait(timeout=240)

    for name, (code, stdout, stderr) in cli_outputs.items():
        assert code in (1, 2), f"{name}: f1-assets exit code {code}"
        assert SECRET not in stdout + stderr, f"{name} f1-assets: the password is printed"
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("f1-assets: error: ") and "F1_" in last and "***" in last, stderr[-2000:]
    for name, proc in procs.items():
        stdout, stderr = (tmp_path / name / "dagster.out").read_text(), (tmp_path / name / "dagster.err").read_text()
        assert proc.returncode != 0, f"{name}: dagster asset materialize succeeded"
        assert SECRET not in stdout + stderr, f"{name} dagster: the password is printed"
        assert "***" in stderr, f"{name}: the failure does not show the masked URL"
    for name in CASES:
        assert _grep(tmp_path / name) == [], f"{name}: the password is in the instance storage or the warehouse"

    # the failed blob-URL run was audited: its rows name the masked URL, never the password
    rows = warehouse_from_url(f"duckdb:///{tmp_path / 'blob_url' / 'warehouse.duckdb'}").query(
        "SELECT event_type, status, CAST(metadata AS VARCHAR) AS metadata FROM pipeline_audit_log ORDER BY timestamp")
    assert rows[["event_type", "status"]].values.tolist() == [["run_start", "started"], ["run_end", "failure"]]
    assert "F1_BLOB_URL" in rows["metadata"][1] and "u:***@bucket" in rows["metadata"][1]
    assert not rows["metadata"].str.contains(SECRET).any()

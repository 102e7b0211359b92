"""The Definitions load the same way for `dagster`/`dg`, and the `f1-assets` CLI materializes races."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from f1_assets.storage.warehouse import warehouse_from_url

REPO = Path(__file__).resolve().parents[1]


def test_definitions_hold_the_graph():
    from f1_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_races", "raw_results", "raw_qualifying", "raw_sprint_results", "raw_laps", "raw_pit_stops",
            "lap_features", "telemetry_features"} <= keys
    assert defs.resolve_job_def("race_pipeline").partitions_def.name == "races"
    assert defs.resolve_job_def("season_calendar") is not None


def test_dagster_cli_validates_the_workspace():
    bin_dir = Path(sys.executable).parent
    out = subprocess.run([str(bin_dir / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                         cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful" in out.stderr + out.stdout


@pytest.mark.shared_data
def test_cli_race_and_bad_key(replay_server, recorded_upstreams, tmp_path, monkeypatch, f1_home):
    from f1_assets import cli

    upstreams = recorded_upstreams
    monkeypatch.setenv("F1_LIVETIMING_URL", upstreams.livetiming_url)
    monkeypatch.setenv("F1_FASTF1_SCHEDULE_URL", upstreams.schedule_url)

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("F1_JOLPICA_URL", replay_server.base_url)
    monkeypatch.setenv("F1_WAREHOUSE_URL", url)
    monkeypatch.setenv("F1_BLOB_URL", str(tmp_path / "blobs"))
    assert cli.main(["race", "2023-01"]) == 0
    wh = warehouse_from_url(url)
    assert wh.count("raw_laps", {"season": 2023, "round": 1}) == 1055
    assert wh.count("lap_features", {"season": 2023, "round": 1}) == 1055
    assert not any("livetiming.formula1.com" in r for r in upstreams.requests)
    runs = dg.DagsterInstance.get().get_runs()
    # the season's calendar first (never materialized in this instance), then the race
    assert [r.tags.get("dagster/partition") for r in runs] == ["2023-01", "2023"]
    assert cli.main(["race", "2023-1"]) == 2  # a malformed key: one line on stderr, no run
    assert len(dg.DagsterInstance.get().get_runs()) == 2


@pytest.mark.parametrize("argv", [["--allow-shrink", "race", "2023-01"], ["race", "--allow-shrink", "2023-01"],
                                  ["season", "2023", "--allow-shrink"]])
def test_allow_shrink_is_accepted_before_or_after_the_command(argv):
    from f1_assets.cli import parse_args

    assert parse_args(argv).allow_shrink is True
    assert parse_args([a for a in argv if a != "--allow-shrink"]).allow_shrink is False

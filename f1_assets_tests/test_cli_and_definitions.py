"""The Definitions load the same way for `dagster`/`dg`, and the `f1-assets` CLI materializes races."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from f1_assets import catalog
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


RESOURCE_QUERY = """query($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename ... on ResourceDetails { configuredValues { key value type } }
    ... on PythonError { message } } }"""
ASSET_KINDS_QUERY = "{ assetNodes { assetKey { path } kinds owners { ... on TeamAssetOwner { team } } } }"
ENV = {"F1_WAREHOUSE_URL": "postgresql://u:secret@h/db", "F1_BLOB_URL": "gs://f1-bucket/prod",
       "F1_JOLPICA_URL": "https://mirror:secret@jolpica.example/ergast/f1/",
       "F1_LIVETIMING_URL": "https://mirror:secret@livetiming.example/",
       "F1_FASTF1_SCHEDULE_URL": "https://mirror:secret@schedule.example/f1schedule/"}
# per upstream resource: each setting the environment gives, and the variable its `<setting>_env_var` names
UPSTREAM_VARIABLES = {
    "jolpica": {"base_url": "F1_JOLPICA_URL", "hourly_budget": "F1_JOLPICA_HOURLY_BUDGET",
                "settle_days": "F1_SETTLE_DAYS"},
    "fastf1": {"livetiming_url": "F1_LIVETIMING_URL", "schedule_url": "F1_FASTF1_SCHEDULE_URL",
               "jolpica_url": "F1_JOLPICA_URL", "cache_dir": "F1_HOME", "circuit_info_url": "F1_CIRCUIT_INFO_URL"},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """What the UI gets over GraphQL from the code location (a code server started from workspace.yaml,
    as `dagster dev` does) while the environment holds URLs with a password: each resource's
    configured values, and every asset's kinds and owners."""
    from dagster_graphql.test.utils import (
        define_out_of_process_context,
        execute_dagster_graphql,
        infer_resource_selector,
    )

    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENV.items():
            mp.setenv(name, value)
        mp.setenv("F1_HOME", str(tmp_path_factory.mktemp("f1_home")))
        with dg.instance_for_test() as instance, \
                define_out_of_process_context(str(REPO / "workspace.yaml"), None, instance) as context:
            resources = {}
            for name in ("warehouse", "blob_store", "jolpica", "fastf1"):
                result = execute_dagster_graphql(context, RESOURCE_QUERY,
                                                 {"selector": infer_resource_selector(context, name)})
                details = result.data["topLevelResourceDetailsOrError"]
                assert details["__typename"] == "ResourceDetails", details
                resources[name] = {v["key"]: (v["type"], json.loads(v["value"])) for v in details["configuredValues"]}
            assets = execute_dagster_graphql(context, ASSET_KINDS_QUERY).data["assetNodes"]
    return {"resources": resources, "assets": {"/".join(a["assetKey"]["path"]): a for a in assets}}


@pytest.mark.parametrize(("resource", "variable"), [("warehouse", "F1_WAREHOUSE_URL"), ("blob_store", "F1_BLOB_URL")])
def test_ui_names_the_variable_of_each_storage_resource_never_its_value(rendered, resource, variable):
    shown = rendered["resources"][resource]
    assert shown == {"url_env_var": ("VALUE", variable)}  # the name only: no url, no url=None
    assert "secret" not in json.dumps(rendered)  # no password anywhere the UI is given


@pytest.mark.parametrize("resource", sorted(UPSTREAM_VARIABLES))
def test_ui_names_the_variables_of_the_upstream_resources_never_their_values(rendered, resource):
    shown = rendered["resources"][resource]
    named = {key: value for key, value in shown.items() if key.endswith("_env_var")}
    assert named == {f"{setting}_env_var": ("VALUE", variable)
                     for setting, variable in UPSTREAM_VARIABLES[resource].items()}
    assert not set(UPSTREAM_VARIABLES[resource]) & set(shown)  # the value fields are left out, not null
    assert None not in {value for _, value in shown.values()}
    assert "secret" not in json.dumps(shown) and "example" not in json.dumps(shown)  # no URL at all


def _upstream_resource(resource: str, **given):
    from f1_assets.resources.fastf1 import FastF1Resource
    from f1_assets.resources.jolpica import JolpicaResource
    from f1_assets.resources.storage import BlobStoreResource, WarehouseResource

    if resource == "jolpica":
        return JolpicaResource(archive=BlobStoreResource(), warehouse=WarehouseResource(), **given)
    return FastF1Resource(**given)


# a value of each variable that can never work, and a value given directly (which wins over the variable)
NEVER_WORKS = {"F1_JOLPICA_URL": "ftp://h/", "F1_JOLPICA_HOURLY_BUDGET": "0", "F1_SETTLE_DAYS": "-1",
               "F1_LIVETIMING_URL": "livetiming", "F1_FASTF1_SCHEDULE_URL": "file:///schedule/",
               "F1_CIRCUIT_INFO_URL": "ftp://h/api/v1/"}
GIVEN = {"base_url": "http://given.example/f1/", "hourly_budget": 7, "settle_days": 3,
         "livetiming_url": "http://given.example/live", "schedule_url": "http://given.example/schedule/",
         "jolpica_url": "http://given.example/f1", "circuit_info_url": "http://given.example/api/v1/"}


@pytest.mark.parametrize(("resource", "setting"),
                         [(r, s) for r, settings_of in UPSTREAM_VARIABLES.items() for s in settings_of])
def test_the_variable_a_resource_names_is_the_one_it_reads(resource, setting, tmp_path, monkeypatch):
    from f1_assets import settings

    variable = getattr(_upstream_resource(resource), f"{setting}_env_var")
    if variable == "F1_HOME":
        (tmp_path / "file").write_text("")
        monkeypatch.setenv(variable, str(tmp_path / "file" / "home"))  # under a regular file: never writable
    else:
        monkeypatch.setenv(variable, NEVER_WORKS[variable])
    with pytest.raises(settings.ConfigError, match=variable):
        getattr(_upstream_resource(resource), f"effective_{setting}")()
    given = GIVEN.get(setting, str(tmp_path / "cache"))
    assert str(getattr(_upstream_resource(resource, **{setting: given}), f"effective_{setting}")()) == str(given)


def test_ui_shows_kinds_of_the_configured_storage_and_the_owner(rendered):
    assets = rendered["assets"]
    assert set(assets["raw_laps"]["kinds"]) >= {"sql", "postgres"}
    assert "gcs" in assets["raw_telemetry"]["kinds"]
    assert not any({"duckdb", "local"} & set(a["kinds"]) for a in assets.values())
    assert all(a["owners"] == [{"team": "f1-data"}] for a in assets.values())


def test_default_storage_kinds_never_say_postgres():
    from f1_assets.definitions import build_definitions

    graph = build_definitions(catalog.storage_of("duckdb:///w.duckdb", "/tmp/blobs")).resolve_asset_graph()
    kinds = {key.to_user_string(): graph.get(key).kinds for key in graph.get_all_asset_keys()}
    assert not any({"postgres", "gcs"} & k for k in kinds.values())
    assert "duckdb" in kinds["raw_laps"] and "local" in kinds["raw_telemetry"]
    assert catalog.storage_of("postgres://u:p@h/db", "gs://b/p") == catalog.Storage("postgres", "gcs")
    assert catalog.storage_of("mysql://h/db", "blobs").warehouse is None  # no kind rather than a wrong one


def test_a_storage_kind_written_in_a_decorator_is_replaced_by_the_configured_one():
    spec = dg.AssetSpec("t", group_name="ml", kinds={"pandas", "postgres"})
    described = catalog.describe(spec, "v1", catalog.Storage("duckdb", "local"))
    assert described.kinds == {"pandas", "duckdb"}
    assert (described.owners, described.code_version) == ([catalog.OWNER], "v1")
    with pytest.raises(ValueError, match="asset x: group 'misc' has no layer"):
        catalog.describe(dg.AssetSpec("x", group_name="misc"), "v1", catalog.Storage("duckdb", "local"))


def test_catalog_tags_owner_and_code_version_of_every_asset():
    from f1_assets.assets import features, ingest_jolpica
    from f1_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == [catalog.OWNER], key
        assert node.tags["layer"] in {"raw", "fastf1", "features", "ml"}, key
        assert re.fullmatch(r"[0-9a-f]{16}", node.code_version or ""), key
    assert graph.get(dg.AssetKey("raw_laps")).tags["source"] == "jolpica"
    assert graph.get(dg.AssetKey("raw_telemetry")).tags["source"] == "fastf1"
    assert graph.get(dg.AssetKey("raw_laps")).code_version == catalog.code_version(ingest_jolpica)
    # the transforms an asset module uses are part of its version
    assert "f1_assets.transforms.features" in {m.__name__ for m in catalog.versioned_modules(features)}


def test_code_version_changes_with_a_used_module_only(tmp_path, monkeypatch):
    import importlib

    package = tmp_path / "versioned_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "transform.py").write_text("def double(x):\n    return 2 * x\n")
    (package / "unused.py").write_text("VALUE = 1\n")
    (package / "asset.py").write_text("from versioned_pkg.transform import double\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    asset = importlib.import_module("versioned_pkg.asset")
    packages = ("versioned_pkg",)
    before = catalog.code_version(asset, packages)
    assert [m.__name__ for m in catalog.versioned_modules(asset, packages)] == ["versioned_pkg.asset",
                                                                                 "versioned_pkg.transform"]
    (package / "unused.py").write_text("VALUE = 2\n")
    assert catalog.code_version(asset, packages) == before
    (package / "transform.py").write_text("def double(x):\n    return x + x\n")
    importlib.reload(importlib.import_module("versioned_pkg.transform"))
    assert catalog.code_version(asset, packages) != before


def test_code_references_are_local_files_or_links_at_the_commit():
    from f1_assets.assets import ingest_jolpica

    local = catalog.with_code_references(ingest_jolpica.ASSETS, git_url=None, commit="abc123")
    ref = local[0].specs_by_key[dg.AssetKey("raw_races")].metadata["dagster/code_references"].code_references[0]
    assert Path(ref.file_path).resolve() == (REPO / "f1_assets/assets/ingest_jolpica.py").resolve()
    lines = Path(ref.file_path).read_text().splitlines()
    assert lines[ref.line_number - 1].startswith(("@dg.asset(", "@batched_asset("))  # the decorator of raw_races
    assert any(line.startswith("def raw_races(") for line in lines[ref.line_number:ref.line_number + 20])

    linked = catalog.with_code_references(ingest_jolpica.ASSETS, "https://github.com/example/f1-assets/", "abc123")
    url = linked[0].specs_by_key[dg.AssetKey("raw_races")].metadata["dagster/code_references"].code_references[0].url
    assert url == f"https://github.com/example/f1-assets/tree/abc123/f1_assets/assets/ingest_jolpica.py#L{ref.line_number}"
    # a host Dagster cannot link to keeps the local reference instead of failing the code location
    other = catalog.with_code_references(ingest_jolpica.ASSETS, "https://git.example.org/f1-assets", "abc123")
    assert other[0].specs_by_key[dg.AssetKey("raw_races")].metadata["dagster/code_references"].code_references[0] == ref


def test_jobs_take_their_partitions_from_the_selected_assets():
    from f1_assets.definitions import defs
    from f1_assets.partitions import races_partitions, seasons_partitions

    assert defs.resolve_job_def("race_pipeline").partitions_def == races_partitions
    assert defs.resolve_job_def("season_calendar").partitions_def == seasons_partitions


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


def test_a_dagster_home_that_is_no_folder_is_one_line(tmp_path, monkeypatch, capsys):
    from f1_assets import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    assert cli.main(["race", "2023-01"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"f1-assets: error: DAGSTER_HOME={tmp_path / 'missing'} is not a folder: create it "
                           "(mkdir -p) and copy the repository's dagster.yaml there, or export DAGSTER_HOME=$PWD")

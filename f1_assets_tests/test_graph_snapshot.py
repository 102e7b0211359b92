"""The asset graph against its golden snapshot (data/graph_snapshot.json): every asset's deps (with
their partition mapping), partitions, checks (severity, blocking), IO manager key, group, kinds,
owners, tags and automation condition, and the jobs' selections and partitions.
Any difference fails with a diff; after an intended change regenerate the snapshot with

    F1_UPDATE_SNAPSHOT=1 .venv/bin/pytest f1_assets_tests/test_graph_snapshot.py

and review the diff of the JSON file in the commit. Kinds are taken on the embedded default storage
(duckdb, local) whatever the environment says. Code versions are left out: they change with any edit.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import dagster as dg

from f1_assets import catalog
from f1_assets.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "data" / "graph_snapshot.json"
REGENERATE = "F1_UPDATE_SNAPSHOT=1 .venv/bin/pytest f1_assets_tests/test_graph_snapshot.py"


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic {partitions_def.name}"
    if isinstance(partitions_def, dg.StaticPartitionsDefinition):  # seasons: keys grow every year
        return f"static from {partitions_def.get_partition_keys()[0]}"
    return f"{type(partitions_def).__name__} {partitions_def}"


def _check(spec: dg.AssetCheckSpec) -> dict:
    """Severity (the rule's, in the spec's metadata: checks/rules.py) and blocking."""
    severity = (spec.metadata or {}).get("severity")
    return {"severity": getattr(severity, "value", severity), "blocking": spec.blocking}


def graph_snapshot(defs: dg.Definitions) -> dict:
    """The graph as plain, sorted JSON data."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": {parent.to_user_string(): type(graph.get_partition_mapping(key, parent)).__name__
                     for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string())},
            "partitions": _partitions(node.partitions_def),
            "io_manager_key": node.io_manager_key,
            "checks": {check.name: _check(graph.get_check_spec(check))
                       for check in sorted(node.check_keys, key=lambda c: c.name)},
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/kind/")},
            "automation_condition": condition.get_label() if condition else None,
        }
    jobs = {}
    for job in sorted(defs.jobs or [], key=lambda j: j.name):
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.selection.resolve(graph)),
            "partitions": _partitions(defs.resolve_job_def(job.name).partitions_def),
        }
    return {"assets": assets, "jobs": jobs}


def test_graph_matches_the_snapshot():
    defs = build_definitions(catalog.Storage(warehouse="duckdb", blob="local"))
    current = json.dumps(graph_snapshot(defs), indent=2, sort_keys=True) + "\n"
    if os.environ.get("F1_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), current.splitlines(keepends=True),
                                        fromfile=SNAPSHOT.name, tofile="current graph"))
    assert not diff, f"the asset graph differs from its snapshot; if intended, regenerate it:\n  {REGENERATE}\n{diff}"

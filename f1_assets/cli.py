"""`f1-assets`: materialize one race or a whole season from the command line, in this process.

Runs are recorded in the Dagster instance of DAGSTER_HOME (the same one `make dev` uses), so they
show in the UI. A season first materializes its calendar (`raw_races`), which registers the races
that have run as `races` partitions, then runs the `race_pipeline` job for each of them in order.
"""

from __future__ import annotations

import argparse
import os
import sys

import dagster as dg

from f1_assets.partitions import parse_race_key, parse_season


def _instance() -> dg.DagsterInstance:
    if not os.environ.get("DAGSTER_HOME"):
        sys.exit("f1-assets: set DAGSTER_HOME (e.g. export DAGSTER_HOME=$PWD, as `make dev` does)")
    return dg.DagsterInstance.get()


def _run(job_name: str, partition_key: str, instance: dg.DagsterInstance) -> bool:
    from f1_assets.definitions import defs

    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(partition_key=partition_key, instance=instance, raise_on_error=False)
    print(f"{job_name} {partition_key}: {'success' if result.success else 'FAILED'} (run {result.run_id})")
    return result.success


def race(key: str, instance: dg.DagsterInstance) -> bool:
    """One race; its season's calendar first when this instance has never materialized it
    (the feature layer reads the race's circuit and date from raw_races)."""
    season_key = str(parse_race_key(key).season)
    if season_key not in instance.get_materialized_partitions(dg.AssetKey("raw_races")):
        if not _run("season_calendar", season_key, instance):
            return False
    if key not in instance.get_dynamic_partitions("races"):
        instance.add_dynamic_partitions("races", [key])
    return _run("race_pipeline", key, instance)


def season(year: str, instance: dg.DagsterInstance) -> bool:
    parse_season(year)
    if not _run("season_calendar", year, instance):
        return False
    keys = [k for k in instance.get_dynamic_partitions("races") if parse_race_key(k).season == int(year)]
    print(f"season {year}: {len(keys)} races to materialize")
    failed = [k for k in keys if not race(k, instance)]
    if failed:
        print(f"season {year}: failed races: {', '.join(failed)}")
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="f1-assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("race", help="materialize one race, e.g. 2023-01").add_argument("key")
    sub.add_parser("season", help="materialize a season's calendar and every race run so far").add_argument("year")
    args = parser.parse_args(argv)
    try:
        ok = race(args.key, _instance()) if args.command == "race" else season(args.year, _instance())
    except ValueError as exc:
        parser.error(str(exc))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

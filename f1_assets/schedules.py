"""Schedules: the weekly refresh (Monday 02:00 UTC, as in the seed) of the current season's races
that are not settled yet — laps and pit stops often appear only the Monday after a race, and results
are corrected for days. A race is settled once its last `raw_results` materialization says so
(`settled` metadata: older than F1_SETTLE_DAYS when it ran); its next refresh then costs zero
upstream requests (served from the raw archive) and it drops out of the schedule.
Loaded by `f1_assets.definitions` (`SCHEDULES`).
"""

import dagster as dg

from f1_assets.partitions import parse_race_key, races_partitions

WEEKLY_CRON = "0 2 * * 1"


def unsettled_races(instance: dg.DagsterInstance, season: int) -> list[str]:
    """The season's race partitions whose latest raw_results materialization is missing or not settled."""
    out = []
    for key in instance.get_dynamic_partitions(races_partitions.name):
        if parse_race_key(key).season != season:
            continue
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_results"), asset_partitions=[key]), limit=1
        ).records
        settled = records[0].asset_materialization.metadata.get("settled") if records else None
        if settled is None or not settled.value:
            out.append(key)
    return out


@dg.schedule(
    cron_schedule=WEEKLY_CRON,
    execution_timezone="UTC",
    job_name="race_pipeline",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monday 02:00 UTC: re-run race_pipeline for every race of the current season not settled yet.",
)
def weekly_unsettled_races(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    when = context.scheduled_execution_time
    season = when.year
    keys = unsettled_races(context.instance, season)
    if not keys:
        return dg.SkipReason(f"every {season} race partition is settled")
    return [
        dg.RunRequest(run_key=f"weekly:{when.date().isoformat()}:{key}", partition_key=key,
                      tags={"f1/trigger": "weekly_refresh"})
        for key in keys
    ]


SCHEDULES: list = [weekly_unsettled_races]

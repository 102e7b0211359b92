"""The Definitions that `dagster dev`, `dg` and the tests load: assets, checks, resources, jobs.

Resources are built with unset fields, so they follow the environment when a run uses them
(F1_WAREHOUSE_URL, F1_BLOB_URL, F1_JOLPICA_URL, …; unset = the embedded default under F1_HOME) and
the UI shows no URL, let alone a password. Every launched run goes through `audit.audited_executor`
(its pipeline_audit_log rows). JSON log lines come from the instance (`dagster.yaml`, `python_logs`):
a `loggers=` entry here would only apply to runs whose run config names it.
"""

from __future__ import annotations

import dagster as dg

from f1_assets import audit, schedules, sensors
from f1_assets.assets import features, ingest_fastf1, ingest_jolpica, ml
from f1_assets.partitions import races_partitions, seasons_partitions
from f1_assets.resources.fastf1 import FastF1Resource
from f1_assets.resources.jolpica import JolpicaResource
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource


def build_resources(
    warehouse_url: str | None = None,
    blob_url: str | None = None,
    jolpica_url: str | None = None,
    livetiming_url: str | None = None,
    schedule_url: str | None = None,
    **jolpica_config,
) -> dict[str, dg.ConfigurableResource]:
    """The resource set; tests pass explicit URLs, production leaves them to the environment."""
    warehouse = WarehouseResource(url=warehouse_url)
    blob_store = BlobStoreResource(url=blob_url)
    return {
        "warehouse": warehouse,
        "blob_store": blob_store,
        "jolpica": JolpicaResource(archive=blob_store, warehouse=warehouse, base_url=jolpica_url, **jolpica_config),
        "fastf1": FastF1Resource(livetiming_url=livetiming_url, schedule_url=schedule_url, jolpica_url=jolpica_url),
    }


season_calendar_job = dg.define_asset_job(
    "season_calendar",
    selection=dg.AssetSelection.assets(ingest_jolpica.raw_races),
    partitions_def=seasons_partitions,
    description="Fetch a season's schedule and register its races as `races` partitions.",
    tags={"dagster/max_runtime": 900},  # enforced by run monitoring (dagster.yaml)
)

race_pipeline_job = dg.define_asset_job(
    "race_pipeline",
    selection=dg.AssetSelection.assets(*ingest_jolpica.RACE_ASSETS, *ingest_fastf1.ASSETS, *features.ASSETS),
    partitions_def=races_partitions,
    description="Everything per race: the main job. Backfill a season with the range 2023-01...2023-22.",
    tags={"dagster/max_runtime": 3600},  # a race at a 200/h budget needs ~20 requests; FastF1 minutes
)

defs = dg.Definitions(
    # automation policy: features (and ML) AutomationCondition.eager(); see sensors.automation_policy
    assets=dg.map_asset_specs(
        sensors.automation_policy, [*ingest_jolpica.ASSETS, *ingest_fastf1.ASSETS, *features.ASSETS, *ml.ASSETS]
    ),
    asset_checks=[*features.CHECKS, *ml.CHECKS],
    jobs=[season_calendar_job, race_pipeline_job],
    sensors=sensors.SENSORS,
    schedules=schedules.SCHEDULES,
    resources=build_resources(),
    executor=audit.audited_executor,
)

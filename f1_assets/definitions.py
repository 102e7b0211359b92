"""The Definitions that `dagster dev`, `dg` and the tests load: assets, checks, resources, jobs.

Resources are built without URLs: each reads its environment variable when a run uses it
(F1_WAREHOUSE_URL, F1_BLOB_URL, F1_JOLPICA_URL, …; unset = the embedded default under F1_HOME), and
its config names the variable (`url_env_var`; `resources/storage.py` says why not `dg.EnvVar`), never
a URL, let alone a password. The catalog (owners, tags, code versions, kinds of the configured
storage, code references; `catalog.py`) is applied here to every asset, then the automation policy
(`sensors.automation_policy`). Jobs take their partitions from the assets they select. Every
launched run goes through `audit.audited_executor` (its pipeline_audit_log rows). JSON log lines
come from the instance (`dagster.yaml`, `python_logs`): a `loggers=` entry here would only apply to
runs whose run config names it.
"""

from __future__ import annotations

import warnings

import dagster as dg

from f1_assets import alerts, audit, catalog, freshness, schedules, sensors
from f1_assets.assets import features, ingest_dump, ingest_fastf1, ingest_jolpica, ml
from f1_assets.checks import rules
from f1_assets.io_managers import ParquetIOManager, WarehouseIOManager
from f1_assets.resources.fastf1 import FastF1Resource
from f1_assets.resources.jolpica import JolpicaResource
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource


def _given(**fields: str | None) -> dict[str, str]:
    return {name: value for name, value in fields.items() if value is not None}


def build_resources(
    warehouse_url: str | None = None,
    blob_url: str | None = None,
    jolpica_url: str | None = None,
    livetiming_url: str | None = None,
    schedule_url: str | None = None,
    **jolpica_config,
) -> dict[str, dg.ConfigurableResource]:
    """The resource set; tests pass explicit URLs, production leaves them to the environment.

    A URL not given is left out (not set to None), so the config Dagster shows holds no `url: null`."""
    warehouse = WarehouseResource(**_given(url=warehouse_url))
    blob_store = BlobStoreResource(**_given(url=blob_url))
    return {
        "warehouse": warehouse,
        "blob_store": blob_store,
        "jolpica": JolpicaResource(archive=blob_store, warehouse=warehouse, **_given(base_url=jolpica_url),
                                   **jolpica_config),
        "fastf1": FastF1Resource(**_given(livetiming_url=livetiming_url, schedule_url=schedule_url,
                                          jolpica_url=jolpica_url)),
        # the only owners of asset storage: tables in the warehouse, race Parquet in the blob store
        "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
        "parquet_io_manager": ParquetIOManager(blob_store=blob_store),
    }


season_calendar_job = dg.define_asset_job(
    "season_calendar",
    selection=dg.AssetSelection.assets(ingest_jolpica.raw_races),
    description="Fetch a season's schedule and register its races as `races` partitions.",
    tags={"dagster/max_runtime": 900},  # enforced by run monitoring (dagster.yaml)
)

# race_pipeline runs one race per run (the sensors, `f1-assets race`); its Jolpica assets and lap_features
# also run many races per run (their backfill policy, the race_tables job), its FastF1 assets one at a time.
# Dagster warns about the mix when it builds the job; the mix is intended.
warnings.filterwarnings("ignore", message="Found multiple backfill policies", category=UserWarning)
warnings.filterwarnings("ignore", message="Asset job .* materializes assets with varying BackfillPolicies",
                        category=UserWarning)

race_pipeline_job = dg.define_asset_job(
    "race_pipeline",
    selection=dg.AssetSelection.assets(*ingest_jolpica.RACE_ASSETS, *ingest_jolpica.STANDINGS_ASSETS,
                                       *ingest_fastf1.ASSETS, *features.ASSETS),
    description="Everything per race: the main job. Backfill a season with the range 2023-01...2023-22.",
    # a race at a 200/h budget needs ~20 requests; FastF1 minutes. The SLA alert (alerts.py) warns at 45 min,
    # before run monitoring kills the run at 1 h (its FastF1 assets alone would give it the 6 h SLA).
    tags={"dagster/max_runtime": 3600, "f1/sla_seconds": 2700},
)

jolpica_dump_job = dg.define_asset_job(
    "load_jolpica_dump",
    selection=dg.AssetSelection.assets(*ingest_dump.ASSETS),
    description="Download (or read), check and archive Jolpica's CSV database dump; register its races.",
    tags={"dagster/max_runtime": 3600},
)

race_tables_job = dg.define_asset_job(
    "race_tables",
    selection=dg.AssetSelection.assets(*ingest_jolpica.RACE_ASSETS, *ingest_jolpica.STANDINGS_ASSETS,
                                       features.lap_features),
    description="The Jolpica race tables and lap_features for a range of races in one run (each asset handles "
    "every race of the range in one step and writes them in one transaction): what `f1-assets history` and "
    "`f1-assets season` run; backfills of these assets run the same way (a season per run).",
    tags={"dagster/max_runtime": 4 * 3600, "f1/sla_seconds": 4 * 3600},  # a history run of 400 races may take hours
)

ASSET_MODULES = (ingest_dump, ingest_jolpica, ingest_fastf1, features, ml)


def build_definitions(storage: catalog.Storage | None = None) -> dg.Definitions:
    """The code location; `storage` (default: what the environment configures now) gives the kinds."""
    assets = catalog.catalogued(ASSET_MODULES, storage or catalog.configured_storage())
    return dg.Definitions(
        # automation policy: features (and ML) AutomationCondition.eager(); see sensors.automation_policy
        assets=dg.map_asset_specs(sensors.automation_policy, assets),
        # + Dagster's column-schema-change checks (WARN) on every table asset (schema drift)
        asset_checks=[*features.CHECKS, *ml.CHECKS, *freshness.CHECKS, *rules.schema_drift_checks(assets)],
        jobs=[season_calendar_job, race_pipeline_job, jolpica_dump_job, race_tables_job],
        sensors=[*sensors.SENSORS, *freshness.SENSORS, *alerts.SENSORS],
        schedules=schedules.SCHEDULES,
        resources=build_resources(),
        executor=audit.audited_executor,
    )


defs = build_definitions()

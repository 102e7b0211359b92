"""The production instance (`deploy/dagster.yaml`) and the Helm values (`deploy/values.yaml`), proven here.

Loaded by pytest only. `deploy/dagster.yaml` is copied as it is into a temporary DAGSTER_HOME, its
environment variables pointed at real parts on loopback: a fresh PostgreSQL database made for the test
(run, event log and schedule storage; dropped at the end) and the GCS emulator (`gcs_emulator.py`: the
compute-log bucket). A real race run (2023-01 from the Jolpica replay server) executes on that instance
with the multiprocess executor, so each step's stdout/stderr is captured and uploaded to the bucket; the
run's events are then read back from PostgreSQL (SQL on `event_logs`, and through the instance) and a
compute-log object back from the bucket.

What cannot run here is a Kubernetes cluster. The K8sRunLauncher is constructed for real from the file's
stanza: unchanged, it passes Dagster's config validation and stops exactly where it asks the pod for its
in-cluster service account; with one stand-in (named so below: a kubeconfig naming a closed loopback
port, instead of the in-cluster credentials) the launcher object is built. No Kubernetes API call is made.

`deploy/values.yaml` is checked against the value names of the official `dagster` Helm chart (see
`CHART_VALUE_PATHS` for the source and what stays unverified) and against `deploy/dagster.yaml`: the
instance the chart renders from the values must carry the same settings as the file.
"""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import psycopg
import pytest
import yaml
from google.cloud import storage

from f1_assets import definitions
from f1_assets.assets import features, ingest_jolpica
from f1_assets_tests.conftest import PG_BASE
from f1_assets_tests.gcs_emulator import BUCKET, gcs_emulator
from f1_assets_tests.helpers import materialize_calendar, resources

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
RACE = "2023-01"
# the race assets of race_pipeline that the Jolpica replay serves (its FastF1 assets need live timing)
RACE_KEYS = [a.key for a in (*ingest_jolpica.RACE_ASSETS, features.lap_features)]


def race_pipeline() -> dg.JobDefinition:
    """The code location's `race_pipeline` job, reconstructable in each step process."""
    return definitions.defs.resolve_job_def("race_pipeline")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def deploy_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the instance's storage, dropped afterwards."""
    name = f"f1_deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def deploy_env(deploy_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """DAGSTER_HOME holding deploy/dagster.yaml byte for byte, its variables set to loopback parts."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    pg = psycopg.conninfo.conninfo_to_dict(PG_BASE)
    for name, value in {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": pg.get("host", "127.0.0.1"),
        "DAGSTER_PG_DB": deploy_database,
        "DAGSTER_PG_USER": pg.get("user", "postgres"),
        # trust auth on the test server ignores it; the file requires the variable
        "DAGSTER_PG_PASSWORD": "unused-under-trust-auth",
        "F1_COMPUTE_LOG_BUCKET": BUCKET,
        "DAGSTER_K8S_NAMESPACE": "f1-assets-test",
    }.items():
        monkeypatch.setenv(name, value)
    with gcs_emulator():
        yield home


def _settings(home: Path) -> dict[str, Any]:
    return yaml.safe_load((home / "dagster.yaml").read_text())


def test_instance_from_deploy_yaml_runs_a_race_into_postgres_and_the_bucket(
    deploy_env: Path, deploy_database: str, replay_server, pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    assert (deploy_env / "dagster.yaml").read_bytes() == (DEPLOY / "dagster.yaml").read_bytes()
    instance = dg.DagsterInstance.get()  # from DAGSTER_HOME, as every production process loads it

    # storage, coordinator, concurrency and monitoring as the file declares them
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(instance.compute_log_manager).__name__ == "GCSComputeLogManager"
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    concurrency = instance.get_concurrency_config()
    assert concurrency.pool_config.default_pool_limit == 1
    assert concurrency.pool_config.pool_granularity.value == "op"
    assert concurrency.run_queue_config.max_concurrent_runs == 8
    monitoring = instance.run_monitoring_settings
    assert monitoring["enabled"] and monitoring["max_runtime_seconds"] == 7200
    assert monitoring["free_slots_after_run_end_seconds"] == 60

    # the race: its calendar first (registers the races partitions), then race_pipeline's race assets for
    # 2023-01 in a multiprocess run, which is what captures compute logs (one process per step)
    blobs = tmp_path / "blobs"
    for name, value in {"F1_HOME": str(tmp_path / "f1_home"), "F1_WAREHOUSE_URL": pg_url,
                        "F1_BLOB_URL": str(blobs), "F1_JOLPICA_URL": replay_server.base_url}.items():
        monkeypatch.setenv(name, value)
    materialize_calendar(instance, 2023, resources(pg_url, str(blobs), replay_server.base_url), prefetch=False)
    assert RACE in instance.get_dynamic_partitions("races")
    with dg.execute_job(dg.reconstructable(race_pipeline), instance=instance, asset_selection=RACE_KEYS,
                        tags={"dagster/partition": RACE},
                        run_config={"execution": {"config": {"in_process": {}}}}) as result:
        assert result.success
        run_id = result.run_id
        materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == set(RACE_KEYS)

    # the run's events, straight from PostgreSQL and through the instance
    pg = psycopg.conninfo.conninfo_to_dict(PG_BASE)
    with psycopg.connect(**{**pg, "dbname": deploy_database}) as conn:
        sql_events = conn.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", [run_id]).fetchone()[0]
        sql_mats = conn.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = "
                                "'ASSET_MATERIALIZATION'", [run_id]).fetchone()[0]
    records = instance.all_logs(run_id)
    assert sql_events == len(records) > 0
    assert sql_mats == len(RACE_KEYS)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS

    # the compute logs, from the bucket: the run's captured stderr holds the lines its steps logged
    client = storage.Client(project="test")  # anonymous: STORAGE_EMULATOR_HOST is set
    objects = list(client.list_blobs(BUCKET, prefix="dagster-compute-logs/"))
    of_run = [b for b in objects if run_id in b.name]
    assert of_run, [b.name for b in objects]
    logged = "".join(b.download_as_bytes().decode() for b in of_run if b.name.endswith(".err"))
    assert "raw_laps - 2023/1/laps: page 11 of 11" in logged
    assert "lap_features 2023-01: 1055 rows" in logged
    assert instance.get_settings("telemetry") == {"enabled": False}


def _kubeconfig(path: Path) -> Path:
    """STAND-IN for the in-cluster service account (a pod's token and CA): a kubeconfig naming a closed
    port on 127.0.0.1. Only the client's configuration is built from it; nothing connects."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": f"https://127.0.0.1:{_closed_port()}"}}],
        "users": [{"name": "none", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
    }))
    return path


def test_k8s_run_launcher_stanza_is_valid_and_builds_a_launcher(deploy_env: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    # as written: Dagster validates the stanza against K8sRunLauncher.config_type() (a missing or misspelt
    # key fails there, with DagsterInvalidConfigError), then the launcher asks for the pod's in-cluster
    # credentials, which only a Kubernetes pod has
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(kubernetes.config.ConfigException, match="Service host/port is not set"):
        dg.DagsterInstance.get().run_launcher  # noqa: B018 - the property constructs the launcher

    # with the stand-in for those credentials (the only change to the stanza): the launcher itself
    home = tmp_path / "home_with_kubeconfig"
    home.mkdir()
    settings = _settings(deploy_env)
    settings["run_launcher"]["config"].update(load_incluster_config=False,
                                              kubeconfig_file=str(_kubeconfig(tmp_path / "kubeconfig")))
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    launcher = dg.DagsterInstance.from_config(str(home)).run_launcher
    assert type(launcher).__name__ == "K8sRunLauncher"
    assert launcher.job_namespace == "f1-assets-test"  # from DAGSTER_K8S_NAMESPACE
    assert launcher.service_account_name == "f1-assets-runner"
    assert launcher.instance_config_map == "dagster-instance"
    assert launcher.postgres_password_secret == "dagster-postgresql-secret"
    assert launcher.env_config_maps == ["f1-assets-env"] and launcher.env_secrets == ["f1-assets-secrets"]
    assert launcher.dagster_home == "/opt/dagster/dagster_home"  # where run pods mount the instance


# ------------------------------------------------------------------------------------------- Helm values

# The value names of the official `dagster` chart that deploy/values.yaml may use. Source: the chart's own
# schema models and templates in dagster-io/dagster (helm/dagster/schema/schema/charts/dagster/values.py and
# subschema/{postgresql,run_launcher,compute_log_manager,python_logs,daemon,service_account,global_}.py,
# charts/dagster_user_deployments/subschema/user_deployments.py, templates/helpers/instance/*.tpl and
# templates/configmap-instance.yaml), read from the latest stored copies, not from a tagged 0.29.x chart:
# no chart ships with any pip package and there is no network here, so `helm lint`/`helm template` against
# the released chart stay unverified. `.*` marks a free-form subtree (the chart passes it through as YAML).
# The full values.schema.json is not vendored (it references Kubernetes schemas on the network).
CHART_VALUE_PATHS = frozenset({
    "global.postgresqlSecretName", "global.dagsterHome", "global.serviceAccountName",
    "serviceAccount.create", "serviceAccount.name", "serviceAccount.annotations.*",
    "dagsterWebserver.image.repository", "dagsterWebserver.image.tag", "dagsterWebserver.image.pullPolicy",
    "dagster-user-deployments.enabled", "dagster-user-deployments.enableSubchart",
    "dagster-user-deployments.deployments[].name", "dagster-user-deployments.deployments[].image.repository",
    "dagster-user-deployments.deployments[].image.tag", "dagster-user-deployments.deployments[].image.pullPolicy",
    "dagster-user-deployments.deployments[].dagsterApiGrpcArgs[]", "dagster-user-deployments.deployments[].port",
    "dagster-user-deployments.deployments[].envConfigMaps[].name",
    "dagster-user-deployments.deployments[].envSecrets[].name", "dagster-user-deployments.deployments[].env.*",
    "postgresql.enabled", "postgresql.postgresqlHost", "postgresql.postgresqlDatabase",
    "postgresql.postgresqlUsername", "postgresql.postgresqlScheme", "postgresql.postgresqlParams.*",
    "postgresql.service.port", "generatePostgresqlPasswordSecret",
    "runLauncher.type", "runLauncher.config.k8sRunLauncher.envConfigMaps[].name",
    "runLauncher.config.k8sRunLauncher.envSecrets[].name", "runLauncher.config.k8sRunLauncher.jobNamespace",
    "runLauncher.config.k8sRunLauncher.envVars[]", "runLauncher.config.k8sRunLauncher.resources.*",
    "computeLogManager.type", "computeLogManager.config.gcsComputeLogManager.bucket",
    "computeLogManager.config.gcsComputeLogManager.prefix",
    "computeLogManager.config.gcsComputeLogManager.uploadInterval",
    "pythonLogs.pythonLogLevel", "pythonLogs.managedPythonLoggers[]", "pythonLogs.dagsterHandlerConfig.*",
    "dagsterDaemon.image.repository", "dagsterDaemon.image.tag", "dagsterDaemon.image.pullPolicy",
    "dagsterDaemon.runCoordinator.enabled", "dagsterDaemon.runCoordinator.type",
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurrentRuns",
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[].*",
    # runMonitoring is free-form in the schema: these are the keys templates/configmap-instance.yaml reads
    "dagsterDaemon.runMonitoring.enabled", "dagsterDaemon.runMonitoring.startTimeoutSeconds",
    "dagsterDaemon.runMonitoring.cancelTimeoutSeconds", "dagsterDaemon.runMonitoring.maxResumeRunAttempts",
    "dagsterDaemon.runMonitoring.pollIntervalSeconds", "dagsterDaemon.runMonitoring.freeSlotsAfterRunEndSeconds",
    "telemetry.enabled", "additionalInstanceConfig.*",
})


def _leaf_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaf_paths(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for child in value:
            yield from _leaf_paths(child, f"{prefix}[]")
    else:
        yield prefix


def _undocumented(values: dict[str, Any]) -> list[str]:
    free = tuple(p[: -len("*")] for p in CHART_VALUE_PATHS if p.endswith(".*"))
    return sorted({p for p in _leaf_paths(values) if p not in CHART_VALUE_PATHS and not p.startswith(free)})


def _values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


def test_helm_values_use_only_documented_chart_value_names():
    values = _values()
    assert _undocumented(values) == []
    # the check bites: a misspelt name, a Dagster (snake_case) name and an unknown section are all refused
    wrong = {"dagsterDaemon": {"runCoordinator": {"config": {"queuedRunCoordinator": {"maxConcurentRuns": 8}}}},
             "computeLogManager": {"config": {"gcsComputeLogManager": {"bucket_name": "b"}}},
             "concurency": {"enabled": True}}
    assert _undocumented(wrong) == ["computeLogManager.config.gcsComputeLogManager.bucket_name", "concurency.enabled",
                                    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurentRuns"]


def _chart_rendered_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The instance sections the chart renders from `values`, key for key as its templates
    (templates/helpers/instance/*.tpl, configmap-instance.yaml) write them; the storage and run launcher
    sections are left to the tests above."""
    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    monitoring = daemon["runMonitoring"]
    gcs = values["computeLogManager"]["config"]["gcsComputeLogManager"]
    logs = values["pythonLogs"]
    rendered: dict[str, Any] = {}
    if coordinator["enabled"]:  # the chart's QueuedRunCoordinator block (-1 when maxConcurrentRuns is unset)
        queued = coordinator.get("config", {}).get("queuedRunCoordinator", {})
        rendered["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                                       "config": {"max_concurrent_runs": queued.get("maxConcurrentRuns", -1)}}
    return {
        **rendered,
        "compute_logs": {"module": "dagster_gcp.gcs.compute_log_manager", "class": "GCSComputeLogManager",
                         "config": {"bucket": gcs["bucket"], "prefix": gcs["prefix"]}},
        "python_logs": {"dagster_handler_config": logs["dagsterHandlerConfig"],
                        "managed_python_loggers": logs["managedPythonLoggers"]},
        "run_monitoring": {"enabled": monitoring["enabled"], "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                           "poll_interval_seconds": monitoring["pollIntervalSeconds"],
                           "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        **values["additionalInstanceConfig"],
    }


def test_helm_values_render_the_settings_of_deploy_dagster_yaml(deploy_env: Path, tmp_path: Path):
    values, deploy = _values(), _settings(deploy_env)
    rendered = _chart_rendered_instance(values)
    # the same settings as deploy/dagster.yaml, where both say them
    assert rendered["python_logs"] == deploy["python_logs"]
    assert rendered["compute_logs"]["config"]["prefix"] == deploy["compute_logs"]["config"]["prefix"]
    assert rendered["run_coordinator"] == deploy["run_coordinator"]
    assert rendered["concurrency"] == deploy["concurrency"]
    for key, value in rendered["run_monitoring"].items():
        assert deploy["run_monitoring"][key] == value, key
    assert rendered["telemetry"] == deploy["telemetry"]
    launcher = deploy["run_launcher"]["config"]
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert [m["name"] for m in k8s["envConfigMaps"]] == launcher["env_config_maps"]
    assert [s["name"] for s in k8s["envSecrets"]] == launcher["env_secrets"]
    assert values["serviceAccount"]["name"] == launcher["service_account_name"]
    assert values["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    assert values["postgresql"]["postgresqlScheme"] == deploy["storage"]["postgres"]["postgres_db"]["scheme"]

    # and Dagster loads what the chart renders: on top of this file's storage (the fresh database), with
    # the values' bucket made in the emulator (the compute log manager checks that it exists)
    storage.Client(project="test").create_bucket(rendered["compute_logs"]["config"]["bucket"])
    home = tmp_path / "helm_rendered"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": deploy["storage"], **rendered}))
    instance = dg.DagsterInstance.from_config(str(home))
    concurrency = instance.get_concurrency_config()
    assert concurrency.run_queue_config.max_concurrent_runs == 8
    assert concurrency.pool_config.default_pool_limit == 1
    assert type(instance.compute_log_manager).__name__ == "GCSComputeLogManager"
    # why values.yaml turns the chart's run coordinator off: the run limit in the chart's QueuedRunCoordinator
    # values and only the pools in additionalInstanceConfig render an instance Dagster refuses
    chart_queue = _chart_rendered_instance({
        **values, "additionalInstanceConfig": {"concurrency": {"pools": deploy["concurrency"]["pools"]}},
        "dagsterDaemon": {**values["dagsterDaemon"], "runCoordinator": {
            "enabled": True, "config": {"queuedRunCoordinator": {"maxConcurrentRuns": 8}}}}})
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": deploy["storage"], **chart_queue}))
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurrent_runs"):
        dg.DagsterInstance.from_config(str(home))

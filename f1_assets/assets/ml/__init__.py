"""ML-facing assets: train/validation/test split views over lap_features, and driver profiles.

- `split_views` (one step, three assets `train`, `validation`, `test`): `CREATE OR REPLACE VIEW` over
  `lap_features` by `race_date`, all three in one transaction, on PostgreSQL and DuckDB. Boundaries
  are run config (`SplitConfig`, defaults train <= 2022-12-31, validation 2023-01-01..2023-06-30,
  test >= 2023-07-01), validated as ISO dates and strictly ordered; identifiers are quoted by the
  driver, dates rendered as typed literals (`psycopg.sql.Literal` on PostgreSQL, `DATE 'YYYY-MM-DD'`
  from a validated date on DuckDB). The view SQL lives only in `split_view_sql`.
- `split_checks` (asset checks, `CHECKS`): read the views as they are *now* and compare them with the
  boundaries of the latest materialization of `train`: train never passes its end, validation stays
  inside its range, test never starts early, no race in two splits, and every lap_features row in
  exactly one split (rows outside all splits are a WARN with their race keys). The ERROR outcomes
  are blocking: `driver_profiles` is not built in a run whose split checks failed.
- `driver_profiles`: reads the `train` view only (and the raw_results rows of the races in it),
  computes the scores of `f1_assets.transforms.profiles`, replaces the whole table in one
  transaction, and attaches a consistency-vs-aggression PNG to its metadata.
- `era_statistics`, `standardised_telemetry_features`, `circuit_versions` (`eras.py`): per-era statistics of
  the telemetry features (train split only), the per-era standardised view over telemetry_features, and
  circuit layout versions from telemetry lap distances.
"""

from f1_assets.assets.ml.assets import driver_profiles, split_views
from f1_assets.assets.ml.checks import SPLIT_CHECK_SPECS, evaluate_split_checks, split_checks
from f1_assets.assets.ml.config import ProfileConfig, SplitBounds, SplitConfig, parse_date
from f1_assets.assets.ml.eras import circuit_versions, era_statistics, standardised_telemetry_features
from f1_assets.assets.ml.sql import create_split_views, split_view_sql, view_exists

ASSETS = [split_views, driver_profiles, era_statistics, standardised_telemetry_features, circuit_versions]
CHECKS = [split_checks]

__all__ = ["ASSETS", "CHECKS", "SPLIT_CHECK_SPECS", "ProfileConfig", "SplitBounds", "SplitConfig",
           "create_split_views", "driver_profiles", "evaluate_split_checks", "parse_date", "split_checks",
           "split_view_sql", "split_views", "view_exists"]

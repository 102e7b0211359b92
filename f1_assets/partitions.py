"""Partition definitions and the one race-key parser.

`races` keys are `YYYY-RR` (zero-padded round). Every race key that reaches a URL or SQL goes
through `parse_race_key` first; nothing else splits a key.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from typing import NamedTuple

import dagster as dg

FIRST_SEASON = 1950
MAX_ROUND = 30
# Races per run of a backfill of race assets (a season): one process and step per asset for all of them
RACES_PER_RUN = 25  # the longest season so far has 24 rounds; leave room, reject nonsense

_RACE_KEY = re.compile(r"([0-9]{4})-([0-9]{2})")


class InvalidPartitionKey(dg.Failure, ValueError):
    """A partition key that can never be right (`2023-1`, `1949-01`, `2023-31`): a ValueError for callers
    outside Dagster (the CLI exits 2), and a `dg.Failure(allow_retries=False)` inside a step, so the
    RetryPolicy does not retry it (retrying cannot fix a key)."""

    def __init__(self, message: str):
        super().__init__(description=message, allow_retries=False)


class RaceKey(NamedTuple):
    season: int
    round: int

    @property
    def key(self) -> str:
        return race_key(self.season, self.round)


def current_season() -> int:
    return dt.datetime.now(dt.UTC).year


def parse_season(value: str | int) -> int:
    text = str(value)
    if not re.fullmatch(r"[0-9]{4}", text):
        raise InvalidPartitionKey(f"invalid season {value!r}: expected a four-digit year")
    season = int(text)
    if not FIRST_SEASON <= season <= current_season():  # the range of the `seasons` partitions
        raise InvalidPartitionKey(f"invalid season {value!r}: outside {FIRST_SEASON}..{current_season()}")
    return season


def parse_race_key(key: str) -> RaceKey:
    """Validate a `races` partition key and split it; raises ValueError naming the key."""
    match = _RACE_KEY.fullmatch(key) if isinstance(key, str) else None
    if not match:
        raise InvalidPartitionKey(f"invalid race partition key {key!r}: expected YYYY-RR, e.g. 2023-05")
    season = parse_season(match.group(1))
    rnd = int(match.group(2))
    if not 1 <= rnd <= MAX_ROUND:
        raise InvalidPartitionKey(f"invalid race partition key {key!r}: round must be 01..{MAX_ROUND}")
    return RaceKey(season, rnd)


def race_key(season: int, rnd: int) -> str:
    key = f"{season:04d}-{rnd:02d}"
    parse_race_key(key)
    return key


seasons_partitions = dg.StaticPartitionsDefinition(
    [str(year) for year in range(FIRST_SEASON, current_season() + 1)]
)
races_partitions = dg.DynamicPartitionsDefinition(name="races")


def batched_asset(max_partitions_per_run: int, **kwargs):
    """`dg.asset(**kwargs)` whose backfills run up to `max_partitions_per_run` partitions per run (the asset
    handles `context.partition_keys`). `backfill_policy` is beta in Dagster 1.13: its BetaWarning is
    silenced here, and only here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.asset(backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=max_partitions_per_run),
                        **kwargs)

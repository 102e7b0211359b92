"""The one race-key parser: valid keys pass, everything else is rejected before any URL or SQL."""

import pytest

from f1_assets.partitions import FIRST_SEASON, current_season, parse_race_key, race_key, seasons_partitions


@pytest.mark.parametrize("key,expected", [("2023-05", (2023, 5)), ("1950-01", (1950, 1)), ("2024-24", (2024, 24))])
def test_valid_keys(key, expected):
    assert tuple(parse_race_key(key)) == expected
    assert parse_race_key(key).key == key


@pytest.mark.parametrize(
    "key",
    ["2023-5", "2023-00", "1949-01", "2023-01; DROP TABLE raw_laps", "2023-1a", "23-01", "2023_01", "", " 2023-01",
     "2023-01\n", "2023-31", "9999-01", "２０２３-01", None, 2023],
)
def test_invalid_keys_are_rejected_naming_the_key(key):
    with pytest.raises(ValueError, match="invalid"):
        parse_race_key(key)


def test_race_key_round_trips_and_seasons_cover_history():
    assert race_key(2023, 5) == "2023-05"
    keys = seasons_partitions.get_partition_keys()
    assert keys[0] == str(FIRST_SEASON) and keys[-1] == str(current_season())

"""Weather per lap and its bins (issue 14), and sector times in lap_features.

- The pure transform (`f1_assets.transforms.weather`) on REAL weather streams: the recorded
  `WeatherData.jsonStream` of three races, parsed by FastF1's own code through `FastF1Resource` and the
  local recorded-upstreams server (those races have no TimingData, so their laps are windows made here).
  No recorded stream has rain (every Rainfall is "0"): rain is a SYNTHETIC stretch spliced into the real
  2022 Bahrain stream (its Rainfall "0" → "1" on the lines in a time range), served by the same server
  and parsed by FastF1.
- Unreadable values: the same real stream with SYNTHETIC junk spliced in (AirTemp "n/a", Rainfall "?", a
  missing key), served by the same server: FastF1 makes 0.0 / False of them, the resource NaN / unknown.
- The fallback's age limit on a SYNTHETIC stream with a 20-minute gap (known answers).
- Baku 2018 through the assets (fastf1_laps → lap_features, DuckDB): no weather stream is recorded for
  it, so the weather is NULL, the bins UNKNOWN and both assets say "no weather stream recorded"; the run
  succeeds. Its sector times in lap_features equal FastF1's non-null sector times, counted on FastF1's
  laps loaded independently. Jolpica's laps of Baku 2018 are not recorded (only lap 1): its raw_laps
  here are FastF1's own laps (lap time, position), which is what makes every FastF1 lap join a row.
"""

from __future__ import annotations

import json
import re

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from f1_assets.assets import features, ingest_fastf1
from f1_assets.definitions import build_resources
from f1_assets.partitions import parse_race_key
from f1_assets.resources.fastf1 import FastF1Resource
from f1_assets.resources.storage import WarehouseResource
from f1_assets.tables import table
from f1_assets.transforms import jolpica
from f1_assets.transforms.features import build_lap_features
from f1_assets.transforms.weather import (
    DRY,
    KNOWN_SHARE,
    MIXED,
    UNKNOWN,
    WEATHER_COLUMNS,
    WEATHER_MAX_AGE,
    WET,
    lap_weather,
    race_weather_bin,
    weather_bin,
    weather_from_stream,
)
from f1_assets_tests import helpers
from f1_assets_tests.helpers import replay_pages
from f1_assets_tests.test_fastf1_assets import jolpica_results

pytestmark = pytest.mark.shared_data

# recorded race sessions with a WeatherData stream: race key → (session path, dry by every sample)
STREAMS = {
    "2020-08": "2020/2020-09-06_Italian_Grand_Prix/2020-09-06_Race/",
    "2021-21": "2021/2021-12-05_Saudi_Arabian_Grand_Prix/2021-12-05_Race/",
    "2022-01": "2022/2022-03-20_Bahrain_Grand_Prix/2022-03-20_Race/",
}
BAKU = parse_race_key("2018-04")
LAP = pd.Timedelta(seconds=95)  # the windows cut from a stream: about a lap of those circuits
_TIME = re.compile(r"^(\d+):(\d\d):(\d\d\.\d+)")


def resource(upstreams, cache_dir) -> FastF1Resource:
    return FastF1Resource(livetiming_url=upstreams.livetiming_url, schedule_url=upstreams.schedule_url,
                          jolpica_url=upstreams.jolpica_url, cache_dir=str(cache_dir))


def stream_lines(shared_data, key: str) -> list[tuple[float, dict]]:
    """The stream's lines read independently of FastF1: (seconds since the stream began, values)."""
    text = (shared_data / "livetiming" / STREAMS[key] / "WeatherData.jsonStream").read_text(encoding="utf-8-sig")
    out = []
    for line in text.splitlines():
        match = _TIME.match(line)
        if match:
            h, m, s = match.groups()
            out.append((int(h) * 3600 + int(m) * 60 + float(s), json.loads(line[match.end():])))
    return out


def windows(weather: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Consecutive 95 s laps from the first to the last sample."""
    starts = pd.Series(pd.timedelta_range(weather["Time"].min(), weather["Time"].max(), freq=LAP))
    return starts, starts + LAP


@pytest.fixture(scope="module")
def loaded(recorded_upstreams, tmp_path_factory):
    fastf1 = resource(recorded_upstreams, tmp_path_factory.mktemp("fastf1-cache"))
    return {key: fastf1.load_race(parse_race_key(key)) for key in STREAMS}


@pytest.mark.parametrize("key", list(STREAMS))
def test_real_stream_parsed_and_binned_dry(key, loaded, shared_data):
    race = loaded[key]
    weather = race.weather
    lines = stream_lines(shared_data, key)
    assert race.weather_reason is None and len(weather) == len(lines) > 60  # about one sample a minute
    # FastF1's samples are the file's lines: same values, same spacing
    assert weather["AirTemp"].tolist() == [float(v["AirTemp"]) for _, v in lines]
    assert weather["Rainfall"].tolist() == [v["Rainfall"] == "1" for _, v in lines] == [False] * len(lines)
    offsets = (weather["Time"] - weather["Time"].iloc[0]).dt.total_seconds().to_numpy()
    np.testing.assert_allclose(offsets, [t - lines[0][0] for t, _ in lines], atol=1e-3)

    starts, ends = windows(weather)
    per_lap = lap_weather(starts, ends, weather)
    assert list(per_lap.columns) == WEATHER_COLUMNS and len(per_lap) == len(starts)
    assert per_lap.notna().all().all()  # every window has samples, or one before it
    assert set(weather_bin(per_lap["rainfall"])) == {DRY} and race_weather_bin(per_lap["rainfall"]) == DRY
    # a window holding samples i..j: their mean; a window between two samples: the one before
    t = weather["Time"]
    inside = (t >= starts[5]) & (t <= ends[5])
    assert inside.sum() >= 1
    assert per_lap.loc[5, "track_temp_c"] == pytest.approx(weather.loc[inside, "TrackTemp"].mean())
    gap_start = t.iloc[10] + pd.Timedelta(seconds=1)
    gap = lap_weather(pd.Series([gap_start]), pd.Series([gap_start + pd.Timedelta(seconds=20)]), weather)
    assert gap.loc[0, "air_temp_c"] == weather["AirTemp"].iloc[10]
    assert gap.loc[0, "humidity_pct"] == weather["Humidity"].iloc[10]


def test_synthetic_rain_spliced_into_a_real_stream(recorded_upstreams, shared_data, tmp_path):
    """SYNTHETIC rain: the real Bahrain 2022 stream with Rainfall "1" on its lines from 40 to 60 minutes
    (then from 0 to 120 minutes), served by the recorded-upstreams server, parsed by FastF1."""
    path = "/livetiming/static/" + STREAMS["2022-01"] + "WeatherData.jsonStream"
    original = (shared_data / "livetiming" / STREAMS["2022-01"] / "WeatherData.jsonStream").read_bytes()

    def splice(first_min: float, last_min: float) -> bytes:
        lines = original.decode("utf-8-sig").splitlines(keepends=True)
        out = []
        for line in lines:
            match = _TIME.match(line)
            if match:
                h, m, s = match.groups()
                minutes = int(h) * 60 + int(m) + float(s) / 60
                if first_min <= minutes <= last_min:
                    assert '"Rainfall":"0"' in line
                    line = line.replace('"Rainfall":"0"', '"Rainfall":"1"')
            out.append(line)
        return "".join(out).encode("utf-8-sig")

    recorded_upstreams.overrides[path] = splice(40, 60)
    try:
        weather = resource(recorded_upstreams, tmp_path / "a").load_race(parse_race_key("2022-01")).weather
        rainy = weather["Rainfall"]
        assert 15 <= rainy.sum() <= 22 and not rainy.iloc[:30].any()  # about one sample a minute for 20 minutes
        starts, ends = windows(weather)
        per_lap = lap_weather(starts, ends, weather)
        t = weather["Time"]
        # a lap is wet exactly when a rain sample falls within it, or (no sample within) the one before is rain
        expected = [bool(rainy[(t >= s) & (t <= e)].any()) if ((t >= s) & (t <= e)).any()
                    else bool(rainy[t <= e].iloc[-1]) for s, e in zip(starts, ends, strict=True)]
        assert per_lap["rainfall"].tolist() == expected and 10 <= sum(expected) < len(expected) / 2
        bins = weather_bin(per_lap["rainfall"])
        assert (bins == WET).sum() == sum(expected) and (bins == DRY).sum() == len(expected) - sum(expected)
        assert race_weather_bin(per_lap["rainfall"]) == MIXED

        recorded_upstreams.overrides[path] = splice(0, 120)  # rain on most of the race
        weather = resource(recorded_upstreams, tmp_path / "b").load_race(parse_race_key("2022-01")).weather
        starts, ends = windows(weather)
        per_lap = lap_weather(starts, ends, weather)
        assert 0.5 < per_lap["rainfall"].mean() < 1.0 and race_weather_bin(per_lap["rainfall"]) == WET
    finally:
        del recorded_upstreams.overrides[path]


def test_race_bin_needs_the_weather_of_most_laps(recorded_upstreams, shared_data, tmp_path):
    """The real Bahrain 2022 stream with its middle lines removed (the first 6 and the last 8 of 163 kept),
    served over HTTP: 12 of the 103 laps have a sample, the 91 in the gap have none. Rain in the gap would
    go unseen: the race is UNKNOWN, not Dry. With most of the laps covered again, it is Dry."""
    path = "/livetiming/static/" + STREAMS["2022-01"] + "WeatherData.jsonStream"
    lines = (shared_data / "livetiming" / STREAMS["2022-01"] / "WeatherData.jsonStream").read_bytes().decode(
        "utf-8-sig").splitlines(keepends=True)
    assert len(lines) == 163

    def per_lap_of(kept: list[str], cache: str) -> pd.DataFrame:
        recorded_upstreams.overrides[path] = "".join(kept).encode("utf-8-sig")
        weather = resource(recorded_upstreams, tmp_path / cache).load_race(parse_race_key("2022-01")).weather
        assert len(weather) == len(kept)
        return lap_weather(*windows(weather), weather)

    try:
        gap = per_lap_of(lines[:6] + lines[-8:], "gap")
        assert weather_bin(gap["rainfall"]).value_counts().to_dict() == {UNKNOWN: 91, DRY: 12}
        assert race_weather_bin(gap["rainfall"]) == UNKNOWN
        # the first 60 and the last 60 lines: the laps of the 43-line gap (about 43 min) are unknown, most known
        most = per_lap_of(lines[:60] + lines[-60:], "most")
        known = int(most["rainfall"].notna().sum())
        assert 0.5 * len(most) <= known < len(most) and race_weather_bin(most["rainfall"]) == DRY
    finally:
        del recorded_upstreams.overrides[path]


def test_race_bin_known_share_edges():
    """KNOWN_SHARE: half of the laps known is enough for a bin; one lap fewer is UNKNOWN."""
    assert KNOWN_SHARE == 0.5

    def laps(dry: int, wet: int, unknown: int) -> pd.Series:
        return pd.Series([False] * dry + [True] * wet + [None] * unknown, dtype="boolean")

    assert race_weather_bin(laps(5, 0, 5)) == DRY  # exactly half known
    assert race_weather_bin(laps(4, 0, 6)) == UNKNOWN  # 40 %
    assert race_weather_bin(laps(0, 5, 5)) == WET and race_weather_bin(laps(2, 3, 5)) == WET
    assert race_weather_bin(laps(3, 2, 5)) == MIXED and race_weather_bin(laps(3, 1, 6)) == UNKNOWN
    assert race_weather_bin(laps(0, 0, 3)) == UNKNOWN and race_weather_bin(laps(0, 0, 0)) == UNKNOWN
    assert race_weather_bin(laps(1, 0, 0)) == DRY and race_weather_bin(laps(0, 1, 1)) == WET
    # the lap bins do not depend on the share: only the race's does
    assert weather_bin(laps(1, 1, 1)).tolist() == [DRY, WET, UNKNOWN]


def test_edges_without_data():
    """No stream, a lap before the first sample, a lap without an end, wind across north."""
    ends = pd.Series(pd.to_timedelta(["00:10:00", "00:02:00", None]))
    starts = pd.Series(pd.to_timedelta(["00:08:30", "00:00:30", "00:09:00"]))
    none = lap_weather(starts, ends, None)
    assert none.isna().all().all() and set(weather_bin(none["rainfall"])) == {UNKNOWN}
    assert race_weather_bin(none["rainfall"]) == UNKNOWN
    samples = pd.DataFrame({
        "Time": pd.to_timedelta(["00:05:00", "00:09:00", "00:09:30"]), "AirTemp": [20.0, 21.0, 23.0],
        "TrackTemp": [30.0, 31.0, 33.0], "Humidity": [50.0, 51.0, 52.0], "Pressure": [1000.0] * 3,
        "Rainfall": [False, True, False], "WindSpeed": [1.0, 2.0, 3.0], "WindDirection": [300, 350, 10],
    })
    got = lap_weather(starts, ends, samples)
    assert got.loc[0, "air_temp_c"] == 22.0 and got.loc[0, "wind_speed_mps"] == 2.5
    assert got.loc[0, "wind_direction_deg"] == 0.0  # 350° and 10° average to north, not 180°
    assert bool(got.loc[0, "rainfall"]) is True  # one of its two samples had rain
    assert got.loc[1].isna().all() and got.loc[2].isna().all()  # nothing before its end / no end
    assert weather_bin(got["rainfall"]).tolist() == [WET, UNKNOWN, UNKNOWN]
    assert race_weather_bin(pd.Series([True, True, False, None], dtype="boolean")) == WET
    assert race_weather_bin(pd.Series([True, False, False], dtype="boolean")) == MIXED


def minutes(*values: float) -> pd.Series:
    return pd.Series(pd.to_timedelta(list(values), unit="min"))


def test_fallback_sample_has_an_age_limit():
    """SYNTHETIC stream, one sample a minute from 0 to 30 min, none until 50 min (a 20-minute gap), then one a
    minute again; rain on the 30-min sample only. A lap inside the gap has no weather (not the 30-min
    sample's); a lap within WEATHER_MAX_AGE (5 min) of that sample still takes it."""
    assert WEATHER_MAX_AGE == pd.Timedelta(minutes=5)
    t = [*range(0, 31), *range(50, 61)]
    samples = pd.DataFrame({
        "Time": minutes(*t), "AirTemp": [20.0 + m / 10 for m in t], "TrackTemp": 30.0, "Humidity": 50.0,
        "Pressure": 1000.0, "Rainfall": [m == 30 for m in t], "WindSpeed": 1.0, "WindDirection": 90,
    })
    # laps (start, end) in minutes: inside the gap; ending 2.5 / exactly 5 / just over 5 min after the last
    # sample; in the gap, then one ending on the 50-min sample; an ordinary lap with samples inside
    starts = minutes(40, 31, 33.5, 33.6, 45, 12.2)
    ends = minutes(41.5, 32.5, 35, 35 + 1e-6, 50, 13.7)
    got = lap_weather(starts, ends, samples)
    assert got.loc[0].isna().all()  # the 30-min sample is 11.5 min old: unknown, not its rain and 23.0 °C
    assert got.loc[1, "air_temp_c"] == 23.0 and bool(got.loc[1, "rainfall"]) is True
    assert got.loc[2, "air_temp_c"] == 23.0 and bool(got.loc[2, "rainfall"]) is True  # exactly 5 min: still in
    assert got.loc[3].isna().all()  # 5 min and a bit: out
    assert got.loc[4, "air_temp_c"] == 25.0 and bool(got.loc[4, "rainfall"]) is False  # its own sample at 50
    assert got.loc[5, "air_temp_c"] == pytest.approx(21.3) and bool(got.loc[5, "rainfall"]) is False
    assert weather_bin(got["rainfall"]).tolist() == [UNKNOWN, WET, WET, UNKNOWN, DRY, DRY]
    assert race_weather_bin(got["rainfall"]) == MIXED  # 2 wet of the 4 known laps: the unknown ones don't count


def test_unreadable_samples_are_skipped_per_channel():
    """A sample whose AirTemp / Rainfall did not read (NaN / NA) is no sample for that channel only: a lap
    holding just that sample takes the channel from the readable sample before it (within the age limit)."""
    samples = weather_from_stream([
        ["00:10:00.000", {"AirTemp": "21.0", "TrackTemp": "30.0", "Rainfall": "1", "Humidity": "50"}],
        ["00:11:00.000", {"AirTemp": "n/a", "TrackTemp": "31.0", "Rainfall": "?", "Humidity": "51"}],
        ["00:20:00.000", {"AirTemp": None, "TrackTemp": "32.0", "Rainfall": None, "Humidity": "52"}],
    ])
    got = lap_weather(minutes(10.5, 19.5), minutes(11.5, 20.5), samples)
    assert got.loc[0, "air_temp_c"] == 21.0 and got.loc[0, "track_temp_c"] == 31.0
    assert bool(got.loc[0, "rainfall"]) is True  # from 10:00, not a "Dry" made of "?"
    # 20:00 has no AirTemp / Rainfall and the readable ones (10:00) are 10 min old: unknown
    assert np.isnan(got.loc[1, "air_temp_c"]) and got.loc[1, "track_temp_c"] == 32.0
    assert pd.isna(got.loc[1, "rainfall"]) and weather_bin(got["rainfall"]).tolist() == [WET, UNKNOWN]


def test_weather_from_stream_reads_only_readable_values():
    got = weather_from_stream([
        ["00:01:00.000", {"AirTemp": "25.6", "Humidity": "17.0", "Pressure": "1010.2", "Rainfall": "0",
                          "TrackTemp": "32.3", "WindDirection": "346", "WindSpeed": "0.5"}],
        ["00:02:00.000", {"AirTemp": "", "Humidity": "inf", "Pressure": True, "Rainfall": "yes",
                          "TrackTemp": [1], "WindDirection": 12, "WindSpeed": 0.75}],
        ["00:03:00.000", {"Rainfall": "1"}],  # every other key missing
        ["00:04:00.000", "not a dict"], ["00:05:00.000"],  # FastF1 skips these lines too
        ["garbage-time", {"Rainfall": 0}],
    ])
    assert len(got) == 4 and list(got.columns) == ["Time", "AirTemp", "Humidity", "Pressure", "Rainfall",
                                                  "TrackTemp", "WindDirection", "WindSpeed"]
    assert got["Time"].iloc[:3].tolist() == pd.to_timedelta(["00:01:00", "00:02:00", "00:03:00"]).tolist()
    assert pd.isna(got["Time"].iloc[3])
    assert got.loc[0, "AirTemp"] == 25.6 and got.loc[0, "WindDirection"] == 346.0
    assert got.loc[1, ["AirTemp", "Humidity", "Pressure", "TrackTemp"]].isna().all()
    assert got.loc[1, "WindDirection"] == 12.0 and got.loc[1, "WindSpeed"] == 0.75
    assert got["Rainfall"].isna().tolist() == [False, True, False, False]  # "yes" is not a reading
    assert got["Rainfall"].fillna(False).tolist() == [False, False, True, False]  # "0", -, "1", 0
    assert got.loc[2].drop(["Time", "Rainfall"]).isna().all()


def test_unreadable_values_through_the_replay_server(recorded_upstreams, shared_data, tmp_path):
    """SYNTHETIC junk in the real Bahrain 2022 stream, served over HTTP: line 20's AirTemp "n/a" and Rainfall
    "?", line 21 without TrackTemp. FastF1's own frame has 0.0 °C / no rain / 0.0 there; the race's weather
    (the resource's) has NaN / unknown; then every Rainfall junk: the race is UNKNOWN, not Dry."""
    path = "/livetiming/static/" + STREAMS["2022-01"] + "WeatherData.jsonStream"
    lines = (shared_data / "livetiming" / STREAMS["2022-01"] / "WeatherData.jsonStream").read_bytes().decode(
        "utf-8-sig").splitlines(keepends=True)  # as recorded: "\r\n" ends each line (FastF1 splits on it)
    assert all(line.endswith("\r\n") for line in lines)
    assert '"AirTemp":"' in lines[20] and '"Rainfall":"0"' in lines[20] and '"TrackTemp":"' in lines[21]
    junk = list(lines)
    junk[20] = re.sub(r'"AirTemp":"[^"]*"', '"AirTemp":"n/a"', lines[20]).replace('"Rainfall":"0"', '"Rainfall":"?"')
    junk[21] = re.sub(r'"TrackTemp":"[^"]*",', "", lines[21])
    assert "TrackTemp" not in junk[21]
    recorded_upstreams.overrides[path] = "".join(junk).encode("utf-8-sig")
    try:
        race = resource(recorded_upstreams, tmp_path / "a").load_race(parse_race_key("2022-01"))
        fastf1_own = race.session.weather_data
        assert fastf1_own.loc[20, "AirTemp"] == 0.0 and not fastf1_own.loc[20, "Rainfall"]  # FastF1's coercion
        assert fastf1_own.loc[21, "TrackTemp"] == 0.0
        weather = race.weather
        assert len(weather) == len(fastf1_own) == len(lines)
        assert np.isnan(weather.loc[20, "AirTemp"]) and pd.isna(weather.loc[20, "Rainfall"])
        assert np.isnan(weather.loc[21, "TrackTemp"]) and weather.loc[21, "AirTemp"] == fastf1_own.loc[21, "AirTemp"]
        assert weather.loc[20, "Humidity"] == fastf1_own.loc[20, "Humidity"] > 0  # the rest of the line is kept
        readable = weather.drop(index=[20, 21])
        assert readable["AirTemp"].tolist() == fastf1_own.drop(index=[20, 21])["AirTemp"].tolist()
        assert (weather["Time"] == fastf1_own["Time"]).all()
        # a lap holding only sample 20: AirTemp from sample 19 (a minute before), not 0 °C
        t20 = weather.loc[20, "Time"]
        lap = lap_weather(pd.Series([t20 - pd.Timedelta(seconds=5)]), pd.Series([t20 + pd.Timedelta(seconds=5)]),
                          weather)
        assert lap.loc[0, "air_temp_c"] == weather.loc[19, "AirTemp"] > 10 and bool(lap.loc[0, "rainfall"]) is False

        recorded_upstreams.overrides[path] = "".join(line.replace('"Rainfall":"0"', '"Rainfall":"x"')
                                                     for line in lines).encode("utf-8-sig")
        race = resource(recorded_upstreams, tmp_path / "b").load_race(parse_race_key("2022-01"))
        assert not race.session.weather_data["Rainfall"].any()  # FastF1: "Dry" everywhere
        assert race.weather["Rainfall"].isna().all() and race.weather["AirTemp"].notna().all()
        starts, ends = windows(race.weather)
        per_lap = lap_weather(starts, ends, race.weather)
        assert per_lap["rainfall"].isna().all() and per_lap["air_temp_c"].notna().all()
        assert race_weather_bin(per_lap["rainfall"]) == UNKNOWN
    finally:
        del recorded_upstreams.overrides[path]


def test_null_value_does_not_lose_the_race_weather(recorded_upstreams, shared_data, tmp_path):
    """SYNTHETIC `"AirTemp": null` on line 30 of the real Bahrain 2022 stream, served over HTTP. FastF1's parser
    raises on float(None) and leaves its frame empty ("Failed to load weather data!"); the race keeps every
    sample, with that one AirTemp NaN, and says FastF1 failed. Then a stream of only such lines, which the
    strict parse keeps too, and an empty stream: the reason says which."""
    path = "/livetiming/static/" + STREAMS["2022-01"] + "WeatherData.jsonStream"
    raw = (shared_data / "livetiming" / STREAMS["2022-01"] / "WeatherData.jsonStream").read_bytes()
    lines = raw.decode("utf-8-sig").splitlines(keepends=True)  # "\r\n" kept: FastF1 splits on it
    assert all(line.endswith("\r\n") for line in lines) and '"AirTemp":"' in lines[30]
    nulled = list(lines)
    nulled[30] = re.sub(r'"AirTemp":"[^"]*"', '"AirTemp":null', lines[30])
    assert nulled[30] != lines[30] and nulled[31] == lines[31]
    recorded_upstreams.overrides[path] = "".join(nulled).encode("utf-8-sig")
    try:
        race = resource(recorded_upstreams, tmp_path / "a").load_race(parse_race_key("2022-01"))
        assert len(race._loaded("weather_data") or []) == 0  # FastF1 threw the whole stream away
        assert race.fastf1_weather_error.startswith("TypeError") and "NoneType" in race.fastf1_weather_error
        weather = race.weather
        assert len(weather) == len(lines) == 163 and race.weather_reason is None
        assert weather["AirTemp"].isna().tolist() == [i == 30 for i in range(len(lines))]
        assert weather["TrackTemp"].notna().all() and weather.loc[30, "Humidity"] > 0  # the rest of the line kept
        assert not weather["Rainfall"].isna().any() and not weather["Rainfall"].any()
        assert any("FastF1 could not parse the WeatherData stream (TypeError" in w and "163 samples" in w
                   for w in race.warnings)
        per_lap = lap_weather(*windows(weather), weather)
        assert per_lap["air_temp_c"].notna().all() and race_weather_bin(per_lap["rainfall"]) == DRY

        recorded_upstreams.overrides[path] = b""  # served, empty: FastF1 has nothing and no error
        race = resource(recorded_upstreams, tmp_path / "b").load_race(parse_race_key("2022-01"))
        assert len(race.weather) == 0 and race.fastf1_weather_error is None
        assert race.weather_reason == "the weather stream is empty or was not loaded"
    finally:
        del recorded_upstreams.overrides[path]


def test_fastf1_weather_failure_named_when_nothing_is_left():
    """When FastF1's parser failed and the stream could not be read again, the reason names FastF1's error."""
    from f1_assets.resources.fastf1 import LoadedRace

    race = LoadedRace(race=parse_race_key("2022-01"), session=None,
                      fastf1_weather_error="TypeError: float() argument must be a string or a real number")
    assert race.weather_reason == ("FastF1 could not parse the weather stream (TypeError: float() argument must "
                                   "be a string or a real number) and the stream could not be read again")
    assert LoadedRace(race=parse_race_key("2022-01"), session=None).weather_reason == (
        "the weather stream is empty or was not loaded")


def test_lap_features_carry_sectors_and_bin_weather(shared_data):
    """Recorded Jolpica Bahrain 2023 with a hand-made fastf1_laps frame for VER (car 1): sector times and
    (SYNTHETIC) rain on laps 20-40 flow into lap_features; the other cars' laps stay UNKNOWN."""
    replay = shared_data / "jolpica-replay"
    schedule = jolpica.parse_schedule(replay_pages(replay, "ergast@f1@2023.json"))
    race = schedule[schedule["round"] == 1].iloc[0]
    results = jolpica.parse_results(replay_pages(replay, "ergast@f1@2023@1@results.json"))
    laps = jolpica.parse_laps(replay_pages(replay, "ergast@f1@2023@1@laps.json"))
    stops = jolpica.parse_pit_stops(replay_pages(replay, "ergast@f1@2023@1@pitstops.json"))
    n = np.arange(1, 58)

    def fastf1(wet_laps: range, cars: pd.DataFrame | None = None) -> pd.DataFrame:
        """FastF1 laps 1..57 of VER (or of every car in `cars`: driver_number, driver_code), rain on `wet_laps`."""
        cars = pd.DataFrame({"driver_number": [1], "driver_code": ["VER"]}) if cars is None else cars
        frame = cars.merge(pd.DataFrame({"lap_number": n}), how="cross")
        lap = frame["lap_number"].to_numpy()
        return table("fastf1_laps").conform(frame.assign(
            season=2023, round=1, sector1_time_ms=np.where(lap == 1, None, 30_000 + lap),
            sector2_time_ms=40_000 + lap, sector3_time_ms=25_000 + lap, air_temp_c=25.0, track_temp_c=30.0 + lap / 10,
            humidity_pct=40.0, rainfall=np.isin(lap, wet_laps),
        ).reindex(columns=table("fastf1_laps").column_names))

    built = build_lap_features(race, results, laps, stops, fastf1(range(20, 41)))
    ver = built[built["driver_id"] == "max_verstappen"].set_index("lap_number")
    assert len(ver) == 57 and ver["sector1_ms"].isna().tolist() == [True] + [False] * 56
    assert ver.loc[57, "sector2_ms"] == 40_057 and ver.loc[10, "track_temp_c"] == pytest.approx(31.0)
    assert (ver.loc[20:40, "weather"] == WET).all() and set(ver.drop(range(20, 41))["weather"]) == {DRY}
    others = built[built["driver_id"] != "max_verstappen"]
    assert set(others["weather"]) == {UNKNOWN} and others["sector1_ms"].isna().all()
    # VER's 57 laps are the only ones of the race's 1055 with a known weather: too few for a race bin
    assert len(built) == 1055 and set(built["race_weather"]) == {UNKNOWN}
    cars = results[["driver_number", "driver_code"]].astype({"driver_number": "int64"})
    every = build_lap_features(race, results, laps, stops, fastf1(range(20, 41), cars))
    assert every["weather"].ne(UNKNOWN).all()  # every Jolpica lap has its FastF1 lap here
    assert set(every["race_weather"]) == {MIXED}  # rain on laps 20-40: some, not most
    assert set(build_lap_features(race, results, laps, stops, fastf1(range(5, 50), cars))["race_weather"]) == {WET}
    none = build_lap_features(race, results, laps, stops, None)
    assert set(none["weather"]) == set(none["race_weather"]) == {UNKNOWN} and none["sector2_ms"].isna().all()


def test_weather_ranges_flags_implausible_values():
    rows = table("fastf1_laps").empty_frame().reindex(range(3))
    rows = rows.assign(driver_code=["HAM", "HAM", "VET"], lap_number=[1, 2, 1], air_temp_c=[25.0, 25.0, None],
                       track_temp_c=[35.0, 95.0, None], humidity_pct=[50.0, 50.0, None])
    check = ingest_fastf1.weather_check(rows)
    assert not check.passed and check.severity == "WARN"
    assert check.metadata["failing_keys"] == ["HAM#2"] and check.metadata["failing_columns"] == {"track_temp_c": 1}
    assert ingest_fastf1.weather_check(rows.drop(index=1)).passed  # NULL weather is not judged


# ------------------------------------------------------------------------ Baku 2018 through the assets


def baku_inputs(shared_data, laps: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """raw_races/raw_results from the recorded Jolpica response; raw_laps from FastF1's laps (see above)."""
    page = json.loads((shared_data / "jolpica" / "2018@4@results.json").read_text())
    results = jolpica_results(shared_data)
    ids = dict(zip(results["driver_number"].astype(int).astype(str), results["driver_id"], strict=True))
    # as Jolpica publishes laps: not the lap a car retired on (FastF1 gives it no position), and a time
    # for every lap (FastF1 lacks LapTime on 5 laps under the safety car: its Time - LapStartTime there)
    laps = laps[laps["Position"].notna()]
    lap_time = laps["LapTime"].fillna(laps["Time"] - laps["LapStartTime"])
    raw_laps = pd.DataFrame({
        "season": 2018, "round": 4, "driver_id": laps["DriverNumber"].astype(str).map(ids),
        "lap_number": laps["LapNumber"].astype(int), "position": laps["Position"].astype(int),
        "lap_time_ms": (lap_time.dt.total_seconds() * 1000).round().astype("Int64"),
    })
    assert raw_laps["driver_id"].notna().all()
    return {"raw_races": jolpica.parse_schedule([("results", page)]), "raw_results": results,
            "raw_laps": table("raw_laps").conform(raw_laps), "raw_pit_stops": jolpica.parse_pit_stops([])}


def test_baku_sectors_and_unknown_weather_through_the_assets(recorded_upstreams, shared_data, tmp_path):
    fastf1 = resource(recorded_upstreams, tmp_path / "cache")
    laps = fastf1.load_race(BAKU).laps  # FastF1's laps, read independently of the assets
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    wh = WarehouseResource(url=url).get()
    for name, frame in baku_inputs(shared_data, laps).items():
        wh.replace_partitions(name, frame, [{"season": 2018}] if name == "raw_races" else [{"season": 2018,
                                                                                              "round": 4}])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("races", [BAKU.key])
    resources = {**build_resources(warehouse_url=url, blob_url=str(tmp_path / "blobs")), "fastf1": fastf1}
    result = helpers.materialize([ingest_fastf1.fastf1_laps, features.lap_features], partition_key=BAKU.key,
                                 instance=instance, resources=resources)
    assert result.success  # no weather stream: optional, like FastF1 itself

    laps_md = helpers.metadata_of(result, "fastf1_laps")
    assert laps_md["weather_reason"] == "no weather stream recorded" and laps_md["weather_samples"] == 0
    assert laps_md["laps_with_weather"] == 0 and laps_md["race_weather"] == UNKNOWN
    weather_check = helpers.check_results(result)[("fastf1_laps", "weather_ranges")]
    assert weather_check.passed and weather_check.metadata["rows_with_weather"].value == 0
    feat_md = helpers.metadata_of(result, "lap_features")
    assert feat_md["race_weather"] == UNKNOWN and feat_md["weather_reason"] == "no weather stream recorded"

    stored = wh.read_partition("lap_features", {"season": 2018, "round": 4})
    assert len(stored) == 841 and len(laps) == 848  # the 7 retirement laps are not in raw_laps
    for n in (1, 2, 3):
        expected = int(laps[f"Sector{n}Time"].notna().sum())
        assert int(stored[f"sector{n}_ms"].notna().sum()) == expected, n
    assert [int(laps[f"Sector{n}Time"].notna().sum()) for n in (1, 2, 3)] == [820, 841, 841]
    # the same values, lap by lap (FastF1's timedelta → whole ms)
    ham = laps[laps["Driver"] == "HAM"].set_index(laps[laps["Driver"] == "HAM"]["LapNumber"].astype(int))
    mine = stored[stored["driver_code"] == "HAM"].set_index("lap_number")
    got = mine["sector2_ms"].astype("Float64")
    want = (ham["Sector2Time"].dt.total_seconds() * 1000).round().reindex(got.index)
    assert got.fillna(-1).tolist() == want.fillna(-1).tolist()
    for column in ("air_temp_c", "track_temp_c", "humidity_pct", "rainfall"):
        assert stored[column].isna().all(), column
    assert set(stored["weather"]) == {UNKNOWN} and set(stored["race_weather"]) == {UNKNOWN}
    ff = wh.read_partition("fastf1_laps", {"season": 2018, "round": 4})
    assert ff[["air_temp_c", "pressure_mbar", "wind_direction_deg", "rainfall"]].isna().all().all()


def test_weather_warnings_of_the_load_reach_the_asset_metadata():
    """What the load said about the weather stream (e.g. FastF1's parse error, recovered) is in fastf1_laps'
    metadata; other warnings are not."""
    from f1_assets.assets.ingest_fastf1 import _weather_metadata
    from f1_assets.resources.fastf1 import LoadedRace

    said = "FastF1 could not parse the weather stream (TypeError: float()); 163 samples read strictly"
    loaded = LoadedRace(race=parse_race_key("2022-01"), session=None, warnings=[said, "Failed to load lap data"])
    assert _weather_metadata(loaded, pd.DataFrame())["weather_warnings"].value == [said]
    assert "weather_warnings" not in _weather_metadata(LoadedRace(race=parse_race_key("2022-01"), session=None),
                                                       pd.DataFrame())

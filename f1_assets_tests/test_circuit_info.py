"""Circuit info (corners) from a host that answers junk, answers nothing, or cannot be reached.

All on real HTTP / TCP servers on 127.0.0.1, through FastF1's own `Session.get_circuit_info()` on the recorded
2018 Baku race (circuit key 144), as `f1_assets_tests.test_kinematics` does for the good and 404 cases; the
circuit info JSON is the one synthesized there (FastF1's `fastf1.mvapi` shape).

- A junk HTTP 200 answer (HTML, JSON of another shape) is reported as not usable circuit info naming the URL,
  and is not served from FastF1's 12-hour HTTP cache on the next try: the host is asked again and its good
  answer gives the corners. (A good answer IS served from that cache: asked once for two calls.)
- A host that accepts connections and never answers costs one deadline (`CIRCUIT_INFO_TIMEOUT_SECONDS`,
  lowered for the test); the next race in the process does not connect to it again (counted on the server's
  accepted connections, no timing) and says why; another host is still asked. Same for a refused host, a
  redirect loop and an answer cut off mid-body (each named by what happened).
- A corner number outside 1..MAX_CORNER_NUMBER (e.g. 10**30, which would crash the int32 `Corner` cast
  downstream) makes the answer junk.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from f1_assets import settings
from f1_assets.resources import fastf1 as fastf1_resource
from f1_assets.resources.fastf1 import (
    CIRCUIT_INFO_RETRY_AFTER_SECONDS,
    CIRCUIT_INFO_TIMEOUT_SECONDS,
    MAX_CORNER_NUMBER,
)
from f1_assets_tests.helpers import http_server, load_baku
from f1_assets_tests.livetiming_server import refused_url
from f1_assets_tests.test_kinematics import CIRCUIT_JSON, circuit_info_server

pytestmark = pytest.mark.shared_data

PATH = "/mv/api/v1/circuits/144/2018"  # Baku 2018, as FastF1 asks for it under circuit_info_server's base


@pytest.fixture(scope="module")
def baku(recorded_upstreams, tmp_path_factory):
    """The recorded 2018 Baku race loaded through FastF1 (its cache, with FastF1's HTTP cache, in a tmp dir)."""
    return load_baku(recorded_upstreams, tmp_path_factory.mktemp("ff1cache"))


@pytest.fixture
def forget_failures() -> Iterator[None]:
    """The hosts a test made fail are forgotten after it (the memory is per process)."""
    before = dict(fastf1_resource._CIRCUIT_INFO_FAILURES)
    yield
    fastf1_resource._CIRCUIT_INFO_FAILURES.clear()
    fastf1_resource._CIRCUIT_INFO_FAILURES.update(before)


@contextmanager
def silent_host(path: str) -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 that accepts connections and never reads or answers: (base URL, connections)."""
    accepted: list[socket.socket] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}{path}", accepted
    finally:
        listener.close()
        for conn in accepted:  # the abandoned FastF1 request ends with a reset connection
            conn.close()
        thread.join(timeout=5)


def test_constants_are_bounded():
    assert CIRCUIT_INFO_TIMEOUT_SECONDS <= 10 and CIRCUIT_INFO_RETRY_AFTER_SECONDS == 600


@pytest.mark.parametrize("junk", [b"<html><body>Maintenance</body></html>", b"[1, 2, 3]",
                                  b'{"error": "rate limited"}', b'{"corners": [{"angle": 1.0}]}'],
                         ids=["html", "json-list", "json-no-corners", "json-corners-without-positions"])
def test_junk_answer_is_reported_and_not_cached(baku, junk):
    resource, loaded = baku
    routes = {PATH: junk}
    with circuit_info_server(routes) as (base, asked):
        ask = resource.model_copy(update={"circuit_info_url": base})
        first = ask.circuit_corners(loaded)
        assert first.corners is None and asked == [PATH]
        assert f"the answer from {base}circuits/144/2018 is not usable circuit info" in first.reason
        assert "no recording" not in first.reason and "F1_CIRCUIT_INFO_URL" in first.reason
        assert first.metadata()["corners_missing_reason"] == first.reason and first.metadata()["corners"] == 0

        routes[PATH] = json.dumps(CIRCUIT_JSON).encode()  # the host is fixed
        second = ask.circuit_corners(loaded)
        assert asked == [PATH, PATH]  # asked again: the junk was not kept in FastF1's HTTP cache
        assert second.reason is None and second.corners["Number"].tolist() == [1, 2]

        third = ask.circuit_corners(loaded)  # a good answer is cached (12 h): the same corners, no request
        assert asked == [PATH, PATH] and third.corners["Number"].tolist() == [1, 2]


def test_http_error_keeps_its_own_reason(baku):
    resource, loaded = baku
    with circuit_info_server({}) as (base, asked):  # 404
        got = resource.model_copy(update={"circuit_info_url": base}).circuit_corners(loaded)
    assert asked == [PATH] and "HTTP 404" in got.reason and "not usable" not in got.reason


def test_silent_host_is_waited_for_once(baku, monkeypatch, forget_failures):
    resource, loaded = baku
    monkeypatch.setattr(fastf1_resource, "CIRCUIT_INFO_TIMEOUT_SECONDS", 1.0)  # the deadline, shortened
    with silent_host("/silent/api/v1/") as (base, accepted), silent_host("/other/api/v1/") as (other, accepted2):
        ask = resource.model_copy(update={"circuit_info_url": base})
        first = ask.circuit_corners(loaded)
        assert first.corners is None and len(accepted) == 1
        assert f"did not answer {base}circuits/144/2018 within 1 s" in first.reason
        assert "not asked again for 10 min" in first.reason

        second = ask.circuit_corners(loaded)  # the next race: no new connection, the reason says why
        assert second.corners is None and len(accepted) == 1
        assert second.reason.startswith(f"not asked: the circuit-info host {base} failed ")
        assert "asked again after 600 s" in second.reason and "did not answer" in second.reason
        assert second.metadata()["circuit_info_url"] == f"{base}circuits/144/2018"

        elsewhere = resource.model_copy(update={"circuit_info_url": other}).circuit_corners(loaded)
        assert len(accepted2) == 1 and "did not answer" in elsewhere.reason  # remembered per base URL

        # after the retry window, the host is asked again (the remembered failure is made older here)
        when, why = fastf1_resource._CIRCUIT_INFO_FAILURES[base]
        fastf1_resource._CIRCUIT_INFO_FAILURES[base] = (when - CIRCUIT_INFO_RETRY_AFTER_SECONDS, why)
        ask.circuit_corners(loaded)
        assert len(accepted) == 2


def test_refused_host_is_not_asked_again(baku, forget_failures):
    resource, loaded = baku
    ask = resource.model_copy(update={"circuit_info_url": refused_url("/refused/api/v1/")})
    first = ask.circuit_corners(loaded)
    assert "unreachable" in first.reason and "ConnectionError" in first.reason
    second = ask.circuit_corners(loaded)
    assert second.reason.startswith("not asked: ") and "ConnectionError" in second.reason

    # a host that answers is not remembered as failed
    with circuit_info_server({PATH: json.dumps(CIRCUIT_JSON).encode()}) as (base, asked):
        good = resource.model_copy(update={"circuit_info_url": base}).circuit_corners(loaded)
        assert good.reason is None and base not in fastf1_resource._CIRCUIT_INFO_FAILURES


def with_corner_numbers(*numbers: int) -> bytes:
    body = copy.deepcopy(CIRCUIT_JSON)
    for corner, number in zip(body["corners"], numbers, strict=True):
        corner["number"] = number
    return json.dumps(body).encode()


@pytest.mark.parametrize(("numbers", "shown"), [((1, 10**30), "100000…(31 digits)"),
                                               ((1, MAX_CORNER_NUMBER + 1), "100"), ((-3, 2), "-3"), ((0, 2), "0")],
                         ids=["10**30", "100", "negative", "zero"])
def test_corner_number_out_of_range_is_junk(baku, numbers, shown):
    resource, loaded = baku
    assert MAX_CORNER_NUMBER == 99
    routes = {PATH: with_corner_numbers(*numbers)}
    with circuit_info_server(routes) as (base, asked):
        ask = resource.model_copy(update={"circuit_info_url": base})
        got = ask.circuit_corners(loaded)
        assert got.corners is None and asked == [PATH]
        assert f"the answer from {base}circuits/144/2018 is not usable circuit info" in got.reason
        assert f"(1 corner number outside 1..99: {shown});" in got.reason
        routes[PATH] = with_corner_numbers(1, MAX_CORNER_NUMBER)  # the edge is in range (and the junk not cached)
        good = ask.circuit_corners(loaded)
        assert asked == [PATH, PATH] and good.reason is None and good.corners["Number"].tolist() == [1, 99]


@contextmanager
def broken_host(mode: str) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 whose answers never complete: `loop` redirects every request to itself,
    `cut` announces a 5000-byte body, sends 40 bytes of it and closes the connection. (base URL, paths asked)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.append(self.path)
            if mode == "loop":
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(json.dumps(CIRCUIT_JSON).encode()[:40])
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    with http_server(Handler) as base:
        yield f"{base}/{mode}/api/v1/", asked


@pytest.mark.parametrize(("mode", "named"), [("loop", "answered {url} with too many redirects (a redirect loop)"),
                                             ("cut", "broke the connection mid-answer to {url}")])
def test_broken_answer_is_named_and_backed_off(baku, forget_failures, mode, named):
    resource, loaded = baku
    with broken_host(mode) as (base, asked):
        ask = resource.model_copy(update={"circuit_info_url": base})
        first = ask.circuit_corners(loaded)
        n = len(asked)
        assert first.corners is None and n >= 1 and set(asked) == {f"/{mode}/api/v1/circuits/144/2018"}
        named = named.format(url=f"{base}circuits/144/2018")
        assert first.reason.startswith(f"the circuit-info host {named}") and "JSON of another shape" not in first.reason
        assert "not asked again for 10 min" in first.reason and "F1_CIRCUIT_INFO_URL" in first.reason
        assert (mode == "loop") == (n > 1)  # the loop is followed (requests' limit), the cut answer asked once

        second = ask.circuit_corners(loaded)  # the next race: not asked, and it says why
        assert len(asked) == n and second.corners is None
        assert second.reason.startswith(f"not asked: the circuit-info host {base} failed ") and named in second.reason


@pytest.mark.parametrize(("url", "said"), [("http://127.0.0.1:99999/api/v1/", "the port is out of range (0-65535)"),
                                           ("http://127.0.0.1:port/api/v1/", "the port is not a number"),
                                           ("ftp://127.0.0.1/api/v1/", "is not an http(s) URL")])
def test_bad_circuit_info_url_says_what_is_wrong(baku, monkeypatch, url, said):
    resource, loaded = baku
    monkeypatch.setenv("F1_CIRCUIT_INFO_URL", url)
    with pytest.raises(settings.ConfigError) as caught:
        resource.circuit_corners(loaded)
    assert str(caught.value).startswith(f"F1_CIRCUIT_INFO_URL='{url}'") and said in str(caught.value)

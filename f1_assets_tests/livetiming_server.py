"""A real HTTP server on 127.0.0.1 that plays FastF1's three upstreams from recorded files.

Used by the FastF1 tests (`test_fastf1_*.py`): FastF1's own request code talks to it exactly as it
talks to the real hosts. Routes (each a prefix of the URL the resource hands to FastF1):

- `/livetiming/static/<path>` → `<data>/livetiming/<path>` (F1 live timing, e.g. `.../TimingData.jsonStream`)
- `/schedule/schedule_<year>.json` → `<data>/schedule/schedule_<year>.json` (FastF1's schedule files)
- `/jolpica/<a>/<b>/<c>.json` → `<data>/jolpica/<a>@<b>@<c>.json` (Jolpica/Ergast single responses)

Anything else is a 404, as the real hosts answer for a missing stream. `overrides` maps a request
path to bytes (serve a malformed stream) or to None (pretend a stream does not exist); `requests`
records every path asked for, so a test can assert that no request was made. `refused_url()` is a
URL on 127.0.0.1 where nothing listens (connection refused): an unreachable host.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class RecordedUpstreams:
    data_dir: Path
    base_url: str = ""
    overrides: dict[str, bytes | None] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def livetiming_url(self) -> str:
        return f"{self.base_url}/livetiming/"

    @property
    def schedule_url(self) -> str:
        return f"{self.base_url}/schedule/"

    @property
    def jolpica_url(self) -> str:
        return f"{self.base_url}/jolpica/"

    def resolve(self, path: str) -> Path | None:
        if path.startswith("/livetiming/static/"):
            return self.data_dir / "livetiming" / path[len("/livetiming/static/") :]
        if path.startswith("/schedule/"):
            return self.data_dir / "schedule" / path[len("/schedule/") :]
        if path.startswith("/jolpica/"):
            return self.data_dir / "jolpica" / path[len("/jolpica/") :].replace("/", "@")
        return None

    def body(self, path: str) -> bytes | None:
        if path in self.overrides:
            return self.overrides[path]
        file = self.resolve(path)
        if file is None:
            return None
        file = file.resolve()
        if self.data_dir.resolve() not in file.parents or not file.is_file():
            return None
        return file.read_bytes()


def _handler(upstreams: RecordedUpstreams) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = unquote(urlsplit(self.path).path)
            upstreams.requests.append(path)
            body = upstreams.body(path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def serve_recorded_upstreams(data_dir: Path) -> Iterator[RecordedUpstreams]:
    """Start the server on a free port of 127.0.0.1 in a thread; stop it on exit."""
    upstreams = RecordedUpstreams(data_dir=data_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstreams))
    upstreams.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="recorded-upstreams", daemon=True)
    thread.start()
    try:
        yield upstreams
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)



def refused_url(path: str = "/") -> str:
    """`http://127.0.0.1:<port><path>` with nothing listening on the port: every request is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


CIRCUIT_INFO_PATH = "/circuit-info/api/v1/"  # nothing recorded there: every circuit-info request is a 404


def environment(base_url: str) -> dict[str, str]:
    """The variables that point the FastF1 resource at a server of this module at `base_url`. Circuit info
    (corners) is not recorded: its URL answers 404, so corners stay empty and nothing asks the real host."""
    return {"F1_LIVETIMING_URL": f"{base_url}/livetiming/", "F1_FASTF1_SCHEDULE_URL": f"{base_url}/schedule/",
            "F1_CIRCUIT_INFO_URL": f"{base_url}{CIRCUIT_INFO_PATH}"}


def main(argv: list[str] | None = None) -> int:
    """`python -m f1_assets_tests.livetiming_server [--data DIR] [--port N]`: serve recorded live-timing
    streams, FastF1 schedule files and Jolpica single responses until Ctrl-C / SIGTERM."""
    import argparse
    import sys

    from f1_assets_tests.jolpica_server import _bind, port_number, serve_until_stopped

    prog = "python -m f1_assets_tests.livetiming_server"
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve FastF1's upstreams from recorded files on 127.0.0.1: DIR/livetiming/ (F1 live "
        "timing), DIR/schedule/ (FastF1's schedule_YYYY.json) and DIR/jolpica/ (single Jolpica responses).")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="a folder holding livetiming/ and schedule/ (jolpica/ optional); default: the recorded "
                        "data shipped with the repository (f1_assets_tests/data)")
    parser.add_argument("--port", type=port_number, default=0, metavar="N",
                        help="port on 127.0.0.1 (default 0: a free port)")
    args = parser.parse_args(argv)
    if args.data is None:
        from f1_assets_tests.recorded import recorded_data_dir

        args.data = recorded_data_dir()
    missing = [d for d in ("livetiming", "schedule") if not (args.data / d).is_dir()]
    if missing:
        print(f"{prog}: error: no recorded live-timing data ({', '.join(f'{d}/' for d in missing)} missing) "
              f"in {args.data}", file=sys.stderr)
        return 2
    upstreams = RecordedUpstreams(data_dir=args.data)
    httpd = _bind(prog, _handler(upstreams), args.port)
    upstreams.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    print(f"serving recorded FastF1 upstreams from {args.data} (Ctrl-C stops); set:", flush=True)
    for name, value in environment(upstreams.base_url).items():
        print(f"{name}={value}", flush=True)
    print("(FastF1's Jolpica calls follow F1_JOLPICA_URL: the Jolpica replay server, or "
          f"{upstreams.jolpica_url} for the single responses recorded here)", flush=True)
    serve_until_stopped(httpd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

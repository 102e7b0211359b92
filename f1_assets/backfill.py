"""Launch a season (or any range) backfill of race partitions on a running Dagster webserver, through
its GraphQL `launchPartitionBackfill` mutation, and optionally wait for it.

    python -m f1_assets.backfill --from 2023-01 --to 2023-22 [--url http://127.0.0.1:3000] [--wait]
    python -m f1_assets.backfill --partitions 2023-01,2023-10 --assets raw_results,raw_laps

By default it selects the Jolpica race assets and lap_features (the `race_pipeline` assets that need
nothing but Jolpica); a range covers the partitions between the two keys in the `races` order.
Documented in docs/backfill.md; called by people and by the end-to-end test.
"""

import argparse
import json
import sys
import time
from typing import Any

import requests

from f1_assets.settings import redact

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_ASSETS = ("raw_results", "raw_qualifying", "raw_sprint_results", "raw_laps", "raw_pit_stops", "lap_features")
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on UnauthorizedError { message }
    ... on RunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on NoModeProvidedError { message }
  }
}
"""

STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions error { message } }
    ... on PythonError { message }
  }
}
"""


def graphql(url: str, query: str, variables: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """POST one GraphQL request; errors never show a password of `url` (a webserver behind basic auth)."""
    try:
        response = requests.post(f"{url.rstrip('/')}/graphql", json={"query": query, "variables": variables},
                                 timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise RuntimeError(redact(f"{type(exc).__name__}: {exc}")) from None
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(redact(f"GraphQL errors: {json.dumps(body['errors'])[:2000]}"))
    return body["data"]


def backfill_params(assets: list[str], partitions: list[str] | None = None, start: str | None = None,
                    end: str | None = None, title: str | None = None) -> dict[str, Any]:
    """LaunchBackfillParams for an asset backfill: explicit partition keys or one key range."""
    params: dict[str, Any] = {"assetSelection": [{"path": [a]} for a in assets], "title": title}
    if partitions:
        params["partitionNames"] = partitions
    elif start and end:
        params["partitionsByAssets"] = [
            {"assetKey": {"path": [a]}, "partitions": {"range": {"start": start, "end": end}}} for a in assets
        ]
    else:
        raise ValueError("give partitions, or both ends of a range")
    return params


def launch_backfill(url: str, params: dict[str, Any]) -> str:
    result = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {result}")
    return result["backfillId"]


def backfill_status(url: str, backfill_id: str) -> dict[str, Any]:
    return graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]


def wait_for_backfill(url: str, backfill_id: str, timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = backfill_status(url, backfill_id)
        if status.get("status") in DONE:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} not done after {timeout:.0f}s: {status}")
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Launch a race-partition backfill on a running Dagster webserver.")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"webserver base URL (default {DEFAULT_URL})")
    parser.add_argument("--from", dest="start", help="first race key of the range, e.g. 2023-01")
    parser.add_argument("--to", dest="end", help="last race key of the range, e.g. 2023-22")
    parser.add_argument("--partitions", help="comma-separated race keys instead of a range")
    parser.add_argument("--assets", default=",".join(DEFAULT_ASSETS), help="comma-separated asset keys")
    parser.add_argument("--wait", action="store_true", help="wait until the backfill is done")
    args = parser.parse_args(argv)
    partitions = [p.strip() for p in args.partitions.split(",")] if args.partitions else None
    try:
        params = backfill_params(args.assets.split(","), partitions, args.start, args.end)
    except ValueError as exc:
        parser.error(str(exc))
    backfill_id = launch_backfill(args.url, params)
    print(json.dumps({"backfill_id": backfill_id, "url": redact(f"{args.url.rstrip('/')}/runs/b/{backfill_id}")}))
    if args.wait:
        status = wait_for_backfill(args.url, backfill_id)
        print(json.dumps(status))
        return 0 if status.get("status") in ("COMPLETED", "COMPLETED_SUCCESS") else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

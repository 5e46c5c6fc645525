"""The reference for tap-side overhead: the same requests and rows, no Singer SDK.

Fetches every customer's costs windows with `requests` + `msgspec` (the parser
and encoder the tap uses, Decimal in, exact numbers out), reshapes items into the
same rows and writes them as RECORD lines; no schema check, state, logging or SDK. Used by `costs_backfill.py`; run it through that.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal

import msgspec
import requests

DECODER = msgspec.json.Decoder(float_hook=Decimal)
ENCODER = msgspec.json.Encoder(decimal_format="number")


def windows(start: date, end: date, size: int) -> list[tuple[str, str]]:
    out = []
    while start < end:
        stop = min(start + timedelta(days=size), end)
        out.append((f"{start}T00:00:00Z", f"{stop}T00:00:00Z"))
        start = stop
    return out


class Pacer:
    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        time.sleep(max(0.0, slot - now))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0)
    args = parser.parse_args()
    local = threading.local()
    pacer = Pacer(args.rate) if args.rate else None
    out_lock = threading.Lock()
    out = sys.stdout.buffer

    def get(path: str, params: dict) -> dict:
        session = getattr(local, "s", None)
        if session is None:
            session = local.s = requests.Session()
            session.headers["Authorization"] = f"Bearer {args.token}"
        while True:
            if pacer:
                pacer.wait()
            response = session.get(args.api_url + path, params=params, timeout=60)
            if response.status_code == 429:
                time.sleep(float(response.headers.get("retry-after-ms", 1000)) / 1000)
                continue
            response.raise_for_status()
            return DECODER.decode(response.content)

    def listing(path: str, params: dict) -> list[dict]:
        items, cursor = [], None
        while True:
            query = {**params, "limit": 100} | ({"next_page": cursor} if cursor else {})
            body = get(path, query)
            items += body["data"]
            cursor = body["next_page"]
            if not cursor:
                return items

    customers = [c["id"] for c in listing("/v1/customers", {})]
    customers += [c["id"] for c in listing("/v1/customers", {"only_archived": "true"})]
    spans = windows(date.fromisoformat(args.start), date.fromisoformat(args.end), 100)

    def one(customer_id: str) -> list[bytes]:
        lines = []
        for starting_on, ending_before in spans:
            for item in listing(
                f"/v1/customers/{customer_id}/costs",
                {"starting_on": starting_on, "ending_before": ending_before},
            ):
                for credit_type_id, entry in item["credit_types"].items():
                    row = {
                        "customer_id": customer_id,
                        "start_timestamp": item["start_timestamp"],
                        "end_timestamp": item["end_timestamp"],
                        "credit_type_id": credit_type_id,
                        "credit_type_name": entry.get("name"),
                        "cost": entry.get("cost"),
                        "line_item_breakdown": entry.get("line_item_breakdown"),
                    }
                    lines.append(
                        ENCODER.encode(
                            {
                                "type": "RECORD",
                                "stream": "customer_costs",
                                "record": row,
                            }
                        )
                    )
        return lines

    with ThreadPoolExecutor(args.concurrency) as pool:
        for lines in pool.map(one, customers):
            with out_lock:
                out.write(b"\n".join(lines) + (b"\n" if lines else b""))


if __name__ == "__main__":
    main()

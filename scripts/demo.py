"""`make demo`: sync the bundled fake Metronome account and summarise the output.

Starts the fake API on a free loopback port, runs `tap-metronome` against it with
Singer output written to `.demo/singer-output.jsonl`, prints what arrived, and
stops the fake API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_metronome import (  # noqa: E402
    TOKEN,
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
)


def main() -> int:
    """Run the demo sync; return the tap's exit code."""
    out_dir = REPO / ".demo"
    out_dir.mkdir(exist_ok=True)
    data = FakeData.generate(customers=200, archived=25, plans=6, charges_per_plan=4)
    with FakeMetronomeServer(FakeMetronomeApp(data)) as server:
        print(f"Fake Metronome API listening on {server.url}")
        config = out_dir / "config.json"
        config.write_text(
            json.dumps(
                {"auth_token": TOKEN, "api_url": server.url, "start_date": "2024-01-01"}
            )
        )
        output = out_dir / "singer-output.jsonl"
        tap = str(Path(sys.executable).parent / "tap-metronome")
        started = time.monotonic()
        with output.open("w") as stdout, (out_dir / "tap.log").open("w") as stderr:
            code = subprocess.run(
                [tap, "--config", str(config)],
                stdout=stdout,
                stderr=stderr,
                check=False,
            ).returncode
        elapsed = time.monotonic() - started
        requests = server.app.count()
    counts: Counter[tuple[str, str]] = Counter()
    for line in output.read_text().splitlines():
        message = json.loads(line)
        counts[(message["type"], message.get("stream", ""))] += 1
    print(
        f"tap-metronome exited {code} after {elapsed:.1f}s and {requests} API requests"
    )
    print(f"Singer output: {output.relative_to(REPO)} (log: .demo/tap.log)")
    for stream in ("customers", "plans", "plan_charges"):
        print(f"  {stream:<14} {counts[('RECORD', stream)]:>6} records")
    print(f"  {'STATE':<14} {counts[('STATE', '')]:>6} messages")
    print(
        "To use a real account: put your token in TAP_METRONOME_AUTH_TOKEN, drop api_url"
        " from the config, and run `tap-metronome --config config.json`."
    )
    return code


if __name__ == "__main__":
    sys.exit(main())

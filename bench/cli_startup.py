"""How long `sgxl --help` (and an argument error) takes to answer, against the interpreter's own start-up and
against importing torch (what every `sgxl` call used to wait for before answering anything).

    python bench/cli_startup.py [--repeats 7]

Each row runs a fresh `python` process; medians of --repeats runs after one warm-up (the OS file cache).
Writes bench/results/cli_startup.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "python -c pass (baseline)": ["-c", "pass"],
    "sgxl --help": ["-m", "core.cli", "--help"],
    "sgxl generate --help": ["-m", "core.cli", "generate", "--help"],
    "sgxl generate --trunc 9 (refused)": ["-m", "core.cli", "generate", "--trunc", "9"],
    "python -c 'import torch'": ["-c", "import torch"],
}


def run_seconds(args: list[str], repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, check=False)
        if i:  # the first run warms the file cache
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    results = {name: run_seconds(cmd, args.repeats) for name, cmd in CASES.items()}
    base = results["python -c pass (baseline)"]
    rows = [{"command": name, "median ms": f"{s * 1000:.0f}", "x baseline": f"{s / base:.1f}"}
            for name, s in results.items()]
    print_table(rows, ["command", "median ms", "x baseline"])
    path = write_json("cli_startup", {"environment": environment(), "repeats": args.repeats,
                                      "median_seconds": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

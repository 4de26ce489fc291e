#!/usr/bin/env python3
"""Fails when a workspace crate depends on one docs/ARCHITECTURE.md says it must not.

Reads `cargo metadata` (no network, no build): every workspace package's dependencies on other
workspace packages, by kind. Normal and build dependencies must be in ALLOWED; dev-dependencies
may also use the test harness (testkit) and the crates a test drives end to end (DEV_ALLOWED).
Keep this table and the one in docs/ARCHITECTURE.md the same.
"""
import json
import subprocess
import sys

# crate -> the workspace crates its code may import (normal and build dependencies)
ALLOWED = {
    "influx2td-proto": set(),
    "influx2td-testkit": set(),
    "influx2td-telemetry": set(),
    # InfluxDB's storage files, read-only; the reader will use it, it uses nothing of ours.
    "influx2td-tsm": set(),
    "influx2td-config": {"influx2td-proto"},
    "influx2td-bus": {"influx2td-proto", "influx2td-telemetry"},
    "influx2td-reader": {"influx2td-proto", "influx2td-bus", "influx2td-config", "influx2td-telemetry", "influx2td-tsm"},
    "influx2td-writer": {"influx2td-proto", "influx2td-bus", "influx2td-config", "influx2td-telemetry"},
    # The coordinator discovers measurements and schemas through the reader's InfluxDB client.
    "influx2td-coordinator": {
        "influx2td-proto", "influx2td-bus", "influx2td-config", "influx2td-telemetry", "influx2td-reader",
    },
    # A job end to end and the operations on a job: beneath the binary and the console.
    "influx2td-job": {
        "influx2td-proto", "influx2td-bus", "influx2td-config", "influx2td-telemetry",
        "influx2td-reader", "influx2td-writer", "influx2td-coordinator",
    },
    # The console runs and checks jobs through the job library, never through the binary.
    "influx2td-console": {
        "influx2td-bus", "influx2td-config", "influx2td-telemetry", "influx2td-reader",
        "influx2td-coordinator", "influx2td-job",
    },
    "influx2td": {
        "influx2td-proto", "influx2td-bus", "influx2td-config", "influx2td-telemetry",
        "influx2td-reader", "influx2td-writer", "influx2td-coordinator", "influx2td-job",
        "influx2td-console",
    },
    "influx2td-bench": {
        "influx2td-proto", "influx2td-bus", "influx2td-config", "influx2td-reader", "influx2td-writer",
    },
}
# What tests may use beyond ALLOWED: the harness, and a role's counterpart to drive it end to end
# (a coordinator test runs real readers and writers). Never the binary's crate.
DEV_ALLOWED = {
    "influx2td-coordinator": {"influx2td-testkit", "influx2td-writer"},
}
DEV_ALWAYS = {"influx2td-testkit", "influx2td-proto"}


def main() -> int:
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    members = {package["name"] for package in metadata["packages"]}
    problems = []
    for name in sorted(members - ALLOWED.keys()):
        problems.append(f"{name}: a crate docs/ARCHITECTURE.md and .ci/layering.py do not know")
    for package in metadata["packages"]:
        name = package["name"]
        if name not in ALLOWED:
            continue
        for dependency in package["dependencies"]:
            used = dependency["name"]
            if used not in members:
                continue
            kind = dependency["kind"] or "normal"
            allowed = set(ALLOWED[name])
            if kind == "dev":
                allowed |= DEV_ALWAYS | DEV_ALLOWED.get(name, set())
            if used not in allowed:
                problems.append(f"{name} ({kind}) depends on {used}, which it must not")
    for problem in problems:
        print(f"layering: {problem}", file=sys.stderr)
    if not problems:
        print(f"layering: {len(members)} crates, every dependency allowed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

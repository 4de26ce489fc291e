"""Deterministic benchmark data as InfluxDB line protocol on stdout.

4 measurements x 32 hosts = 128 series, one point per series every 10 s, with float, integer,
string and boolean fields. Usage: generate.py ROWS START_NS
"""
import random
import sys

rows = int(sys.argv[1])
start_ns = int(sys.argv[2])
measurements = ["cpu", "mem", "disk", "net"]
hosts = [f"host-{i:02d}" for i in range(32)]
series = [(m, h) for m in measurements for h in hosts]
rng = random.Random(42)
out = sys.stdout
step = 10_000_000_000
points_per_series = rows // len(series)
for index in range(points_per_series):
    timestamp = start_ns + index * step
    lines = []
    for measurement, host in series:
        value = rng.random() * 100
        lines.append(
            f'{measurement},host={host},region=eu-{hash(host) % 3} '
            f'usage={value:.6f},count={index}i,state="{"ok" if value < 90 else "hot"}",up={"true" if value < 99 else "false"} '
            f"{timestamp}\n"
        )
    out.write("".join(lines))

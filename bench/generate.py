"""Deterministic benchmark data as InfluxDB line protocol on stdout.

    generate.py ROWS START_NS [--shape wide|small] [--measurements M] [--span-ns NS]

wide (the default): M measurements (4) x 32 hosts, points evenly spaced over NS nanoseconds
(default: one every 10 s), fields float, integer, string and boolean.
small: 500 measurements x 10 hosts x 20 hourly points (ROWS is ignored): the shape of many
IoT and Telegraf databases, each measurement sparse.
"""
import argparse
import random
import sys

parser = argparse.ArgumentParser()
parser.add_argument("rows", type=int)
parser.add_argument("start_ns", type=int)
parser.add_argument("--shape", choices=["wide", "small"], default="wide")
parser.add_argument("--measurements", type=int, default=4)
parser.add_argument("--span-ns", type=int, default=0)
args = parser.parse_args()

if args.shape == "small":
    measurements = [f"sensor_{i:03d}" for i in range(500)]
    hosts = [f"device-{i:02d}" for i in range(10)]
    points_per_series = 20
    step = 3_600_000_000_000
else:
    names = ["cpu", "mem", "disk", "net", "swap", "load", "temp", "power"]
    measurements = [names[i] if i < len(names) else f"m{i}" for i in range(args.measurements)]
    hosts = [f"host-{i:02d}" for i in range(32)]
    points_per_series = args.rows // (len(measurements) * len(hosts))
    step = args.span_ns // points_per_series if args.span_ns else 10_000_000_000

series = [(m, h) for m in measurements for h in hosts]
rng = random.Random(42)
out = sys.stdout
for index in range(points_per_series):
    timestamp = args.start_ns + index * step
    lines = []
    for measurement, host in series:
        value = rng.random() * 100
        lines.append(
            f'{measurement},host={host},region=eu-{int(host[-2:]) % 3} '
            f'usage={value:.6f},count={index}i,state="{"ok" if value < 90 else "hot"}",up={"true" if value < 99 else "false"} '
            f"{timestamp}\n"
        )
    out.write("".join(lines))

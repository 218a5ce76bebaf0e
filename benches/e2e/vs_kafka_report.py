#!/usr/bin/env python3
"""The markdown tables of benches/e2e/vs-kafka.sh, from the reports it left in OUT.

Usage: vs_kafka_report.py OUT ROUNDS CLK_TCK "LOADS"
"""
import json
import os
import re
import statistics
import sys

out, rounds, hz, loads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split()
SIDES = ["kafka", "ringlet"]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else 0.0


def ceilings():
    rows = []
    for name, rw in [("direct-write", "write"), ("buffered-write", "write"),
                     ("direct-read", "read"), ("direct-sync-write", "write")]:
        p = f"{out}/fio-{name}.json"
        if os.path.exists(p):
            j = json.load(open(p))["jobs"][0][rw]
            rows.append(f"fio {name}: {j['bw_bytes'] / 1e6:.0f} MB/s ({j['iops']:.0f} IOPS)")
    p = f"{out}/iperf3.json"
    if os.path.exists(p):
        try:
            bps = json.load(open(p))["end"]["sum_received"]["bits_per_second"]
            rows.append(f"iperf3 loopback: {bps / 8e6:.0f} MB/s")
        except (KeyError, ValueError):
            pass
    return rows


def loadgen(path):
    """(MB/s produced, MB/s consumed, p50/p99/p99.9 from send, p99 from intended, e2e p50/p99/p99.9, GB)"""
    j = json.load(open(path))
    s, i, e = (j["produce_latency_from_send"], j["produce_latency_from_intended"],
               j["end_to_end_latency"])
    gb = (j["produced"]["bytes"] + j["consumed"]["bytes"]) / 1e9
    return dict(mb=j["produced"]["mb_per_s"], cmb=j["consumed"]["mb_per_s"],
                p50=s.get("p50_ms", 0), p99=s.get("p99_ms", 0), p999=s.get("p999_ms", 0),
                i50=i.get("p50_ms", 0), i99=i.get("p99_ms", 0), i999=i.get("p999_ms", 0),
                e50=e.get("p50_ms", 0), e99=e.get("p99_ms", 0), e999=e.get("p999_ms", 0), gb=gb)


def perftest(path):
    t = open(path).read()
    m = re.findall(r"records sent, [\d.]+ records/sec \(([\d.]+) MB/sec\), [\d.]+ ms avg latency, "
                   r"[\d.]+ ms max latency, (\d+) ms 50th, \d+ ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", t)
    if not m:
        return None
    mb, p50, p99, p999 = m[-1]
    return dict(mb=float(mb), cmb=0, p50=float(p50), p99=float(p99), p999=float(p999),
                i50=0, i99=0, i999=0, e50=0, e99=0, e999=0, gb=200000 * 1024 / 1e9)


def cpu(path):
    ticks, rss = open(path).read().split()
    return int(ticks) / hz, int(rss) / 1024


def rows_of(side, load):
    rows = []
    for r in range(1, rounds + 1):
        base = f"{out}/{side}-{r}-{load}"
        try:
            x = perftest(base + ".txt") if load == "perftest" else loadgen(base + ".json")
            c, rss = cpu(base + ".cpu")
        except (OSError, ValueError, KeyError):
            x = None
        if x:
            x["cpu_gb"] = c / x["gb"] if x["gb"] else 0
            x["rss"] = rss
            rows.append(x)
    return rows


for line in ceilings():
    print(line)
print()
print("| load | broker | MB/s per round | median MB/s | consumed MB/s | produce p50 / p99 / p99.9 ms (from send) "
      "| e2e p50 / p99 / p99.9 ms | CPU-s per GB | RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
medians = {}
for load in loads:
    for side in SIDES:
        rows = rows_of(side, load)
        if not rows:
            print(f"| {load} | {side} | failed | | | | | | |")
            continue
        m = {k: med(x[k] for x in rows) for k in rows[0]}
        medians[(load, side)] = m
        e2e = f"{m['e50']:.1f} / {m['e99']:.1f} / {m['e999']:.1f}" if m["e50"] else "-"
        print(f"| {load} | {side} | {' '.join('%.0f' % x['mb'] for x in rows)} | {m['mb']:.0f} | "
              f"{m['cmb']:.0f} | {m['p50']:.1f} / {m['p99']:.1f} / {m['p999']:.1f} | {e2e} | "
              f"{m['cpu_gb']:.2f} | {max(x['rss'] for x in rows):.0f} |")
print()
for load in loads:
    k, r = medians.get((load, "kafka")), medians.get((load, "ringlet"))
    if not (k and r and k["mb"] and k["cpu_gb"]):
        print(f"{load}: no ratio (a side failed)")
        continue
    extra = ""
    if load == "omb":
        extra = (f", p99 produce from intended {r['i99']:.1f} vs {k['i99']:.1f} ms "
                 f"({r['i99'] / k['i99']:.2f}), p99 e2e {r['e99'] / k['e99']:.2f}" if k["i99"] and k["e99"] else "")
    print(f"{load}: Ringlet/Kafka throughput {r['mb'] / k['mb']:.2f}, p99 {r['p99'] / k['p99']:.2f}, "
          f"CPU-s per GB {r['cpu_gb'] / k['cpu_gb']:.2f}{extra}" if k["p99"] else
          f"{load}: Ringlet/Kafka throughput {r['mb'] / k['mb']:.2f}")
print()
for side in SIDES:
    p = f"{out}/{side}-many-idle.txt"
    if not os.path.exists(p):
        continue
    create_s, ticks, rss = open(p).read().split()
    line = (f"{side} many partitions: created in {float(create_s):.1f} s; idle 10 s: "
            f"{int(ticks) / hz:.2f} CPU-s, RSS {int(rss) / 1024:.0f} MiB")
    try:
        x = loadgen(f"{out}/{side}-many-load.json")
        c, rss = cpu(f"{out}/{side}-many-load.cpu")
        line += (f"; under load {x['mb']:.0f} MB/s, p99 {x['p99']:.1f} ms, "
                 f"{c / x['gb'] if x['gb'] else 0:.2f} CPU-s per GB, RSS {rss:.0f} MiB")
    except (OSError, ValueError, KeyError):
        line += "; the load failed"
    print(line)
print("reports in", out)

"""Soak: `ringlet loadgen` at 70% of the measured maximum rate against one broker whose small
segments roll and whose retention deletes them all along, in back-to-back windows; the broker's
RSS and open file descriptors are sampled every second and each window's latency percentiles are
kept. Writes soak.json and soak.svg and fails on a growth trend.

    .venv/bin/python tests/e2e/soak.py --minutes 10 --out docs/soak     # the documented run
tests/e2e/test_soak.py runs a 40-second variant in CI.
"""
import argparse
import json
import os
import subprocess
import threading
import time

from conftest import BIN, Broker, unique


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def loadgen(bootstrap, topic, seconds, rate=None, warmup=0.5):
    args = [BIN, "loadgen", "--bootstrap-server", bootstrap, "--topic", topic, "--partitions", "2",
            "--record-size", "1024", "--duration", str(seconds), "--warmup", str(warmup),
            "--consumers", "1", "--verify", "--output", "json", "--quiet"]
    if rate:
        args += ["--rate", str(int(rate))]
    r = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    if r.returncode != 0:
        raise RuntimeError(f"loadgen failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def svg(samples, windows, path):
    """Three small line charts, drawn by hand: RSS, file descriptors, window p99."""
    def panel(y0, title, pts, unit):
        w, h, left = 640, 150, 60
        if not pts:
            return ""
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        xmax = max(xs) or 1
        ymax = max(ys) * 1.2 or 1
        poly = " ".join(f"{left + x / xmax * (w - left - 10):.1f},{y0 + h - y / ymax * h:.1f}"
                        for x, y in pts)
        return (f'<text x="{left}" y="{y0 - 6}" font-size="13">{title} (max {max(ys):.1f} {unit})</text>'
                f'<rect x="{left}" y="{y0}" width="{w - left - 10}" height="{h}" fill="none" stroke="#999"/>'
                f'<text x="5" y="{y0 + 12}" font-size="11">{ymax:.0f}</text>'
                f'<text x="5" y="{y0 + h}" font-size="11">0</text>'
                f'<text x="{w - 60}" y="{y0 + h + 14}" font-size="11">{xmax:.0f} s</text>'
                f'<polyline fill="none" stroke="#c33" stroke-width="1.5" points="{poly}"/>')
    body = (panel(30, "broker RSS", [(s["t"], s["rss_mb"]) for s in samples], "MB")
            + panel(230, "open file descriptors", [(s["t"], s["fds"]) for s in samples], "")
            + panel(430, "produce p99 per window", [(w["t_end"], w["p99_ms"]) for w in windows], "ms"))
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="620" '
                f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{body}</svg>\n')


def trend(points):
    """Least-squares slope of (t, y)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points) or 1
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den


def soak(seconds, window=10, out=None, log=print):
    b = Broker({"log.segment.bytes": 4 * 1024 * 1024, "log.retention.bytes": 16 * 1024 * 1024,
                "log.retention.check.interval.ms": 1000, "num.partitions": 2}).start()
    topic = unique("soak")
    try:
        peak = loadgen(b.bootstrap, topic, 3, warmup=1)
        rate = 0.7 * peak["produced"]["records_per_s"]
        if log:
            log(f"max {peak['produced']['records_per_s']:.0f} records/s; soaking at {rate:.0f}")
        samples, windows = [], []
        stop = threading.Event()
        t0 = time.time()

        def sample():
            while not stop.is_set():
                samples.append({"t": round(time.time() - t0, 1), "rss_mb": round(rss_mb(b.proc.pid), 1),
                                "fds": fds(b.proc.pid)})
                stop.wait(1.0)

        th = threading.Thread(target=sample)
        th.start()
        lost = dup = 0
        try:
            while time.time() - t0 < seconds:
                r = loadgen(b.bootstrap, topic, window, rate=rate)
                lat = r["produce_latency_from_intended"]
                v = r.get("verification") or {}
                lost += v.get("lost", 0)
                dup += v.get("duplicated", 0)
                windows.append({"t_end": round(time.time() - t0, 1),
                                "mb_s": round(r["produced"]["mb_per_s"], 1),
                                "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"],
                                "p999_ms": lat["p999_ms"]})
                if log:
                    log(f"{windows[-1]} rss {samples[-1]['rss_mb'] if samples else '?'} MB")
        finally:
            stop.set()
            th.join()
        segs = [f for f in os.listdir(os.path.join(b.data_dir, "data", f"{topic}-0")) if f.endswith(".log")]
        half = [s for s in samples if s["t"] >= seconds / 2]
        result = {
            "seconds": round(time.time() - t0), "rate_records_s": round(rate), "windows": windows,
            "samples": samples, "lost": lost, "duplicated": dup,
            "segments_left_partition_0": len(segs),
            "rss_mb_first_half_max": max((s["rss_mb"] for s in samples if s["t"] < seconds / 2), default=0),
            "rss_mb_second_half_max": max((s["rss_mb"] for s in half), default=0),
            "rss_slope_mb_per_min_second_half": round(trend([(s["t"], s["rss_mb"]) for s in half]) * 60, 3),
            "fds_min": min(s["fds"] for s in samples), "fds_max": max(s["fds"] for s in samples),
            "segments_deleted_by_retention": b.read_log().count("deleted segment"),
        }
        if out:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "soak.json"), "w") as f:
                json.dump(result, f, indent=1)
            svg(samples, windows, os.path.join(out, "soak.svg"))
        return result
    finally:
        b.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--out", default="soak-out")
    a = ap.parse_args()
    r = soak(a.minutes * 60, a.window, a.out)
    print(json.dumps({k: v for k, v in r.items() if k not in ("samples", "windows")}, indent=1))

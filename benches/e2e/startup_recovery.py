"""Issue 9's start-up, recovery and durability rows, each beside its baseline measured in the same
run:

1. an idle broker with 10,000 partitions (one segment each): start-up time and RSS;
2. recovery of 1 GB of unflushed log after SIGKILL (CRC scan), beside reading the same bytes;
3. durable produce (`log.flush.interval.messages=1`, acks=all) beside a plain write+fdatasync
   loop of the same write size on the same disk.

Usage: .venv/bin/python benches/e2e/startup_recovery.py [--partitions 10000] [--gb 1]
(uses target/release/ringlet; run `cargo build --release` first).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("RINGLET_BIN", os.path.join(ROOT, "target", "release", "ringlet"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            body = struct.pack(">hhih", 18, 0, 1, -1)
            s.sendall(struct.pack(">i", len(body)) + body)
            s.settimeout(2)
            return len(s.recv(4)) == 4
    except OSError:
        return False


def start(data, port, *overrides):
    args = [BIN, "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={data}"]
    for o in overrides:
        args += ["--override", o]
    t0 = time.time()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(data + ".log", "ab"),
                         env=dict(os.environ, RINGLET_LOG="warn"))
    while not answers(port):
        if p.poll() is not None:
            raise RuntimeError(open(data + ".log").read()[-2000:])
        time.sleep(0.01)
    return p, time.time() - t0


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def many_partitions(n):
    from confluent_kafka.admin import AdminClient, NewTopic
    data = tempfile.mkdtemp(prefix="ringlet-10k-")
    port = free_port()
    p, _ = start(data, port)
    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    per = 100
    topics = [NewTopic(f"t{i:04d}", per, 1) for i in range(n // per)]
    for i in range(0, len(topics), 20):
        for f in a.create_topics(topics[i:i + 20], request_timeout=120).values():
            f.result(timeout=300)
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    out = {}
    for kind in ["clean", "after SIGKILL"]:
        p, secs = start(data, port)
        time.sleep(1.0)
        out[kind] = {"start_s": round(secs, 3), "rss_mb": round(rss_mb(p.pid), 1)}
        if kind == "clean":
            p.send_signal(signal.SIGKILL)
        else:
            p.send_signal(signal.SIGTERM)
        p.wait(120)
    shutil.rmtree(data, ignore_errors=True)
    return {"partitions": n, **out}


def recovery(gb):
    data = tempfile.mkdtemp(prefix="ringlet-recovery-")
    port = free_port()
    # One segment larger than the data, so nothing rolls (a roll flushes and moves the recovery
    # point) and all of it is unflushed when the broker dies.
    seg_bytes = "log.segment.bytes=2000000000"
    p, _ = start(data, port, seg_bytes)
    records = int(gb * 1e9 / 1024)
    r = subprocess.run([BIN, "loadgen", "--bootstrap-server", f"127.0.0.1:{port}", "--topic",
                        "rec", "--partitions", "1", "--record-size", "1024", "--records",
                        str(records), "--warmup", "0", "--batch-size", "262144", "--quiet",
                        "--output", "json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    seg = os.path.join(data, "rec-0")
    size = sum(os.path.getsize(os.path.join(seg, f)) for f in os.listdir(seg) if f.endswith(".log"))
    p.send_signal(signal.SIGKILL)
    p.wait(60)
    # Baseline: read the same bytes (from the page cache, as recovery will).
    t0 = time.time()
    for f in os.listdir(seg):
        if f.endswith(".log"):
            with open(os.path.join(seg, f), "rb") as fh:
                while fh.read(1 << 20):
                    pass
    read_s = time.time() - t0
    p, secs = start(data, port, seg_bytes)
    log = open(data + ".log").read()
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    shutil.rmtree(data, ignore_errors=True)
    return {"log_bytes": size, "recovery_start_s": round(secs, 3), "read_same_bytes_s": round(read_s, 3),
            "truncated": "truncating" in log}


def fsync_loop(path, write_size, seconds=5.0):
    buf = os.urandom(write_size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    n = 0
    t0 = time.time()
    while time.time() - t0 < seconds:
        os.write(fd, buf)
        os.fdatasync(fd)
        n += 1
    el = time.time() - t0
    os.close(fd)
    os.remove(path)
    return n * write_size / el / 1e6, n / el


def durable():
    data = tempfile.mkdtemp(prefix="ringlet-durable-", dir=os.path.join(ROOT, "target"))
    port = free_port()
    mport = free_port()
    p, _ = start(data, port, "log.flush.interval.messages=1", f"ringlet.metrics.listener=127.0.0.1:{mport}")
    r = subprocess.run([BIN, "loadgen", "--bootstrap-server", f"127.0.0.1:{port}", "--topic",
                        "dur", "--partitions", "2", "--record-size", "1024", "--acks", "all",
                        "--duration", "8", "--warmup", "2", "--quiet", "--output", "json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    # The broker's bytes appended and fdatasync count give its mean write per group commit.
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    bytes_in = sum(float(l.split()[-1]) for l in text.splitlines()
                   if l.startswith('ringlet_partition_bytes_in_total{topic="dur"'))
    syncs = sum(float(l.split()[-1]) for l in text.splitlines()
                if l.startswith("ringlet_log_flush_duration_seconds_count"))
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    mb_s = rep["produced"]["mb_per_s"]
    write = int(bytes_in / max(syncs, 1))
    results = {"ringlet_durable_mb_s": round(mb_s, 1),
               "ringlet_p99_ms": rep["produce_latency_from_intended"]["p99_ms"],
               "mean_bytes_per_fdatasync": write}
    same_mb_s, _ = fsync_loop(os.path.join(data, "fsync-loop"), max(write, 4096))
    results["write+fdatasync loop, same write size"] = round(same_mb_s, 1)
    results["ratio"] = round(mb_s / same_mb_s, 2)
    for size in [65536, 262144, 1048576]:
        loop_mb_s, per_s = fsync_loop(os.path.join(data, "fsync-loop"), size)
        results[f"write+fdatasync loop {size // 1024} KiB"] = {"mb_s": round(loop_mb_s, 1),
                                                               "syncs_per_s": round(per_s)}
    shutil.rmtree(data, ignore_errors=True)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=10000)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--only", choices=["partitions", "recovery", "durable"])
    a = ap.parse_args()
    out = {"machine": f"{os.cpu_count()} cores, {os.uname().release}"}
    if a.only in (None, "partitions"):
        out["many_partitions"] = many_partitions(a.partitions)
    if a.only in (None, "recovery"):
        out["recovery"] = recovery(a.gb)
    if a.only in (None, "durable"):
        out["durable"] = durable()
    print(json.dumps(out, indent=1))

"""`ringlet tune`: a real sweep over embedded brokers writes every report file with its charts;
client-only sweeps against a running broker; `tune plan` from the sweep's results; bad sweeps
refused with a reason."""
import csv
import json
import os
import subprocess
import tempfile

from conftest import BIN


def tune(*args, timeout=300):
    return subprocess.run([BIN, "tune", *args], capture_output=True, text=True, timeout=timeout)


def test_sweep_over_embedded_brokers_writes_report_and_plan():
    out = tempfile.mkdtemp(prefix="ringlet-tune-")
    r = tune("--sweep", "num.io.threads=1,2", "--duration", "0.6", "--warmup", "0.3",
             "--repetitions", "3", "--p99-budget-ms", "1000", "--record-size", "512",
             "--output-dir", out, "--quiet")
    assert r.returncode == 0, r.stderr + r.stdout
    for f in ["results.json", "results.csv", "report.md", "report.html",
              "chart-throughput-vs-num.io.threads.svg", "chart-latency-vs-throughput.svg",
              "chart-scalability.svg"]:
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    res = json.load(open(os.path.join(out, "results.json")))
    assert [p["settings"] for p in res["points"]] == [[["num.io.threads", "1"]], [["num.io.threads", "2"]]]
    for p in res["points"]:
        maxes = [x for x in p["reps"] if x["kind"] == "max"]
        assert len(maxes) == 3 and all(x["mb_s"] > 0 and x["errors"] == 0 for x in maxes)
        assert p["summary"]["min_mb_s"] <= p["summary"]["median_mb_s"] <= p["summary"]["max_mb_s"]
        # A 1 s budget is met at the first step (90% of the maximum), then repeated.
        assert p["budget"]["rate_records_s"] > 0
        assert len([x for x in p["reps"] if x["kind"] == "budget"]) == 3
    assert res["machine"]["cores"] >= 1 and res["loadgen_base"]["record_size"] == "512"
    assert len(res["curve"]) == 5 and res["curve_point"] in (0, 1)
    assert res["scalability"]["levels"] == 2 and res["scalability"]["lambda"] > 0
    assert res["recommended"]["point"] in (0, 1)
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    assert len(rows) == 2 * (3 + 3) + 5
    assert {r["num.io.threads"] for r in rows} == {"1", "2"}
    html = open(os.path.join(out, "report.html")).read()
    # Throughput vs the swept setting, the latency-throughput curve, and the scalability fit.
    assert html.count("<svg") == 3, html[:500]
    assert "Throughput vs num.io.threads" in html and "latency vs throughput" in html
    assert "Scalability" in html and "Recommended" in html
    md = open(os.path.join(out, "report.md")).read()
    assert "| 0 | num.io.threads=1 |" in md

    plan_dir = os.path.join(out, "plan")
    r = subprocess.run([BIN, "tune", "plan", "--ingress-mb-s", "50", "--egress-mb-s", "100",
                        "--retention-hours", "24", "--replication-factor", "3", "--from",
                        os.path.join(out, "results.json"), "--cores-per-broker", "2",
                        "--output-dir", plan_dir], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "storage (cluster)" in r.stdout and "brokers" in r.stdout
    plan = json.load(open(os.path.join(plan_dir, "plan.json")))
    storage = next(l for l in plan["lines"] if l["name"] == "storage (cluster)")
    assert abs(storage["value"] - 50 * 3600 * 24 * 3 * 1.3 / 1000) < 1e-6
    assert plan["brokers"] >= 3


def test_client_sweep_against_running_broker(broker):
    out = tempfile.mkdtemp(prefix="ringlet-tune-")
    r = tune("--bootstrap-server", broker.bootstrap, "--sweep", "batch.size=16384,65536",
             "--sweep", "acks=1,all", "--duration", "0.4", "--warmup", "0.2", "--no-curve",
             "--output-dir", out, "--quiet")
    assert r.returncode == 0, r.stderr + r.stdout
    res = json.load(open(os.path.join(out, "results.json")))
    assert len(res["points"]) == 4 and res["scalability"] is None
    assert all(p["summary"]["median_mb_s"] > 0 for p in res["points"])
    assert open(os.path.join(out, "report.html")).read().count("<svg") == 2


def test_bad_sweeps_are_refused():
    r = tune("--sweep", "no.such.key=1,2")
    assert r.returncode != 0 and "neither a client setting" in r.stderr
    r = tune("--bootstrap-server", "127.0.0.1:1", "--sweep", "num.io.threads=1,2")
    assert r.returncode != 0 and "broker setting" in r.stderr
    r = tune("--sweep", "batch.size=1", "--repetitions", "2")
    assert r.returncode != 0 and "at least 3" in r.stderr
    r = subprocess.run([BIN, "tune", "plan", "--ingress-mb-s", "1", "--retention-hours", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--from" in r.stderr


def test_sweep_from_a_toml_file(broker):
    out = tempfile.mkdtemp(prefix="ringlet-tune-")
    cfg = os.path.join(out, "sweep.toml")
    with open(cfg, "w") as f:
        f.write(f'bootstrap_server = "{broker.bootstrap}"\nduration = 0.3\nwarmup = 0.2\n'
                'repetitions = 3\n[sweep]\n"linger.ms" = [0, 5]\n[loadgen]\n"record.size" = 256\n')
    r = tune("--config", cfg, "--no-curve", "--output-dir", out, "--quiet")
    assert r.returncode == 0, r.stderr + r.stdout
    res = json.load(open(os.path.join(out, "results.json")))
    assert res["sweeps"] == [["linger.ms", ["0", "5"], False]]
    assert res["loadgen_base"]["record_size"] == "256" and res["repetitions"] == 3
    assert [p["settings"] for p in res["points"]] == [[["linger.ms", "0"]], [["linger.ms", "5"]]]
    # A key TOML does not know is refused, not ignored.
    with open(cfg, "a") as f:
        f.write("no_such_setting = 1\n")
    r = tune("--config", cfg, "--output-dir", out, "--quiet")
    assert r.returncode != 0

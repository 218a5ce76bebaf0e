"""`ringlet loadgen` against a real `ringlet serve`: each mode, JSON complete, verify clean."""
import json
import subprocess

import pytest

from conftest import BIN, unique

PERCENTILES = {"count", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "p9999_ms", "max_ms", "mean_ms"}


def loadgen(broker, *extra, timeout=120):
    out = subprocess.run([BIN, "loadgen", "--bootstrap-server", broker.bootstrap, "--topic", unique("lg"),
                          "--output", "json", "--quiet", *extra],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def check_complete(r):
    for k in ["config", "machine", "broker_api_versions", "measured_seconds", "produced", "consumed",
              "produce_latency_from_intended", "produce_latency_from_send", "end_to_end_latency", "errors"]:
        assert k in r, k
    for k in ["produce_latency_from_intended", "produce_latency_from_send", "end_to_end_latency"]:
        assert set(r[k]) == PERCENTILES
    assert r["machine"]["cores"] >= 1 and r["machine"]["kernel"]
    assert "Produce" in r["broker_api_versions"]
    assert r["errors"] == {}


def test_produce_only(broker):
    r = loadgen(broker, "--duration", "2", "--acks", "1")
    check_complete(r)
    assert r["produced"]["records"] > 1000
    assert r["consumed"]["records"] == 0
    assert r["produce_latency_from_intended"]["count"] == r["produced"]["records"]


def test_produce_and_consume(broker):
    r = loadgen(broker, "--duration", "2", "--consumers", "2", "--partitions", "4", "--acks", "all", "--keys", "100")
    check_complete(r)
    assert r["consumed"]["records"] > 1000
    assert r["end_to_end_latency"]["count"] == r["consumed"]["records"]


def test_fixed_rate(broker):
    r = loadgen(broker, "--duration", "3", "--rate", "5000", "--record-size", "uniform:100..2000")
    check_complete(r)
    assert 4000 < r["produced"]["records_per_s"] < 6000, r["produced"]


def test_verify_reports_no_loss(broker):
    r = loadgen(broker, "--duration", "2", "--consumers", "1", "--producers", "2", "--verify", "--acks", "all")
    check_complete(r)
    v = r["verification"]
    assert v["acknowledged"] > 1000
    assert (v["lost"], v["duplicated"], v["reordered"]) == (0, 0, 0)


def test_records_mode_and_csv(broker):
    out = subprocess.run([BIN, "loadgen", "--bootstrap-server", broker.bootstrap, "--topic", unique("lgcsv"),
                          "--records", "20000", "--output", "csv", "--quiet", "--warmup", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    header, values = out.stdout.strip().splitlines()
    row = dict(zip(header.split(","), values.split(",")))
    assert int(row["produced_records"]) >= 20000
    assert float(row["ack_intended_p99_ms"]) > 0


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce_and_verify(broker, codec):
    r = loadgen(broker, "--duration", "1", "--consumers", "1", "--compression", codec, "--verify")
    check_complete(r)
    v = r["verification"]
    assert v["acknowledged"] > 100 and v["lost"] == 0 and v["duplicated"] == 0
    assert r["consumed"]["records"] > 100


def test_consumers_in_a_group(fresh_broker):
    b = fresh_broker({"group.initial.rebalance.delay.ms": 200})
    r = loadgen(b, "--duration", "2", "--warmup", "2", "--consumers", "3", "--partitions", "4",
                "--group", unique("lg-group"), "--verify")
    check_complete(r)
    v = r["verification"]
    assert v["acknowledged"] > 1000 and (v["lost"], v["duplicated"]) == (0, 0), v
    assert r["consumed"]["records"] > 1000


def test_consume_only_reads_everything_the_topic_holds(broker):
    """`--producers 0`: read the topic from its start to the end offsets taken at start-up."""
    topic = unique("lg-consume-only")
    subprocess.run([BIN, "loadgen", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                    "--records", "30000", "--warmup", "0", "--partitions", "3", "--quiet"],
                   check=True, capture_output=True, timeout=120)
    out = subprocess.run([BIN, "loadgen", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                          "--producers", "0", "--consumers", "2", "--output", "json", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    check_complete(r)
    assert r["produced"]["records"] == 0
    # Every record the topic holds is read once: the sum of the partitions' end offsets.
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm", "enable.auto.commit": False})
    assert len(c.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    held = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3))
    c.close()
    assert held >= 30000
    assert r["consumed"]["records"] == held, (r["consumed"], held)
    assert r["consumed"]["bytes"] == r["consumed"]["records"] * 1024
    refused = subprocess.run([BIN, "loadgen", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                              "--producers", "0", "--quiet"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--consumers" in refused.stderr

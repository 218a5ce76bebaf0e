"""The Prometheus endpoint (`ringlet.metrics.listener`) scraped while real clients work: traffic
per partition, requests and errors by API, latency histograms, shard and I/O counters, and the lag
of a confluent-kafka consumer group."""
import re
import subprocess
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer

from conftest import free_port, unique
from test_produce_consume import create


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def value(text, name, **labels):
    """The value of the one sample of `name` whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == str(v) for k, v in labels.items()):
            found.append(float(m.group(4)))
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_metrics_follow_real_traffic(fresh_broker):
    port = free_port()
    b = fresh_broker({"ringlet.metrics.listener": f"127.0.0.1:{port}"})
    topic = unique("met")
    create(b, topic, 2)
    # 300 records of 100 bytes to partition 0 by kcat, 200 by confluent-kafka to partition 1.
    lines = "".join(f"{'x' * 99}\n" for _ in range(300))
    subprocess.run(["kcat", "-P", "-b", b.bootstrap, "-t", topic, "-p", "0"],
                   input=lines.encode(), check=True, timeout=60)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(200):
        p.produce(topic, value=b"y" * 100, partition=1)
    assert p.flush(30) == 0
    # A group reads and commits partition 0 and 1 wholly, then 200 more records arrive.
    group = unique("metg")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    seen = 0
    for _ in range(600):
        if seen >= 500:
            break
        for m in c.consume(num_messages=500, timeout=0.2):
            if m.error() is None:
                seen += 1
    assert seen == 500
    c.commit(asynchronous=False)
    for i in range(200):
        p.produce(topic, value=b"z" * 100, partition=1)
    assert p.flush(30) == 0
    # A request that fails: a consumer asks for metadata of a topic that does not exist.
    subprocess.run(["kcat", "-C", "-b", b.bootstrap, "-t", unique("absent"), "-e", "-q"],
                   capture_output=True, timeout=60)

    text = scrape(port)
    assert value(text, "ringlet_partition_records_in_total", topic=topic, partition=0) == 300
    assert value(text, "ringlet_partition_records_in_total", topic=topic, partition=1) == 400
    assert value(text, "ringlet_partition_bytes_in_total", topic=topic, partition=0) > 300 * 100
    assert value(text, "ringlet_partition_bytes_out_total", topic=topic, partition=0) > 300 * 100
    assert value(text, "ringlet_partition_log_end_offset", topic=topic, partition=1) == 400
    assert value(text, "ringlet_partition_high_watermark", topic=topic, partition=1) == 400
    assert value(text, "ringlet_partition_log_start_offset", topic=topic, partition=1) == 0
    assert value(text, "ringlet_group_committed_offset", group=group, topic=topic, partition=1) == 200
    assert value(text, "ringlet_group_lag", group=group, topic=topic, partition=1) == 200
    assert value(text, "ringlet_group_lag", group=group, topic=topic, partition=0) == 0
    assert value(text, "ringlet_group_members", group=group) == 1
    assert value(text, "ringlet_requests_total", api="Produce") >= 2
    assert value(text, "ringlet_requests_total", api="JoinGroup") >= 1
    assert value(text, "ringlet_request_errors_total", api="Metadata",
                 error="UNKNOWN_TOPIC_OR_PARTITION") >= 1
    produce_count = value(text, "ringlet_request_duration_seconds_count", api="Produce")
    assert value(text, "ringlet_request_duration_seconds_bucket", api="Produce", le="+Inf") == produce_count
    assert value(text, "ringlet_requests_total", api="Produce") == produce_count
    assert value(text, "ringlet_log_write_duration_seconds_count", shard=0) \
        + value(text, "ringlet_log_write_duration_seconds_count", shard=1) >= 2
    assert value(text, "ringlet_io_ops_completed_total", shard=0) > 0
    assert value(text, "ringlet_shard_idle_seconds_total", shard=0) > 0
    assert value(text, "ringlet_connections") >= 1
    # Counters only grow.
    again = scrape(port)
    assert value(again, "ringlet_io_ops_completed_total", shard=0) >= value(text, "ringlet_io_ops_completed_total", shard=0)
    c.close()


def test_metrics_endpoint_answers_http_errors(fresh_broker):
    port = free_port()
    fresh_broker({"ringlet.metrics.listener": f"127.0.0.1:{port}"})
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404

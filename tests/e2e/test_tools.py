"""`ringlet topics` (kafka-topics.sh's flags) against a real broker."""
import subprocess

from conftest import BIN, unique


def topics(broker, *args):
    return subprocess.run([BIN, "topics", "--bootstrap-server", broker.bootstrap, *args], capture_output=True, text=True, timeout=60)


def test_topics_create_list_describe_alter_delete(broker):
    name = unique("tool")
    r = topics(broker, "--create", "--topic", name, "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=60000")
    assert r.returncode == 0 and f"Created topic {name}." in r.stdout, r.stderr
    assert name in topics(broker, "--list").stdout.split()
    r = topics(broker, "--alter", "--topic", name, "--partitions", "4", "--config", "segment.bytes=1048576")
    assert r.returncode == 0, r.stderr
    r = topics(broker, "--describe", "--topic", name)
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.strip().splitlines()
    assert "PartitionCount: 4" in head and "ReplicationFactor: 1" in head
    assert "retention.ms=60000" in head and "segment.bytes=1048576" in head
    assert [row.split("\t")[2] for row in rows] == [f"Partition: {i}" for i in range(4)]
    assert all("Leader: 0\tReplicas: 0\tIsr: 0" in row for row in rows)
    r = topics(broker, "--delete", "--topic", name)
    assert r.returncode == 0, r.stderr
    assert name not in topics(broker, "--list").stdout.split()


def test_topics_errors_have_kafka_names_and_nonzero_exit(broker):
    name = unique("dup")
    assert topics(broker, "--create", "--topic", name).returncode == 0
    r = topics(broker, "--create", "--topic", name)
    assert r.returncode != 0 and "TOPIC_ALREADY_EXISTS" in r.stderr
    assert topics(broker, "--create", "--topic", name, "--if-not-exists").returncode == 0
    r = topics(broker, "--describe", "--topic", unique("missing"))
    assert r.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr
    r = topics(broker, "--alter", "--topic", name, "--partitions", "1")
    assert r.returncode != 0 and "INVALID_PARTITIONS" in r.stderr


def tool(broker, name, *args, input=None):
    return subprocess.run([BIN, name, "--bootstrap-server", broker.bootstrap, *args], input=input,
                          capture_output=True, text=True, timeout=60)


def test_ringlet_produce_read_by_kcat(broker):
    topic = unique("rp")
    lines = "".join(f"k{i}:value {i}\n" for i in range(200))
    r = tool(broker, "produce", "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:",
             "--compression-codec", "lz4", input=lines)
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-e", "-f", "%k=%s\n"],
                         capture_output=True, text=True, timeout=60)
    assert sorted(out.stdout.splitlines()) == sorted(f"k{i}=value {i}" for i in range(200))


def test_kcat_produce_read_by_ringlet_consume(broker):
    topic = unique("kc")
    data = "".join(f"v{i}\n" for i in range(50))
    p = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-z", "gzip", "-H", "h1=x"], input=data,
                       text=True, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    r = tool(broker, "consume", "--topic", topic, "--from-beginning", "--max-messages", "50",
             "--property", "print.offset=true", "--property", "print.headers=true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"Offset:{i}\th1:x\tv{i}" for i in range(50)]
    assert "Processed a total of 50 messages" in r.stderr
    r = tool(broker, "consume", "--topic", topic, "--partition", "0", "--offset", "45", "--timeout-ms", "1000", "--output", "json")
    import json
    assert [json.loads(l)["value"] for l in r.stdout.splitlines()] == [f"v{i}" for i in range(45, 50)]


def test_produce_reports_failures_per_record(fresh_broker):
    b = fresh_broker({"message.max.bytes": 2000})
    topic = unique("fail")
    r = tool(b, "produce", "--topic", topic, "--batch-size", "1", input="small\n" + "x" * 5000 + "\n")
    assert r.returncode != 0
    assert "line 2 failed: MESSAGE_TOO_LARGE" in r.stderr


def test_groups_describe_shows_lag_of_a_confluent_group(broker):
    from confluent_kafka import Consumer, Producer

    topic = unique("lag")
    group = unique("lg")
    assert tool(broker, "topics", "--create", "--topic", topic, "--partitions", "2").returncode == 0
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce(topic, value=str(i).encode(), partition=i % 2)
    p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    import time
    deadline = time.time() + 30
    while got < 30 and time.time() < deadline:
        for m in c.consume(num_messages=1, timeout=0.5):
            if m.error() is None and m.partition() == 0:
                got += 1
                c.commit(m, asynchronous=False)
    r = tool(broker, "groups", "--describe", "--group", group)
    assert r.returncode == 0, r.stderr
    rows = {l.split()[2]: l.split() for l in r.stdout.splitlines()[2:]}
    assert rows["0"][3:6] == [str(got), "50", str(50 - got)], r.stdout
    assert group in tool(broker, "groups", "--list").stdout.split()
    # Resetting is refused while the group has a member, then works once it is empty.
    r = tool(broker, "groups", "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute")
    assert r.returncode != 0 and "active member" in r.stderr
    c.close()
    r = tool(broker, "groups", "--reset-offsets", "--group", group, "--topic", topic, "--to-offset", "7", "--execute")
    assert r.returncode == 0, r.stderr
    r = tool(broker, "groups", "--describe", "--group", group)
    rows = {l.split()[2]: l.split() for l in r.stdout.splitlines()[2:]}
    assert rows["0"][3] == "7" and rows["1"][3] == "7", r.stdout
    assert tool(broker, "groups", "--delete", "--group", group).returncode == 0
    assert group not in tool(broker, "groups", "--list").stdout.split()


def test_malformed_property_is_refused(broker):
    for name in ["produce", "consume"]:
        r = tool(broker, name, "--topic", "props-check", "--property", "parse.key", input="a\n")
        assert r.returncode != 0 and "--property parse.key: expected key=value" in r.stderr, r.stderr


def test_delete_records_tool(broker, tmp_path):
    """`ringlet delete-records` with Kafka's offset JSON file and with flags; kcat then reads from
    the new log start; a refusal names Kafka's error and exits non-zero."""
    topic = unique("delrec-tool")
    assert topics(broker, "--create", "--topic", topic, "--partitions", "2").returncode == 0
    lines = "".join(f"k{i}:v{i}\n" for i in range(10))
    for p in ("0", "1"):
        r = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", p, "-K:"],
                           input=lines, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    spec = tmp_path / "offsets.json"
    spec.write_text('{"version": 1, "partitions": [{"topic": "%s", "partition": 0, "offset": 7},'
                    ' {"topic": "%s", "partition": 1, "offset": -1}]}' % (topic, topic))
    r = tool(broker, "delete-records", "--offset-json-file", str(spec))
    assert r.returncode == 0, r.stderr
    assert f"partition: {topic}-0\tlow_watermark: 7" in r.stdout, r.stdout
    assert f"partition: {topic}-1\tlow_watermark: 10" in r.stdout, r.stdout
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning",
                          "-e", "-f", "%o:%s\n"], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["7:v7", "8:v8", "9:v9"], out.stdout
    r = tool(broker, "delete-records", "--topic", topic, "--partition", "0", "--offset", "99")
    assert r.returncode != 0 and "OFFSET_OUT_OF_RANGE" in r.stdout, (r.stdout, r.stderr)

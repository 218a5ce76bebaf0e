"""Produce and consume with librdkafka (confluent-kafka), kafka-python and kcat."""
import hashlib
import subprocess
import time
import zlib

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique


def create(broker, name, partitions=1, config=None):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])[name].result(timeout=10)


def consume_all(broker, topic, partitions, expected, timeout=60):
    """Reads every partition from the beginning until `expected` records arrived."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "unused",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        for m in c.consume(num_messages=10000, timeout=0.5):
            assert m.error() is None, m.error()
            out.append(m)
    c.close()
    return out


def value_for(i):
    return hashlib.sha256(str(i).encode()).digest() * (1 + i % 8)


def test_100k_records_with_keys_and_headers_round_trip(broker):
    topic = unique("roundtrip")
    partitions = 4
    create(broker, topic, partitions)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    n = 100_000
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    for i in range(n):
        while True:
            try:
                p.produce(topic, key=f"key-{i % 97}".encode(), value=value_for(i),
                          headers=[("seq", str(i).encode()), ("h2", b"\x00\x01")], on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]

    msgs = consume_all(broker, topic, partitions, n)
    assert len(msgs) == n
    by_partition = {}
    key_partition = {}
    for m in msgs:
        by_partition.setdefault(m.partition(), []).append(m)
        key_partition.setdefault(m.key(), set()).add(m.partition())
        seq = int(dict(m.headers())["seq"])
        assert m.value() == value_for(seq)
        assert m.key() == f"key-{seq % 97}".encode()
        assert dict(m.headers())["h2"] == b"\x00\x01"
    for part, ms in by_partition.items():
        offsets = [m.offset() for m in ms]
        assert offsets == list(range(len(ms))), f"partition {part} offsets not dense from 0"
        seqs = [int(dict(m.headers())["seq"]) for m in ms]
        assert seqs == sorted(seqs), f"partition {part} out of order"
    assert all(len(s) == 1 for s in key_partition.values()), "a key landed on two partitions"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs_round_trip(broker, codec):
    topic = unique(f"codec-{codec}")
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20})
    n = 2000
    for i in range(n):
        p.produce(topic, value=f"{codec}-{i}-".encode() * 20)
    assert p.flush(30) == 0
    msgs = consume_all(broker, topic, 1, n)
    assert [m.value() for m in msgs] == [f"{codec}-{i}-".encode() * 20 for i in range(n)]
    assert [m.offset() for m in msgs] == list(range(n))


def test_record_near_limit_round_trips_and_over_limit_is_refused(fresh_broker):
    b = fresh_broker({"message.max.bytes": 200_000})
    topic = unique("limit")
    create(b, topic)
    p = Producer({"bootstrap.servers": b.bootstrap, "message.max.bytes": 1_000_000, "compression.type": "none", "batch.size": 1_000_000})
    results = []
    near = b"n" * 199_000
    p.produce(topic, value=near, on_delivery=lambda e, m: results.append(e))
    p.flush(30)
    p.produce(topic, value=b"o" * 250_000, on_delivery=lambda e, m: results.append(e))
    p.flush(30)
    assert results[0] is None
    assert results[1] is not None and results[1].code() == KafkaError.MSG_SIZE_TOO_LARGE, results[1]
    msgs = consume_all(b, topic, 1, 1)
    assert msgs[0].value() == near
    assert "MESSAGE_TOO_LARGE" in b.read_log()


def test_list_offsets_and_offsets_for_times(broker):
    topic = unique("offsets")
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    base = 1_700_000_000_000
    for i in range(10):
        p.produce(topic, value=str(i).encode(), timestamp=base + i * 1000)
        p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (lo, hi) == (0, 10)
    got = c.offsets_for_times([TopicPartition(topic, 0, base + 4500)], timeout=10)
    assert got[0].offset == 5
    got = c.offsets_for_times([TopicPartition(topic, 0, base)], timeout=10)
    assert got[0].offset == 0
    got = c.offsets_for_times([TopicPartition(topic, 0, base + 999_999)], timeout=10)
    assert got[0].offset in (-1, 10)  # no such record: Kafka answers -1 (librdkafka shows the end)
    c.close()


def test_idempotent_producer_has_no_duplicates(broker):
    topic = unique("idem")
    create(broker, topic, 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
    n = 20_000
    for i in range(n):
        while True:
            try:
                p.produce(topic, key=str(i % 10).encode(), value=str(i).encode())
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    msgs = consume_all(broker, topic, 2, n)
    values = sorted(int(m.value()) for m in msgs)
    assert values == list(range(n))


def test_kafka_python_round_trip(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

    topic = unique("kpy")
    create(broker, topic)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for i in range(500):
        prod.send(topic, key=b"k", value=f"v{i}".encode(), headers=[("i", str(i).encode())])
    prod.flush(30)
    prod.close()
    cons = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    cons.assign([KTP(topic, 0)])
    cons.seek_to_beginning()
    got = [m for m in cons]
    cons.close()
    assert [m.value for m in got] == [f"v{i}".encode() for i in range(500)]
    assert [m.offset for m in got] == list(range(500))


def test_kcat_round_trip(broker):
    topic = unique("kcat")
    lines = "".join(f"k{i}:value-{i}\n" for i in range(1000))
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-K:"], input=lines, text=True, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-e", "-f", "%o %k %s\n"], text=True, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = out.stdout.splitlines()
    assert got == [f"{i} k{i} value-{i}" for i in range(1000)]


@pytest.mark.parametrize("send_zc", ["false", "true"])
def test_copying_fetch_round_trip(fresh_broker, send_zc):
    """The copying fetch path (read into a buffer, then a plain send or, with
    ringlet.fetch.send.zc, IORING_OP_SEND_ZC) serves the same bytes as the default splice path
    (segment file -> pipe -> socket) that every other test uses."""
    from kafka import KafkaConsumer, TopicPartition as KTP

    b = fresh_broker({"ringlet.fetch.zero.copy": "false", "ringlet.fetch.send.zc": send_zc,
                      "log.segment.bytes": 300_000})
    topic = unique("copying")

    create(b, topic, 2)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    n = 20_000
    for i in range(n):
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=value_for(i))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    msgs = consume_all(b, topic, 2, n)
    assert sorted(int(m.key()) for m in msgs) == list(range(n))
    assert all(m.value() == value_for(int(m.key())) for m in msgs)
    cons = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    cons.assign([KTP(topic, 0), KTP(topic, 1)])
    cons.seek_to_beginning()
    got = [m for m in cons]
    cons.close()
    assert len(got) == n and all(m.value == value_for(int(m.key)) for m in got)


def test_long_poll_returns_when_data_arrives(broker):
    """A consumer waiting in a long poll (fetch.wait.max.ms) gets a record soon after it is produced."""
    topic = unique("longpoll")
    create(broker, topic)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "fetch.wait.max.ms": 5000, "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, 0, 0)])
    c.consume(num_messages=1, timeout=1.0)  # the fetcher is now parked at offset 0
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    sent = time.time()
    p.produce(topic, value=b"wake up")
    p.flush(10)
    got = c.consume(num_messages=1, timeout=10)
    latency = time.time() - sent
    c.close()
    assert [m.value() for m in got] == [b"wake up"]
    assert latency < 2.5, f"long poll did not wake on new data ({latency:.2f}s with fetch.wait.max.ms=5000)"


def test_offsets_for_times_looks_inside_a_batch(broker):
    """Issue 21 item 2: two records with timestamps 1234 and 999999999999 in one batch; Kafka
    answers the first record at or after the time, not the batch's base offset, and -1 (no
    error) past the largest timestamp."""
    topic = unique("ts-batch")
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 200})
    p.produce(topic, value=b"old", timestamp=1234)
    p.produce(topic, value=b"new", timestamp=999_999_999_999)
    p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    batch = []
    deadline = time.time() + 20
    while len(batch) < 2 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            batch.append(m)
    assert [m.value() for m in batch] == [b"old", b"new"]
    assert [m.timestamp()[1] for m in batch] == [1234, 999_999_999_999]

    def at(ts):
        got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
        assert got.error is None, got.error
        return got.offset

    assert at(0) == 0
    assert at(1234) == 0
    assert at(1235) == 1
    assert at(999_999_999_999) == 1
    assert at(1_000_000_000_000) in (-1, 2)  # none: Kafka answers -1 (librdkafka may show the end)
    c.close()


def test_timestamp_bounds_kip_937(broker):
    """Issue 21 item 1: CreateTime records outside message.timestamp.{before,after}.max.ms of the
    broker's clock are refused with INVALID_TIMESTAMP (Kafka 4's defaults: unbounded behind, one
    hour ahead), per topic; LogAppendTime topics are not checked."""
    now = int(time.time() * 1000)
    day = 86_400_000

    def deliver(topic, ts):
        p = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0, "enable.idempotence": False})
        out = []
        p.produce(topic, value=b"v", timestamp=ts, on_delivery=lambda e, m: out.append(e))
        p.flush(10)
        return out[0].code() if out[0] else None

    plain = unique("ts-plain")
    create(broker, plain)
    assert deliver(plain, now - 365 * day) is None
    assert deliver(plain, now + 600_000) is None
    assert deliver(plain, now + 2 * 3_600_000) == KafkaError.INVALID_TIMESTAMP
    strict = unique("ts-strict")
    create(broker, strict, config={"message.timestamp.before.max.ms": str(day),
                                   "message.timestamp.after.max.ms": "0"})
    assert deliver(strict, now - 2 * day) == KafkaError.INVALID_TIMESTAMP
    assert deliver(strict, now - 1000) is None
    stamped = unique("ts-append")
    create(broker, stamped, config={"message.timestamp.type": "LogAppendTime"})
    assert deliver(stamped, now + 2 * 3_600_000) is None

"""Log compaction, DeleteRecords and DescribeLogDirs against a real broker, with clients nobody
here wrote (librdkafka through confluent-kafka, kafka-python): a compacted topic keeps each key's
latest value at its original offset, tombstones expire after delete.retention.ms, keyless records
are refused, a kill -9 in the middle of a cleaning loses nothing, DeleteRecords moves the log
start durably, and DescribeLogDirs lists the partitions."""
import signal
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import Broker, unique

CLEANER = {"log.cleaner.backoff.ms": "200"}
COMPACT = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
           "delete.retention.ms": "1500"}


def create(b, name, config, partitions=1):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                              config=config)])[name].result(timeout=10)


def produce_rounds(b, topic, rounds, keys, pause=0.15, tombstones=(), value_size=10):
    """Round r writes every key once (value r-<key>-padding), in its own segment (segment.ms is
    100 ms: the first append after it rolls). Returns {offset: (key, value)} from the delivery
    reports."""
    written = {}

    def report(err, msg):
        assert err is None, err
        written[msg.offset()] = (msg.key(), msg.value())

    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for r in range(rounds):
        for k in keys:
            tomb = (r, k) in tombstones
            value = None if tomb else f"{r}-{k}-".encode() + b"x" * value_size
            p.produce(topic, key=k.encode(), value=value, on_delivery=report)
        p.flush(10)
        time.sleep(pause)
    return written


def read_all(b, topic, partition=0):
    """Every (offset, key, value) from the log start to the end."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("reader"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    end = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    c.assign([TopicPartition(topic, partition, -2)])
    out = []
    deadline = time.time() + 30
    while time.time() < deadline:
        if out and out[-1][0] >= end - 1:
            break
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def wait_for(cond, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def latest_per_key(written, below=None):
    latest = {}
    for off in sorted(written):
        if below is None or off < below:
            latest[written[off][0]] = off
    return latest


def test_a_compacted_topic_keeps_the_latest_value_of_each_key(fresh_broker):
    from conftest import free_port
    from test_metrics import scrape, value

    metrics = free_port()
    b = fresh_broker(dict(CLEANER, **{"ringlet.metrics.listener": f"127.0.0.1:{metrics}",
                                      "num.io.threads": "1"}))
    topic = unique("compact")
    create(b, topic, COMPACT)
    keys = [f"k{i}" for i in range(10)]
    written = produce_rounds(b, topic, 12, keys, tombstones={(8, "k9")})
    # A last record in a segment of its own: every round is now in a non-active segment.
    time.sleep(0.2)
    written.update(produce_rounds(b, topic, 1, ["marker"], pause=0))
    marker = max(written)

    def compacted():
        return len(read_all(b, topic)) <= len(keys) + 1
    wait_for(compacted, what="the cleaner to compact the topic")
    seen = read_all(b, topic)
    latest = latest_per_key(written, below=marker)
    # Each record is the one written at that offset, and the latest of its key.
    for off, k, v in seen:
        assert written[off] == (k, v), (off, k, v)
        if off < marker:
            assert latest[k] == off, f"{k} at {off} is not its latest ({latest[k]})"
    assert {k for _, k, _ in seen} == {k.encode() for k in keys} | {b"marker"}
    # k9's tombstone (round 8) was followed by rounds 9-11: k9 lives, its latest value kept.
    assert dict((k, v) for _, k, v in seen)[b"k9"] == b"11-k9-" + b"x" * 10
    # The cleaner's metrics saw it.
    text = scrape(metrics)
    assert value(text, "ringlet_cleaner_runs_total", shard=0) >= 1
    assert value(text, "ringlet_cleaner_records_removed_total", shard=0) >= 100
    assert value(text, "ringlet_cleaner_bytes_written_total", shard=0) > 0
    assert value(text, "ringlet_partition_cleaner_dirty_ratio", topic=topic, partition=0) < 0.5
    # The log start stays where it was: the earliest offset is still 0 (offsets are kept).
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("wm")})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, marker + 1)
    c.close()
    # A restart (kill -9) keeps the compacted log as it is.
    b.stop(signal.SIGKILL)
    b.start()
    assert read_all(b, topic) == seen


def test_tombstones_go_after_delete_retention_ms(fresh_broker):
    b = fresh_broker(CLEANER)
    topic = unique("tomb")
    create(b, topic, COMPACT)
    written = produce_rounds(b, topic, 3, ["a", "b"], tombstones={(2, "b")})
    time.sleep(0.2)
    written.update(produce_rounds(b, topic, 1, ["m1"], pause=0))
    # First cleaning: b's tombstone is the latest record of b and stays (its horizon is set).
    wait_for(lambda: len(read_all(b, topic)) == 3, what="the first cleaning")
    assert [(k, v) for _, k, v in read_all(b, topic)] == [
        (b"a", b"2-a-" + b"x" * 10), (b"b", None), (b"m1", b"0-m1-" + b"x" * 10)]
    # Past delete.retention.ms (1.5 s), a later cleaning (more dirty data) drops it.
    time.sleep(1.6)
    written.update(produce_rounds(b, topic, 1, ["m2"], pause=0.2))
    written.update(produce_rounds(b, topic, 1, ["m3"], pause=0))
    wait_for(lambda: b"b" not in {k for _, k, _ in read_all(b, topic)},
             what="the tombstone to expire")
    assert [k for _, k, _ in read_all(b, topic)] == [b"a", b"m1", b"m2", b"m3"]


def test_records_without_a_key_are_refused_on_a_compacted_topic(fresh_broker):
    b = fresh_broker()
    topic = unique("nokey")
    create(b, topic, {"cleanup.policy": "compact"})
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "message.send.max.retries": 0})
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    # (A batch holding a keyless record is refused whole, as by Kafka.)
    p.produce(topic, key=b"k", value=b"keyed", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    assert errors[1] is None, errors
    # The same producer on a delete topic is fine.
    other = unique("keyless-ok")
    create(b, other, {})
    ok = []
    p.produce(other, value=b"no key", on_delivery=lambda err, msg: ok.append(err))
    p.flush(10)
    assert ok == [None]


def test_kill_9_during_a_cleaning_loses_nothing(fresh_broker):
    # A slow cleaner (io capped at 300 kB/s) over ~2 MB of history: killed while it works.
    b = fresh_broker(dict(CLEANER, **{"log.cleaner.io.max.bytes.per.second": "300000"}))
    topic = unique("crash")
    create(b, topic, COMPACT)
    keys = [f"k{i}" for i in range(50)]
    written = produce_rounds(b, topic, 40, keys, pause=0.11, value_size=1000)
    time.sleep(0.2)
    written.update(produce_rounds(b, topic, 1, ["marker"], pause=0))
    # Killed while a cleaned segment is being written (the copy phase, throttled).
    deadline = time.time() + 30
    while ".log.cleaned" not in _files(b):
        assert time.time() < deadline, "no cleaning was seen writing"
        time.sleep(0.01)
    b.stop(signal.SIGKILL)
    assert ".log.cleaned" in _files(b)
    b.start()
    b.overrides.pop("log.cleaner.io.max.bytes.per.second")
    seen = read_all(b, topic)
    latest = latest_per_key(written)
    for off, k, v in seen:
        assert written[off] == (k, v), (off, k, v)
    assert {latest[k] for k in latest} <= {off for off, _, _ in seen}, "a latest value was lost"
    # And the cleaning completes after the restart.
    b.stop()
    b.start()
    wait_for(lambda: len(read_all(b, topic)) == len(keys) + 1, timeout=60,
             what="the cleaning to finish after the restart")
    for off, k, v in read_all(b, topic):
        assert latest[k] == off and written[off] == (k, v)


def _files(b):
    import os
    out = []
    for root, _, files in os.walk(os.path.join(b.data_dir, "data")):
        out.extend(files)
    return " ".join(out)


def test_delete_records_moves_the_log_start(fresh_broker):
    b = fresh_broker()
    topic = unique("delrec")
    create(b, topic, {"segment.bytes": "1048576"})
    written = produce_rounds(b, topic, 1, [f"k{i}" for i in range(100)], pause=0)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    res = a.delete_records([TopicPartition(topic, 0, 40)])
    deleted = list(res.values())[0].result(timeout=10)
    assert deleted.low_watermark == 40, deleted
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("wm")})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (40, 100)
    c.close()
    seen = read_all(b, topic)
    assert seen[0][0] == 40 and len(seen) == 60
    assert all(written[o] == (k, v) for o, k, v in seen)
    # Past the high watermark: OFFSET_OUT_OF_RANGE; never backwards.
    bad = a.delete_records([TopicPartition(topic, 0, 500)])
    try:
        list(bad.values())[0].result(timeout=10)
        raise AssertionError("an offset past the end was accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, e
    # Durable across kill -9.
    b.stop(signal.SIGKILL)
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("wm")})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (40, 100)
    c.close()
    # A compacted topic refuses it (POLICY_VIOLATION), as Kafka's does.
    compacted = unique("delrec-compact")
    create(b, compacted, {"cleanup.policy": "compact"})
    produce_rounds(b, compacted, 1, ["a"], pause=0)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    refused = a.delete_records([TopicPartition(compacted, 0, 1)])
    try:
        list(refused.values())[0].result(timeout=10)
        raise AssertionError("DeleteRecords on a compacted topic was accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.POLICY_VIOLATION, e


def test_describe_log_dirs_lists_partitions_and_space(broker):
    from kafka import KafkaAdminClient

    topic = unique("logdirs")
    create(broker, topic, {}, partitions=2)
    produce_rounds(broker, topic, 1, ["a", "b", "c"], pause=0)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        dirs = a.describe_log_dirs()
    finally:
        a.close()
    found = {}
    [only] = dirs
    assert only["broker"] == 0
    for d in only["log_dirs"]:
        assert d["error_code"] == 0 and d["log_dir"].startswith("/")
        for t in d["topics"]:
            if t["name"] == topic:
                for p in t["partitions"]:
                    found[p["partition_index"]] = p["partition_size"]
    assert set(found) == {0, 1}, dirs
    assert sum(found.values()) > 0


def test_the_offsets_topic_is_compacted(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(unique("touch"), b"x")
    p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("g")})
    c.close()
    res = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets")
    deadline = time.time() + 20
    while True:
        try:
            a = AdminClient({"bootstrap.servers": broker.bootstrap})
            configs = a.describe_configs([res])[res].result(timeout=10)
            break
        except KafkaException:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    assert configs["cleanup.policy"].value == "compact"

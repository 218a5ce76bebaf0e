"""Storage faults: injected EIO/ENOSPC on writes and fdatasync (the portable backend's fault
injector, `ringlet.io.fault.injection`), and a real filesystem filled to the brim (a small tmpfs).
Producers get KAFKA_STORAGE_ERROR, acknowledged records are all readable with valid CRCs, no
half-written batch is ever served, healthy partitions keep serving, and the broker takes writes
again once space comes back."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from conftest import Broker, unique
from test_produce_consume import create


def produce_each(b, topic, partition, values, **extra):
    """Produces each value (acks=all, no retries) and returns (acked values, error names)."""
    conf = {"bootstrap.servers": b.bootstrap, "acks": "all", "retries": 0, "linger.ms": 0,
            "enable.idempotence": False, "message.timeout.ms": 10000}
    conf.update(extra)
    p = Producer(conf)
    acked, errors = [], []

    def done(err, msg):
        if err is None:
            acked.append(msg.value())
        else:
            errors.append(err.name())

    for v in values:
        p.produce(topic, value=v, partition=partition, on_delivery=done)
        p.flush(15)
    return acked, errors


def read_all(b, topic, partition, expect_at_least):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("r"),
                  "enable.auto.commit": False, "check.crcs": True,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, partition, 0)])
    got, errors = [], []
    deadline = time.time() + 20
    idle_since = time.time()
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(got) >= expect_at_least and time.time() - idle_since > 1.0:
                break
            continue
        idle_since = time.time()
        if m.error() is not None:
            if m.error().code() != KafkaError._PARTITION_EOF:
                errors.append(m.error().name())
            continue
        got.append(m.value())
    c.close()
    return got, errors


def test_injected_write_faults_fail_only_their_batches(fresh_broker):
    b = fresh_broker({"ringlet.io.fault.injection":
                      "write.error.ppm=250000,errno=ENOSPC,torn.writes=true,seed=11"})
    topic = unique("wfault")
    create(b, topic, 1)
    values = [f"v{i:04d}".encode() for i in range(120)]
    acked, errors = produce_each(b, topic, 0, values)
    assert errors and set(errors) == {"KAFKA_STORAGE_ERROR"}, errors
    assert len(acked) + len(errors) == len(values) and len(acked) > 40
    # Exactly the acknowledged records, in order, each with a valid CRC: the torn prefixes of
    # failed writes were cut away before anything could read them.
    got, read_errors = read_all(b, topic, 0, len(acked))
    assert read_errors == []
    assert got == acked
    assert "log write failed" in b.read_log()


def test_injected_fsync_failure_takes_partition_offline_and_others_keep_serving(fresh_broker):
    # Every fdatasync fails; with flush.messages=1 on one topic only, that topic's partition goes
    # offline at its first produce; the other topic (page-cache durability) is unaffected.
    b = fresh_broker({"ringlet.io.fault.injection": "fsync.error.ppm=1000000,seed=5"})
    healthy_topic, durable = unique("ok"), unique("durable")
    create(b, healthy_topic, 1)
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(durable, 1, 1, config={"flush.messages": "1"})])[durable].result(10)
    acked, errors = produce_each(b, healthy_topic, 0, [b"a", b"b", b"c"])
    assert acked == [b"a", b"b", b"c"] and errors == []
    acked, errors = produce_each(b, durable, 0, [b"x", b"y"])
    # The failed fdatasync is not retried as if the data were safe: no acknowledgement.
    assert acked == [] and set(errors) == {"KAFKA_STORAGE_ERROR"}, (acked, errors)
    assert "fdatasync failed; partition goes offline" in b.read_log()
    got, read_errors = read_all(b, healthy_topic, 0, 3)
    assert got == [b"a", b"b", b"c"] and read_errors == []
    acked, errors = produce_each(b, healthy_topic, 0, [b"d"])
    assert acked == [b"d"]


def mount_tmpfs(size):
    d = tempfile.mkdtemp(prefix="ringlet-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        return None, r.stderr.strip()
    return d, None


def test_real_disk_full_then_space_comes_back():
    d, why = mount_tmpfs("6m")
    if d is None:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): {why}")
    b = None
    try:
        filler = os.path.join(d, "filler")
        # The data on the tmpfs; the broker's own log elsewhere, so it can say what happened.
        b = Broker({"log.segment.bytes": 1048576, "offsets.topic.num.partitions": 1,
                    "log.dirs": os.path.join(d, "data")}).start()
        topic = unique("full")
        create(b, topic, 1)
        # Take most of the space, then produce 100 KB records until the disk is full.
        with open(filler, "wb") as f:
            f.write(b"\0" * (3 * 1024 * 1024))
        values = [(f"{i:05d}".encode() + os.urandom(50_000)) for i in range(80)]
        acked, errors = produce_each(b, topic, 0, values)
        assert errors, "the disk never filled"
        assert set(errors) <= {"KAFKA_STORAGE_ERROR", "NOT_LEADER_OR_FOLLOWER"}, errors
        assert acked, "nothing fitted before the disk was full"
        got, read_errors = read_all(b, topic, 0, len(acked))
        assert read_errors == [] and got == acked
        # Space comes back: writes succeed again without a restart.
        os.remove(filler)
        more, errors2 = produce_each(b, topic, 0, [b"after-1", b"after-2"])
        assert more == [b"after-1", b"after-2"], (more, errors2, b.read_log()[-3000:])
        got, read_errors = read_all(b, topic, 0, len(acked) + 2)
        assert read_errors == [] and got == acked + more
        assert b.alive() and "panicked" not in b.read_log()
    finally:
        if b is not None:
            b.stop()
            shutil.rmtree(b.data_dir, ignore_errors=True)
        subprocess.run(["umount", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)

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


def test_a_followers_full_disk_or_eio_costs_it_only_its_isr_place():
    """Issue 26 item 4: a follower whose disk fills, or whose writes fail with EIO, falls out of
    the ISR while the leader and the other follower keep acknowledging acks=all writes; it stays
    up, backs off (`replica.fetch.backoff.ms`) instead of fetching the same data again in a tight
    loop, and catches up to a byte-identical replica once space (or a healthy disk) is back."""
    from cluster import Cluster, zookeeper_available
    from confluent_kafka.admin import AdminClient, NewTopic
    if not zookeeper_available():
        pytest.skip("needs Debian's zookeeper package (scripts/test.sh installs it)")
    d, why = mount_tmpfs("24m")
    if d is None:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): {why}")
    c = Cluster(overrides={"log.segment.bytes": 1048576})
    c.brokers[3].overrides["log.dirs"] = os.path.join(d, "data")
    try:
        c.start()
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        topic = "follower-faults"
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                                      config={"min.insync.replicas": "2"})])[topic].result(30)

        def isr():
            md = admin.list_topics(topic, timeout=5)
            return sorted(md.topics[topic].partitions[0].isrs)

        def wait_for(cond, timeout, what):
            deadline = time.time() + timeout
            while time.time() < deadline:
                if cond():
                    return
                time.sleep(0.2)
            raise AssertionError(f"timed out waiting for {what}; ISR {isr()}")

        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 5,
                      "enable.idempotence": True, "message.timeout.ms": 60000})
        acked, errors = [], []

        def produce(values):
            for v in values:
                p.produce(topic, value=v, partition=0,
                          on_delivery=lambda e, m: acked.append(m.value()) if e is None
                          else errors.append(str(e)))
                p.poll(0)
                time.sleep(0.01)
            assert p.flush(60) == 0

        # 1. Broker 3's disk fills: 15 MB through a 24 MB file system of which 18 MB is taken.
        filler = os.path.join(d, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (18 * 1024 * 1024))
        values = [f"full-{i:04d}-".encode() + os.urandom(100_000) for i in range(150)]
        produce(values)
        assert errors == [] and len(acked) == 150, errors[:3]
        wait_for(lambda: "No space left on device" in c.brokers[3].read_log(), 30, "ENOSPC on 3")
        wait_for(lambda: isr() == [1, 2], 30, "the full follower to leave the ISR")
        assert c.brokers[3].alive()
        # Backing off: at most a few failed appends per replica.fetch.backoff.ms (200 ms here);
        # without the back-off the follower retried ~100 times a second.
        before = c.brokers[3].read_log().count("replicated append failed")
        time.sleep(2)
        retries = c.brokers[3].read_log().count("replicated append failed") - before
        assert retries <= 30, f"{retries} failed appends in 2 s: no back-off"
        os.remove(filler)
        wait_for(lambda: isr() == [1, 2, 3], 60, "the follower to rejoin once space is back")

        # 2. Broker 2's writes fail with EIO, a third of them (the portable backend's injector).
        c.kill9(2)
        c.brokers[2].overrides["ringlet.io.fault.injection"] = "write.error.ppm=330000,errno=EIO,seed=11"
        c.restart(2)
        more = [f"eio-{i:04d}-".encode() + os.urandom(10_000) for i in range(200)]
        produce(more)
        assert errors == [] and len(acked) == 350, errors[:3]
        wait_for(lambda: "Input/output error" in c.brokers[2].read_log(), 30, "EIO on 2")
        assert c.brokers[2].alive()
        c.kill9(2)
        del c.brokers[2].overrides["ringlet.io.fault.injection"]
        c.restart(2)
        wait_for(lambda: isr() == [1, 2, 3], 60, "the EIO follower to rejoin on a healthy disk")

        # Nothing acknowledged is missing, in order, and the three replicas are identical.
        got, read_errors = read_all(c.brokers[1], topic, 0, len(acked))
        assert read_errors == [] and got == acked
        deadline = time.time() + 20
        while time.time() < deadline:
            logs = c.replica_logs(topic, 0)
            if len(set(logs.values())) == 1:
                break
            time.sleep(0.5)
        assert len(set(logs.values())) == 1, {i: len(v) for i, v in logs.items()}
        for b in c.brokers.values():
            assert "panicked" not in b.read_log()
    finally:
        c.stop()
        c.cleanup()
        subprocess.run(["umount", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)

"""Wall-clock jumps (issue 26 item 3), with libfaketime (Debian's `faketime`) preloaded into the
broker: its wall clock (CLOCK_REALTIME) jumps two days forward, then three days back, while a
consumer group reads and a producer writes; the monotonic clock is left alone, as an NTP step
leaves it.

What must hold, as in Kafka: LogAppendTime is the broker's wall clock, forward and back;
time-based roll and retention follow the wall clock (a forward jump past `retention.ms` deletes
what is then too old, the active segment excepted, which is Kafka's behaviour and hazard; a
backward jump deletes nothing); group sessions run on the monotonic clock, so no member is
expelled by a jump; nothing panics and nothing acknowledged is lost."""
import os
import shutil
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, unique

LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
DAY_MS = 86_400_000


def set_offset(path, offset):
    """libfaketime's offset ("+2d", "-1d"), replaced atomically (a reader never sees it empty)."""
    with open(path + ".tmp", "w") as f:
        f.write(offset + "\n")
    os.rename(path + ".tmp", path)
    time.sleep(1.5)  # FAKETIME_CACHE_DURATION=1


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for v in values:
        p.produce(topic, value=v.encode(), partition=0)
    assert p.flush(30) == 0


def log_start(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("ls")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[0]
    finally:
        c.close()


def test_wall_clock_jumps_forward_and_back(tmp_path):
    if not os.path.exists(LIB):
        pytest.skip("libfaketime is not installed (Debian's faketime)")
    clock = str(tmp_path / "faketime")
    set_offset(clock, "+0")
    b = Broker({"log.retention.check.interval.ms": 500}, env={
        "LD_PRELOAD": LIB, "FAKETIME_TIMESTAMP_FILE": clock, "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1"}).start()
    try:
        lat, ret = unique("clock-lat"), unique("clock-ret")
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in admin.create_topics([
                NewTopic(lat, 1, 1, config={"message.timestamp.type": "LogAppendTime"}),
                NewTopic(ret, 1, 1, config={"retention.ms": str(DAY_MS),
                                            "segment.ms": str(DAY_MS // 2)})]).values():
            f.result(30)
        # A group member reading throughout: counts its assignments and what it read.
        assigned, read, stop = [], [], threading.Event()

        def member():
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("clock-g"),
                          "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                          "heartbeat.interval.ms": 1000})
            c.subscribe([lat], on_assign=lambda c, ps: assigned.append(len(ps)))
            while not stop.is_set():
                m = c.poll(0.2)
                if m is not None and not m.error():
                    read.append((m.value().decode(), m.timestamp()[1]))
            c.close()

        t = threading.Thread(target=member)
        t.start()
        start = time.time() * 1000
        produce(b.bootstrap, lat, [f"now-{i}" for i in range(50)])
        produce(b.bootstrap, ret, [f"old-{i}" for i in range(50)])
        set_offset(clock, "+2d")
        produce(b.bootstrap, lat, [f"ahead-{i}" for i in range(50)])
        # The segment of "old" records is two days old by the wall clock: the next append rolls
        # it (segment.ms), and retention (one day) deletes it.
        produce(b.bootstrap, ret, [f"new-{i}" for i in range(50)])
        deadline = time.time() + 20
        while log_start(b.bootstrap, ret) == 0 and time.time() < deadline:
            time.sleep(0.5)
        assert log_start(b.bootstrap, ret) == 50
        set_offset(clock, "-1d")
        produce(b.bootstrap, lat, [f"behind-{i}" for i in range(50)])
        produce(b.bootstrap, ret, [f"later-{i}" for i in range(50)])
        time.sleep(3)
        # Back in time nothing is old enough to go.
        assert log_start(b.bootstrap, ret) == 50
        deadline = time.time() + 30
        while len(read) < 150 and time.time() < deadline:
            time.sleep(0.2)
        stop.set()
        t.join(30)
        assert [v for v, _ in read] == [f"{k}-{i}" for k in ("now", "ahead", "behind")
                                         for i in range(50)]
        # LogAppendTime: the broker's clock at each append, forward and back.
        ts = {v.split("-")[0]: ms for v, ms in read}
        assert abs(ts["now"] - start) < 60_000, ts
        assert abs(ts["ahead"] - (start + 2 * DAY_MS)) < 120_000, ts
        assert abs(ts["behind"] - (start - DAY_MS)) < 120_000, ts
        # One assignment: no jump expelled the member (sessions are on the monotonic clock).
        assert assigned == [1], assigned
        assert "panicked" not in b.read_log()
    finally:
        b.stop()


def test_a_brokers_wall_clock_jump_in_a_cluster_drops_no_follower():
    """The same jumps on one broker of three, under an acks=all producer to partitions it leads
    and follows: replica lag and the high-watermark checkpoint period run on the monotonic clock,
    so no ISR shrinks (Kafka measures a follower's last caught-up time with its wall clock, and a
    forward step there drops every follower of that leader at the next check), its ZooKeeper
    session stays up, and nothing acknowledged is lost. After the jump back, the leader must still
    drop followers that stop fetching: measured on the wall clock, their last caught-up time would
    lie a day in the future, and a dead follower would stay in the ISR for that day, stalling
    acks=all."""
    from cluster import Cluster, zookeeper_available
    if not os.path.exists(LIB):
        pytest.skip("libfaketime is not installed (Debian's faketime)")
    if not zookeeper_available():
        pytest.skip("needs Debian's zookeeper package (scripts/test.sh installs it)")
    import tempfile
    clock = os.path.join(tempfile.mkdtemp(prefix="ringlet-clock-"), "faketime")
    set_offset(clock, "+0")
    c = Cluster(overrides={"replica.lag.time.max.ms": 5000})
    c.brokers[2].env.update({"LD_PRELOAD": LIB, "FAKETIME_TIMESTAMP_FILE": clock,
                             "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    try:
        c.start()
        topic = unique("clock-cluster")
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        # Broker 2 leads partition 0 and follows 1 and 2.
        admin.create_topics([NewTopic(topic, num_partitions=3, replica_assignment=[
            [2, 1, 3], [1, 2, 3], [3, 2, 1]], config={
                "min.insync.replicas": "2",
                # CreateTime would be refused with INVALID_TIMESTAMP by the shifted leader once
                # the producer's clock is over message.timestamp.after.max.ms (1 h) ahead of it
                # (Kafka's check too); this test is about replica lag, not timestamps.
                "message.timestamp.type": "LogAppendTime"})])[topic].result(30)
        acked, failed, left, stop = [], [], [], threading.Event()

        def producer():
            p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all",
                          "enable.idempotence": True, "linger.ms": 5})
            i = 0
            while not stop.is_set():
                p.produce(topic, value=f"v{i}".encode(), partition=i % 3,
                          on_delivery=lambda e, m: acked.append(m.value()) if e is None
                          else failed.append(str(e)))
                p.poll(0.005)
                i += 1
            left.append(p.flush(120))

        t = threading.Thread(target=producer)
        t.start()
        time.sleep(3)
        set_offset(clock, "+2d")
        time.sleep(7)  # past replica.lag.time.max.ms (5 s here) and a few lag checks
        logs = {i: b.read_log() for i, b in c.brokers.items()}
        shrinks = {i: l.count("shrinking the ISR") for i, l in logs.items()}
        assert not any(shrinks.values()), f"ISR shrinks after a wall-clock jump: {shrinks}"
        md = admin.list_topics(topic, timeout=10).topics[topic]
        assert all(sorted(p.isrs) == [1, 2, 3] for p in md.partitions.values()), md.partitions

        # Broker 2's followers of partition 0 stop fetching (its replication listener cut), and
        # its clock goes three days back before its lag check has seen them stop. They must
        # leave its ISR after replica.lag.time.max.ms, not after three days.
        c.proxies[2].cut()
        set_offset(clock, "-1d")
        deadline, isr = time.time() + 20, None
        while time.time() < deadline:
            isr = sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions[0].isrs)
            if isr == [2]:
                break
            time.sleep(0.2)
        c.proxies[2].heal()
        assert isr == [2], f"followers that stopped fetching stayed in the ISR: {isr}"
        deadline = time.time() + 60
        while time.time() < deadline and sorted(
                admin.list_topics(topic, timeout=10).topics[topic].partitions[0].isrs) != [1, 2, 3]:
            time.sleep(0.2)
        isr = sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions[0].isrs)
        isr_lines = [l for l in c.brokers[2].read_log().splitlines() if "ISR" in l][-8:]
        assert isr == [1, 2, 3], f"the followers did not rejoin after the cut healed: {isr}; {isr_lines}"
        time.sleep(2)
        stop.set()
        t.join(150)
        assert left == [0] and not failed, f"undelivered {left}, failed {failed[:3]}"
        logs = {i: b.read_log() for i, b in c.brokers.items()}
        assert "ZooKeeper session ended" not in logs[2]
        # Everything up to each partition's high watermark: every acknowledged value, once.
        got = []
        cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": unique("clock-read"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        ends = {p: cons.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                              cached=False)[1] for p in range(3)}
        cons.assign([TopicPartition(topic, p, 0) for p in range(3)])
        pos = {p: 0 for p in range(3)}
        deadline = time.time() + 60
        while any(pos[p] < ends[p] for p in pos) and time.time() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
                pos[m.partition()] = m.offset() + 1
        cons.close()
        assert len(acked) > 500 and set(acked) <= set(got), (len(acked), len(got), pos, ends)
        assert len(got) == len(set(got)), "duplicates"
        for l in logs.values():
            assert "panicked" not in l
    finally:
        c.stop()
        c.cleanup()
        shutil.rmtree(os.path.dirname(clock), ignore_errors=True)

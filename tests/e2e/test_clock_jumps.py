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

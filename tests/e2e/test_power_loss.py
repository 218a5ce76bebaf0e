"""Power loss (issue 26 item 1) on one broker: its `log.dirs` on `ringlet-powerfail`, a FUSE file
system that drops every write not yet fsynced when the power is cut, which kill -9 alone never
does (the page cache survives a process). Each cycle: an idempotent acks=all producer writes,
the broker is killed -9, the power is cut, the broker restarts on what the disk kept.

* `log.flush.interval.messages=1`: nothing acknowledged is lost, nothing corrupt is served, and
  every acknowledged record is at the offset it was acknowledged with;
* default flushing (Kafka's: no fsync before the acknowledgement, durability from replication):
  the control that shows the file system really loses acknowledged writes, and that what
  survives is whole batches (no CRC error, no duplicate, nothing out of order).

The long campaign: `tests/e2e/kill9.py --power-loss` (figures in docs/reliability.md)."""
import pytest

from kill9 import campaign
from powerfail import PowerFail, available


@pytest.fixture
def disk():
    if not available():
        pytest.skip("needs /dev/fuse, root and target/debug/ringlet-powerfail")
    try:
        fs = PowerFail()
    except RuntimeError as e:
        pytest.skip(f"this machine cannot mount a FUSE file system: {e}")
    yield fs
    fs.close()


def run(disk, cycles, durable, seed, **kw):
    return campaign(cycles=cycles, durable=durable, seed=seed, log=None, **kw,
                    extra={"log.dirs": disk.dir + "/data", "log.segment.bytes": 1048576},
                    after_kill=disk.cut)


def test_power_loss_with_a_flush_per_message_loses_nothing(disk):
    r = run(disk, 4, True, 11)
    assert disk.cuts == 4
    assert r["acknowledged"] > 1000, r
    assert r["lost"] == 0 and r["duplicates"] == 0 and r["reordered"] == 0, r
    assert r["wrong_offset"] == 0 and r["crc_errors"] == 0 and r["read_errors"] == [], r
    assert r["partitions_read_to_end"] == r["partitions"], r


def test_power_loss_with_default_flushing_loses_the_unsynced_tail_only(disk):
    # Cuts a second or more into a run, so that records were acknowledged since the last roll.
    r = run(disk, 2, False, 12, min_gap=1.0, max_gap=1.5)
    assert "lost unsynced writes" in disk.read_log()
    # The control: acknowledged but never fsynced records are gone...
    assert r["lost"] > 0, r
    # ...and what is left is whole, in order, read to the end.
    assert r["duplicates"] == 0 and r["reordered"] == 0 and r["crc_errors"] == 0, r
    assert r["read_errors"] == [] and r["partitions_read_to_end"] == r["partitions"], r


def test_power_loss_of_leaders_in_a_cluster_loses_nothing_acknowledged():
    """Three brokers, each on its own power-loss file system, default flushing: a leader killed
    and its power cut loses its unsynced tail, and must lose no record acknowledged with
    acks=all (min.insync.replicas=2): the new leader has it, the old one truncates by leader
    epoch and catches up, and the replicas end byte-identical (replication_check.py's checker)."""
    from cluster import zookeeper_available
    from replication_check import campaign as cluster_campaign
    if not available() or not zookeeper_available():
        pytest.skip("needs /dev/fuse, root, target/debug/ringlet-powerfail and ZooKeeper")
    try:
        PowerFail().close()
    except RuntimeError as e:
        pytest.skip(f"this machine cannot mount a FUSE file system: {e}")
    s = cluster_campaign(seed=20261207, faults=["power_loss_leader", "power_loss_leader"],
                         gap=(0.5, 1.5), log=print, power_loss=True)
    print({k: v for k, v in s.items() if k != "fault_log"})
    assert s["anomalies"] == [], s
    assert s["faults"] == 2 and s["faults_ok"] == 2, s["fault_log"]
    assert s["acknowledged"] > 1000, s
    assert s["lost"] == 0 and s["read_then_truncated"] == 0 and s["duplicates"] == 0, s
    assert s["replicas_identical"] and s["full_isr_at_end"], s


def test_power_loss_during_log_cleaning_keeps_every_keys_latest_value(disk):
    """Issue 26 item 4: kill -9 and a power cut while the cleaner compacts (it runs every 100 ms
    on segments rolled every 200 ms). Whatever step of the cleaned-segment swap a cut lands in,
    each key's latest acknowledged value survives (flush per message), nothing corrupt is
    served, and offsets only grow."""
    import random
    import signal
    import threading
    import time

    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from conftest import Broker, unique

    overrides = {"log.dirs": disk.dir + "/data", "log.flush.interval.messages": 1,
                 "log.cleaner.backoff.ms": 100}
    b = Broker(overrides).start()
    port, data_dir = b.port, b.data_dir
    topic = unique("pl-compact")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(
        topic, 1, 1, config={"cleanup.policy": "compact", "segment.ms": "200",
                             "min.cleanable.dirty.ratio": "0.01"})])[topic].result(30)
    latest, lock, stop = {}, threading.Lock(), threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "enable.idempotence": True,
                      "acks": "all", "linger.ms": 5, "message.timeout.ms": 120000})
        version = 0

        def acked(err, msg):
            if err is None:
                k, v = msg.key().decode(), int(msg.value())
                with lock:
                    latest[k] = max(latest.get(k, -1), v)

        while not stop.is_set():
            version += 1
            try:
                p.produce(topic, key=f"k{version % 40}".encode(), value=str(version).encode(),
                          on_delivery=acked)
            except BufferError:
                p.poll(0.05)
            p.poll(0)
            time.sleep(0.0005)
        assert p.flush(120) == 0

    t = threading.Thread(target=produce)
    t.start()
    rnd = random.Random(13)
    try:
        for _ in range(5):
            time.sleep(rnd.uniform(1.0, 2.0))
            b.stop(signal.SIGKILL)
            disk.cut()
            b = Broker(overrides, data_dir=data_dir, port=port).start()
        time.sleep(2)
    finally:
        stop.set()
        t.join(180)
    log = b.read_log()
    assert "panicked" not in log
    assert log.count("log cleaned") >= 3, "the cleaner hardly ran"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("pl-compact"),
                  "enable.auto.commit": False, "check.crcs": True, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    newest, last_offset, errors = {}, -1, []
    deadline = time.time() + 60
    while time.time() < deadline:
        m = c.poll(1)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            errors.append(str(m.error()))
            continue
        assert m.offset() > last_offset
        last_offset = m.offset()
        k, v = m.key().decode(), int(m.value())
        newest[k] = max(newest.get(k, -1), v)
    c.close()
    b.stop()
    assert errors == []
    assert len(latest) == 40
    missing = {k: (v, newest.get(k)) for k, v in latest.items() if newest.get(k, -1) < v}
    assert not missing, f"latest acknowledged values lost: {missing}"

"""Transactions (KIP-98) against a real broker with clients nobody here wrote: librdkafka's
transactional producer (through confluent-kafka) commits, aborts, sends a consumer group's
offsets inside a transaction and is fenced when a second instance takes its transactional id;
read_committed consumers (librdkafka, kafka-python) see committed records only and stop at the
last stable offset while a transaction is open; a transaction open past its timeout is aborted
by the coordinator; everything holds across a kill -9 and a restart."""
import signal
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, unique

FAST = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "300"}


def create(b, name, partitions=2):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name].result(timeout=10)


def producer(b, txn_id, **extra):
    conf = {"bootstrap.servers": b.bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read(b, topic, isolation, partitions=2, expect=None, wait=6.0):
    """Values of every record, from the start, as a consumer with `isolation` sees them."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("reader"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    deadline = time.time() + wait
    while time.time() < deadline:
        if expect is not None and len(out) >= expect:
            # Linger a little: more than expected would be a failure too.
            deadline = min(deadline, time.time() + 0.5)
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        out.append(m.value().decode())
    c.close()
    return sorted(out)


def watermarks(b, topic, isolation, partition=0):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("wm"),
                  "isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def test_commit_abort_and_read_committed(broker):
    topic = unique("txn")
    create(broker, topic)
    p = producer(broker, unique("tid"))
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, key=str(i), value=f"c{i}", partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, key=str(i), value=f"a{i}", partition=i % 2)
    p.flush(10)
    # Open transaction: read_committed stops at the last stable offset, below the high watermark.
    lso = watermarks(broker, topic, "read_committed")[1]
    hw = watermarks(broker, topic, "read_uncommitted")[1]
    assert lso == 6 and hw == 11, (lso, hw)  # 5 records + marker; then 5 open records
    assert read(broker, topic, "read_committed", expect=10, wait=3) == sorted(
        f"c{i}" for i in range(10))
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, key=str(i), value=f"d{i}", partition=i % 2)
    p.commit_transaction(30)
    committed = sorted([f"c{i}" for i in range(10)] + [f"d{i}" for i in range(4)])
    assert read(broker, topic, "read_committed", expect=14) == committed
    assert len(read(broker, topic, "read_uncommitted", expect=24)) == 24
    assert watermarks(broker, topic, "read_committed") == watermarks(
        broker, topic, "read_uncommitted")

    # A second client's read_committed: kafka-python skips the aborted records the same way.
    from kafka import KafkaConsumer
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                       auto_offset_reset="earliest", enable_auto_commit=False,
                       consumer_timeout_ms=3000)
    kc.assign([__import__("kafka").TopicPartition(topic, p) for p in range(2)])
    kc.seek_to_beginning()
    assert sorted(m.value.decode() for m in kc) == committed
    kc.close()


def test_offsets_commit_with_the_transaction(broker):
    """Consume-transform-produce: the group's offsets move with the output, on commit only."""
    src, dst, group = unique("in"), unique("out"), unique("ctp")
    create(broker, src, 1)
    create(broker, dst, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(20):
        plain.produce(src, value=f"v{i}")
    plain.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed"})
    c.subscribe([src])
    p = producer(broker, unique("ctp-tid"))

    def transform(n, commit):
        got = []
        while len(got) < n:
            m = c.poll(1.0)
            if m is not None and not m.error():
                got.append(m)
        p.begin_transaction()
        for m in got:
            p.produce(dst, value=m.value().upper())
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    transform(10, commit=True)
    committed = c.committed([TopicPartition(src, 0)], timeout=10)[0].offset
    assert committed == 10, committed
    transform(10, commit=False)
    # The aborted transaction's offsets never took effect.
    assert c.committed([TopicPartition(src, 0)], timeout=10)[0].offset == 10
    c.close()
    out = read(broker, dst, "read_committed", partitions=1, expect=10)
    assert out == sorted(f"V{i}" for i in range(10)), out


def test_a_second_instance_fences_the_first(broker):
    topic, tid = unique("zombie"), unique("tid")
    create(broker, topic, 1)
    zombie = producer(broker, tid)
    zombie.begin_transaction()
    zombie.produce(topic, value="zombie")
    zombie.flush(10)
    fresh = producer(broker, tid)  # aborts the zombie's transaction, epoch bumped
    fresh.begin_transaction()
    fresh.produce(topic, value="fresh")
    fresh.commit_transaction(30)
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(10)
    assert e.value.args[0].fatal() or "fenc" in str(e.value).lower(), e.value
    assert read(broker, topic, "read_committed", partitions=1, expect=1) == ["fresh"]


def total(text, name):
    """The sum of a metric over all its series."""
    return sum(float(l.split()[-1]) for l in text.splitlines()
               if l.startswith(name + "{") or l.startswith(name + " "))


def test_timeouts(fresh_broker):
    from conftest import free_port
    from test_metrics import scrape, value
    metrics = free_port()
    b = fresh_broker(dict(FAST, **{"ringlet.metrics.listener": f"127.0.0.1:{metrics}"}))
    topic = unique("timeout")
    create(b, topic, 1)
    # Longer than transaction.max.timeout.ms (15 minutes): refused at initialisation.
    bad = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": unique("bad"),
                    "transaction.timeout.ms": 1_000_000})
    with pytest.raises(KafkaException) as e:
        bad.init_transactions(20)
    assert "INVALID_TRANSACTION_TIMEOUT" in str(e.value) or "timeout" in str(e.value).lower()
    # Open past its timeout: the coordinator aborts it and the last stable offset moves on.
    p = producer(b, unique("slow"), **{"transaction.timeout.ms": 1500})
    p.begin_transaction()
    p.produce(topic, value="late")
    p.flush(10)
    assert watermarks(b, topic, "read_committed")[1] == 0
    text = scrape(metrics)
    assert value(text, "ringlet_partition_last_stable_offset_lag", topic=topic, partition=0) == 1
    assert value(text, "ringlet_partition_open_transactions", topic=topic, partition=0) == 1
    assert total(text, "ringlet_transactions_ongoing") == 1
    deadline = time.time() + 15
    while watermarks(b, topic, "read_committed")[1] == 0 and time.time() < deadline:
        time.sleep(0.3)
    assert watermarks(b, topic, "read_committed")[1] == 2  # the record and its abort marker
    text = scrape(metrics)
    assert total(text, "ringlet_transactions_timed_out_total") == 1
    assert total(text, "ringlet_transactions_aborted_total") == 1
    assert total(text, "ringlet_transactions_ongoing") == 0
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    assert read(b, topic, "read_committed", partitions=1, wait=2) == []


def test_transactions_survive_kill9(fresh_broker):
    b = fresh_broker(FAST)
    topic, tid = unique("durable"), unique("tid")
    create(b, topic, 2)
    p = producer(b, tid, **{"transaction.timeout.ms": 3000})
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=f"c{i}", partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=f"a{i}", partition=i % 2)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"open{i}", partition=i % 2)
    p.flush(10)
    b.stop(signal.SIGKILL)
    b2 = Broker(FAST, data_dir=b.data_dir, port=b.port).start()
    try:
        # The aborted transaction stays hidden, the open one is aborted by its timeout after
        # the coordinator reloads it, and the id still works with a bumped epoch.
        deadline = time.time() + 20
        while time.time() < deadline:
            lso = [watermarks(b2, topic, "read_committed", q)[1] for q in range(2)]
            hw = [watermarks(b2, topic, "read_uncommitted", q)[1] for q in range(2)]
            if lso == hw:
                break
            time.sleep(0.3)
        assert lso == hw, (lso, hw)
        assert read(b2, topic, "read_committed", expect=6) == sorted(f"c{i}" for i in range(6))
        p2 = producer(b2, tid)
        p2.begin_transaction()
        p2.produce(topic, value="after", partition=0)
        p2.commit_transaction(30)
        assert "after" in read(b2, topic, "read_committed", expect=7)
        assert "panicked" not in b2.read_log()
    finally:
        b2.stop(signal.SIGKILL)


def test_cluster_transactions_survive_a_leader_kill():
    """Three brokers: a transaction over partitions led by every broker commits (the markers for
    partitions led elsewhere go by WriteTxnMarkers), an aborted one stays hidden; then a broker
    that leads a partition of an open transaction (and may be its coordinator) is killed -9 and
    the commit still lands exactly once on the new leaders."""
    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    c = Cluster(overrides={"transaction.state.log.num.partitions": 3,
                           "transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}).start()
    try:
        topic = "txc"
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=3, replica_assignment=[
            [1, 2, 3], [2, 3, 1], [3, 1, 2]])])[topic].result(30)

        class B:  # what read() and producer() need of a broker
            bootstrap = c.bootstrap
        p = producer(B, unique("cluster-tid"), **{"acks": "all"})
        p.begin_transaction()
        for i in range(9):
            p.produce(topic, value=f"c{i}", partition=i % 3)
        p.commit_transaction(60)
        p.begin_transaction()
        for i in range(9):
            p.produce(topic, value=f"a{i}", partition=i % 3)
        p.abort_transaction(60)
        expected = sorted(f"c{i}" for i in range(9))
        assert read(B, topic, "read_committed", partitions=3, expect=9) == expected
        # An open transaction, then its partition 0 leader dies.
        p.begin_transaction()
        for i in range(9):
            p.produce(topic, value=f"k{i}", partition=i % 3)
        assert p.flush(30) == 0
        c.kill9(1)
        p.commit_transaction(90)
        expected += sorted(f"k{i}" for i in range(9))
        assert read(B, topic, "read_committed", partitions=3, expect=18, wait=30) == \
            sorted(expected)
    finally:
        c.stop()
        c.cleanup()



def test_a_restarted_broker_writes_no_marker_before_it_leads():
    """A broker killed -9 and restarted at once still has its old ZooKeeper registration alive
    for a while: it has the partition's log open but leads nothing until it joins again. A
    WriteTxnMarkers sent to it then (by a coordinator whose view still names it leader, as the
    exactly-once checker caught) must be refused, not appended to its stale log and acknowledged:
    that acknowledged marker was truncated away later and the transaction's group offsets were
    lost (the pipeline then processed an input record twice)."""
    import socket
    import struct
    from cluster import Cluster, zookeeper_available
    from kafka.protocol.producer.transaction import (WriteTxnMarkersRequest,
                                                     WriteTxnMarkersResponse)
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    # A long session: the restarted broker waits ~10 s for its old registration to expire.
    c = Cluster(overrides={"zookeeper.session.timeout.ms": 10000}).start()
    try:
        topic = "stale-marker"
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[
            [1, 2, 3]])])[topic].result(30)
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
        p.produce(topic, value=b"v")
        assert p.flush(30) == 0
        c.kill9(1)
        c.restart(1)
        req = WriteTxnMarkersRequest(markers=[WriteTxnMarkersRequest.WritableTxnMarker(
            producer_id=4242, producer_epoch=0, transaction_result=True, coordinator_epoch=0,
            topics=[WriteTxnMarkersRequest.WritableTxnMarker.WritableTxnMarkerTopic(
                name=topic, partition_indexes=[0])])])
        req.with_header(correlation_id=1, client_id="stale-marker-test")
        with socket.create_connection(("127.0.0.1", c.brokers[1].port), timeout=10) as s:
            s.sendall(req.encode(version=1, header=True, framed=True))
            n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            body = s.recv(n, socket.MSG_WAITALL)
        resp = WriteTxnMarkersResponse.decode(body, version=1, header=True)
        code = resp.markers[0].topics[0].partitions[0].error_code
        assert "registered in ZooKeeper" not in c.brokers[1].read_log().split(
            "ringlet broker started")[-1], "the broker re-registered before the request"
        assert code == 6, f"error code {code}: a broker that leads nothing wrote a marker"
    finally:
        c.stop()
        c.cleanup()

"""Replication on a three-broker cluster with ZooKeeper (started by the test), under a fixed
fault schedule with a fixed seed: every fault kind once. The longer randomized campaign is
`tests/e2e/replication_check.py --runs N --faults M` (figures in docs/reliability.md)."""
import pytest

from cluster import zookeeper_available
from replication_check import FAULTS, campaign

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (scripts/test.sh installs it)")


def test_replication_survives_every_fault_kind():
    s = campaign(seed=20261125, faults=FAULTS, gap=(0.5, 1.5), log=print)
    print({k: v for k, v in s.items() if k != "fault_log"})
    assert s["anomalies"] == [], s
    assert s["faults"] == len(FAULTS) and s["faults_ok"] == len(FAULTS), s["fault_log"]
    assert s["acknowledged"] > 1000, s
    assert s["lost"] == 0 and s["read_then_truncated"] == 0 and s["duplicates"] == 0, s
    assert s["replicas_identical"] and s["full_isr_at_end"], s
    assert s["refused_not_enough_replicas"] > 0, s
    assert s["consumer_reads"] > 0 and s["hw_samples"] > 0, s


def test_a_non_idempotent_producer_keeps_at_least_once():
    """Issue 26 item 5: without idempotence, leader kills and a paused leader must still lose
    nothing acknowledged; duplicates are allowed where the client retried, and the checker says
    whether each one's copies straddle a leader change."""
    s = campaign(seed=20261208, faults=["kill9_leader", "zombie_leader", "kill9_leader"],
                 gap=(0.5, 1.5), log=print, idempotent=False)
    print({k: v for k, v in s.items() if k != "fault_log"})
    assert s["anomalies"] == [], s
    assert s["faults_ok"] == 3 and s["acknowledged"] > 1000, s
    assert s["lost"] == 0 and s["read_then_truncated"] == 0, s
    assert s["replicas_identical"] and s["full_isr_at_end"], s
    assert s["duplicates"] == 0 or s["producer_retries"] > 0, s


def test_committed_offsets_survive_the_group_coordinators_death():
    """The coordinator is the leader of the group's __consumer_offsets partition; commits are
    replicated, and the next leader replays them."""
    import time

    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from cluster import Cluster

    c = Cluster().start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        for f in admin.create_topics([NewTopic("orders", 2, 3)]).values():
            f.result(30)
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
        for i in range(100):
            p.produce("orders", value=str(i).encode(), partition=i % 2)
        assert p.flush(30) == 0
        cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "billing",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        cons.subscribe(["orders"])
        got, deadline = 0, time.time() + 60
        while got < 60 and time.time() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got += 1
        committed = cons.commit(asynchronous=False)
        cons.close()
        want = {(t.partition, t.offset) for t in committed}
        assert sum(o for _, o in want) == got, (want, got)
        desc = admin.describe_consumer_groups(["billing"])["billing"].result(30)
        coordinator = desc.coordinator.id
        c.kill9(coordinator)
        # A new coordinator (another replica of that offsets partition) serves the same offsets.
        deadline = time.time() + 60
        seen = None
        while time.time() < deadline:
            probe = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "billing"})
            try:
                seen = {(t.partition, t.offset) for t in
                        probe.committed([TopicPartition("orders", 0), TopicPartition("orders", 1)],
                                        timeout=5)}
            except Exception:  # noqa: BLE001 (coordinator moving)
                seen = None
            probe.close()
            if seen == want:
                break
            time.sleep(0.5)
        assert seen == want, (seen, want)
        desc = admin.describe_consumer_groups(["billing"])["billing"].result(30)
        assert desc.coordinator.id != coordinator
        # Deleting the topic goes through the controller; every live replica's files go.
        # (The producer goes first: its metadata refreshes could otherwise auto-create the topic again.)
        p = None
        # A fresh admin client: the first one may still name the killed broker as controller (its
        # metadata was last refreshed before that broker's session expired), and librdkafka then
        # waits for that broker instead of asking again; a Kafka cluster on ZooKeeper does the same.
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        for f in admin.delete_topics(["orders"]).values():
            f.result(60)
        # As in Kafka, DeleteTopics answers once the controller is done; the other brokers learn it
        # from their ZooKeeper watch a moment later, and a Metadata request may reach any of them.
        deadline = time.time() + 15
        while time.time() < deadline and "orders" in admin.list_topics(timeout=10).topics:
            time.sleep(0.2)
        assert "orders" not in admin.list_topics(timeout=10).topics
        deadline = time.time() + 20
        import glob
        live = [b for i, b in c.brokers.items() if i != coordinator]
        while time.time() < deadline and any(glob.glob(f"{b.data_dir}/data/orders-*") for b in live):
            time.sleep(0.2)
        assert not any(glob.glob(f"{b.data_dir}/data/orders-*") for b in live)
        # The dead broker, restarted, drops its copy too.
        c.restart(coordinator)
        dead = c.brokers[coordinator]
        deadline = time.time() + 20
        while time.time() < deadline and glob.glob(f"{dead.data_dir}/data/orders-*"):
            time.sleep(0.2)
        assert not glob.glob(f"{dead.data_dir}/data/orders-*")
    finally:
        c.stop()
        c.cleanup()


def test_manual_replica_assignment_in_a_cluster():
    """Issue 21 item 4: CreateTopics with `replicas_assignments` places each partition's
    replicas where asked, the first listed broker leading, and refuses a broker that is not
    registered."""
    import time

    from confluent_kafka import KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from cluster import Cluster

    c = Cluster().start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        want = [[2, 3], [3, 1], [1, 2]]
        admin.create_topics([NewTopic("placed", num_partitions=3,
                                      replica_assignment=want)])["placed"].result(30)
        deadline = time.time() + 30
        while True:
            t = admin.list_topics("placed", timeout=10).topics["placed"]
            got = {i: (p.replicas, p.leader, sorted(p.isrs)) for i, p in t.partitions.items()}
            if all(got.get(i, ([], -1, []))[2] == sorted(r) for i, r in enumerate(want)):
                break
            assert time.time() < deadline, got
            time.sleep(0.5)
        assert {i: g[0] for i, g in got.items()} == dict(enumerate(want)), got
        assert {i: g[1] for i, g in got.items()} == {i: r[0] for i, r in enumerate(want)}, got
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
        for i in range(30):
            p.produce("placed", value=str(i).encode(), partition=i % 3)
        assert p.flush(30) == 0
        f = admin.create_topics([NewTopic("misplaced", num_partitions=1,
                                          replica_assignment=[[1, 9]])])["misplaced"]
        try:
            f.result(30)
            raise AssertionError("an unregistered broker was accepted")
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, e
    finally:
        c.stop()
        c.cleanup()


def test_a_restarted_broker_answers_metadata_only_once_it_knows_the_cluster():
    """Issue 21 item 9 (and item 6 in a cluster): a broker killed and started again does not call
    an existing topic unknown, nor list no brokers, in the first Metadata it answers; and every
    broker gives a topic the same id."""
    import uuid

    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka.protocol.metadata import MetadataRequest

    from cluster import Cluster
    from test_kafka4_protocol import call

    import time

    c = Cluster().start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        deadline = time.time() + 30
        while True:
            # The controller may not have seen every registration yet (INVALID_REPLICATION_FACTOR).
            try:
                admin.create_topics([NewTopic("known", num_partitions=2)])["known"].result(30)
                break
            except Exception:  # noqa: BLE001
                assert time.time() < deadline
                time.sleep(0.3)

        def metadata(b):
            req = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="known",
                                                                               topic_id=uuid.UUID(int=0))],
                                  allow_auto_topic_creation=False,
                                  include_topic_authorized_operations=False)
            resp = call(b, req, 12)
            [t] = resp.topics
            return t, resp.brokers

        deadline = time.time() + 30
        while True:
            answers = [metadata(b)[0] for b in c.brokers.values()]
            if all(t.error_code == 0 for t in answers):
                break
            assert time.time() < deadline, answers
            time.sleep(0.2)
        ids = {t.topic_id for t in answers}
        assert len(ids) == 1 and uuid.UUID(int=0) not in ids, ids
        c.kill9(2)
        c.restart(2)
        # The first answer after the restart: it has waited for the cluster view.
        t, brokers = metadata(c.brokers[2])
        assert t.error_code == 0, t
        assert t.topic_id in ids
        assert len(brokers) >= 1
    finally:
        c.stop()
        c.cleanup()


def test_delete_records_and_compaction_survive_a_leader_kill():
    """DeleteRecords moves the log start on the leader and the followers take it from their
    fetches (the new leader after a kill -9 starts at the same offset); a compacted topic is
    compacted on every replica, and after the leader's death the new leader still has each
    key's latest value at its offset."""
    import os
    import time

    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from cluster import Cluster

    c = Cluster(overrides={"log.cleaner.backoff.ms": 300}).start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        # Broker 1 leads both.
        admin.create_topics([
            NewTopic("trimmed", num_partitions=1, replica_assignment=[[1, 2, 3]]),
            NewTopic("table", num_partitions=1, replica_assignment=[[1, 2, 3]], config={
                "cleanup.policy": "compact", "segment.ms": "100",
                "min.cleanable.dirty.ratio": "0.01"}),
        ])["table"].result(30)
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
        for i in range(100):
            p.produce("trimmed", value=str(i).encode())
        written = {}

        def report(err, msg):
            assert err is None, err
            written[msg.offset()] = (msg.key(), msg.value())
        for r in range(6):
            for k in range(5):
                p.produce("table", key=f"k{k}".encode(), value=f"{r}".encode(), on_delivery=report)
            assert p.flush(30) == 0
            time.sleep(0.15)
        p.produce("table", key=b"last", value=b"x", on_delivery=report)
        assert p.flush(30) == 0
        res = admin.delete_records([TopicPartition("trimmed", 0, 60)])
        assert list(res.values())[0].result(30).low_watermark == 60

        def replicas(topic):
            return [f"{b.data_dir}/data/{topic}-0" for b in c.brokers.values()]

        def log_start(d):
            try:
                with open(f"{d}/log-start-offset-checkpoint") as f:
                    return int(f.read())
            except OSError:
                return None
        deadline = time.time() + 30
        while any(log_start(d) != 60 for d in replicas("trimmed")):
            assert time.time() < deadline, [log_start(d) for d in replicas("trimmed")]
            time.sleep(0.2)
        # Every replica cleaned the compacted topic (its cleaner checkpoint is written).
        deadline = time.time() + 60
        while not all(os.path.exists(f"{d}/cleaner-offset-checkpoint") for d in replicas("table")):
            assert time.time() < deadline, "a replica never compacted"
            time.sleep(0.2)
        c.kill9(1)
        survivors = ",".join(b.bootstrap for i, b in c.brokers.items() if b.alive())
        # Until the survivors report new leaders (a consumer asked earlier would cache broker 1).
        admin = AdminClient({"bootstrap.servers": survivors})
        deadline = time.time() + 60
        while True:
            try:
                md = admin.list_topics(timeout=5)
                if all(md.topics[t].partitions[0].leader in (2, 3) for t in ("trimmed", "table")):
                    break
            except Exception:  # noqa: BLE001
                pass
            assert time.time() < deadline, "no new leaders"
            time.sleep(0.5)
        cons = Consumer({"bootstrap.servers": survivors, "group.id": "after-kill",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        deadline = time.time() + 60
        last = None
        while True:
            try:
                last = cons.get_watermark_offsets(TopicPartition("trimmed", 0), timeout=5)
                if last == (60, 100):
                    break
            except Exception as e:  # noqa: BLE001
                last = e
            assert time.time() < deadline, f"the new leader's watermarks: {last}"
            time.sleep(0.5)
        cons.assign([TopicPartition("table", 0, 0)])
        seen = {}
        deadline = time.time() + 60
        while len(seen) < 6 and time.time() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                assert written[m.offset()] == (m.key(), m.value()), m.offset()
                seen[m.key()] = m.value()
        cons.close()
        assert seen == {**{f"k{k}".encode(): b"5" for k in range(5)}, b"last": b"x"}, seen
    finally:
        c.stop()
        c.cleanup()

"""Running the three-broker cluster (issue 25) with librdkafka's admin client: changing a topic
after creation (IncrementalAlterConfigs through one broker is stored in ZooKeeper,
`/config/topics/<t>` as Kafka keeps it, and applied by every broker to its replicas;
CreatePartitions adds partitions that get leaders, replicas and records), and leadership moved
back to preferred replicas by ElectLeaders and by `auto.leader.rebalance.enable`."""
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic, ResourceType)

from conftest import unique


@pytest.fixture(scope="module")
def cluster():
    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    # Automatic rebalancing off here, so that only ElectLeaders moves leaders back.
    c = Cluster(overrides={"auto.leader.rebalance.enable": "false"}).start()
    yield c
    c.stop()
    c.cleanup()


def produce_one(bootstrap, topic, partition, size):
    """The delivery error of one record of `size` bytes (None when it was written)."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 15000,
                  "message.max.bytes": 10_000_000})
    result = []
    p.produce(topic, value=b"x" * size, partition=partition,
              on_delivery=lambda err, msg: result.append(err))
    p.flush(20)
    return result[0] if result else "no delivery report"


def test_topic_configs_changed_through_one_broker_apply_on_every_broker(cluster):
    topic = unique("ops-configs")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])[
        topic].result(30)
    first = cluster.brokers[min(cluster.brokers)].bootstrap
    one = AdminClient({"bootstrap.servers": first})
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    one.incremental_alter_configs([r])[r].result(30)
    # Every broker describes it (from ZooKeeper's view).
    deadline = time.time() + 15
    while True:
        seen = []
        for b in cluster.brokers.values():
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            res = ConfigResource(ResourceType.TOPIC, topic)
            seen.append(a.describe_configs([res])[res].result(10)["max.message.bytes"].value)
        if seen == ["1000"] * len(cluster.brokers) or time.time() > deadline:
            break
        time.sleep(0.3)
    assert seen == ["1000"] * len(cluster.brokers), seen
    # Each partition's leader (the three are spread over the brokers) enforces it.
    md = admin.list_topics(topic, timeout=10).topics[topic]
    assert len({p.leader for p in md.partitions.values()}) > 1, "leaders not spread"
    for p in md.partitions:
        deadline = time.time() + 15
        while (err := produce_one(cluster.bootstrap, topic, p, 2000)) is None and \
                time.time() < deadline:
            time.sleep(0.3)
        assert err is not None and "MSG_SIZE_TOO_LARGE" in str(err), (p, err)
        assert produce_one(cluster.bootstrap, topic, p, 500) is None
    # Back to the default: large records are taken again.
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    one.incremental_alter_configs([r])[r].result(30)
    for p in md.partitions:
        # Each leader applies the change when its broker sees the new view.
        deadline = time.time() + 15
        while produce_one(cluster.bootstrap, topic, p, 2000) is not None and time.time() < deadline:
            time.sleep(0.3)
        assert produce_one(cluster.bootstrap, topic, p, 2000) is None


def test_create_partitions_in_a_cluster(cluster):
    topic = unique("ops-partitions")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=3)])[
        topic].result(30)
    # Shrinking or keeping the count is refused (INVALID_PARTITIONS).
    with pytest.raises(KafkaException) as e:
        admin.create_partitions([NewPartitions(topic, 2)])[topic].result(30)
    assert "INVALID_PARTITIONS" in str(e.value)
    admin.create_partitions([NewPartitions(topic, 5)])[topic].result(30)
    deadline = time.time() + 15
    while time.time() < deadline:
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
        if len(parts) == 5 and all(p.leader >= 0 and len(p.isrs) == 3 for p in parts.values()):
            break
        time.sleep(0.3)
    assert len(parts) == 5 and all(len(p.replicas) == 3 for p in parts.values()), parts
    assert all(p.leader >= 0 and len(p.isrs) == 3 for p in parts.values()), parts
    # The new partitions take and give back records, acks=all (every replica has them).
    for p in range(5):
        assert produce_one(cluster.bootstrap, topic, p, 100) is None
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": unique("ops-g"),
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(5)])
    got = set()
    deadline = time.time() + 30
    while len(got) < 5 and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.add(m.partition())
    c.close()
    assert got == set(range(5))
    # A manual assignment for the next one: the brokers it names hold it.
    ids = sorted(cluster.brokers)
    admin.create_partitions([NewPartitions(topic, 6, replica_assignment=[ids[::-1]])])[
        topic].result(30)
    deadline = time.time() + 15
    while time.time() < deadline:
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
        if len(parts) == 6 and parts[5].leader >= 0:
            break
        time.sleep(0.3)
    assert parts[5].replicas == ids[::-1] and parts[5].leader == ids[-1], parts[5]


def leader_and_isr(admin, topic):
    p = admin.list_topics(topic, timeout=10).topics[topic].partitions[0]
    return p.leader, p.replicas, p.isrs


def lose_and_regain_the_preferred_leader(cluster, topic):
    """Kills the partition's preferred leader, waits for another leader, restarts it and waits
    until it is in sync again; returns the preferred replica's id."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])[
        topic].result(30)
    leader, replicas, _ = leader_and_isr(admin, topic)
    preferred = replicas[0]
    assert leader == preferred
    cluster.kill9(preferred)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            leader, _, _ = leader_and_isr(admin, topic)
        except Exception:
            leader = -1
        if leader not in (-1, preferred):
            break
        time.sleep(0.3)
    assert leader not in (-1, preferred), leader
    cluster.restart(preferred)
    assert produce_one(cluster.bootstrap, topic, 0, 10) is None
    deadline = time.time() + 60
    while time.time() < deadline and preferred not in leader_and_isr(admin, topic)[2]:
        time.sleep(0.3)
    assert preferred in leader_and_isr(admin, topic)[2], "the restarted replica never caught up"
    return preferred


def test_elect_leaders_moves_leadership_back_to_the_preferred_replica(cluster):
    from confluent_kafka import ElectionType
    topic = unique("ops-elect")
    preferred = lose_and_regain_the_preferred_leader(cluster, topic)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    time.sleep(1)
    assert leader_and_isr(admin, topic)[0] != preferred, "moved back without being asked"
    tp = TopicPartition(topic, 0)
    res = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(30)
    assert list(res.values()) == [None], res
    assert leader_and_isr(admin, topic)[0] == preferred
    # Again: nothing to do (ELECTION_NOT_NEEDED).
    res = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(30)
    err = list(res.values())[0]
    assert err is not None and "ELECTION_NOT_NEEDED" in str(err), res
    # Unclean elections are refused for a partition with a live leader, as not needed.
    res = admin.elect_leaders(ElectionType.UNCLEAN, [tp]).result(30)
    assert "ELECTION_NOT_NEEDED" in str(list(res.values())[0]), res
    # Records still flow through the preferred leader.
    assert produce_one(cluster.bootstrap, topic, 0, 10) is None


def test_auto_leader_rebalance_moves_leadership_back():
    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    c = Cluster(overrides={"leader.imbalance.check.interval.seconds": "2"}).start()
    try:
        topic = unique("ops-rebalance")
        preferred = lose_and_regain_the_preferred_leader(c, topic)
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        deadline = time.time() + 30
        while time.time() < deadline and leader_and_isr(admin, topic)[0] != preferred:
            time.sleep(0.3)
        assert leader_and_isr(admin, topic)[0] == preferred
        assert produce_one(c.bootstrap, topic, 0, 10) is None
    finally:
        c.stop()
        c.cleanup()


def alter_configs_v1(hostport, rtype, name, configs):
    """AlterConfigs v1 of one resource, by hand; returns (error code, message)."""
    import socket
    import struct

    def string(v):
        b = v.encode()
        return struct.pack(">h", len(b)) + b

    body = struct.pack(">i", 1) + struct.pack(">b", rtype) + string(name)
    body += struct.pack(">i", len(configs))
    for k, v in configs.items():
        body += string(k) + string(v)
    body += b"\x00"  # validate_only
    frame = struct.pack(">hhi", 33, 1, 11) + string("test") + body
    host, port = hostport.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(n, socket.MSG_WAITALL)
    # correlation id, throttle, [error code, nullable message, ...]
    assert struct.unpack(">i", resp[:4])[0] == 11
    code = struct.unpack(">h", resp[12:14])[0]
    mlen = struct.unpack(">h", resp[14:16])[0]
    return code, resp[16:16 + mlen].decode() if mlen > 0 else None


def set_broker_configs(bootstrap, name, **configs):
    """IncrementalAlterConfigs on BROKER `name` ("" is the cluster default): SET each given
    key, DELETE each given as None."""
    if name == "":
        # No client library here takes an empty broker name (Kafka's kafka-configs
        # --entity-default does): AlterConfigs v1 written by hand, which replaces the whole set.
        wanted = {k.replace("_", "."): v for k, v in configs.items() if v is not None}
        code, msg = alter_configs_v1(bootstrap.split(",")[0], 4, "", wanted)
        if code != 0:
            raise KafkaException(f"AlterConfigs <default>: error {code}: {msg}")
        return
    a = AdminClient({"bootstrap.servers": bootstrap})
    entries = [ConfigEntry(k.replace("_", "."), v, incremental_operation=(
        AlterConfigOpType.DELETE if v is None else AlterConfigOpType.SET))
        for k, v in configs.items()]
    r = ConfigResource(ResourceType.BROKER, name, incremental_configs=entries)
    a.incremental_alter_configs([r])[r].result(30)


def describe(bootstrap, kind, name, key):
    a = AdminClient({"bootstrap.servers": bootstrap})
    r = ConfigResource(kind, name)
    e = a.describe_configs([r])[r].result(10)[key]
    return e.value, e.source, e.is_read_only


def eventually(f, timeout=15):
    deadline = time.time() + timeout
    while not f() and time.time() < deadline:
        time.sleep(0.3)
    return f()


def test_dynamic_broker_configs_on_one_broker_survive_a_kill(fresh_broker):
    """KIP-226 on a single broker: the cluster default and the broker's own value of a log
    default (message.max.bytes) apply to existing topics at once, DescribeConfigs gives Kafka's
    sources (3 DYNAMIC_DEFAULT_BROKER_CONFIG, 2 DYNAMIC_BROKER_CONFIG), a kill -9 keeps them, and
    a key that needs a restart is refused."""
    b = fresh_broker()
    topic = unique("dyn")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    assert produce_one(b.bootstrap, topic, 0, 4000) is None
    set_broker_configs(b.bootstrap, "", message_max_bytes="3000")
    assert "MSG_SIZE_TOO_LARGE" in str(produce_one(b.bootstrap, topic, 0, 4000))
    assert produce_one(b.bootstrap, topic, 0, 2000) is None
    assert describe(b.bootstrap, ResourceType.TOPIC, topic, "max.message.bytes")[:2] == ("3000", 3)
    assert describe(b.bootstrap, ResourceType.BROKER, "0", "message.max.bytes") == ("3000", 3, False)
    assert describe(b.bootstrap, ResourceType.BROKER, "0", "num.io.threads")[2] is True
    set_broker_configs(b.bootstrap, "0", message_max_bytes="5000")
    assert produce_one(b.bootstrap, topic, 0, 4000) is None
    assert describe(b.bootstrap, ResourceType.BROKER, "0", "message.max.bytes")[:2] == ("5000", 2)
    with pytest.raises(KafkaException) as e:
        set_broker_configs(b.bootstrap, "0", num_io_threads="4")
    assert "INVALID_REQUEST" in str(e.value) or "dynamically" in str(e.value)
    import signal
    b.stop(signal.SIGKILL)
    b.start()
    assert describe(b.bootstrap, ResourceType.BROKER, "0", "message.max.bytes")[:2] == ("5000", 2)
    set_broker_configs(b.bootstrap, "0", message_max_bytes=None)
    assert "MSG_SIZE_TOO_LARGE" in str(produce_one(b.bootstrap, topic, 0, 4000))
    set_broker_configs(b.bootstrap, "", message_max_bytes=None)
    assert produce_one(b.bootstrap, topic, 0, 4000) is None


def test_dynamic_broker_configs_in_a_cluster(cluster):
    """The cluster default set through one broker (`/config/brokers/<default>`) is applied by
    every broker to the partitions it leads; one broker's own value overrides it there only."""
    topic = unique("ops-dyn")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])[
        topic].result(30)
    first = cluster.brokers[min(cluster.brokers)].bootstrap
    try:
        set_broker_configs(first, "", message_max_bytes="3000")
        md = admin.list_topics(topic, timeout=10).topics[topic]
        for p in md.partitions:
            assert eventually(lambda: produce_one(cluster.bootstrap, topic, p, 4000) is not None), p
        for i, b in cluster.brokers.items():
            assert describe(b.bootstrap, ResourceType.BROKER, str(i), "message.max.bytes")[:2] == \
                ("3000", 3)
        # Broker `own` takes 6000 for itself: the partition it leads takes 4000 bytes again.
        p0 = md.partitions[0]
        own = p0.leader
        set_broker_configs(cluster.brokers[own].bootstrap, str(own), message_max_bytes="6000")
        assert eventually(lambda: produce_one(cluster.bootstrap, topic, 0, 4000) is None)
        others = [p for p, m in md.partitions.items() if m.leader != own]
        for p in others:
            assert produce_one(cluster.bootstrap, topic, p, 4000) is not None, p
    finally:
        set_broker_configs(first, "", message_max_bytes=None)
        for i, b in cluster.brokers.items():
            set_broker_configs(b.bootstrap, str(i), message_max_bytes=None)

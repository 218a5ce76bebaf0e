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

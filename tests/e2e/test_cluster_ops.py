"""Changing a topic after creation in the three-broker cluster (issue 25, item 1), with
librdkafka's admin client: IncrementalAlterConfigs through one broker is stored in ZooKeeper
(`/config/topics/<t>`, Kafka's place) and applied by every broker to its replicas, and
CreatePartitions adds partitions that get leaders, replicas and records."""
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
    c = Cluster().start()
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
        err = produce_one(cluster.bootstrap, topic, p, 2000)
        assert err is not None and "MSG_SIZE_TOO_LARGE" in str(err), (p, err)
        assert produce_one(cluster.bootstrap, topic, p, 500) is None
    # Back to the default: large records are taken again.
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    one.incremental_alter_configs([r])[r].result(30)
    deadline = time.time() + 15
    while produce_one(cluster.bootstrap, topic, 0, 2000) is not None and time.time() < deadline:
        time.sleep(0.3)
    for p in md.partitions:
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

"""Topic administration through librdkafka's AdminClient and kcat."""
import subprocess

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def test_metadata_lists_broker(broker):
    md = admin(broker).list_topics(timeout=10)
    assert list(md.brokers.keys()) == [0]
    b = md.brokers[0]
    assert (b.host, b.port) == ("127.0.0.1", broker.port)


def test_create_topic_with_manual_replica_assignment(broker):
    """Issue 21 item 4: CreateTopics `replicas_assignments` on a single broker, validated as
    Kafka's controller validates it (messages checked against Apache Kafka 4.1.1). librdkafka
    sends -1 for both counts when an assignment is given, as Kafka requires; Python's binding
    wants num_partitions to match the assignment's length."""
    a = admin(broker)
    name = unique("assigned")
    a.create_topics([NewTopic(name, num_partitions=3,
                              replica_assignment=[[0], [0], [0]])])[name].result(timeout=10)
    md = a.list_topics(name, timeout=10)
    assert sorted(md.topics[name].partitions) == [0, 1, 2]
    assert all(p.replicas == [0] and p.leader == 0 for p in md.topics[name].partitions.values())
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": broker.bootstrap})
    errs = []
    p.produce(name, b"v", partition=2, on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs == [None]
    for assignment, words in [([[5]], "includes broker 5, but no such broker is registered"),
                              ([[0, 0]], "includes the broker 0 more than once")]:
        bad = unique("assigned-bad")
        f = a.create_topics([NewTopic(bad, num_partitions=len(assignment),
                                      replica_assignment=assignment)])[bad]
        try:
            f.result(timeout=10)
            raise AssertionError(f"{assignment} was accepted")
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, e
            assert words in e.args[0].str(), e
        assert bad not in a.list_topics(timeout=10).topics


def test_create_and_delete_topic(broker):
    a = admin(broker)
    name = unique("admin")
    fs = a.create_topics([NewTopic(name, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"})])
    fs[name].result(timeout=10)
    md = a.list_topics(timeout=10)
    assert name in md.topics
    assert len(md.topics[name].partitions) == 3
    for p in md.topics[name].partitions.values():
        assert p.leader == 0 and p.replicas == [0] and p.isrs == [0]
    # Creating it again fails with TOPIC_ALREADY_EXISTS.
    fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    try:
        fs[name].result(timeout=10)
        raise AssertionError("second create succeeded")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    a.delete_topics([name])[name].result(timeout=10)
    md = a.list_topics(timeout=10)
    assert name not in md.topics


def test_create_topic_errors(broker):
    a = admin(broker)
    cases = [
        (NewTopic(unique("rf"), num_partitions=1, replication_factor=3), KafkaError.INVALID_REPLICATION_FACTOR),
        (NewTopic("bad name!", num_partitions=1, replication_factor=1), KafkaError.TOPIC_EXCEPTION),
        (NewTopic(unique("cfg"), num_partitions=1, replication_factor=1, config={"cleanup.policy": "shred"}), KafkaError.INVALID_CONFIG),
    ]
    for topic, code in cases:
        fs = a.create_topics([topic])
        try:
            fs[topic.topic].result(timeout=10)
            raise AssertionError(f"{topic.topic} was created")
        except KafkaException as e:
            assert e.args[0].code() == code, (topic.topic, e)


def test_validate_only_creates_nothing(broker):
    a = admin(broker)
    name = unique("validate")
    a.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)], validate_only=True)[name].result(timeout=10)
    assert name not in a.list_topics(timeout=10).topics


def test_kcat_metadata(broker):
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-L"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"broker 0 at 127.0.0.1:{broker.port}" in out.stdout


def test_describe_and_alter_topic_configs(broker):
    from confluent_kafka.admin import ConfigResource, ConfigEntry, AlterConfigOpType

    a = admin(broker)
    name = unique("configs")
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config={"retention.ms": "123456"})])[name].result(timeout=10)
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = a.describe_configs([res])[res].result(timeout=10)
    assert configs["retention.ms"].value == "123456"
    assert configs["segment.bytes"].value == str(1024 * 1024 * 1024)
    assert configs["cleanup.policy"].value == "delete"
    # Incremental: set one key, delete another.
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([res])[res].result(timeout=10)
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = a.describe_configs([res])[res].result(timeout=10)
    assert configs["segment.bytes"].value == "1048576"
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    # A bad value is refused with INVALID_CONFIG.
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact,shred", incremental_operation=AlterConfigOpType.SET)])
    try:
        a.incremental_alter_configs([res])[res].result(timeout=10)
        raise AssertionError("shred accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_CONFIG
    # The broker's own configs.
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = a.describe_configs([res])[res].result(timeout=10)
    assert configs["num.partitions"].value == "1"


def test_incremental_append_and_subtract(broker):
    """IncrementalAlterConfigs APPEND / SUBTRACT work on LIST keys (cleanup.policy) from the
    current value, and are refused on other keys with Kafka 4.1.1's message."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    a = admin(broker)
    name = unique("append")
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=10)

    def op(key, value, kind):
        res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
            ConfigEntry(key, value, incremental_operation=kind)])
        a.incremental_alter_configs([res])[res].result(timeout=10)

    op("cleanup.policy", "delete", AlterConfigOpType.APPEND)
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    entry = a.describe_configs([res])[res].result(timeout=10)["cleanup.policy"]
    assert entry.value == "delete" and entry.source == 1  # DYNAMIC_TOPIC_CONFIG
    op("cleanup.policy", "compact", AlterConfigOpType.APPEND)
    assert a.describe_configs([res])[res].result(timeout=10)["cleanup.policy"].value == "delete,compact"
    op("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)
    assert a.describe_configs([res])[res].result(timeout=10)["cleanup.policy"].value == "compact"
    for kind, word in [(AlterConfigOpType.APPEND, "APPEND"), (AlterConfigOpType.SUBTRACT, "SUBTRACT")]:
        try:
            op("retention.ms", "5", kind)
            raise AssertionError(f"{word} on a LONG accepted")
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.INVALID_CONFIG
            assert e.args[0].str() == f"Can't {word} to key retention.ms because its type is not LIST."


def test_compaction_settings_are_validated_and_described(broker):
    """delete.retention.ms, min/max.compaction.lag.ms and min.cleanable.dirty.ratio are validated
    and described as Kafka does (librdkafka's 0081 sets delete.retention.ms on new topics); they
    act only on compacted topics (test_compaction.py)."""
    from confluent_kafka.admin import ConfigResource

    a = admin(broker)
    name = unique("cleaner-keys")
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config={
        "delete.retention.ms": "1000", "min.cleanable.dirty.ratio": "0.25"})])[name].result(timeout=10)
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = a.describe_configs([res])[res].result(timeout=10)
    assert configs["delete.retention.ms"].value == "1000"
    assert configs["min.cleanable.dirty.ratio"].value == "0.25"
    assert configs["max.compaction.lag.ms"].value == "9223372036854775807"
    bad = unique("cleaner-bad")
    try:
        a.create_topics([NewTopic(bad, num_partitions=1, replication_factor=1, config={
            "min.cleanable.dirty.ratio": "2"})])[bad].result(timeout=10)
        raise AssertionError("ratio 2 accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_CONFIG
        assert e.args[0].str() == ("Invalid value 2.0 for configuration min.cleanable.dirty.ratio: "
                                   "Value must be no more than 1")


def test_create_partitions(broker):
    from confluent_kafka.admin import NewPartitions

    a = admin(broker)
    name = unique("grow")
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=10)
    a.create_partitions([NewPartitions(name, 4)])[name].result(timeout=10)
    assert len(a.list_topics(name, timeout=10).topics[name].partitions) == 4
    try:
        a.create_partitions([NewPartitions(name, 2)])[name].result(timeout=10)
        raise AssertionError("shrinking accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_create_partitions_with_a_manual_assignment(broker):
    """Each new partition's replica list, validated as Kafka's controller validates it (the
    messages are Kafka 4.1.1's, compared side by side with the reference broker)."""
    from confluent_kafka.admin import NewPartitions

    a = admin(broker)
    name = unique("grow-assigned")
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=10)
    for assignment, message in [
        ([[0]], "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
        ([[0, 0], [0, 0]], "The manual partition assignment includes the broker 0 more than once."),
        ([[0, 9], [0, 9]], "The manual partition assignment includes broker 9, but no such broker is registered."),
    ]:
        try:
            a.create_partitions([NewPartitions(name, 3, replica_assignment=assignment)])[name].result(timeout=10)
            raise AssertionError(f"{assignment} accepted")
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, e
            assert e.args[0].str() == message
    assert len(a.list_topics(name, timeout=10).topics[name].partitions) == 1
    a.create_partitions([NewPartitions(name, 3, replica_assignment=[[0], [0]])])[name].result(timeout=10)
    parts = a.list_topics(name, timeout=10).topics[name].partitions
    assert sorted(parts) == [0, 1, 2] and all(p.replicas == [0] for p in parts.values())


def test_describe_cluster(broker):
    a = admin(broker)  # keep the handle alive until the future resolves
    c = a.describe_cluster().result(timeout=10)
    assert c.controller.id == 0
    assert [(n.id, n.port) for n in c.nodes] == [(0, broker.port)]


def test_authorized_operations_when_asked(broker):
    """KIP-430: Metadata, DescribeCluster and DescribeGroups answer the operations the principal
    may perform when the client asks (librdkafka's 0081 checks the counts: 8 on a topic, 7 on the
    cluster, 5 on a group for Kafka 4); with no authorizer every operation is allowed."""
    from confluent_kafka import Consumer, TopicCollection
    from confluent_kafka.admin import AclOperation

    a = admin(broker)
    name = unique("authops")
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=10)
    t = a.describe_topics(TopicCollection([name]), include_authorized_operations=True)[name].result(10)
    assert sorted(op.name for op in t.authorized_operations) == sorted(
        ["READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"])
    cluster = a.describe_cluster(include_authorized_operations=True).result(10)
    assert len(cluster.authorized_operations) == 7
    assert AclOperation.IDEMPOTENT_WRITE in cluster.authorized_operations
    group = unique("authops-g")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    c.subscribe([name])
    c.poll(3)
    g = a.describe_consumer_groups([group], include_authorized_operations=True)[group].result(10)
    c.close()
    assert sorted(op.name for op in g.authorized_operations) == sorted(
        ["READ", "DESCRIBE", "DELETE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"])
    # Not asked: not answered.
    t = a.describe_topics(TopicCollection([name]))[name].result(10)
    assert not t.authorized_operations

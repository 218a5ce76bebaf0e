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
        (NewTopic(unique("cfg"), num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"}), KafkaError.INVALID_CONFIG),
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

"""`ringlet topics` (kafka-topics.sh's flags) against a real broker."""
import subprocess

from conftest import BIN, unique


def topics(broker, *args):
    return subprocess.run([BIN, "topics", "--bootstrap-server", broker.bootstrap, *args], capture_output=True, text=True, timeout=60)


def test_topics_create_list_describe_alter_delete(broker):
    name = unique("tool")
    r = topics(broker, "--create", "--topic", name, "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=60000")
    assert r.returncode == 0 and f"Created topic {name}." in r.stdout, r.stderr
    assert name in topics(broker, "--list").stdout.split()
    r = topics(broker, "--alter", "--topic", name, "--partitions", "4", "--config", "segment.bytes=1048576")
    assert r.returncode == 0, r.stderr
    r = topics(broker, "--describe", "--topic", name)
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.strip().splitlines()
    assert "PartitionCount: 4" in head and "ReplicationFactor: 1" in head
    assert "retention.ms=60000" in head and "segment.bytes=1048576" in head
    assert [row.split("\t")[2] for row in rows] == [f"Partition: {i}" for i in range(4)]
    assert all("Leader: 0\tReplicas: 0\tIsr: 0" in row for row in rows)
    r = topics(broker, "--delete", "--topic", name)
    assert r.returncode == 0, r.stderr
    assert name not in topics(broker, "--list").stdout.split()


def test_topics_errors_have_kafka_names_and_nonzero_exit(broker):
    name = unique("dup")
    assert topics(broker, "--create", "--topic", name).returncode == 0
    r = topics(broker, "--create", "--topic", name)
    assert r.returncode != 0 and "TOPIC_ALREADY_EXISTS" in r.stderr
    assert topics(broker, "--create", "--topic", name, "--if-not-exists").returncode == 0
    r = topics(broker, "--describe", "--topic", unique("missing"))
    assert r.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr
    r = topics(broker, "--alter", "--topic", name, "--partitions", "1")
    assert r.returncode != 0 and "INVALID_PARTITIONS" in r.stderr

"""KIP-848 online migration with librdkafka (confluent-kafka): a classic group's members are
replaced one at a time by `group.protocol=consumer` members while records flow (a rolling
upgrade), and the other way round (a rolling downgrade). The group becomes a consumer group when
the first consumer-protocol member joins and a classic group again when the last one leaves;
classic members in between are served by the consumer group's assignor through
JoinGroup/SyncGroup/Heartbeat. No partition is ever owned by two members, no record is lost."""
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique

FAST = {
    "group.consumer.min.session.timeout.ms": 1000,
    "group.consumer.session.timeout.ms": 4000,
    "group.consumer.min.heartbeat.interval.ms": 100,
    "group.consumer.heartbeat.interval.ms": 500,
    "group.min.session.timeout.ms": 1000,
    "group.initial.rebalance.delay.ms": 0,
}
PARTITIONS = 6


@pytest.fixture(scope="module")
def broker():
    from conftest import Broker
    import shutil
    b = Broker(FAST).start()
    yield b
    b.stop()
    assert "panicked" not in b.read_log()
    shutil.rmtree(b.data_dir, ignore_errors=True)


class Flow:
    """A topic, a producer feeding it, and what the group's members consumed."""

    def __init__(self, b):
        self.b = b
        self.topic, self.group = unique("migrate"), unique("gmig")
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        a.create_topics([NewTopic(self.topic, num_partitions=PARTITIONS,
                                  replication_factor=1)])[self.topic].result(10)
        self.producer = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        self.sent, self.seen = [], set()
        self.members = []

    def produce(self, n):
        for _ in range(n):
            v = f"r{len(self.sent)}"
            self.producer.produce(self.topic, value=v.encode(),
                                  partition=len(self.sent) % PARTITIONS)
            self.sent.append(v)
        assert self.producer.flush(10) == 0

    def join(self, protocol, strategy="range"):
        conf = {"bootstrap.servers": self.b.bootstrap, "group.id": self.group,
                "group.protocol": protocol, "auto.offset.reset": "earliest",
                "auto.commit.interval.ms": 200}
        if protocol == "classic":
            conf.update({"partition.assignment.strategy": strategy,
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
        c = Consumer(conf)
        c.subscribe([self.topic])
        self.members.append(c)
        return c

    def leave(self, c):
        self.members.remove(c)
        c.close()

    def poll(self):
        for c in self.members:
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                self.seen.add(m.value().decode())

    def wait_split(self, timeout=40):
        """Polls until the members own all partitions, disjointly, each some, balanced; asserts
        at every look that no partition is owned twice."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll()
            sets = [{tp.partition for tp in c.assignment()} for c in self.members]
            for i, x in enumerate(sets):
                for y in sets[i + 1:]:
                    assert not x & y, f"a partition owned by two members: {sets}"
            sizes = [len(x) for x in sets]
            if (len(set().union(*sets)) == PARTITIONS and sum(sizes) == PARTITIONS
                    and all(sets) and max(sizes) - min(sizes) <= 1):
                return sets
        raise AssertionError(f"no split: {[c.assignment() for c in self.members]}")

    def group_type(self):
        a = AdminClient({"bootstrap.servers": self.b.bootstrap})
        d = a.describe_consumer_groups([self.group])[self.group].result(10)
        return str(d.type).rsplit(".", 1)[-1], len(d.members)

    def drain(self, timeout=30):
        deadline = time.time() + timeout
        while not set(self.sent) <= self.seen and time.time() < deadline:
            self.poll()
        missing = sorted(set(self.sent) - self.seen)
        assert not missing, f"{len(missing)} records never consumed, e.g. {missing[:5]}"

    def close(self):
        for c in list(self.members):
            self.leave(c)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_rolling_upgrade_from_classic_to_consumer(broker, strategy):
    f = Flow(broker)
    try:
        a, b = f.join("classic", strategy), f.join("classic", strategy)
        f.produce(60)
        f.wait_split()
        assert f.group_type() == ("CLASSIC", 2)
        # The first consumer-protocol member upgrades the group; the classic members stay in
        # it, now assigned by the broker's assignor.
        f.join("consumer")
        f.produce(60)
        f.wait_split()
        assert f.group_type() == ("CONSUMER", 3)
        # Replace the classic members one at a time.
        f.leave(a)
        f.wait_split()
        f.join("consumer")
        f.produce(60)
        f.wait_split()
        f.leave(b)
        f.wait_split()
        assert f.group_type() == ("CONSUMER", 2)
        f.produce(60)
        f.drain()
    finally:
        f.close()


def test_rolling_downgrade_from_consumer_to_classic(broker):
    f = Flow(broker)
    try:
        c1, c2 = f.join("consumer"), f.join("consumer")
        f.produce(60)
        f.wait_split()
        # A classic member joins the consumer group (a mixed group).
        f.join("classic")
        f.wait_split()
        assert f.group_type() == ("CONSUMER", 3)
        f.leave(c1)
        f.join("classic")
        f.produce(60)
        f.wait_split()
        assert f.group_type() == ("CONSUMER", 3)
        # The last consumer-protocol member leaves: the group is a classic group again and its
        # members rebalance among themselves with their own assignor.
        f.leave(c2)
        f.wait_split()
        assert f.group_type() == ("CLASSIC", 2)
        f.produce(60)
        f.drain()
    finally:
        f.close()

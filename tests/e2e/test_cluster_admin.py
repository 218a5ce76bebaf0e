"""Operating the three-broker cluster with Kafka's own tools (issue 25 items 2 and 4).

Partition reassignment, driven by `kafka-reassign-partitions` (compat/bin, from the Maven jars):
replicas move while an idempotent acks=all producer writes (every acknowledged record is read
back afterwards), the brokers left out delete their copies, a throttled reassignment is listed in
progress and cancelled, and `--verify` clears the throttles it set. Client quotas set with
`kafka-configs` through one broker are stored in ZooKeeper and enforced by every broker."""
import json
import os
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from conftest import unique

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "compat", "bin", "kafka-reassign-partitions.sh")


@pytest.fixture(scope="module")
def cluster():
    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    # Short quota windows: a test's burst is measured over one second, not Kafka's ten.
    c = Cluster(overrides={"auto.leader.rebalance.enable": "false", "quota.window.num": 2,
                           "quota.window.size.seconds": 1}).start()
    yield c
    c.stop()
    c.cleanup()


def reassign(cluster, *args, plan=None, check=True):
    """Runs kafka-reassign-partitions with `plan` (partition -> replicas) as its JSON file."""
    extra = []
    if plan is not None:
        path = os.path.join(cluster.brokers[1].data_dir, f"plan-{time.monotonic_ns()}.json")
        with open(path, "w") as f:
            json.dump({"version": 1, "partitions": [
                {"topic": t, "partition": p, "replicas": r} for (t, p), r in plan.items()]}, f)
        extra = ["--reassignment-json-file", path]
    r = subprocess.run([TOOL, "--bootstrap-server", cluster.bootstrap, *args, *extra],
                       capture_output=True, text=True, timeout=180)
    if check and r.returncode != 0:
        raise AssertionError(f"kafka-reassign-partitions {args} exited {r.returncode}\n"
                             f"stdout: {r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}")
    return r.stdout


def assignment(cluster, topic):
    md = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(topic, timeout=10)
    return {p: (list(m.replicas), sorted(m.isrs), m.leader)
            for p, m in md.topics[topic].partitions.items()}


def wait_for(what, cond, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def replica_dir(cluster, broker, topic, p):
    return os.path.join(cluster.brokers[broker].data_dir, "data", f"{topic}-{p}")


class Load:
    """An idempotent acks=all producer writing numbered records to every partition until
    stopped; `acked` holds what was acknowledged, by partition."""

    def __init__(self, bootstrap, topic, partitions):
        self.topic, self.partitions = topic, partitions
        self.acked = {p: set() for p in range(partitions)}
        self.errors = []
        self.stop = threading.Event()
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000})
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def delivered(self, err, msg):
        if err is None:
            self.acked[msg.partition()].add(msg.value().decode())
        else:
            self.errors.append(str(err))

    def run(self):
        i = 0
        while not self.stop.is_set():
            p = i % self.partitions
            try:
                self.producer.produce(self.topic, value=str(i).encode(), partition=p,
                                      on_delivery=self.delivered)
            except BufferError:
                self.producer.poll(0.05)
                continue
            i += 1
            self.producer.poll(0)
            if i % 50 == 0:
                time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.thread.join(10)
        left = self.producer.flush(60)
        assert left == 0, f"{left} records never acknowledged"
        return self.acked


def read_back(bootstrap, topic, partition):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reassign-check"),
                  "enable.auto.commit": False})
    _, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    c.assign([TopicPartition(topic, partition, 0)])
    seen = set()
    deadline = time.time() + 60
    position = 0
    while position < high and time.time() < deadline:
        m = c.poll(1)
        if m is None or m.error():
            continue
        seen.add(m.value().decode())
        position = m.offset() + 1
    c.close()
    return seen


def test_kafka_tool_moves_replicas_under_load_and_loses_nothing(cluster):
    topic = unique("reassign-load")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replica_assignment=[[1, 2], [2, 3], [3, 1]])])[
        topic].result(30)
    load = Load(cluster.bootstrap, topic, 3)
    time.sleep(1.5)
    # Each partition gains the broker it lacked and loses one: 0 keeps its leader, 1 and 2 lose
    # theirs (leadership moves within the new replicas).
    plan = {(topic, 0): [1, 3], (topic, 1): [3, 1], (topic, 2): [1, 2]}
    out = reassign(cluster, "--execute", plan=plan)
    assert "Successfully started partition reassignment" in out, out
    wait_for("the reassignment to complete", lambda: "still in progress" not in
             reassign(cluster, "--verify", plan=plan))
    out = reassign(cluster, "--verify", plan=plan)
    assert out.count("is completed") == 3, out
    time.sleep(1)
    acked = load.finish()
    assert not load.errors, load.errors[:5]
    a = wait_for("every target replica in sync", lambda: (lambda a: a if all(
        a[p][1] == sorted(r) for (_, p), r in plan.items()) else None)(assignment(cluster, topic)))
    for (_, p), r in plan.items():
        replicas, isr, leader = a[p]
        assert replicas == r, (p, replicas, r)
        assert leader in r, (p, leader)
    # The brokers left out deleted their copies; the ones added hold the partition.
    for (_, p), r in plan.items():
        for b in (1, 2, 3):
            wait_for(f"broker {b}'s copy of {topic}-{p} to match the plan",
                     lambda b=b, p=p, r=r: os.path.isdir(replica_dir(cluster, b, topic, p)) == (b in r),
                     timeout=20)
    # Nothing acknowledged was lost.
    for p in range(3):
        assert len(acked[p]) > 50, f"too little load on partition {p}"
        missing = acked[p] - read_back(cluster.bootstrap, topic, p)
        assert not missing, f"partition {p}: {len(missing)} acknowledged records lost"
    # The replicas agree byte for byte: the new ones hold the leader's batches.
    for (_, p), r in plan.items():
        wait_for(f"{topic}-{p}'s replicas to agree",
                 lambda p=p, r=r: len({cluster.replica_logs(topic, p)[b] for b in r}) == 1,
                 timeout=20)
    assert reassign(cluster, "--list").strip().endswith("No partition reassignments found."), \
        reassign(cluster, "--list")


def broker_configs(cluster, broker):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    r = ConfigResource(ResourceType.BROKER, str(broker))
    return {k: v.value for k, v in admin.describe_configs([r])[r].result(10).items()}


def topic_configs(cluster, topic):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    r = ConfigResource(ResourceType.TOPIC, topic)
    return {k: v.value for k, v in admin.describe_configs([r])[r].result(10).items()}


def test_a_throttled_reassignment_is_listed_then_cancelled_and_verify_clears_throttles(cluster):
    topic = unique("reassign-throttle")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]])])[topic].result(30)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 20})
    for i in range(4000):
        p.produce(topic, value=os.urandom(1000), partition=0)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    plan = {(topic, 0): [3, 1]}
    # 4 MB at 100 kB/s takes some 40 s: the reassignment is still running while we look.
    started = time.monotonic()
    out = reassign(cluster, "--execute", "--throttle", "100000", plan=plan)
    assert "The inter-broker throttle limit was set to 100000 B/s" in out, out
    time.sleep(1)
    # The copy on broker 3 grows at the throttled rate (plus one fetch's worth, 1 MB, and the
    # bucket's second of burst), far behind the 4 MB an unthrottled copy has by now.
    copied = sum(os.path.getsize(os.path.join(replica_dir(cluster, 3, topic, 0), f))
                 for f in os.listdir(replica_dir(cluster, 3, topic, 0)) if f.endswith(".log"))
    elapsed = time.monotonic() - started
    assert copied < 100_000 * elapsed + 1_200_000, \
        f"{copied} bytes copied in {elapsed:.1f} s despite a 100 kB/s throttle"
    for b in (1, 2, 3):
        c = broker_configs(cluster, b)
        assert c["leader.replication.throttled.rate"] == "100000", (b, c)
        assert c["follower.replication.throttled.rate"] == "100000", (b, c)
    tc = topic_configs(cluster, topic)
    assert tc["leader.replication.throttled.replicas"] == "0:1,0:2", tc
    assert tc["follower.replication.throttled.replicas"] == "0:3", tc
    listed = reassign(cluster, "--list")
    assert f"{topic}-0: replicas: 3,1,2. adding: 3. removing: 2." in listed, listed
    assert "still in progress" in reassign(cluster, "--verify", plan=plan)
    a = assignment(cluster, topic)
    assert a[0][0] == [3, 1, 2] and 3 not in a[0][1], a
    # Cancelled: back to the original replicas; broker 3 drops its partial copy.
    out = reassign(cluster, "--cancel", plan=plan)
    assert "Successfully cancelled partition reassignment" in out, out
    a = wait_for("the original replicas", lambda: (lambda a: a if a[0][0] == [1, 2] else None)(
        assignment(cluster, topic)))
    assert a[0][2] in (1, 2), a
    wait_for("broker 3 to drop its copy",
             lambda: not os.path.isdir(replica_dir(cluster, 3, topic, 0)), timeout=20)
    assert reassign(cluster, "--list").strip().endswith("No partition reassignments found.")
    # Unthrottled, the same move completes; --verify then removes the throttles it set.
    reassign(cluster, "--execute", "--additional", "--throttle", "-1", plan=plan)
    wait_for("the reassignment to complete", lambda: "still in progress" not in
             reassign(cluster, "--verify", plan=plan))
    for b in (1, 2, 3):
        c = broker_configs(cluster, b)
        assert c["leader.replication.throttled.rate"] == str(2**63 - 1), (b, c)
    tc = topic_configs(cluster, topic)
    assert tc["leader.replication.throttled.replicas"] == "", tc
    a = assignment(cluster, topic)
    assert a[0][0] == [3, 1], a


def test_bad_reassignments_get_kafkas_errors(cluster):
    """Kafka's tool checks broker ids and duplicates itself; kafka-python's admin client sends
    what it is given, so the broker's own checks answer (Kafka's codes, per partition)."""
    import kafka.errors as Errors
    from kafka import TopicPartition as TP
    from kafka.admin import KafkaAdminClient
    topic = unique("reassign-bad")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]])])[
        topic].result(30)
    kp = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        for target, error in (([1, 9], Errors.InvalidReplicationAssignmentError),
                              ([1, 1], Errors.InvalidReplicationAssignmentError),
                              (None, Errors.NoReassignmentInProgressError)):
            got = kp.alter_partition_reassignments({TP(topic, 0): target})
            assert got[TP(topic, 0)] is error, (target, got)
        got = kp.alter_partition_reassignments({TP(topic, 7): [1, 2]})
        assert got[TP(topic, 7)] is Errors.UnknownTopicOrPartitionError, got
        # Nothing moved; a valid reordering is accepted and moves nothing but the preferred leader.
        assert assignment(cluster, topic)[0][0] == [1, 2]
        assert kp.alter_partition_reassignments({TP(topic, 0): [2, 1]}) == {TP(topic, 0): None}
        assert kp.list_partition_reassignments([TP(topic, 0)]) == {}
        wait_for("the reordered replicas",
                 lambda: assignment(cluster, topic)[0][0] == [2, 1], timeout=15)
    finally:
        kp.close()


def test_client_quotas_set_through_one_broker_are_enforced_by_every_broker(cluster):
    from test_quotas import configs, produce
    topic = unique("cluster-quota")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[3, 2]])])[
        topic].result(30)
    configs(cluster.brokers[1].bootstrap, "--alter", "--entity-type", "clients", "--entity-name",
            "cluster-slow", "--add-config", "producer_byte_rate=100000")
    # ZooKeeper holds it where Kafka's ZooKeeper mode did; every broker describes it.
    for b in (2, 3):
        wait_for(f"broker {b} to describe the quota", lambda b=b: "producer_byte_rate=100000.0" in
                 configs(cluster.brokers[b].bootstrap, "--describe", "--entity-type", "clients",
                         "--entity-name", "cluster-slow"), timeout=20)
    # Broker 3 leads the partition: it throttles the client.
    took, throttled = produce(cluster.bootstrap, topic, "cluster-slow", 500)
    assert took > 2.5, f"500 kB in {took:.1f} s under a 100 kB/s quota"
    assert throttled and max(throttled) > 0
    configs(cluster.brokers[2].bootstrap, "--alter", "--entity-type", "clients", "--entity-name",
            "cluster-slow", "--delete-config", "producer_byte_rate")
    wait_for("the quota to be gone everywhere", lambda: all(
        "producer_byte_rate" not in configs(b.bootstrap, "--describe", "--entity-type", "clients",
                                            "--entity-name", "cluster-slow")
        for b in cluster.brokers.values()), timeout=20)


def elect(cluster, *args):
    """Runs Kafka's kafka-leader-election; returns its output."""
    tool = os.path.join(HERE, "..", "..", "compat", "bin", "kafka-leader-election.sh")
    r = subprocess.run([tool, "--bootstrap-server", cluster.bootstrap, *args],
                       capture_output=True, text=True, timeout=120)
    return r.stdout + r.stderr


def read_all(cluster, topic):
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": unique("unclean-read"),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + 20
    try:
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m.value().decode())
            elif out and m is None:
                break
    finally:
        c.close()
    return out


def test_unclean_leader_election_by_topic_config_and_by_kafkas_tool(cluster):
    """Item 3: with every in-sync replica gone, a partition stays offline unless its topic has
    `unclean.leader.election.enable=true` (then the controller elects a live out-of-sync replica
    by itself) or `kafka-leader-election --election-type unclean` asks. What only the lost ISR had
    is gone (Kafka's trade-off); the old leader, back, truncates to the new leader's log."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    asked, auto = unique("unclean-asked"), unique("unclean-auto")
    fs = admin.create_topics([
        NewTopic(asked, num_partitions=1, replica_assignment=[[1, 2]],
                 config={"min.insync.replicas": "1"}),
        NewTopic(auto, num_partitions=1, replica_assignment=[[1, 2]],
                 config={"min.insync.replicas": "1", "unclean.leader.election.enable": "true"})])
    for f in fs.values():
        f.result(30)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for t in (asked, auto):
        wait_for(f"{t} in sync", lambda t=t: assignment(cluster, t)[0][1] == [1, 2])
        p.produce(t, b"kept", partition=0)
    assert p.flush(30) == 0
    # Broker 2 goes; the ISR shrinks to [1], which alone acknowledges "lost".
    cluster.kill9(2)
    for t in (asked, auto):
        wait_for(f"{t} ISR [1]", lambda t=t: assignment(cluster, t)[0][1] == [1])
        p.produce(t, b"lost", partition=0)
    assert p.flush(30) == 0
    # Broker 1 (the whole ISR) goes; 2 comes back out of sync.
    cluster.kill9(1)
    cluster.restart(2)
    wait_for("auto led by 2", lambda: assignment(cluster, auto)[0][2] == 2)
    assert assignment(cluster, auto)[0][1] == [2]
    time.sleep(2)
    assert assignment(cluster, asked)[0][2] == -1, "elected without being enabled or asked"
    out = elect(cluster, "--election-type", "unclean", "--topic", asked, "--partition", "0")
    assert "Successfully completed leader election (UNCLEAN)" in out, out
    assert assignment(cluster, asked)[0][2] == 2
    # Asked again: a live leader needs no election.
    out = elect(cluster, "--election-type", "unclean", "--topic", asked, "--partition", "0")
    assert "Valid replica already elected" in out or "ELECTION_NOT_NEEDED" in out \
        or "not needed" in out.lower(), out
    for t in (asked, auto):
        p.produce(t, b"after", partition=0)
    assert p.flush(30) == 0
    # Broker 1 returns as a follower, drops "lost" (truncated by leader epoch) and rejoins.
    cluster.restart(1)
    for t in (asked, auto):
        wait_for(f"{t} ISR [1, 2]", lambda t=t: assignment(cluster, t)[0][1] == [1, 2])
        assert read_all(cluster, t) == ["kept", "after"]
        logs = cluster.replica_logs(t, 0)
        assert logs[1] == logs[2], f"{t}: replicas differ after truncation"
    assert cluster.logs_contain("unclean leader election")

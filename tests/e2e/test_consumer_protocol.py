"""KIP-848 consumer groups (`group.protocol=consumer`) with librdkafka through confluent-kafka:
the broker computes the assignment and hands it out through ConsumerGroupHeartbeat; members
join, split the partitions, commit with their member epoch, and take over the partitions of a
member that leaves or is killed; static members keep their partitions across a restart;
ConsumerGroupDescribe and ListGroups show the group as a consumer group."""
import os
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique

# Short timers so that a killed member is noticed in seconds (Kafka's bounds allow it when the
# min keys are lowered).
FAST = {
    "group.consumer.min.session.timeout.ms": 1000,
    "group.consumer.session.timeout.ms": 4000,
    "group.consumer.min.heartbeat.interval.ms": 100,
    "group.consumer.heartbeat.interval.ms": 500,
}


@pytest.fixture(scope="module")
def fast_broker():
    from conftest import Broker
    import shutil
    b = Broker(FAST).start()
    yield b
    b.stop()
    assert "panicked" not in b.read_log()
    shutil.rmtree(b.data_dir, ignore_errors=True)


def create(b, name, partitions):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name].result(timeout=10)


def produce(b, topic, values, partitions):
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), partition=i % partitions)
    assert p.flush(10) == 0


def member(b, group, **extra):
    conf = {"bootstrap.servers": b.bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    conf.update(extra)
    return Consumer(conf)


def poll_until(consumers, want, timeout=30):
    """Polls every consumer in turn until `want` values arrived in all; values by consumer."""
    got = [[] for _ in consumers]
    deadline = time.time() + timeout
    while sum(map(len, got)) < want and time.time() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.1)
            if m is not None and not m.error():
                got[i].append(m.value().decode())
    return got


def owned(c):
    return {(tp.topic, tp.partition) for tp in c.assignment()}


def wait_split(consumers, n, timeout=30):
    """Polls until the members own all n partitions between them, disjointly, each some, and
    balanced (sizes within one): a member that joined may hold fewer for a moment while another
    revokes what the target gives the newcomer, which is not yet the split the assignor chose."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in consumers:
            c.poll(0.1)
        sets = [owned(c) for c in consumers]
        # Incremental reconciliation: a partition moves only once its owner gave it up.
        for i, x in enumerate(sets):
            for y in sets[i + 1:]:
                assert not x & y, f"a partition owned by two members: {sets}"
        union = set().union(*sets)
        sizes = [len(x) for x in sets]
        if len(union) == n and sum(sizes) == n and all(sets) and max(sizes) - min(sizes) <= 1:
            return sets
    raise AssertionError(f"no split of {n} partitions: {[owned(c) for c in consumers]}")


def test_members_split_partitions_and_take_over_on_leave(fast_broker):
    b = fast_broker
    topic, group = unique("kip848"), unique("g848")
    create(b, topic, 4)
    a = member(b, group)
    a.subscribe([topic])
    produce(b, topic, [f"v{i}" for i in range(40)], 4)
    got = poll_until([a], 40)
    assert sorted(got[0]) == sorted(f"v{i}" for i in range(40))
    a.commit(asynchronous=False)
    # A second member: the partitions are split, none owned twice.
    c2 = member(b, group)
    c2.subscribe([topic])
    sets = wait_split([a, c2], 4)
    assert len(sets[0]) == 2 and len(sets[1]) == 2, sets
    produce(b, topic, [f"w{i}" for i in range(40)], 4)
    got = poll_until([a, c2], 40)
    assert sorted(got[0] + got[1]) == sorted(f"w{i}" for i in range(40))
    assert got[0] and got[1], "both members consume"
    a.commit(asynchronous=False)
    c2.commit(asynchronous=False)
    # The group as ConsumerGroupDescribe and ListGroups show it.
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(10)
    assert str(desc.type).endswith("CONSUMER"), desc.type
    assert len(desc.members) == 2
    assigned = sorted(tp.partition for m in desc.members for tp in m.assignment.topic_partitions)
    assert assigned == [0, 1, 2, 3]
    listed = admin.list_consumer_groups().result(10)
    mine = [g for g in listed.valid if g.group_id == group]
    assert mine and str(mine[0].type).endswith("CONSUMER"), listed.valid
    # `ringlet groups --describe` shows each partition's owner (from DescribeGroups, which
    # renders a consumer group as Kafka does).
    from conftest import BIN
    out = subprocess.run([BIN, "groups", "--bootstrap-server", b.bootstrap, "--describe",
                          "--group", group], capture_output=True, text=True, timeout=60).stdout
    rows = [l.split() for l in out.splitlines() if l.startswith(group)]
    assert len(rows) == 4 and all(r[6] in {m.member_id for m in desc.members} for r in rows), out
    # One leaves: the other gets every partition and reads on from the committed offsets.
    c2.close()
    deadline = time.time() + 20
    while len(owned(a)) != 4 and time.time() < deadline:
        a.poll(0.1)
    assert len(owned(a)) == 4
    produce(b, topic, [f"x{i}" for i in range(20)], 4)
    got = poll_until([a], 20)
    assert sorted(got[0]) == sorted(f"x{i}" for i in range(20)), "nothing read twice or lost"
    a.close()


KILLED_MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "group.protocol": "consumer", "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
"""


def test_a_killed_members_partitions_move_after_its_session(fast_broker):
    b = fast_broker
    topic, group = unique("kip848-kill"), unique("g848-kill")
    create(b, topic, 2)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, b.bootstrap, group, topic],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "assigned"
        a = member(b, group)
        a.subscribe([topic])
        deadline = time.time() + 20
        while not owned(a) and time.time() < deadline:
            a.poll(0.1)
        assert len(owned(a)) == 1, "the partitions are split with the other member"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # group.consumer.session.timeout.ms=4000: then the survivor owns both.
        started = time.time()
        while len(owned(a)) != 2 and time.time() < started + 20:
            a.poll(0.1)
        assert len(owned(a)) == 2
        assert time.time() - started > 2, "moved before the session timed out"
        a.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_static_member_keeps_its_partitions_across_a_restart(fast_broker):
    b = fast_broker
    topic, group = unique("kip848-static"), unique("g848-static")
    create(b, topic, 4)
    a = member(b, group, **{"group.instance.id": "a"})
    s = member(b, group, **{"group.instance.id": "s"})
    a.subscribe([topic])
    s.subscribe([topic])
    sets = wait_split([a, s], 4)
    before = sets[1]
    s.close()  # a static member leaves with epoch -2: its partitions wait for it
    time.sleep(1)
    for _ in range(10):
        a.poll(0.1)
    assert owned(a) == sets[0], "the static member's partitions were not reassigned"
    s = member(b, group, **{"group.instance.id": "s"})
    s.subscribe([topic])
    deadline = time.time() + 20
    while owned(s) != before and time.time() < deadline:
        s.poll(0.1)
        a.poll(0.1)
    assert owned(s) == before
    a.close()
    s.close()


def test_commits_carry_the_member_epoch(fast_broker):
    """OffsetCommit v9 from a member is checked against its epoch; committed offsets are read
    back by the next member (and by the classic OffsetFetch of an admin)."""
    b = fast_broker
    topic, group = unique("kip848-commit"), unique("g848-commit")
    create(b, topic, 1)
    produce(b, topic, [f"c{i}" for i in range(10)], 1)
    a = member(b, group)
    a.subscribe([topic])
    got = poll_until([a], 10)
    assert len(got[0]) == 10
    a.commit(asynchronous=False)
    committed = a.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == 10
    a.close()
    produce(b, topic, ["c10"], 1)
    nxt = member(b, group)
    nxt.subscribe([topic])
    got = poll_until([nxt], 1)
    assert got[0] == ["c10"]
    nxt.close()


def heartbeat_v1(port, group, member_id, epoch, topics, assignor=None, timeout_ms=30000,
                 owned=()):
    """A ConsumerGroupHeartbeat v1 written by hand (no client here sends a bad one); returns
    (error code, member epoch)."""
    import socket
    import struct

    def cstr(v):
        if v is None:
            return b"\x00"
        b = v.encode()
        return bytes([len(b) + 1]) + b  # lengths here stay below 127 (one-byte varints)

    body = (cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(None) + cstr(None)
            + struct.pack(">i", timeout_ms)
            + (b"\x00" if topics is None else bytes([len(topics) + 1]) + b"".join(map(cstr, topics)))
            + cstr(None) + cstr(assignor) + (b"\x00" if owned is None else b"\x01") + b"\x00")
    header = struct.pack(">hhi", 68, 1, 7) + struct.pack(">h", 4) + b"test" + b"\x00"
    frame = header + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(n, socket.MSG_WAITALL)
    # correlation id, header tags, throttle, error code
    assert struct.unpack(">i", resp[:4])[0] == 7
    error = struct.unpack(">h", resp[9:11])[0]
    at = 11
    for _ in range(2):  # the error message and the member id: compact nullable strings
        n = shift = 0
        while True:
            b = resp[at]
            at += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        at += max(n - 1, 0)
    return error, struct.unpack(">i", resp[at:at + 4])[0]


def test_unknown_member_and_bad_assignor_are_refused(fast_broker):
    """Kafka's errors (compat/differential compares them with Kafka's): a heartbeat for a group
    this coordinator does not know is GROUP_ID_NOT_FOUND (69), one from a member the group does
    not know UNKNOWN_MEMBER_ID (25); an assignor the broker lacks is UNSUPPORTED_ASSIGNOR (112); a first
    heartbeat without a subscription or with null owned partitions is INVALID_REQUEST (42); a
    proper join gets epoch 1 or more."""
    import uuid
    port, group, mid = fast_broker.port, unique("g848-err"), str(uuid.uuid4())
    # COORDINATOR_NOT_AVAILABLE (15) until the broker's offsets topic is up, as clients see it.
    deadline = time.time() + 10
    while heartbeat_v1(port, group, mid, 5, None)[0] == 15 and time.time() < deadline:
        time.sleep(0.2)
    assert heartbeat_v1(port, group, mid, 5, None)[0] == 69
    assert heartbeat_v1(port, group, mid, 0, ["t"], owned=None)[0] == 42
    assert heartbeat_v1(port, group, mid, 0, ["t"], assignor="nope")[0] == 112
    assert heartbeat_v1(port, group, mid, 0, None)[0] == 42
    code, epoch = heartbeat_v1(port, group, mid, 0, ["t"])
    assert code == 0 and epoch >= 1
    # A stale epoch from the same member is fenced (110); another member id is unknown (25).
    assert heartbeat_v1(port, group, mid, epoch + 7, None)[0] == 110
    assert heartbeat_v1(port, group, str(uuid.uuid4()), 3, None)[0] == 25


def test_a_standalone_consumer_commits_with_its_own_member_id(fast_broker):
    """librdkafka's KIP-848 consumers name themselves: one that only assign()s commits with
    epoch -1 and its own member id. Kafka accepts that while the group has no member; the second
    commit (on close) was refused with UNKNOWN_MEMBER_ID once the first had created the group
    (found by librdkafka's 0030_offset_commit)."""
    b = fast_broker
    topic, group = unique("kip848-assign"), unique("g848-assign")
    create(b, topic, 1)
    produce(b, topic, [f"a{i}" for i in range(10)], 1)
    results = []
    c = member(b, group, **{"enable.auto.commit": True, "auto.commit.interval.ms": 200,
                            "on_commit": lambda err, parts: results.append(
                                (err, [p.error for p in parts]))})
    c.assign([TopicPartition(topic, 0)])
    got = poll_until([c], 10)
    assert len(got[0]) == 10
    deadline = time.time() + 5
    while not results and time.time() < deadline:
        c.poll(0.1)
    c.close()
    assert results, "no commit happened"
    assert all(err is None and not any(parts) for err, parts in results), results


def test_consumer_group_survives_a_coordinator_kill():
    """Three brokers: two KIP-848 members consume and commit while the group's coordinator is
    killed -9 and restarted. Membership is durable (Kafka's consumer-group records in the offsets
    partition), so the new coordinator knows both members: they keep their member ids; every
    record is still consumed (at least once: what was read after the last commit may be read
    again) and the group ends with both members holding disjoint partitions."""
    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    c = Cluster(overrides=FAST).start()
    try:
        topic, group = unique("kip848-cluster"), unique("g848-cluster")
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=3)])[
            topic].result(30)

        class B:
            bootstrap = c.bootstrap
        members = [member(B, group), member(B, group)]
        for m in members:
            m.subscribe([topic])
        wait_split(members, 4)
        before = admin.describe_consumer_groups([group])[group].result(10)
        coordinator = before.coordinator.id
        produce(B, topic, [f"a{i}" for i in range(100)], 4)
        got = poll_until(members, 100)
        for m in members:
            m.commit(asynchronous=False)
        c.kill9(coordinator)
        c.restart(coordinator)
        produce(B, topic, [f"b{i}" for i in range(100)], 4)
        seen = set(got[0] + got[1])
        deadline = time.time() + 90
        while not {f"b{i}" for i in range(100)} <= seen and time.time() < deadline:
            for m in members:
                msg = m.poll(0.1)
                if msg is not None and not msg.error():
                    seen.add(msg.value().decode())
        assert {f"a{i}" for i in range(100)} | {f"b{i}" for i in range(100)} <= seen
        sets = wait_split(members, 4, timeout=60)
        assert not sets[0] & sets[1]
        after = describe(c.bootstrap, group)
        assert ({m.member_id for m in after.members} == {m.member_id for m in before.members}), (
            "the members had to join again", before.members, after.members)
        for m in members:
            m.close()
    finally:
        c.stop()
        c.cleanup()


def describe(bootstrap, group, timeout=30):
    """ConsumerGroupDescribe, retried (with a new client) while the coordinator moves."""
    deadline = time.time() + timeout
    while True:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        try:
            return admin.describe_consumer_groups([group])[group].result(10)
        except Exception as e:
            print("describe:", e)
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_members_keep_their_place_across_a_broker_kill(fresh_broker):
    """One broker killed -9 and restarted under two KIP-848 members: the group's records bring
    back its members, epochs and assignment, so both go on with the same member ids and the same
    partitions (no rebalance), and ConsumerGroupDescribe shows the same group; a member written
    by hand heartbeats at its old epoch after the restart and is answered at it."""
    b = fresh_broker(FAST)
    topic, group = unique("kip848-kill"), unique("g848-kill")
    create(b, topic, 4)
    members = [member(b, group), member(b, group)]
    for m in members:
        m.subscribe([topic])
    sets = wait_split(members, 4)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    before = admin.describe_consumer_groups([group])[group].result(10)
    # A member of another group, by hand: after the restart its epoch is still current.
    import uuid
    raw_group, raw = unique("g848-raw"), str(uuid.uuid4())
    code, epoch = heartbeat_v1(b.port, raw_group, raw, 0, [topic])
    assert code == 0 and epoch >= 1
    b.stop(signal.SIGKILL)
    b.start()
    deadline = time.time() + 10
    while heartbeat_v1(b.port, raw_group, raw, epoch, None)[0] in (14, 15) and time.time() < deadline:
        time.sleep(0.2)
    # Not GROUP_ID_NOT_FOUND (69) nor UNKNOWN_MEMBER_ID (25): the coordinator read the group back.
    assert heartbeat_v1(b.port, raw_group, raw, epoch, None) == (0, epoch)
    produce(b, topic, [f"k{i}" for i in range(40)], 4)
    got = poll_until(members, 40, timeout=60)
    assert sorted(got[0] + got[1]) == sorted(f"k{i}" for i in range(40))
    after = describe(b.bootstrap, group)
    ids = lambda d: {m.member_id: {tp.partition for tp in m.assignment.topic_partitions}  # noqa: E731
                     for m in d.members}
    assert ids(after) == ids(before), (ids(before), ids(after))
    assert [owned(m) for m in members] == sets
    for m in members:
        m.close()


def test_uniform_assignor_places_partitions_in_the_members_racks():
    """Rack-aware assignment: three brokers in racks r1-r3, six single-replica partitions (two
    led in each rack), three members with `client.rack` r1-r3: each gets the two partitions whose
    replica is in its rack (balance permitting), so it can fetch within its rack."""
    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    c = Cluster(overrides=FAST)
    for i, b in c.brokers.items():
        b.overrides["broker.rack"] = f"r{i}"
    c.start()
    try:
        topic, group = unique("kip848-racks"), unique("g848-racks")
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=6, replica_assignment=[
            [1], [2], [3], [1], [2], [3]])])[topic].result(30)

        class B:
            bootstrap = c.bootstrap
        members = [member(B, group, **{"client.rack": f"r{i}"}) for i in (1, 2, 3)]
        for m in members:
            m.subscribe([topic])
        sets = wait_split(members, 6)
        # Partition p's replica is on broker p % 3 + 1, in rack r(p % 3 + 1).
        for i, s in enumerate(sets):
            assert {p for _, p in s} == {i, i + 3}, sets
        for m in members:
            m.close()
    finally:
        c.stop()
        c.cleanup()

"""The same scenario against Ringlet and against Apache Kafka; clients must see the same thing.

Each test computes what a client observes (error codes, offsets, config values and sources,
API versions) on both brokers and compares them. A difference that is deliberate is written in
KNOWN_DIFFERENCES with its reason (and in docs/compatibility.md); any other one fails the test.
"""
import os
import socket
import struct
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

# Topic configs that Kafka describes and Ringlet does not (yet), with why. Everything else that
# either broker describes for a topic must exist on both with the same default and source.
KNOWN_MISSING_TOPIC_CONFIGS = {
    "remote.storage.enable": "tiered storage (KIP-405) is not implemented",
    "local.retention.ms": "tiered storage (KIP-405) is not implemented",
    "local.retention.bytes": "tiered storage (KIP-405) is not implemented",
    "remote.log.copy.disable": "tiered storage (KIP-405) is not implemented",
    "remote.log.delete.on.disable": "tiered storage (KIP-405) is not implemented",
    "segment.jitter.ms": "time-based roll jitter is issue 21",
    "file.delete.delay.ms": "Ringlet deletes segments at once (no .deleted rename); issue 21",
}

# Topic configs whose describe result deliberately differs: {key: reason}.
KNOWN_TOPIC_CONFIG_DIFFERENCES = {
    "min.insync.replicas": "a fresh KRaft Kafka 4.x stores min.insync.replicas as a cluster-wide "
                           "dynamic default when it formats storage (source DYNAMIC_DEFAULT_BROKER_CONFIG); "
                           "Ringlet reports the same value as DEFAULT_CONFIG since nobody set it",
}

# ApiVersions ranges in which Ringlet deliberately differs: {api_key: reason}.
KNOWN_API_VERSION_DIFFERENCES = {
    78: "ShareFetch v2 (Kafka 4.2: RENEW acknowledgements, acquire modes); Kafka 4.1.1 has v1",
    79: "ShareAcknowledge v2 (Kafka 4.2: RENEW acknowledgements); Kafka 4.1.1 has v1",
}


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


def both(brokers, scenario):
    """Runs scenario(bootstrap) on each broker; returns (ringlet_result, kafka_result)."""
    return scenario(brokers["ringlet"]), scenario(brokers["kafka"])


def same(brokers, scenario):
    r, k = both(brokers, scenario)
    assert r == k, f"ringlet saw {r!r}, kafka saw {k!r}"
    return r


def code_of(f, timeout=30):
    try:
        f.result(timeout)
        return "ok"
    except KafkaException as e:
        return e.args[0].name()


def err_name(e):
    return e.args[0].name()


def commit_retrying(consumer, offsets):
    """A group's first commit may meet a coordinator still loading (Kafka creates
    __consumer_offsets on first use): retried as an application would."""
    deadline = time.time() + 30
    while True:
        try:
            return consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            if not e.args[0].retriable() and e.args[0].name() not in ("NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE",
                                                                    "COORDINATOR_LOAD_IN_PROGRESS"):
                raise
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def create(admin, topics):
    out = {}
    for name, f in admin.create_topics(topics, request_timeout=30).items():
        try:
            f.result(30)
            out[name] = "ok"
        except KafkaException as e:
            out[name] = err_name(e)
    return out


def test_create_topic_errors(brokers):
    def scenario(bootstrap):
        a = AdminClient({"bootstrap.servers": bootstrap})
        good = unique("dup")
        create(a, [NewTopic(good, 1, 1)])
        cases = {
            "exists": NewTopic(good, 1, 1),
            "slash": NewTopic("bad/name", 1, 1),
            "dot": NewTopic(".", 1, 1),
            "dotdot": NewTopic("..", 1, 1),
            "too-long": NewTopic("x" * 250, 1, 1),
            "zero-partitions": NewTopic(unique("zero"), 0, 1),
            "rf-too-big": NewTopic(unique("rf"), 1, 3),
            "unknown-config": NewTopic(unique("cfg"), 1, 1, config={"no.such.config": "1"}),
            "bad-config-value": NewTopic(unique("val"), 1, 1, config={"retention.ms": "soon"}),
            "bad-cleanup-policy": NewTopic(unique("pol"), 1, 1, config={"cleanup.policy": "shred"}),
        }
        results = {}
        for label, t in cases.items():
            results[label] = create(a, [t])[t.topic]
        return results
    same(brokers, scenario)


def test_delete_and_describe_unknown_topic(brokers):
    def scenario(bootstrap):
        a = AdminClient({"bootstrap.servers": bootstrap})
        missing = unique("missing")
        out = {"delete": code_of(a.delete_topics([missing], request_timeout=30)[missing])}
        res = ConfigResource(ConfigResource.Type.TOPIC, missing)
        out["describe-configs"] = code_of(a.describe_configs([res])[res])
        # The admin client's Metadata may auto-create (both brokers allow it): Kafka answers the
        # first request before the topic has a leader, Ringlet after; compare where it settles.
        a.list_topics(topic=missing, timeout=30)
        deadline, parts = time.time() + 15, None
        while time.time() < deadline:
            t = a.list_topics(topic=missing, timeout=30).topics.get(missing)
            parts = len(t.partitions) if t is not None and t.error is None else None
            if parts:
                break
            time.sleep(0.2)
        out["metadata-settles-with-partitions"] = parts
        return out
    same(brokers, scenario)


def test_metadata_invalid_topic_name(brokers):
    def scenario(bootstrap):
        a = AdminClient({"bootstrap.servers": bootstrap})
        md = a.list_topics(topic="bad/name", timeout=30)
        t = md.topics.get("bad/name")
        return t.error.name() if t is not None and t.error is not None else "ok"
    same(brokers, scenario)


def test_metadata_lists_the_offsets_topic_after_a_group_commit(brokers):
    def scenario(bootstrap):
        topic = unique("md")
        p = Producer({"bootstrap.servers": bootstrap})
        p.produce(topic, b"x")
        p.flush(30)
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("md-g")})
        commit_retrying(c, [TopicPartition(topic, 0, 1)])
        c.close()
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30)
        return {"offsets-topic-listed": "__consumer_offsets" in md.topics,
                "offsets-partitions": len(md.topics["__consumer_offsets"].partitions),
                "brokers": len(md.brokers),
                "topic-partitions": len(md.topics[topic].partitions)}
    same(brokers, scenario)


def test_oversized_record_is_refused(brokers):
    def scenario(bootstrap):
        topic = unique("big")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        errors = []
        p = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 4_000_000,
                      "compression.type": "none", "linger.ms": 0, "retries": 0,
                      "enable.idempotence": False})
        p.produce(topic, b"x" * 1_100_000, on_delivery=lambda e, m: errors.append(e.name() if e else "ok"))
        p.produce(topic, b"small", on_delivery=lambda e, m: errors.append(e.name() if e else "ok"))
        p.flush(30)
        return errors
    same(brokers, scenario)


def test_fetch_out_of_range_offset(brokers):
    def scenario(bootstrap):
        topic = unique("oor")
        p = Producer({"bootstrap.servers": bootstrap})
        for i in range(3):
            p.produce(topic, str(i).encode())
        p.flush(30)
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("oor-g"),
                      "auto.offset.reset": "error", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 0, 100)])
        seen = None
        deadline = time.time() + 30
        while seen is None and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error():
                seen = m.error().name()
        c.close()
        return seen
    same(brokers, scenario)


def test_list_offsets_by_timestamp(brokers):
    def scenario(bootstrap):
        topic = unique("ts")
        base = int(time.time() * 1000) - 100_000
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
        for i in range(10):
            p.produce(topic, str(i).encode(), partition=0, timestamp=base + i * 1000)
        p.flush(30)
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("ts-g")})
        probes = [0, base - 1, base, base + 1, base + 4500, base + 9000, base + 9001, base + 10**9, -1, -2]
        out = []
        for ts in probes:
            r = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=30)[0]
            out.append((ts - base if ts > 0 else ts, r.offset, r.error.name() if r.error else None))
        c.close()
        return out
    same(brokers, scenario)


def test_offset_commit_and_fetch_edge_cases(brokers):
    def scenario(bootstrap):
        topic = unique("oc")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
        group = unique("oc-g")
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        out = {}
        # Nothing committed yet: the offset is -1001 (OFFSET_INVALID).
        out["uncommitted"] = [t.offset for t in c.committed([TopicPartition(topic, 0)], timeout=30)]
        committed = commit_retrying(c, [TopicPartition(topic, 0, 5, metadata="m5")])
        out["commit"] = [(t.offset, t.error.name() if t.error else None) for t in committed]
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=30)
        out["fetched"] = [(t.partition, t.offset, t.metadata) for t in got]
        try:
            r = c.commit(offsets=[TopicPartition(topic, 0, 6, metadata="m" * 5000)], asynchronous=False)
            out["metadata-too-large"] = [t.error.name() if t.error else None for t in r]
        except KafkaException as e:
            out["metadata-too-large"] = err_name(e)
        try:
            r = c.commit(offsets=[TopicPartition(topic, 7, 1)], asynchronous=False)
            out["unknown-partition"] = [t.error.name() if t.error else None for t in r]
        except KafkaException as e:
            out["unknown-partition"] = err_name(e)
        c.close()
        return out
    same(brokers, scenario)


def test_alter_configs_errors(brokers):
    def scenario(bootstrap):
        a = AdminClient({"bootstrap.servers": bootstrap})
        topic = unique("alter")
        a.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        res = lambda *entries: ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=list(entries))
        out = {}
        for label, entry in {
            "unknown-key": ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET),
            "bad-value": ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
            "good": ConfigEntry("retention.ms", "1000000", incremental_operation=AlterConfigOpType.SET),
        }.items():
            r = res(entry)
            out[label] = code_of(a.incremental_alter_configs([r])[r])
        missing = ConfigResource(ConfigResource.Type.TOPIC, unique("nope"), incremental_configs=[
            ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
        out["unknown-topic"] = code_of(a.incremental_alter_configs([missing])[missing])
        return out
    same(brokers, scenario)


def describe_topic_configs(bootstrap, topic):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "3600000"})])[topic].result(30)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = a.describe_configs([res])[res].result(30)
    return {k: (e.value, e.source, e.is_read_only, e.is_sensitive) for k, e in entries.items()}


def test_describe_topic_configs_defaults_and_sources(brokers):
    r = describe_topic_configs(brokers["ringlet"], unique("dc"))
    k = describe_topic_configs(brokers["kafka"], unique("dc"))
    missing = sorted(set(k) - set(r) - set(KNOWN_MISSING_TOPIC_CONFIGS))
    extra = sorted(set(r) - set(k))
    differ = {key: (r[key], k[key]) for key in sorted(set(r) & set(k))
              if r[key] != k[key] and key not in KNOWN_TOPIC_CONFIG_DIFFERENCES}
    assert not missing, f"topic configs Kafka describes and Ringlet does not: {missing}"
    stale = sorted(set(KNOWN_MISSING_TOPIC_CONFIGS) & set(r))
    assert not stale, f"KNOWN_MISSING_TOPIC_CONFIGS lists configs Ringlet now describes: {stale}"
    assert not extra, f"topic configs Ringlet describes and Kafka does not: {extra}"
    assert not differ, f"(ringlet, kafka) value/source/read-only/sensitive differ: {differ}"


def api_versions(bootstrap):
    """ApiVersions v0, raw: {api_key: (min, max)}."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        body = struct.pack(">hhih", 18, 0, 7, -1)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = s.recv(size, socket.MSG_WAITALL)
    _corr, err, n = struct.unpack(">ihi", data[:10])
    assert err == 0
    out = {}
    for i in range(n):
        key, lo, hi = struct.unpack(">hhh", data[10 + 6 * i:16 + 6 * i])
        out[key] = (lo, hi)
    return out


def test_api_versions_are_kafkas(brokers):
    """Issue 21 item 8: every API Ringlet has is advertised with Kafka's own range (Produce from
    v0 included: Kafka 4 lists it and refuses v0-2 on use, KAFKA-18659), so a client that infers
    the broker's release from ApiVersions (kafka-python) sees the same Kafka."""
    r = api_versions(brokers["ringlet"])
    k = api_versions(brokers["kafka"])
    differ = {key: (r[key], k.get(key)) for key in r
              if r[key] != k.get(key) and key not in KNOWN_API_VERSION_DIFFERENCES}
    assert not differ, f"(ringlet, kafka) ranges differ: {differ}"


def consumer_heartbeat(bootstrap, group, member_id, epoch, topics=None, regex=None,
                       assignor=None, instance=None, timeout_ms=30000, owned=()):
    """ConsumerGroupHeartbeat v1 (KIP-848) written by hand; returns (error code, member epoch).
    Strings stay under 127 bytes, so every compact length is one varint byte."""
    def cstr(v):
        if v is None:
            return b"\x00"
        b = v.encode()
        return bytes([len(b) + 1]) + b

    names = b"\x00" if topics is None else bytes([len(topics) + 1]) + b"".join(map(cstr, topics))
    body = (cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(instance) + cstr(None)
            + struct.pack(">i", timeout_ms) + names + cstr(regex) + cstr(assignor)
            + (b"\x00" if owned is None else b"\x01") + b"\x00")
    frame = struct.pack(">hhih", 68, 1, 9, 4) + b"diff" + b"\x00" + body
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(n, socket.MSG_WAITALL)
    # correlation id (4), header tags (1), throttle (4), error code (2), message, member id, epoch
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


def test_consumer_group_heartbeat_errors(brokers):
    """KIP-848's error paths as a client meets them: the same codes (and, where it succeeds, the
    same first epochs) from both brokers. Group coordinators are found first (FindCoordinator
    through an admin describe), since a single broker is every group's coordinator."""
    import uuid

    def scenario(bootstrap):
        a = AdminClient({"bootstrap.servers": bootstrap})
        topic = unique("kip848-diff")
        a.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        group = unique("g-diff")
        mid, other = str(uuid.uuid4()).replace("-", "")[:22], str(uuid.uuid4()).replace("-", "")[:22]
        hb = lambda *args, **kw: consumer_heartbeat(bootstrap, group, *args, **kw)  # noqa: E731
        out = {"unknown group": hb(mid, 5)[0],
               "no subscription": hb(mid, 0)[0],
               "join with null owned partitions": hb(mid, 0, topics=[topic], owned=None)[0],
               "bad assignor": hb(mid, 0, topics=[topic], assignor="nope")[0],
               "bad regex": hb(mid, 0, regex="(")[0],
               "empty member id": hb("", 0, topics=[topic])[0]}
        code, epoch = hb(mid, 0, topics=[topic], instance="i1")
        out["join"] = (code, epoch > 0)
        out["fenced"] = hb(mid, epoch + 5)[0]
        out["unknown member"] = hb(other, 3)[0]
        out["instance in use"] = hb(other, 0, topics=[topic], instance="i1")[0]
        out["leave"] = hb(mid, -1)
        out["leave of an unknown member"] = hb(other, -1)[0]
        return out

    r, k = both(brokers, scenario)
    assert r == k, f"ringlet saw {r!r}, kafka saw {k!r}"

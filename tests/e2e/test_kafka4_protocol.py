"""What clients of a Kafka 4.x broker expect of it (issue 21 items 6, 8, 11, 12): the API versions
and features it advertises, topic ids (random, stable, usable by Fetch/Produce/Metadata), and
DescribeTopicPartitions with its cursor. Driven by kafka-python (admin client, and its protocol
classes over a plain socket where an error path needs a request no client would send) and
confluent-kafka.
"""
import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from conftest import Broker, unique


from kafka.protocol.admin import DescribeConfigsRequest, DescribeConfigsResponse  # noqa: E402

RESPONSES = {FetchRequest: FetchResponse, MetadataRequest: MetadataResponse,
             ProduceRequest: ProduceResponse, DescribeConfigsRequest: DescribeConfigsResponse}


def call(broker, req, version):
    """Sends one request at `version` and decodes the answer with kafka-python's classes."""
    req.with_header(correlation_id=7, client_id="ringlet-e2e")
    data = req.encode(version=version, header=True, framed=True)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(data)
        head = s.recv(4, socket.MSG_WAITALL)
        assert len(head) == 4, "broker closed the connection"
        n = struct.unpack(">i", head)[0]
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            assert chunk, "broker closed the connection mid-response"
            body += chunk
    return RESPONSES[type(req)].decode(body, version=version, header=True)


def create(bootstrap, name, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(15)


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap})
    for v in values:
        p.produce(topic, v)
    assert p.flush(15) == 0


def topic_id(admin, name):
    [t] = admin.describe_topics([name])
    assert t["error_code"] == 0, t
    return uuid.UUID(str(t["topic_id"]))


def test_kafka_python_sees_a_kafka_4_broker(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # kafka-python infers the broker's release from the highest request versions it lists.
        assert admin._client.check_version() >= (4, 1)
        versions = admin.api_versions()
        # Kafka 4.1's own ranges (see server/src/handlers/mod.rs); Produce is listed from v0 as
        # Kafka 4 lists it for librdkafka (KAFKA-18659).
        assert versions[ApiKey.Produce] == (0, 13)
        assert versions[ApiKey.Fetch] == (4, 18)
        assert versions[ApiKey.ListOffsets] == (1, 10)
        assert versions[ApiKey.Metadata] == (0, 13)
        assert versions[ApiKey.OffsetFetch] == (1, 9)
        assert versions[ApiKey.DescribeGroups] == (0, 6)
        assert versions[ApiKey.DescribeTopicPartitions] == (0, 0)
        features = admin.describe_features()
        assert features["metadata.version"]["finalized"] == (27, 27)
        # Transaction version 2 (KIP-890 part 2) is finalized as in a new Kafka 4 cluster.
        assert features["transaction.version"]["finalized"] == (2, 2)
        # KIP-848 consumer groups: group.version 1 finalized and their APIs listed, as in a new
        # Kafka 4 cluster; so are KIP-932 share groups (share.version 1, as in a new Kafka 4.2
        # cluster), ShareFetch and ShareAcknowledge at Kafka 4.2's v2 (RENEW).
        assert features["group.version"]["finalized"] == (1, 1)
        assert versions[ApiKey.ConsumerGroupHeartbeat] == (0, 1)
        assert versions[ApiKey.ConsumerGroupDescribe] == (0, 1)
        assert features["share.version"]["finalized"] == (1, 1)
        assert features["share.version"]["supported"] == (0, 1)
        assert versions[ApiKey.ShareFetch] == (1, 2)
        assert versions[ApiKey.ShareAcknowledge] == (1, 2)
        assert versions[ApiKey.ShareGroupHeartbeat] == (1, 1)
    finally:
        admin.close()


def test_topic_ids_are_random_stable_and_renewed(fresh_broker):
    b = fresh_broker()
    name = unique("ids")
    create(b.bootstrap, name)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    first = topic_id(admin, name)
    admin.close()
    assert first.version == 4, first
    # Another topic, another id.
    other = unique("ids-other")
    create(b.bootstrap, other)
    b.stop()
    again = Broker(data_dir=b.data_dir, port=b.port).start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=again.bootstrap)
        assert topic_id(admin, name) == first, "a topic's id must survive a restart"
        assert topic_id(admin, other) != first
        admin.delete_topics([name])
        time.sleep(0.5)
        admin.close()
        create(again.bootstrap, name)
        admin = KafkaAdminClient(bootstrap_servers=again.bootstrap)
        assert topic_id(admin, name) != first, "a topic created again gets a new id"
        admin.close()
    finally:
        again.stop()


def fetch_request(topic_uuid, offset=0):
    part = FetchRequest.FetchTopic.FetchPartition(
        partition=0, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
        partition_max_bytes=1 << 20)
    return FetchRequest(
        max_wait_ms=100, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0,
        session_epoch=-1, topics=[FetchRequest.FetchTopic(topic_id=topic_uuid, partitions=[part])],
        forgotten_topics_data=[], rack_id="")


def test_fetch_by_topic_id(broker):
    name = unique("fetch-id")
    create(broker.bootstrap, name)
    produce(broker.bootstrap, name, [b"one", b"two"])
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    tid = topic_id(admin, name)
    admin.close()
    for version in (13, 16, 18):
        resp = call(broker, fetch_request(tid), version)
        [t] = resp.responses
        assert t.topic_id == tid
        [p] = t.partitions
        assert p.error_code == 0 and p.high_watermark == 2, p
        assert b"one" in bytes(p.records) and b"two" in bytes(p.records)
    # An id no topic has: UNKNOWN_TOPIC_ID (100) for its partitions, at once.
    missing = uuid.uuid4()
    started = time.monotonic()
    resp = call(broker, fetch_request(missing), 13)
    [t] = resp.responses
    assert t.topic_id == missing
    assert t.partitions[0].error_code == 100
    assert time.monotonic() - started < 5


def test_produce_by_topic_id(broker):
    name = unique("produce-id")
    create(broker.bootstrap, name)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    tid = topic_id(admin, name)
    admin.close()
    # A record batch made by confluent-kafka, fetched back by name, then produced again by id.
    produce(broker.bootstrap, name, [b"by-id"])
    [t] = call(broker, fetch_request(tid), 13).responses
    batch = bytes(t.partitions[0].records)
    assert b"by-id" in batch

    def produce_request(target):
        data = ProduceRequest.TopicProduceData(
            topic_id=target,
            partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=batch)])
        return ProduceRequest(transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])

    [r] = call(broker, produce_request(tid), 13).responses
    assert r.topic_id == tid
    assert r.partition_responses[0].error_code == 0
    assert r.partition_responses[0].base_offset == 1
    [r] = call(broker, produce_request(uuid.uuid4()), 13).responses
    assert r.partition_responses[0].error_code == 100
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("g"),
                  "auto.offset.reset": "earliest"})
    c.subscribe([name])
    got = []
    deadline = time.time() + 20
    while len(got) < 2 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert got == [b"by-id", b"by-id"]


def test_metadata_by_topic_id(broker):
    name = unique("meta-id")
    create(broker.bootstrap, name, partitions=3)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    tid = topic_id(admin, name)
    admin.close()
    missing = uuid.uuid4()
    req = MetadataRequest(
        topics=[MetadataRequest.MetadataRequestTopic(topic_id=tid, name=None),
                MetadataRequest.MetadataRequestTopic(topic_id=missing, name=None)],
        allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    resp = call(broker, req, 12)
    by_id = {t.topic_id: t for t in resp.topics}
    assert by_id[tid].name == name and by_id[tid].error_code == 0
    assert len(by_id[tid].partitions) == 3
    assert by_id[missing].error_code == 100 and by_id[missing].name is None


def test_describe_topic_partitions_pages_with_a_cursor(fresh_broker):
    b = fresh_broker({"max.request.partition.size.limit": "3"})
    big, small = "dtp-a-" + unique("t"), "dtp-b-" + unique("t")
    create(b.bootstrap, big, partitions=5)
    create(b.bootstrap, small, partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        seen = []
        cursor = None
        pages = 0
        while True:
            # The client asks for up to 2000; the broker's limit (3) decides the page.
            page = admin.describe_topic_partitions([small, big], cursor=cursor)
            pages += 1
            for t in page["topics"]:
                assert t["error_code"] == 0, t
                assert uuid.UUID(str(t["topic_id"])).version == 4
                seen += [(t["name"], p["partition_index"]) for p in t["partitions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert pages < 10
        assert seen == [(big, i) for i in range(5)] + [(small, i) for i in range(2)]
        assert pages == 3
        # A topic that does not exist is answered by name with UNKNOWN_TOPIC_OR_PARTITION.
        page = admin.describe_topic_partitions([unique("dtp-missing")])
        assert [t["error_code"] for t in page["topics"]] == [3]
    finally:
        admin.close()


def test_group_apis_at_kafka_4_versions(broker):
    name = unique("grp4")
    group = unique("g4")
    create(broker.bootstrap, name)
    produce(broker.bootstrap, name, [b"x"])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([name])
    deadline = time.time() + 20
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            c.commit(m, asynchronous=False)
            break
    c.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = admin.describe_groups([group, unique("no-such-group")])
        assert described[group]["error"] is None
        missing = [v for k, v in described.items() if k != group][0]
        # DescribeGroups v6 (KIP-1043): a group that does not exist is GROUP_ID_NOT_FOUND.
        assert missing["group_state"] == "Dead"
        assert "GroupIdNotFound" in str(missing["error"])
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[group]["group_type"] == "classic"
        assert group not in {g["group_id"] for g in admin.list_groups(types_filter=["consumer"])}
        assert group in {g["group_id"] for g in admin.list_groups(types_filter=["classic"])}
        # OffsetFetch at v8+ (batched groups) answers the committed offset.
        offsets = admin.list_group_offsets(group)
        assert [o.offset for o in offsets[group].values()] == [1], offsets
    finally:
        admin.close()


def test_describe_configs_types_sources_synonyms_documentation(fresh_broker):
    from kafka.admin import ConfigResource, NewTopic
    b = fresh_broker({"log.retention.hours": "1", "sasl.jaas.config": "not-to-be-shown"})
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        admin.create_topics([NewTopic("described", 1, 1, topic_configs={"retention.bytes": "1000"})])
        got = admin.describe_configs([ConfigResource("TOPIC", "described")], include_synonyms=True,
                                     config_filter="all")["topic"]["described"]
        # An override: DYNAMIC_TOPIC_CONFIG, then the broker key it would fall back to.
        rb = got["retention.bytes"]
        assert (rb["value"], rb["config_source"], rb["config_type"]) == ("1000", "DYNAMIC_TOPIC_CONFIG", "LONG")
        assert [(s["name"], s["source"]) for s in rb["synonyms"]] == [
            ("retention.bytes", "DYNAMIC_TOPIC_CONFIG"), ("log.retention.bytes", "DEFAULT_CONFIG")]
        # A value that comes from server.properties / --override: STATIC_BROKER_CONFIG.
        rm = got["retention.ms"]
        assert (rm["value"], rm["config_source"]) == ("3600000", "STATIC_BROKER_CONFIG")
        assert rm["synonyms"][0] == {"name": "log.retention.hours", "value": "1",
                                     "source": "STATIC_BROKER_CONFIG"}
        types = {k: v["config_type"] for k, v in got.items()}
        assert types["segment.bytes"] == "INT"
        assert types["preallocate"] == "BOOLEAN"
        assert types["cleanup.policy"] == "LIST"
        assert types["message.timestamp.type"] == "STRING"
        assert "UNKNOWN" not in types.values()
        assert got["segment.ms"]["config_source"] == "DEFAULT_CONFIG"
        broker_cfg = admin.describe_configs([ConfigResource("BROKER", "0")], include_synonyms=True,
                                            config_filter="all")["broker"]["0"]
        assert broker_cfg["log.retention.hours"]["config_source"] == "STATIC_BROKER_CONFIG"
        assert broker_cfg["log.retention.hours"]["config_type"] == "INT"
        assert broker_cfg["num.partitions"]["config_source"] == "DEFAULT_CONFIG"
        assert broker_cfg["auto.create.topics.enable"]["config_type"] == "BOOLEAN"
        assert broker_cfg["offsets.topic.replication.factor"]["config_type"] == "SHORT"
        jaas = broker_cfg["sasl.jaas.config"]
        assert (jaas["config_type"], jaas["is_sensitive"], jaas["value"]) == ("PASSWORD", True, None)
        assert all(s["value"] is None for s in jaas["synonyms"])
        assert "UNKNOWN" not in {v["config_type"] for v in broker_cfg.values()}
    finally:
        admin.close()


def stored_codecs(broker, topic):
    """The codec of every batch in partition 0, as a fetch returns them (attributes bits 0-2)."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    tid = topic_id(admin, topic)
    admin.close()
    [t] = call(broker, fetch_request(tid), 13).responses
    data = bytes(t.partitions[0].records)
    codecs = []
    while data:
        length = struct.unpack(">i", data[8:12])[0]
        codecs.append(struct.unpack(">h", data[21:23])[0] & 7)
        data = data[12 + length:]
    return codecs


@pytest.mark.parametrize("topic_codec,code", [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4),
                                              ("uncompressed", 0)])
def test_topic_compression_type_recompresses(broker, topic_codec, code):
    """Issue 21 item 5: a topic's compression.type other than `producer` makes the broker store
    (and serve) every batch in that codec, whatever the producer used; the records survive."""
    name = unique(f"codec-{topic_codec}")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                  config={"compression.type": topic_codec})])[name].result(15)
    sent = []
    for producer_codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": broker.bootstrap, "compression.codec": producer_codec,
                      "linger.ms": 50, "enable.idempotence": True})
        for i in range(50):
            v = f"{producer_codec}-{i}-{'y' * (i % 40)}".encode()
            p.produce(name, key=str(i).encode(), value=v, headers=[("h", str(i).encode())])
            sent.append(v)
        assert p.flush(15) == 0
    assert set(stored_codecs(broker, name)) == {code}
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("g"),
                  "auto.offset.reset": "earliest"})
    c.subscribe([name])
    got = []
    deadline = time.time() + 30
    while len(got) < len(sent) and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            assert m.headers() == [("h", m.key())]
            got.append(m.value())
    c.close()
    assert got == sent


def test_compression_type_producer_keeps_the_producers_codec(broker):
    name = unique("codec-producer")
    create(broker.bootstrap, name)
    for codec, code in [("lz4", 3), ("zstd", 4)]:
        p = Producer({"bootstrap.servers": broker.bootstrap, "compression.codec": codec})
        p.produce(name, b"kept " * 20)
        assert p.flush(15) == 0
    assert stored_codecs(broker, name) == [3, 4]


def test_list_config_resources(broker):
    """ListConfigResources v1 (KIP-1142, Kafka 4.1): the brokers and topics DescribeConfigs can
    describe; a type Ringlet has no configs for lists nothing."""
    name = unique("lcr")
    create(broker.bootstrap, name)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        everything = admin.list_config_resources()
        assert everything["broker"] == ["0"]
        assert name in everything["topic"]
        assert admin.list_config_resources(resource_types=["TOPIC"]).keys() == {"topic"}
        assert admin.list_config_resources(resource_types=["GROUP"]) == {}
    finally:
        admin.close()


@pytest.mark.parametrize("name", ["bad/name", "..", "x" * 250, "bad name!"])
def test_invalid_topic_names_are_refused_with_the_reason(broker, name):
    """Issue 21 item 7: a name no topic can have is INVALID_TOPIC_EXCEPTION on Metadata
    auto-creation (librdkafka fails the delivery at once) and on Produce, with the reason. On
    Produce, Kafka 4.1.1 answers UNKNOWN_TOPIC_OR_PARTITION, which clients retry until their
    delivery timeout: a deliberate difference (docs/compatibility.md)."""
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 20000})
    p.produce(name, b"x", on_delivery=lambda e, m: errors.append(e))
    started = time.monotonic()
    p.flush(25)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_EXCEPTION], errors
    assert time.monotonic() - started < 10
    from kafka.record.memory_records import MemoryRecordsBuilder
    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    b.append(timestamp=None, key=None, value=b"v", headers=[])
    b.close()
    data = ProduceRequest.TopicProduceData(
        name=name, partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(
            index=0, records=bytes(b.buffer()))])
    [r] = call(broker, ProduceRequest(transactional_id=None, acks=1, timeout_ms=5000,
                                      topic_data=[data]), 9).responses
    [part] = r.partition_responses
    assert part.error_code == 17
    assert part.error_message.startswith(f'Topic name "{name}" is illegal: ')


def test_compression_levels(broker):
    """compression.<codec>.level sets the broker's recompression level (a higher zstd level
    stores the same records smaller); out-of-range levels get Kafka 4.1.1's messages."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    sizes = {}
    values = [f'{{"id":{i},"user":"user-{i % 97}","pad":"{"abcdefgh" * (i % 13)}"}}'.encode()
              for i in range(2000)]
    for level in ["1", "19"]:
        name = unique(f"zstd-{level}")
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config={
            "compression.type": "zstd", "compression.zstd.level": level})])[name].result(15)
        p = Producer({"bootstrap.servers": broker.bootstrap, "compression.codec": "none",
                      "linger.ms": 200, "batch.size": 1 << 20})
        for v in values:
            p.produce(name, v)
        assert p.flush(15) == 0
        assert set(stored_codecs(broker, name)) == {4}
        k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        tid = topic_id(k, name)
        k.close()
        [t] = call(broker, fetch_request(tid), 13).responses
        sizes[level] = len(bytes(t.partitions[0].records))
    assert sizes["19"] < sizes["1"], sizes
    for key, value, message in [
        ("compression.gzip.level", "10", "Value must be between 1 and 9 or equal to -1"),
        ("compression.lz4.level", "18", "Value must be no more than 17"),
        ("compression.zstd.level", "-131073", "Value must be at least -131072"),
    ]:
        name = unique("bad-level")
        try:
            admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                          config={key: value})])[name].result(15)
            raise AssertionError(f"{key}={value} accepted")
        except Exception as e:  # noqa: BLE001
            err = e.args[0]
            assert err.code() == KafkaError.INVALID_CONFIG
            assert err.str() == f"Invalid value {value} for configuration {key}: {message}"


def test_describe_configs_documentation_when_asked(broker):
    """DescribeConfigs v3+ include_documentation: each entry carries its documentation."""
    name = unique("doc")
    create(broker.bootstrap, name)

    def described(include):
        res = DescribeConfigsRequest.DescribeConfigsResource(
            resource_type=2, resource_name=name, configuration_keys=["retention.ms", "preallocate"])
        req = DescribeConfigsRequest(resources=[res], include_synonyms=False,
                                     include_documentation=include)
        [r] = call(broker, req, 4).results
        return {c.name: c for c in r.configs}

    with_docs = described(True)
    assert set(with_docs) == {"retention.ms", "preallocate"}
    assert "older than this" in with_docs["retention.ms"].documentation
    assert with_docs["preallocate"].config_type == 1  # BOOLEAN
    assert all(c.documentation is None for c in described(False).values())

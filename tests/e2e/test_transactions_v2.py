"""Transaction version 2 (KIP-890 part 2) and partition verification (part 1), request by request
with kafka-python's protocol classes, the way Kafka 4's Java client uses them: no
AddPartitionsToTxn (Produce v12 adds the partition), no AddOffsetsToTxn (TxnOffsetCommit v5 adds
the offsets partition), and every EndTxn (v5) bumps the epoch. A version 1 batch (Produce v11)
for a partition its transaction never added is refused, so it cannot open a transaction nobody
ends. The Java client's own transactional tests (compat/java TransactionsTest, Streams
exactly_once_v2) run on version 2 too; this file pins the wire behaviour."""
import socket
import struct
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.admin import DescribeTransactionsRequest, DescribeTransactionsResponse
from kafka.protocol.consumer import OffsetFetchRequest, OffsetFetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.protocol.producer.transaction import (
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse)
from kafka.record.default_records import DefaultRecordBatchBuilder

from conftest import unique

RESPONSES = {
    InitProducerIdRequest: InitProducerIdResponse, EndTxnRequest: EndTxnResponse,
    ProduceRequest: ProduceResponse, TxnOffsetCommitRequest: TxnOffsetCommitResponse,
    DescribeTransactionsRequest: DescribeTransactionsResponse,
    OffsetFetchRequest: OffsetFetchResponse,
}
INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, PRODUCER_FENCED = 47, 48, 90


def call(broker, req, version):
    req.with_header(correlation_id=11, client_id="ringlet-e2e-tv2")
    data = req.encode(version=version, header=True, framed=True)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=15) as s:
        s.sendall(data)
        head = s.recv(4, socket.MSG_WAITALL)
        assert len(head) == 4, "broker closed the connection"
        body = s.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
    return RESPONSES[type(req)].decode(body, version=version, header=True)


def init(broker, txn_id):
    # The coordinator's topic is created on first use; answers wait until it can serve.
    deadline = time.time() + 20
    while True:
        r = call(broker, InitProducerIdRequest(transactional_id=txn_id,
                                               transaction_timeout_ms=60000,
                                               producer_id=-1, producer_epoch=-1), 5)
        if r.error_code == 0 or time.time() > deadline:
            assert r.error_code == 0, r
            return r.producer_id, r.producer_epoch
        time.sleep(0.2)


def batch(pid, epoch, seq, value):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True,
                                  producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                  batch_size=1 << 20)
    b.append(0, timestamp=None, key=None, value=value, headers=[])
    return bytes(b.build())


def produce(broker, txn_id, topic, pid, epoch, seq, value, version):
    data = ProduceRequest.TopicProduceData(name=topic, partition_data=[
        ProduceRequest.TopicProduceData.PartitionProduceData(
            index=0, records=batch(pid, epoch, seq, value))])
    r = call(broker, ProduceRequest(transactional_id=txn_id, acks=-1, timeout_ms=10000,
                                    topic_data=[data]), version)
    return r.responses[0].partition_responses[0].error_code


def end(broker, txn_id, pid, epoch, commit):
    r = call(broker, EndTxnRequest(transactional_id=txn_id, producer_id=pid,
                                   producer_epoch=epoch, committed=commit), 5)
    return r.error_code, r.producer_id, r.producer_epoch


def describe(broker, txn_id):
    r = call(broker, DescribeTransactionsRequest(transactional_ids=[txn_id]), 0)
    [s] = r.transaction_states
    parts = sorted((t.topic, p) for t in s.topics for p in t.partitions)
    return s.transaction_state, s.producer_epoch, parts


def read_committed(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("rc"),
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + 5
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append(m.value())
    c.close()
    return out


def create(broker, name):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(10)


def test_version_2_adds_partitions_on_produce_and_bumps_the_epoch(broker):
    topic, txn_id = unique("tv2"), unique("tv2-id")
    create(broker, topic)
    pid, e = init(broker, txn_id)

    # Produce v12 with no AddPartitionsToTxn: the leader adds the partition to the transaction.
    assert produce(broker, txn_id, topic, pid, e, 0, b"one", 12) == 0
    assert describe(broker, txn_id) == ("Ongoing", e, [(topic, 0)])
    assert end(broker, txn_id, pid, e, True) == (0, pid, e + 1)
    assert describe(broker, txn_id) == ("CompleteCommit", e + 1, [])
    # A retried EndTxn (the answer was lost) carries the epoch before the bump: it succeeds
    # with the same answer; the opposite decision, or the old epoch for a new one, does not.
    assert end(broker, txn_id, pid, e, True) == (0, pid, e + 1)
    assert end(broker, txn_id, pid, e, False)[0] == INVALID_TXN_STATE
    # The marker carried the bumped epoch: a late batch of the finished transaction is fenced.
    assert produce(broker, txn_id, topic, pid, e, 1, b"late", 12) == INVALID_PRODUCER_EPOCH

    # The next transaction runs on the new epoch from sequence 0, and is aborted.
    assert produce(broker, txn_id, topic, pid, e + 1, 0, b"aborted", 12) == 0
    assert end(broker, txn_id, pid, e + 1, False) == (0, pid, e + 2)
    # An abort of a transaction no partition joined still ends it (and bumps the epoch).
    assert end(broker, txn_id, pid, e + 2, False) == (0, pid, e + 3)
    assert end(broker, txn_id, pid, e + 3, True)[0] == INVALID_TXN_STATE
    assert read_committed(broker, topic) == [b"one"]


def test_version_2_txn_offset_commit_adds_the_offsets_partition(broker):
    topic, txn_id, group = unique("tv2-off"), unique("tv2-off-id"), unique("tv2-g")
    create(broker, topic)
    pid, e = init(broker, txn_id)
    assert produce(broker, txn_id, topic, pid, e, 0, b"x", 12) == 0
    part = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
        partition_index=0, committed_offset=42, committed_leader_epoch=-1,
        committed_metadata="")
    req = TxnOffsetCommitRequest(
        transactional_id=txn_id, group_id=group, producer_id=pid, producer_epoch=e,
        generation_id=-1, member_id="", group_instance_id=None,
        topics=[TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(name=topic,
                                                                   partitions=[part])])
    r = call(broker, req, 5)
    assert [p.error_code for t in r.topics for p in t.partitions] == [0]
    state, _, parts = describe(broker, txn_id)
    assert state == "Ongoing"
    assert [t for t, _ in parts] == sorted([topic, "__consumer_offsets"])
    assert end(broker, txn_id, pid, e, True)[0] == 0
    fetch = OffsetFetchRequest(group_id=group, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])])
    r = call(broker, fetch, 5)
    assert [p.committed_offset for t in r.topics for p in t.partitions] == [42]


def test_version_1_batch_for_a_partition_never_added_is_refused(broker):
    """KIP-890 part 1: without AddPartitionsToTxn first, a v11 (version 1) transactional batch
    would open a transaction the coordinator does not know and nobody would end; it is refused
    and the partition's last stable offset does not move."""
    topic, txn_id = unique("tv1-verify"), unique("tv1-verify-id")
    create(broker, topic)
    pid, e = init(broker, txn_id)
    assert produce(broker, txn_id, topic, pid, e, 0, b"hanging", 11) == INVALID_TXN_STATE
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("wm"),
                  "isolation.level": "read_committed"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                       cached=False) == (0, 0)
    finally:
        c.close()

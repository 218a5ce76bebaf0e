"""Produce requests pipelined on one connection: the broker queues a connection's next produce
request while the previous one waits for its group commit, so one producer's in-flight requests
share fdatasyncs. What must hold: appends land in request order, responses come back in request
order (a non-produce request in the middle included), and the grouping really happens."""
import socket
import struct
import time
import urllib.request

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def batch(value):
    """A valid one-record v2 batch (CRC-32C computed) whose value is `value`."""
    body = bytes([0]) + varint(0) + varint(0) + varint(-1) + varint(len(value)) + value + varint(0)
    record = varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, 0, 0, 0, -1, -1, -1, 1) + record
    header = struct.pack(">qiib", 0, len(after_crc) + 9, 0, 2)
    return header + struct.pack(">I", crc32c(after_crc)) + after_crc


def produce_frame(topic, records, corr):
    t = topic.encode()
    body = struct.pack(">hhih", 0, 3, corr, 4) + b"pipe"
    body += struct.pack(">hhi", -1, -1, 10000)                      # no txn id, acks=all
    body += struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iii", 1, 0, len(records)) + records
    return struct.pack(">i", len(body)) + body


def metadata_frame(corr):
    body = struct.pack(">hhih", 3, 0, corr, 4) + b"pipe" + struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def read_response(sock):
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    return sock.recv(size, socket.MSG_WAITALL)


def produce_result(resp, topic):
    pos = 4 + 4 + 2 + len(topic) + 4
    _index, error, base_offset = struct.unpack(">ihq", resp[pos:pos + 14])
    return error, base_offset


def metric(mport, prefix):
    """The sum of the samples of every series whose line starts with `prefix`."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(prefix))


def fdatasyncs(mport):
    return metric(mport, "ringlet_log_flush_duration_seconds_count")


def read_values(broker, topic, n):
    """The first `n` values of partition 0 of `topic`, read with confluent-kafka."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "pipe-check",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    values = []
    while len(values) < n:
        m = c.poll(10)
        assert m is not None, f"only {len(values)} of {n} records came back"
        assert m.error() is None, m.error()
        values.append(m.value())
    c.close()
    return values


def test_pipelined_produce_keeps_order_and_shares_fdatasyncs(fresh_broker):
    mport = free_port()
    b = fresh_broker({"log.flush.interval.messages": 1, "ringlet.metrics.listener": f"127.0.0.1:{mport}"})
    topic = "pipelined"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=10)
    syncs_before = fdatasyncs(mport)

    n = 60
    s = socket.create_connection(("127.0.0.1", b.port))
    s.settimeout(20)
    frames = b""
    for i in range(n):
        frames += produce_frame(topic, batch(b"v%03d" % i), corr=i)
        if i == n // 2:
            frames += metadata_frame(corr=10_000)
    s.sendall(frames)  # every request at once: none waits for the one before

    corrs, offsets = [], []
    for _ in range(n + 1):
        resp = read_response(s)
        corr = struct.unpack(">i", resp[:4])[0]
        corrs.append(corr)
        if corr != 10_000:
            error, base = produce_result(resp, topic)
            assert error == 0, (corr, error)
            offsets.append(base)
    expected = list(range(n // 2 + 1)) + [10_000] + list(range(n // 2 + 1, n))
    assert corrs == expected, "responses must come back in request order"
    assert offsets == list(range(n)), "appends must land in request order"
    s.close()

    # One fdatasync per request would be n; queued requests share group commits.
    syncs = fdatasyncs(mport) - syncs_before
    assert 1 <= syncs < n * 2 // 3, f"{syncs} fdatasyncs for {n} pipelined requests"

    values = read_values(b, topic, n)
    assert values == [b"v%03d" % i for i in range(n)]


def test_client_leaving_mid_pipeline_leaves_a_prefix_and_a_healthy_broker(fresh_broker):
    """A producer that sends many requests and disconnects at once: the broker appends some
    prefix of them, in order, and keeps serving."""
    mport = free_port()
    b = fresh_broker({"log.flush.interval.messages": 1, "ringlet.metrics.listener": f"127.0.0.1:{mport}"})
    topic = "pipelined-gone"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=10)
    before = metric(mport, "ringlet_connections ")  # the admin client's
    n = 40
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(b"".join(produce_frame(topic, batch(b"g%03d" % i), corr=i) for i in range(n)))
    s.close()

    # Still serving: a fresh connection's produce is answered and lands after the prefix.
    s = socket.create_connection(("127.0.0.1", b.port))
    s.settimeout(20)
    s.sendall(produce_frame(topic, batch(b"after"), corr=99))
    error, base = produce_result(read_response(s), topic)
    assert error == 0
    s.close()

    # A connection is counted until its writer has awaited every append it queued: once both
    # raw connections are gone, the departed producer's appends have all landed (or failed).
    deadline = time.time() + 20
    while metric(mport, "ringlet_connections ") > before:
        assert time.time() < deadline, "connections did not close"
        time.sleep(0.05)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "end", "enable.auto.commit": False})
    c.list_topics(topic, timeout=10)
    end = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    c.close()
    values = read_values(b, topic, end)
    assert values.count(b"after") == 1 and values[base] == b"after"
    rest = [v for v in values if v != b"after"]
    assert rest == [b"g%03d" % i for i in range(len(rest))], "the appended requests must be a prefix, in order"
    assert b.alive()

"""Garbage and oversized frames close only the offending connection."""
import socket
import struct

from confluent_kafka.admin import AdminClient


def healthy(broker):
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return 0 in md.brokers


def closed_by_peer(s):
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_garbage_and_oversized_frames(broker):
    # A frame larger than socket.request.max.bytes (default 100 MiB).
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.sendall(struct.pack(">i", 200 * 1024 * 1024) + b"x" * 100)
    assert closed_by_peer(s)
    # A negative length.
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.sendall(struct.pack(">i", -5))
    assert closed_by_peer(s)
    # An unknown API key.
    s = socket.create_connection(("127.0.0.1", broker.port))
    body = struct.pack(">hhih", 999, 0, 1, -1)
    s.sendall(struct.pack(">i", len(body)) + body)
    assert closed_by_peer(s)
    # Random garbage inside a well-sized frame (a Produce v9 header, then noise).
    s = socket.create_connection(("127.0.0.1", broker.port))
    body = struct.pack(">hhi", 0, 9, 7) + bytes(range(256)) * 4
    s.sendall(struct.pack(">i", len(body)) + body)
    assert closed_by_peer(s)
    # A too-short frame.
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.sendall(struct.pack(">i", 2) + b"ab")
    assert closed_by_peer(s)
    assert healthy(broker)
    assert broker.alive()


def test_api_versions_with_unsupported_version_gets_error_and_list(broker):
    s = socket.create_connection(("127.0.0.1", broker.port))
    body = struct.pack(">hhih", 18, 99, 42, -1)
    s.sendall(struct.pack(">i", len(body)) + body)
    s.settimeout(10)
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    resp = s.recv(size, socket.MSG_WAITALL)
    corr, err = struct.unpack(">ih", resp[:6])
    assert corr == 42 and err == 35  # UNSUPPORTED_VERSION
    assert healthy(broker)


def produce_v3(sock, topic, records, corr=9):
    """A hand-built Produce v3 request (acks=1) carrying `records` for partition 0; returns the
    partition's error code."""
    t = topic.encode()
    body = struct.pack(">hhih", 0, 3, corr, 4) + b"test"          # header v1 (client id "test")
    body += struct.pack(">hhi", -1, 1, 5000)                        # transactional id, acks, timeout
    body += struct.pack(">ih", 1, len(t)) + t                       # one topic
    body += struct.pack(">iii", 1, 0, len(records)) + records       # one partition
    sock.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    resp = sock.recv(size, socket.MSG_WAITALL)
    assert struct.unpack(">i", resp[:4])[0] == corr
    pos = 4 + 4  # correlation id, topic count
    name_len = struct.unpack(">h", resp[pos:pos + 2])[0]
    pos += 2 + name_len + 4  # name, partition count
    _index, error = struct.unpack(">ih", resp[pos:pos + 6])
    return error


def fake_batch(corrupt_crc):
    """A one-record v2 batch; its CRC field is deliberately wrong when `corrupt_crc`."""
    record = bytes([0x10, 0, 0, 0, 1, 0x08]) + b"valu" + bytes([0])  # len, attrs, ts, off, key -1, value, headers
    after_crc = struct.pack(">hiqqqhii", 0, 0, 0, 0, -1, -1, -1, 1) + record
    crc = 0xDEADBEEF if corrupt_crc else 0
    header = struct.pack(">qiibI", 0, len(after_crc) + 9, 0, 2, crc)
    return header + after_crc


def test_bad_crc_gets_corrupt_message(broker):
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("crc-check", 1, 1)])["crc-check"].result(timeout=10)

    s = socket.create_connection(("127.0.0.1", broker.port))
    s.settimeout(10)
    assert produce_v3(s, "crc-check", fake_batch(corrupt_crc=True)) == 2  # CORRUPT_MESSAGE
    # The connection stays usable, and a truncated batch is refused too.
    assert produce_v3(s, "crc-check", fake_batch(corrupt_crc=True)[:30], corr=10) == 2
    assert healthy(broker)


def test_unknown_topic_without_auto_create(fresh_broker):
    b = fresh_broker({"auto.create.topics.enable": "false"})
    s = socket.create_connection(("127.0.0.1", b.port))
    s.settimeout(10)
    assert produce_v3(s, "no-such-topic", fake_batch(corrupt_crc=True)) == 3  # UNKNOWN_TOPIC_OR_PARTITION
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert "no-such-topic" not in md.topics


def test_several_log_dirs_share_partitions(fresh_broker):
    import os
    import tempfile
    from confluent_kafka.admin import NewTopic

    d1 = tempfile.mkdtemp(prefix="ringlet-dir1-")
    d2 = tempfile.mkdtemp(prefix="ringlet-dir2-")
    b = fresh_broker({"log.dirs": f"{d1},{d2}"})
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("spread", 4, 1)])["spread"].result(timeout=10)
    in_d1 = [d for d in os.listdir(d1) if d.startswith("spread-")]
    in_d2 = [d for d in os.listdir(d2) if d.startswith("spread-")]
    assert len(in_d1) == 2 and len(in_d2) == 2, (in_d1, in_d2)


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

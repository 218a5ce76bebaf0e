"""Every connection and size limit enforced: max.connections, max.connections.per.ip (and its
overrides), connections.max.idle.ms (idle and slow-loris clients), fetch.max.bytes against a
request for 2 GiB, and bounded memory under 1,000 concurrent producer connections."""
import os
import socket
import struct
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import unique
from test_bad_input import closed_by_peer, healthy
from test_produce_consume import create


def api_versions(sock, corr=1):
    """ApiVersions v0 round trip; True when the broker answered."""
    body = struct.pack(">hhih", 18, 0, corr, -1)
    sock.sendall(struct.pack(">i", len(body)) + body)
    sock.settimeout(10)
    head = sock.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return False
    size = struct.unpack(">i", head)[0]
    resp = sock.recv(size, socket.MSG_WAITALL)
    return struct.unpack(">i", resp[:4])[0] == corr


def connect(b):
    return socket.create_connection(("127.0.0.1", b.port), timeout=10)


def admitted(b, n, seconds=10):
    """Opens `n` connections the broker serves. A refused one means an earlier connection (the
    harness's readiness probe, one just closed) is still counted: retry until it is released."""
    socks = []
    deadline = time.time() + seconds
    while len(socks) < n:
        s = connect(b)
        try:
            ok = api_versions(s)
        except OSError:
            ok = False
        if ok:
            socks.append(s)
            continue
        s.close()
        assert time.time() < deadline, f"only {len(socks)} of {n} connections admitted"
        time.sleep(0.05)
    return socks


def test_max_connections_per_ip_and_total(fresh_broker):
    b = fresh_broker({"max.connections.per.ip": 3})
    socks = admitted(b, 3)
    extra = connect(b)
    assert closed_by_peer(extra)
    socks.pop().close()
    # The freed slot is taken again (once the broker has seen the close).
    socks += admitted(b, 1)
    assert closed_by_peer(connect(b))
    assert "max.connections.per.ip reached" in b.read_log()

    # An override raises the limit for one address; max.connections bounds everyone.
    b2 = fresh_broker({"max.connections.per.ip": 1,
                       "max.connections.per.ip.overrides": "127.0.0.1:4",
                       "max.connections": 2})
    held = admitted(b2, 2)  # two from one IP: the override (4) lifts the per-IP limit of 1
    assert closed_by_peer(connect(b2))
    assert len(held) == 2
    assert "max.connections reached" in b2.read_log()


def test_idle_and_slow_loris_connections_are_closed(fresh_broker):
    b = fresh_broker({"connections.max.idle.ms": 600})
    idle = connect(b)
    assert api_versions(idle)
    t0 = time.time()
    assert closed_by_peer(idle)
    assert 0.5 <= time.time() - t0 < 5
    # A request trickled a byte at a time never completes and is cut off.
    slow = connect(b)
    body = struct.pack(">hhih", 18, 0, 7, -1)
    frame = struct.pack(">i", len(body)) + body
    t0 = time.time()
    cut = False
    for byte in frame[:-1]:
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            cut = True
            break
        time.sleep(0.2)
    assert cut or closed_by_peer(slow)
    assert time.time() - t0 < 5
    assert "connections.max.idle.ms passed" in b.read_log()
    # A consumer long-polling for longer than the idle limit is busy, not idle: it keeps its
    # connection and gets what is produced.
    topic = unique("idle")
    create(b, topic, 1)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("g"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 1500})
    c.assign([TopicPartition(topic, 0, 0)])
    p = Producer({"bootstrap.servers": b.bootstrap})
    got = []
    deadline = time.time() + 20
    sent = 0
    while len(got) < 5 and time.time() < deadline:
        if sent < 5:
            p.produce(topic, value=str(sent).encode())
            p.flush(10)
            sent += 1
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    assert len(got) == 5
    c.close()
    assert healthy(b)


def fetch_v4(sock, topic, max_bytes, partition_max_bytes, corr=5):
    """A hand-built Fetch v4 for partition 0 from offset 0; returns the records' size."""
    t = topic.encode()
    body = struct.pack(">hhih", 1, 4, corr, -1)                     # header, no client id
    body += struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)         # replica, wait, min, max, isolation
    body += struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iiqi", 1, 0, 0, partition_max_bytes)
    sock.sendall(struct.pack(">i", len(body)) + body)
    sock.settimeout(30)
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    resp = b""
    while len(resp) < size:
        chunk = sock.recv(size - len(resp))
        assert chunk
        resp += chunk
    pos = 4 + 4 + 4                                                  # corr, throttle, topics
    name_len = struct.unpack(">h", resp[pos:pos + 2])[0]
    pos += 2 + name_len + 4                                          # name, partitions
    _idx, err, _hw, _lso, aborted = struct.unpack(">ihqqi", resp[pos:pos + 26])
    assert err == 0
    pos += 26 + max(aborted, 0) * 16
    return struct.unpack(">i", resp[pos:pos + 4])[0]


def test_fetch_max_bytes_caps_huge_requests(fresh_broker):
    b = fresh_broker({"fetch.max.bytes": 1048576})
    topic = unique("cap")
    create(b, topic, 1)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.size": 65536})
    for _ in range(400):
        p.produce(topic, value=os.urandom(10_000), partition=0)
    assert p.flush(30) == 0
    s = connect(b)
    got = fetch_v4(s, topic, 2**31 - 1, 2**31 - 1)
    # About 4 MB were produced; one response carries at most fetch.max.bytes (the region may end
    # in a partial batch, which clients discard, as with Kafka).
    assert 0 < got <= 1048576, got
    # A request under the cap is honoured as asked.
    assert 0 < fetch_v4(s, topic, 100_000, 100_000) <= 100_000


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def valid_batch():
    """A one-record v2 batch stamped now, with its CRC-32C."""
    # length 10 (zigzag 0x14), attributes, timestamp delta, offset delta, key -1, value "valu",
    # no headers
    record = bytes([0x14, 0, 0, 0, 1, 0x08]) + b"valu" + bytes([0])
    now = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, 0, now, now, -1, -1, -1, 1) + record
    header = struct.pack(">qiib", 0, len(after_crc) + 9, 0, 2)
    return header + struct.pack(">I", crc32c(after_crc)) + after_crc


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_thousand_producer_connections_keep_memory_bounded(fresh_broker):
    b = fresh_broker()
    topic = unique("many")
    create(b, topic, 4)
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    from test_bad_input import produce_v3
    batch = valid_batch()
    before = rss_kb(b.proc.pid)
    socks = []
    for i in range(1000):
        s = connect(b)
        socks.append(s)
    # Every connection produces one batch.
    for i, s in enumerate(socks):
        assert produce_v3(s, topic, batch, corr=i + 1) == 0
    during = rss_kb(b.proc.pid)
    for s in socks:
        s.close()
    assert healthy(b)
    # 1,000 connections with a request each cost well under 1 MiB apiece.
    print(f"RSS before {before} KiB, with 1000 connections {during} KiB")
    assert during - before < 64 * 1024, (before, during)


def test_queued_max_requests_bounds_requests_in_flight(fresh_broker):
    from test_metrics import scrape, value
    from conftest import free_port
    port = free_port()
    b = fresh_broker({"queued.max.requests": 2, "ringlet.metrics.listener": f"127.0.0.1:{port}"})
    topic = unique("queued")
    create(b, topic, 2)
    errors, seen = [], []
    stop = threading.Event()

    def work(i):
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "acks": "all"})
        for j in range(200):
            p.produce(topic, value=f"{i}-{j}".encode(), on_delivery=lambda e, m: e and errors.append(e))
            if j % 20 == 0:
                p.flush(30)
        p.flush(30)

    def watch():
        while not stop.is_set():
            seen.append(value(scrape(port), "ringlet_requests_in_flight"))

    w = threading.Thread(target=watch)
    w.start()
    ts = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    w.join()
    assert errors == []
    assert seen and max(seen) <= 2, max(seen)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("q"),
                  "enable.auto.commit": False})
    ends = sum(c.get_watermark_offsets(TopicPartition(topic, p),
                                       timeout=10)[1] for p in range(2))
    c.close()
    assert ends == 12 * 200

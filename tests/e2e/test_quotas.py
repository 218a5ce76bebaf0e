"""Client quotas on one broker (issue 25 item 4), set with Kafka's own `kafka-configs`
(AlterClientQuotas / DescribeClientQuotas): a producer and a consumer over their byte rates are
slowed (throttle_time_ms in the responses, which librdkafka reports, and the connection muted),
other clients are not, the quotas survive a restart, show in the metrics, request_percentage
bounds a client's share of the broker's time, and connection_creation_rate closes connections
from an address over its rate. The three-broker
case is in test_cluster_admin.py."""
import os
import socket
import subprocess
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, unique

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "..", "compat", "bin", "kafka-configs.sh")
# Short windows so that a test's burst is measured over one second, not Kafka's ten.
WINDOWS = {"quota.window.num": 2, "quota.window.size.seconds": 1}


def configs(bootstrap, *args):
    r = subprocess.run([CONFIGS, "--bootstrap-server", bootstrap, *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, f"kafka-configs {args}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    return r.stdout


def produce(bootstrap, topic, client_id, count, size=1000):
    """Seconds to have `count` records acknowledged, and the throttle times librdkafka saw."""
    throttled = []
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
                  "batch.size": 10000,
                  "throttle_cb": lambda e: throttled.append(e.throttle_time)})
    start = time.monotonic()
    for _ in range(count):
        while True:
            try:
                p.produce(topic, value=b"x" * size, partition=0)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    return time.monotonic() - start, throttled


def consume(bootstrap, topic, client_id, count):
    throttled = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("quota"),
                  "client.id": client_id, "enable.auto.commit": False,
                  "throttle_cb": lambda e: throttled.append(e.throttle_time)})
    c.assign([TopicPartition(topic, 0, 0)])
    start, n = time.monotonic(), 0
    while n < count and time.monotonic() - start < 120:
        m = c.poll(1)
        if m is not None and not m.error():
            n += 1
    took = time.monotonic() - start
    c.close()
    assert n == count
    return took, throttled


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_byte_rate_quotas_throttle_the_named_client_only(fresh_broker):
    port = free_port()
    b = fresh_broker(dict(WINDOWS, **{"ringlet.metrics.listener": f"127.0.0.1:{port}"}))
    topic = unique("quota")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    configs(b.bootstrap, "--alter", "--entity-type", "clients", "--entity-name", "slow-app",
            "--add-config", "producer_byte_rate=100000,consumer_byte_rate=100000")
    out = configs(b.bootstrap, "--describe", "--entity-type", "clients", "--entity-name", "slow-app")
    assert "consumer_byte_rate=100000.0, producer_byte_rate=100000.0" in out, out
    # 600 kB at 100 kB/s: some 5 s whatever the machine; throttled along the way.
    took, throttled = produce(b.bootstrap, topic, "slow-app", 600)
    assert took > 3, f"600 kB in {took:.1f} s under a 100 kB/s quota"
    assert throttled and max(throttled) > 0, "no throttle_time_ms reported"
    # Another client id has no quota: never throttled.
    _, other = produce(b.bootstrap, topic, "fast-app", 600)
    assert not [t for t in other if t > 0], other
    took, throttled = consume(b.bootstrap, topic, "slow-app", 600)
    assert took > 3, f"600 kB read in {took:.1f} s under a 100 kB/s quota"
    assert throttled and max(throttled) > 0
    metrics = scrape(port)
    line = [m for m in metrics.splitlines() if m.startswith("ringlet_quota_throttle_time_ms_total")
            and 'quota="producer_byte_rate"' in m and 'entity="clients/slow-app"' in m]
    assert line and float(line[0].rsplit(" ", 1)[1]) > 0, metrics[-2000:]
    # Durable: the quota is still there after a restart, and removing it lifts it.
    b.stop()
    b.start()
    out = configs(b.bootstrap, "--describe", "--entity-type", "clients", "--entity-name", "slow-app")
    assert "producer_byte_rate=100000.0" in out, out
    configs(b.bootstrap, "--alter", "--entity-type", "clients", "--entity-name", "slow-app",
            "--delete-config", "producer_byte_rate,consumer_byte_rate")
    out = configs(b.bootstrap, "--describe", "--entity-type", "clients", "--entity-name", "slow-app")
    assert "producer_byte_rate" not in out, out
    _, throttled = produce(b.bootstrap, topic, "slow-app", 600)
    assert not [t for t in throttled if t > 0], throttled


def test_user_and_default_quotas_and_their_errors(fresh_broker):
    b = fresh_broker(WINDOWS)
    configs(b.bootstrap, "--alter", "--entity-type", "users", "--entity-default",
            "--add-config", "producer_byte_rate=5000")
    configs(b.bootstrap, "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--entity-type", "clients", "--entity-default", "--add-config", "consumer_byte_rate=7000")
    out = configs(b.bootstrap, "--describe", "--entity-type", "users", "--entity-default")
    assert "producer_byte_rate=5000.0" in out, out
    out = configs(b.bootstrap, "--describe", "--entity-type", "users", "--entity-name", "alice",
                  "--entity-type", "clients", "--entity-default")
    assert "consumer_byte_rate=7000.0" in out, out
    # Kafka's refusals: a fractional byte rate; a byte rate on an IP entity.
    r = subprocess.run([CONFIGS, "--bootstrap-server", b.bootstrap, "--alter", "--entity-type",
                        "clients", "--entity-name", "x", "--add-config", "producer_byte_rate=10.5"],
                       capture_output=True, text=True, timeout=120)
    assert "Integer value expected for configuration key producer_byte_rate" in r.stdout + r.stderr
    # The unauthenticated user is ANONYMOUS: the user default applies to it.
    topic = unique("quota-user")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    took, throttled = produce(b.bootstrap, topic, "any", 30)
    assert throttled and max(throttled) > 0, "the <default> user quota was not applied"


def metadata_requests(port, client_id, seconds):
    """How many Metadata v1 requests (all topics) one connection has answered in `seconds`."""
    cid = client_id.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            body = (b"\x00\x03\x00\x01" + n.to_bytes(4, "big") + len(cid).to_bytes(2, "big")
                    + cid + b"\xff\xff\xff\xff")
            s.sendall(len(body).to_bytes(4, "big") + body)
            size = int.from_bytes(s.recv(4, socket.MSG_WAITALL), "big")
            resp = s.recv(size, socket.MSG_WAITALL)
            assert int.from_bytes(resp[:4], "big") == n
            n += 1
    return n


def test_request_percentage_limits_the_time_a_client_takes(fresh_broker):
    """KIP-124: `request_percentage` bounds the share of one shard's time a client's requests
    take (100 = a whole thread): over it, the connection is muted. Another client is not."""
    port = free_port()
    b = fresh_broker(dict(WINDOWS, **{"ringlet.metrics.listener": f"127.0.0.1:{port}"}))
    configs(b.bootstrap, "--alter", "--entity-type", "clients", "--entity-name", "busy-app",
            "--add-config", "request_percentage=0.1")
    out = configs(b.bootstrap, "--describe", "--entity-type", "clients", "--entity-name", "busy-app")
    assert "request_percentage=0.1" in out, out
    free = metadata_requests(b.port, "idle-app", 3)
    busy = metadata_requests(b.port, "busy-app", 3)
    print(f"metadata requests in 3 s: {free} unlimited, {busy} with request_percentage=0.1")
    # 0.1% of a thread is 1 ms of handling a second: far fewer requests than unlimited.
    assert busy * 5 < free, (busy, free)
    metrics = scrape(port)
    line = next(l for l in metrics.splitlines() if l.startswith(
        'ringlet_quota_throttle_time_ms_total{quota="request_percentage",entity="clients/busy-app"}'))
    assert float(line.split()[-1]) > 1000, line
    configs(b.bootstrap, "--alter", "--entity-type", "clients", "--entity-name", "busy-app",
            "--delete-config", "request_percentage")
    time.sleep(2.5)
    assert metadata_requests(b.port, "busy-app", 3) * 2 > free


def test_connection_creation_rate_closes_connections_over_the_rate(fresh_broker):
    b = fresh_broker(WINDOWS)
    configs(b.bootstrap, "--alter", "--entity-type", "ips", "--entity-name", "127.0.0.1",
            "--add-config", "connection_creation_rate=5")
    out = configs(b.bootstrap, "--describe", "--entity-type", "ips", "--entity-name", "127.0.0.1")
    assert "connection_creation_rate=5.0" in out, out

    def answered():
        """Whether a new connection is served (an ApiVersions v0 answer)."""
        with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
            body = b"\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff"
            s.sendall(len(body).to_bytes(4, "big") + body)
            s.settimeout(5)
            try:
                return len(s.recv(4)) == 4
            except OSError:
                return False

    results = [answered() for _ in range(40)]
    assert results.count(False) > 10, results
    assert "connection_creation_rate quota exceeded" in b.read_log()
    # Removed through another address family's rate? No: lifted by deleting it (over a
    # connection the rate may refuse, so retry).
    deadline = time.time() + 20
    while True:
        r = subprocess.run([CONFIGS, "--bootstrap-server", b.bootstrap, "--alter", "--entity-type",
                            "ips", "--entity-name", "127.0.0.1", "--delete-config",
                            "connection_creation_rate"], capture_output=True, text=True, timeout=120)
        if r.returncode == 0 or time.time() > deadline:
            break
        time.sleep(1)
    assert r.returncode == 0, r.stdout + r.stderr
    time.sleep(1)
    assert all(answered() for _ in range(20))

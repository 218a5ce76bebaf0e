"""Security end to end: TLS listeners, SASL PLAIN and SCRAM-SHA-512, and ACLs, driven by
confluent-kafka, kcat and the `ringlet acls` / `ringlet users` tools, with certificates that the
test makes with openssl.

One broker serves every test: a PLAINTEXT listener (anonymous), SSL (client certificate
requested), MTLS (SSL with the certificate required), SASL_PLAINTEXT and SASL_SSL, the ACL
authorizer on, `User:admin` a super user, and users alice (SCRAM, created with `ringlet users`),
bob (PLAIN, from the JAAS line) and carol (SCRAM, no ACLs)."""
import os
import socket
import struct
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import BIN, Broker, free_port, unique


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    """A CA, a broker certificate for localhost/127.0.0.1, a client certificate signed by the CA
    and one signed by a CA the broker does not trust."""
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
                f"{ca}.pem", "-days", "2", "-subj", f"/CN={ca}", cwd=d)
    for name, subj, ca, ext in (("broker", "/CN=localhost", "ca", "server.ext"),
                                ("client", "/O=ringlet/CN=client", "ca", "client.ext"),
                                ("rogue", "/CN=rogue", "rogue-ca", "client.ext")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", subj, cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    return {k: os.path.join(d, f"{k}.pem") for k in ("ca", "broker", "client", "rogue")} | {
        k + "_key": os.path.join(d, f"{k}.key") for k in ("broker", "client", "rogue")}


class Secured:
    def __init__(self, broker, certs, ports, tmp):
        self.broker, self.certs, self.ports, self.tmp = broker, certs, ports, tmp

    def addr(self, listener):
        return f"127.0.0.1:{self.ports[listener]}"

    def conf(self, listener, user=None, password=None, mechanism="SCRAM-SHA-512", cert=None):
        c = {"bootstrap.servers": self.addr(listener), "socket.timeout.ms": 5000}
        protocol = {"ssl": "SSL", "mtls": "SSL", "sasl": "SASL_PLAINTEXT", "sasl_ssl": "SASL_SSL"}[listener]
        c["security.protocol"] = protocol
        if "SSL" in protocol:
            c["ssl.ca.location"] = self.certs["ca"]
        if cert:
            c["ssl.certificate.location"] = self.certs[cert]
            c["ssl.key.location"] = self.certs[cert + "_key"]
        if user:
            c.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
        return c

    def tool(self, *args, user="admin", password="admin-secret", check=True, stdin=None):
        props = os.path.join(self.tmp, f"{user}.properties")
        with open(props, "w") as f:
            f.write("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
                    f"sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{user}\" password=\"{password}\";\n"
                    f"ssl.truststore.location={self.certs['ca']}\n")
        r = subprocess.run([BIN, *args, "--bootstrap-server", self.addr("sasl_ssl"), "--command-config", props],
                           capture_output=True, text=True, timeout=60, input=stdin)
        if check:
            assert r.returncode == 0, r.stdout + r.stderr
        return r


@pytest.fixture(scope="module")
def secured():
    tmp = tempfile.mkdtemp(prefix="ringlet-sec-")
    certs = make_certs(tmp)
    ports = {k: free_port() for k in ("ssl", "mtls", "sasl", "sasl_ssl")}
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'user_admin="admin-secret" user_bob="bob-secret";')
    b = Broker()
    b.overrides = {
        "listeners": (f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{ports['ssl']},"
                      f"MTLS://127.0.0.1:{ports['mtls']},SASL_PLAINTEXT://127.0.0.1:{ports['sasl']},"
                      f"SASL_SSL://127.0.0.1:{ports['sasl_ssl']}"),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "ssl.keystore.certificate.chain": certs["broker"],
        "ssl.keystore.key": certs["broker_key"],
        "ssl.truststore.location": certs["ca"],
        "ssl.client.auth": "requested",
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^CN=(.*?),O=ringlet$/$1/U,DEFAULT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "20",
    }
    b.start()
    s = Secured(b, certs, ports, tmp)
    s.tool("users", "--add", "--user", "alice", "--password", "alice-secret", "--mechanism", "SCRAM-SHA-512")
    s.tool("users", "--add", "--user", "carol", stdin="carol-secret\n")
    for who in ("User:alice", "User:bob", "User:CN=client,O=ringlet", "User:CLIENT"):
        s.tool("acls", "--add", "--allow-principal", who, "--operation", "All",
               "--topic", "sec-", "--group", "sec-", "--resource-pattern-type", "prefixed")
    yield s
    b.stop()
    log = b.read_log()
    assert "panicked" not in log, log


def produce(conf, topic, values, timeout=20):
    errors = []
    p = Producer(dict(conf, **{"linger.ms": 5, "message.timeout.ms": 10000}))
    for v in values:
        p.produce(topic, v, on_delivery=lambda e, m: e and errors.append(e))
    left = p.flush(timeout)
    return left, errors


def consume(conf, topic, n, group=None, timeout=20):
    c = Consumer(dict(conf, **{"group.id": group or unique("sec-g"), "auto.offset.reset": "earliest",
                              "enable.auto.commit": False}))
    if group:
        c.subscribe([topic])
    else:
        c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m.value())
    if group:
        c.commit(asynchronous=False)
    c.close()
    return out


def end_offset(s, topic):
    c = Consumer(dict(s.conf("sasl", "admin", "admin-secret", "PLAIN"), **{"group.id": "sec-x", "enable.auto.commit": False}))
    c.list_topics(topic, timeout=10)
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    return hi


def round_trip(conf, topic, n=200, group=None):
    values = [f"{topic}-{i}".encode() for i in range(n)]
    left, errors = produce(conf, topic, values)
    assert left == 0 and not errors, errors[:3]
    assert consume(conf, topic, n, group) == values


@pytest.mark.parametrize("listener,user,password,mechanism,cert", [
    ("ssl", None, None, None, "client"),
    ("mtls", None, None, None, "client"),
    ("sasl", "bob", "bob-secret", "PLAIN", None),
    ("sasl", "alice", "alice-secret", "SCRAM-SHA-512", None),
    ("sasl_ssl", "bob", "bob-secret", "PLAIN", None),
    ("sasl_ssl", "alice", "alice-secret", "SCRAM-SHA-512", None),
])
def test_confluent_kafka_produces_and_consumes(secured, listener, user, password, mechanism, cert):
    conf = secured.conf(listener, user, password, mechanism or "PLAIN", cert)
    # The consumer group exercises the group ACLs (prefixed sec-) too.
    round_trip(conf, unique(f"sec-{listener}"), group=unique("sec-grp"))


def kcat_args(s, listener, user=None, password=None, mechanism="SCRAM-SHA-512", cert=None):
    args = ["kcat", "-b", s.addr(listener)]
    for k, v in s.conf(listener, user, password, mechanism, cert).items():
        if k != "bootstrap.servers":
            args += ["-X", f"{k}={v}"]
    return args


@pytest.mark.parametrize("listener,user,password,mechanism,cert", [
    ("ssl", None, None, None, "client"),
    ("sasl_ssl", "alice", "alice-secret", "SCRAM-SHA-512", None),
    ("sasl", "bob", "bob-secret", "PLAIN", None),
])
def test_kcat_produces_and_consumes(secured, listener, user, password, mechanism, cert):
    topic = unique(f"sec-kcat-{listener}")
    base = kcat_args(secured, listener, user, password, mechanism or "PLAIN", cert)
    lines = "".join(f"v{i}\n" for i in range(50))
    subprocess.run(base + ["-P", "-t", topic], input=lines, text=True, check=True, timeout=60)
    out = subprocess.run(base + ["-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == [f"v{i}" for i in range(50)]


def refused(conf, expect):
    """A client with bad credentials gets an error and no metadata."""
    errors = []
    a = AdminClient(dict(conf, error_cb=errors.append))
    with pytest.raises(KafkaException):
        a.list_topics(timeout=4)
    deadline = time.time() + 10
    while not any(e.code() in expect for e in errors) and time.time() < deadline:
        a.poll(0.2)
    assert any(e.code() in expect for e in errors), errors
    del a


def test_bad_credentials_and_certificates_are_refused_and_the_broker_keeps_serving(secured):
    s = secured
    auth = (KafkaError._AUTHENTICATION,)
    refused(s.conf("sasl", "alice", "wrong", "SCRAM-SHA-512"), auth)
    refused(s.conf("sasl_ssl", "mallory", "x", "SCRAM-SHA-512"), auth)
    refused(s.conf("sasl", "bob", "wrong", "PLAIN"), auth)
    # An untrusted client certificate where one is required, and none at all.
    tls = (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
    refused(s.conf("mtls", cert="rogue"), tls)
    refused(s.conf("mtls"), tls)
    # A plaintext client on a TLS port.
    refused({"bootstrap.servers": s.addr("ssl"), "socket.timeout.ms": 3000}, tls)
    log = s.broker.read_log()
    assert "SASL authentication failed" in log and "127.0.0.1:" in log
    assert "TLS handshake failed" in log
    # Everyone else is still served.
    round_trip(s.conf("sasl_ssl", "alice", "alice-secret"), unique("sec-after"), n=20)


def test_certificate_principals_follow_the_mapping_rules(secured):
    s = secured
    topic = unique("nocert")  # outside the sec- prefix: refused, and the refusal names the principal
    for listener, principal in (("ssl", "User:CN=client,O=ringlet"), ("mtls", "User:CLIENT")):
        left, errors = produce(s.conf(listener, cert="client"), topic, [b"x"])
        assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
        assert f"principal={principal} " in s.broker.read_log().replace("\x1b[0m", "").replace("\x1b[2m", "").replace("\x1b[3m", ""), principal


def test_without_write_permission_nothing_is_written(secured):
    s = secured
    topic = unique("sec-nowrite")
    s.tool("topics", "--create", "--topic", topic, "--partitions", "1")
    left, errors = produce(s.conf("sasl", "carol", "carol-secret"), topic, [b"x"] * 5)
    assert left == 0 and errors and all(e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errors), errors
    assert end_offset(s, topic) == 0
    # An anonymous TLS client (no certificate on the requested listener) is refused as well.
    left, errors = produce(s.conf("ssl"), topic, [b"y"])
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    assert end_offset(s, topic) == 0


def test_group_acls_and_secret_configs(secured):
    s = secured
    topic = unique("grp-acl")
    group = unique("grp-acl-g")
    s.tool("topics", "--create", "--topic", topic, "--partitions", "1")
    s.tool("acls", "--add", "--allow-principal", "User:carol", "--operation", "Read", "--topic", topic)
    carol = s.conf("sasl", "carol", "carol-secret")
    # Carol may read the topic but not use the group: the consumer gets GROUP_AUTHORIZATION_FAILED.
    c = Consumer(dict(carol, **{"group.id": group, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    err, deadline = None, time.time() + 15
    while err is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error():
            err = m.error()
    c.close()
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    # Granting Read on the group lets the same consumer in.
    s.tool("acls", "--add", "--allow-principal", "User:carol", "--operation", "Read", "--group", group)
    left, errors = produce(s.conf("sasl", "admin", "admin-secret", "PLAIN"), topic, [b"a", b"b"])
    assert left == 0 and not errors
    assert consume(carol, topic, 2, group=group) == [b"a", b"b"]
    # Secrets in the broker's configuration are described without their values.
    from confluent_kafka.admin import ConfigResource
    a = AdminClient(s.conf("sasl", "admin", "admin-secret", "PLAIN"))
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    entries = a.describe_configs([res])[res].result(timeout=10)
    key = entries["ssl.keystore.key"]
    assert key.is_sensitive and key.value is None
    assert entries["super.users"].value == "User:admin"
    # And a user without Describe on the cluster may not read them at all.
    b = AdminClient(carol)
    with pytest.raises(KafkaException) as e:
        b.describe_configs([res])[res].result(timeout=10)
    assert "CLUSTER_AUTHORIZATION_FAILED" in str(e.value) or "authorization" in str(e.value).lower()


def test_prefixed_and_deny_acls_and_metadata_hiding(secured):
    s = secured
    alice = s.conf("sasl", "alice", "alice-secret")
    denied = unique("sec-denied")
    other = unique("notsec")
    for t in (denied, other):
        s.tool("topics", "--create", "--topic", t, "--partitions", "1")
    # DENY wins over the prefixed ALLOW that covers sec-*.
    s.tool("acls", "--add", "--deny-principal", "User:alice", "--operation", "Write", "--topic", denied)
    left, errors = produce(alice, denied, [b"no"])
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    assert end_offset(s, denied) == 0
    # Alice may still describe it (the deny is on Write only), but topics outside her prefix are
    # hidden from her metadata, and a topic she asks for by name is refused, not revealed.
    a = AdminClient(alice)
    names = set(a.list_topics(timeout=10).topics)
    assert denied in names and other not in names
    md = a.list_topics(other, timeout=10)
    assert md.topics[other].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Removing the deny lets the write through.
    s.tool("acls", "--remove", "--deny-principal", "User:alice", "--operation", "Write", "--topic", denied)
    left, errors = produce(alice, denied, [b"yes"])
    assert left == 0 and not errors
    assert end_offset(s, denied) == 1


def test_acls_and_users_tools_round_trip(secured):
    s = secured
    topic = unique("rt")
    s.tool("acls", "--add", "--allow-principal", "User:carol", "--operation", "Read", "--operation", "Describe", "--topic", topic)
    out = s.tool("acls", "--list", "--topic", topic).stdout
    assert f"name={topic}, patternType=LITERAL" in out
    assert "(principal=User:carol, host=*, operation=READ, permissionType=ALLOW)" in out
    assert "operation=DESCRIBE" in out
    s.tool("acls", "--remove", "--topic", topic, "--allow-principal", "User:carol", "--operation", "Read")
    out = s.tool("acls", "--list", "--topic", topic).stdout
    assert "operation=READ" not in out and "operation=DESCRIBE" in out
    s.tool("acls", "--remove", "--topic", topic)
    assert "principal=" not in s.tool("acls", "--list", "--topic", topic).stdout
    # Users: add, list, authenticate, delete, refused.
    s.tool("users", "--add", "--user", "dave", "--password", "dave-secret", "--mechanism", "SCRAM-SHA-256", "--iterations", "8192")
    out = s.tool("users", "--list", "--user", "dave").stdout
    assert "SCRAM-SHA-256=iterations=8192" in out and "SCRAM-SHA-512" not in out
    a = AdminClient(s.conf("sasl", "dave", "dave-secret", "SCRAM-SHA-256"))
    a.list_topics(timeout=10)
    del a
    s.tool("users", "--delete", "--user", "dave")
    r = s.tool("users", "--list", "--user", "dave", check=False)
    assert r.returncode != 0 and "RESOURCE_NOT_FOUND" in r.stderr
    refused(s.conf("sasl", "dave", "dave-secret", "SCRAM-SHA-256"), (KafkaError._AUTHENTICATION,))
    # A non-super user may not manage ACLs or users.
    r = s.tool("acls", "--list", user="bob", password="bob-secret", check=False)
    assert r.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in r.stderr
    r = s.tool("users", "--add", "--user", "eve", "--password", "x", user="bob", password="bob-secret", check=False)
    assert r.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in r.stderr


def frame(api_key, version, corr, body, client_id=b"raw"):
    head = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = head + body
    return struct.pack(">i", len(msg)) + msg


def read_frame(sock):
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = sock.recv(n - len(b))
            if not chunk:
                raise ConnectionError("closed")
            b += chunk
        return b
    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def closed(sock, timeout=10):
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionError, OSError):
        return True


def handshake(sock, mechanism, version=1, corr=1):
    m = mechanism.encode()
    sock.sendall(frame(17, version, corr, struct.pack(">h", len(m)) + m))
    resp = read_frame(sock)
    return struct.unpack(">h", resp[4:6])[0]


def authenticate(sock, token, corr=2, version=1):
    sock.sendall(frame(36, version, corr, struct.pack(">i", len(token)) + token))
    resp = read_frame(sock)
    (code,) = struct.unpack(">h", resp[4:6])
    return code, resp


def test_requests_sent_together_over_tls_are_all_answered(secured):
    """A frame larger than one TLS record followed at once by another request: decryption runs
    past the first frame, and the second request must still be read (it was lost once, which
    librdkafka saw as a produce request timing out)."""
    import ssl
    ctx = ssl.create_default_context(cafile=secured.certs["ca"])
    names = [f"no-such-topic-{i:05d}".encode() for i in range(3000)]
    body = struct.pack(">i", len(names)) + b"".join(struct.pack(">h", len(n)) + n for n in names) + b"\x00"
    big = frame(3, 4, 1, body)  # Metadata v4, ~70 KB, allow_auto_topic_creation=false
    small = frame(18, 0, 2, b"")  # ApiVersions v0
    assert len(big) > 3 * 16384
    with socket.create_connection(("127.0.0.1", secured.ports["ssl"]), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            for _ in range(3):
                sock.sendall(big + small)
                assert struct.unpack(">i", read_frame(sock)[:4])[0] == 1
                assert struct.unpack(">i", read_frame(sock)[:4])[0] == 2


def test_unknown_acl_filter_codes_get_invalid_request(secured):
    with socket.create_connection(("127.0.0.1", secured.ports["sasl"]), timeout=10) as sock:
        assert handshake(sock, "PLAIN") == 0
        assert authenticate(sock, b"\x00admin\x00admin-secret")[0] == 0
        for rtype, pattern, op, perm in ((0, 1, 1, 1), (1, 9, 1, 1), (1, 1, 0, 1), (1, 1, 1, 7)):
            body = struct.pack(">bhbhhbb", rtype, -1, pattern, -1, -1, op, perm)
            sock.sendall(frame(29, 1, 7, body))  # DescribeAcls v1
            resp = read_frame(sock)
            (code,) = struct.unpack(">h", resp[8:10])  # after correlation id and throttle time
            assert code == 42, (rtype, pattern, op, perm, code)  # INVALID_REQUEST
        # A valid ANY filter still answers.
        sock.sendall(frame(29, 1, 8, struct.pack(">bhbhhbb", 1, -1, 1, -1, -1, 1, 1)))
        assert struct.unpack(">h", read_frame(sock)[8:10])[0] == 0


def test_malformed_sasl_frames_neither_crash_nor_hang_the_broker(secured):
    s = secured
    host, port = "127.0.0.1", s.ports["sasl"]
    # A request other than ApiVersions/SASL before authenticating: the connection is closed.
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(frame(3, 1, 1, struct.pack(">i", -1)))
        assert closed(sock)
    # Garbage as a SCRAM client-first message, and as a PLAIN token.
    for mech, token in (("SCRAM-SHA-512", b"\xff\x00garbage"), ("SCRAM-SHA-512", b"n,,n=alice"),
                        ("PLAIN", b"no-nul-separators"), ("PLAIN", b"\x00\x00")):
        with socket.create_connection((host, port), timeout=10) as sock:
            assert handshake(sock, mech) == 0
            code, _ = authenticate(sock, token)
            assert code == 58  # SASL_AUTHENTICATION_FAILED
            assert closed(sock)
    # An unknown mechanism, SaslAuthenticate without a handshake, a truncated SaslAuthenticate.
    with socket.create_connection((host, port), timeout=10) as sock:
        assert handshake(sock, "GSSAPI") == 33  # UNSUPPORTED_SASL_MECHANISM
    with socket.create_connection((host, port), timeout=10) as sock:
        code, _ = authenticate(sock, b"x")
        assert code == 34  # ILLEGAL_SASL_STATE
    with socket.create_connection((host, port), timeout=10) as sock:
        assert handshake(sock, "PLAIN") == 0
        sock.sendall(frame(36, 1, 2, struct.pack(">i", 1000) + b"short"))
        assert closed(sock)
    # v0 handshake, then a raw token that is garbage.
    with socket.create_connection((host, port), timeout=10) as sock:
        assert handshake(sock, "PLAIN", version=0) == 0
        sock.sendall(struct.pack(">i", 5) + b"\x01\x02\x03\x04\x05")
        assert closed(sock)
    # v0 handshake with a good raw PLAIN token works (the pre-KIP-152 flow).
    with socket.create_connection((host, port), timeout=10) as sock:
        assert handshake(sock, "PLAIN", version=0) == 0
        token = b"\x00bob\x00bob-secret"
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert read_frame(sock) == b""
        sock.sendall(frame(18, 0, 9, b""))
        assert struct.unpack(">i", read_frame(sock)[:4])[0] == 9
    # A frame bigger than socket.request.max.bytes before authentication.
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", 1 << 30))
        assert closed(sock)
    assert s.broker.alive()
    round_trip(s.conf("sasl", "bob", "bob-secret", "PLAIN"), unique("sec-alive"), n=10)


def test_first_admin_user_is_created_offline(tmp_path):
    """`ringlet users --data-dir` writes the credential store before the broker starts, so a
    SCRAM-only, ACL-locked broker has an admin from the start."""
    data_dir = str(tmp_path)
    r = subprocess.run([BIN, "users", "--data-dir", os.path.join(data_dir, "data"), "--add", "--user", "root",
                        "--mechanism", "SCRAM-SHA-512"], input="root-secret\n", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    port = free_port()
    b = Broker(data_dir=data_dir)
    b.overrides = {
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{port}",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "authorizer.class.name": "ringlet",
        "super.users": "User:root",
    }
    b.start()
    try:
        root = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "root", "sasl.password": "root-secret"}
        round_trip(root, unique("offline"), n=10)
        refused(dict(root, **{"sasl.password": "nope"}), (KafkaError._AUTHENTICATION,))
        # The anonymous PLAINTEXT listener sees nothing and may create nothing.
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        assert not [t for t in a.list_topics(timeout=10).topics if not t.startswith("__")]
    finally:
        b.stop()
    assert "panicked" not in b.read_log()


@pytest.fixture
def reauth_broker():
    port = free_port()
    b = Broker()
    b.overrides = {
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{port}",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required user_bob="bob-secret";',
        "connections.max.reauth.ms": "1500",
    }
    b.start()
    yield b, port
    b.stop()
    assert "panicked" not in b.read_log()


def test_sessions_expire_without_reauthentication_and_librdkafka_reauthenticates(reauth_broker):
    b, port = reauth_broker
    lifetime_ms = 1500
    # A raw client that authenticates once: told the session lifetime, closed after it.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert handshake(sock, "PLAIN") == 0
        code, resp = authenticate(sock, b"\x00bob\x00bob-secret")
        assert code == 0
        (lifetime,) = struct.unpack(">q", resp[-8:])
        assert 0 < lifetime <= lifetime_ms
        sock.sendall(frame(18, 0, 3, b""))
        read_frame(sock)
        time.sleep(lifetime_ms / 1000 + 0.5)
        sock.sendall(frame(18, 0, 4, b""))
        assert closed(sock)
    assert "SASL session expired" in b.read_log()
    # librdkafka re-authenticates (KIP-368) on its own: a producer running for several lifetimes
    # loses nothing.
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": "bob", "sasl.password": "bob-secret"}
    topic = unique("reauth")
    p = Producer(dict(conf, **{"linger.ms": 5}))
    errors, sent = [], 0
    deadline = time.time() + 4 * lifetime_ms / 1000
    while time.time() < deadline:
        p.produce(topic, b"v%d" % sent, on_delivery=lambda e, m: e and errors.append(e))
        sent += 1
        p.poll(0.02)
    assert p.flush(20) == 0 and not errors, errors[:3]
    assert len(consume(conf, topic, sent)) == sent
    # Only the raw client's session expired: librdkafka re-authenticated on its connections.
    assert b.read_log().count("SASL session expired") == 1

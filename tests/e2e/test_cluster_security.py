"""Secured inter-broker traffic (issue 25 item 5): the three brokers replicate over a SASL_SSL
listener (`inter.broker.listener.name`, `sasl.mechanism.inter.broker.protocol`, the listener's
truststore verifying the other broker's certificate and its host name), with the ACL authorizer
on. One cluster shows the three outcomes side by side:

* broker 1 authenticates with SCRAM-SHA-512 as `User:broker` (created once, through broker 3,
  with `ringlet users`: SCRAM credentials are cluster metadata in ZooKeeper), a super user:
  partitions it follows stay in sync and acks=all (min.insync.replicas=2) writes are acknowledged
  and replicated byte for byte;
* broker 2 authenticates (PLAIN) as `User:intruder`, valid credentials without ClusterAction: its
  leaders refuse its replica fetches (Kafka's rule), so it does not join an ISR, until an ACL
  granting it ClusterAction, added with Kafka's `kafka-acls` through another broker, is in
  force on its leader (ACLs are cluster metadata too); removed through a third broker, it is
  gone from all three;
* broker 3 has a wrong (PLAIN) password: its SASL authentication fails, so it never joins an
  ISR."""
import os
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BIN, unique
from test_security import make_certs


@pytest.fixture(scope="module")
def cluster():
    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        pytest.skip("ZooKeeper is not installed")
    certs = make_certs(tempfile.mkdtemp(prefix="ringlet-ibsec-"))
    users = 'user_broker="broker-secret" user_intruder="intruder-secret"'

    def jaas(user, password):
        return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
                f'username="{user}" password="{password}" {users};')

    c = Cluster(overrides={
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,REPLICATION:SASL_SSL",
        "listener.name.replication.ssl.keystore.certificate.chain": certs["broker"],
        "listener.name.replication.ssl.keystore.key": certs["broker_key"],
        "listener.name.replication.ssl.truststore.location": certs["ca"],
        "listener.name.replication.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.replication.plain.sasl.jaas.config": jaas("broker", "broker-secret"),
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        # Clients of the PLAINTEXT listener are ANONYMOUS: let them do anything here.
        "super.users": "User:broker;User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
        "auto.leader.rebalance.enable": "false",
    })
    c.brokers[1].overrides["sasl.mechanism.inter.broker.protocol"] = "SCRAM-SHA-512"
    c.brokers[1].overrides["listener.name.replication.scram-sha-512.sasl.jaas.config"] = (
        'org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="broker" password="broker-secret";')
    c.brokers[2].overrides["listener.name.replication.plain.sasl.jaas.config"] = \
        jaas("intruder", "intruder-secret")
    c.brokers[3].overrides["listener.name.replication.plain.sasl.jaas.config"] = \
        jaas("broker", "wrong")
    c.start()
    # SCRAM credentials are cluster metadata: created through broker 3, used by broker 1 with
    # broker 2.
    subprocess.run([BIN, "users", "--add", "--user", "broker", "--password", "broker-secret",
                    "--mechanism", "SCRAM-SHA-512", "--bootstrap-server", c.brokers[3].bootstrap],
                   check=True, capture_output=True, timeout=60)
    yield c
    c.stop()
    c.cleanup()


def isr(admin, topic):
    return sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions[0].isrs)


def test_replication_runs_over_sasl_ssl_and_refuses_what_is_not_allowed(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    good, intruder, wrong = unique("ib-good"), unique("ib-intruder"), unique("ib-wrong")
    for t, replicas in ((good, [2, 1]), (intruder, [1, 2]), (wrong, [1, 3])):
        admin.create_topics([NewTopic(t, num_partitions=1, replica_assignment=[replicas],
                                      config={"min.insync.replicas": "1"})])[t].result(30)
    admin.create_topics([NewTopic(good + "-all", num_partitions=1, replica_assignment=[[2, 1]],
                                  config={"min.insync.replicas": "2"})])[good + "-all"].result(30)
    # Followers that cannot fetch leave the ISR after replica.lag.time.max.ms (1.5 s here).
    deadline = time.time() + 30
    while time.time() < deadline:
        if isr(admin, intruder) == [1] and isr(admin, wrong) == [1]:
            break
        time.sleep(0.5)
    assert isr(admin, intruder) == [1], "a follower without ClusterAction stayed in sync"
    assert isr(admin, wrong) == [1], "a follower with a wrong password stayed in sync"
    assert isr(admin, good) == [1, 2]
    assert cluster.logs_contain("lacks ClusterAction"), "no leader refused the intruder's fetch"
    assert 3 in cluster.logs_contain("SASL authentication as broker failed")
    # Broker 1 (User:broker, SCRAM) replicates from broker 2 over TLS: acks=all with
    # min.insync.replicas=2 needs it, and the two copies are the same bytes.
    errors = []
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                  "message.timeout.ms": 20000})
    for i in range(300):
        p.produce(good + "-all", value=f"v{i}".encode(), partition=0,
                  on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and not errors, errors[:3]
    deadline = time.time() + 20
    while time.time() < deadline:
        logs = cluster.replica_logs(good + "-all", 0)
        if logs[1] and logs[1] == logs[2]:
            break
        time.sleep(0.3)
    assert logs[1] and logs[1] == logs[2], "the follower's copy differs from the leader's"


ACLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "compat", "bin",
                    "kafka-acls.sh")


def acls(bootstrap, *args):
    r = subprocess.run([ACLS, "--bootstrap-server", bootstrap, *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_an_acl_added_through_one_broker_is_in_force_on_every_broker(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    t = unique("ib-granted")
    admin.create_topics([NewTopic(t, num_partitions=1, replica_assignment=[[1, 2]],
                                  config={"min.insync.replicas": "1"})])[t].result(30)
    deadline = time.time() + 30
    while time.time() < deadline and isr(admin, t) != [1]:
        time.sleep(0.5)
    assert isr(admin, t) == [1], "User:intruder followed without ClusterAction"
    grant = ("--allow-principal", "User:intruder", "--operation", "ClusterAction", "--cluster")
    acls(cluster.brokers[3].bootstrap, "--add", *grant)
    for b in cluster.brokers.values():
        deadline = time.time() + 10
        while "User:intruder" not in acls(b.bootstrap, "--list", "--cluster") \
                and time.time() < deadline:
            time.sleep(0.3)
        assert "User:intruder" in acls(b.bootstrap, "--list", "--cluster"), b.bootstrap
    # Leader 1 now serves broker 2's fetches: it catches up and joins the ISR.
    deadline = time.time() + 30
    while time.time() < deadline and isr(admin, t) != [1, 2]:
        time.sleep(0.5)
    assert isr(admin, t) == [1, 2], "the granted ClusterAction was not in force on leader 1"
    acls(cluster.brokers[2].bootstrap, "--remove", "--force", *grant)
    for b in cluster.brokers.values():
        deadline = time.time() + 10
        while "User:intruder" in acls(b.bootstrap, "--list", "--cluster") \
                and time.time() < deadline:
            time.sleep(0.3)
        assert "User:intruder" not in acls(b.bootstrap, "--list", "--cluster"), b.bootstrap

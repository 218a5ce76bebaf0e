"""Faults in the middle of a transaction commit (issue 26 item 4), on the three-broker cluster.

The commit is caught between its two halves: the output partition's leader is paused (SIGSTOP),
so the coordinator, having made PrepareCommit durable in `__transaction_state`, cannot write the
commit marker. Then either
  - the coordinator is killed -9: the next leader of `__transaction_state` must load the prepared
    commit and finish it (markers to whoever leads the output partition by then), and the
    client's retried EndTxn must be answered as the commit it was; or
  - the coordinator is killed -9 and loses power (every broker's log.dirs on the power-loss file
    system, default flushing): what it had not fsynced of `__transaction_state` is gone, and the
    replicas of the others carry the prepared commit; or
  - the output partition's leader is killed -9: the coordinator must send the marker to the new
    leader instead.
(As in Kafka, EndTxn is answered once PrepareCommit is durable, so the client's commit may
already have returned: the commit is decided, and finishing it is the coordinators' job.)
Either way the client's commit_transaction() succeeds, a read_committed consumer sees every record
of the transaction exactly once (and of the next transaction too), and the replicas agree.
"""
import json
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, zookeeper_available
from conftest import unique
from test_transactions import read

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (scripts/test.sh installs it)")


def leader_of(c, topic, partition=0, avoid=()):
    """The partition's leader as a running broker outside `avoid` reports it (-1: none)."""
    for i, b in c.brokers.items():
        if i in avoid or not b.alive():
            continue
        out = subprocess.run(["kcat", "-L", "-J", "-m", "2", "-b", b.bootstrap, "-t", topic],
                             capture_output=True, text=True, timeout=10).stdout
        try:
            md = json.loads(out)
        except ValueError:
            continue
        for t in md.get("topics", []):
            for p in t.get("partitions", []):
                if p["partition"] == partition:
                    return p.get("leader", -1)
    return -1


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("victim", ["coordinator", "coordinator_power_loss", "partition_leader"])
def test_a_commit_interrupted_by_a_broker_death_completes_exactly_once(victim):
    disks = {}
    if victim == "coordinator_power_loss":
        import powerfail
        if not powerfail.available():
            pytest.skip("needs /dev/fuse, root and target/debug/ringlet-powerfail")
    c = Cluster(overrides={"transaction.state.log.num.partitions": 1,
                           "transaction.abort.timed.out.transaction.cleanup.interval.ms": 500})
    paused = None
    try:
        if victim == "coordinator_power_loss":
            for i, b in c.brokers.items():
                try:
                    disks[i] = powerfail.PowerFail()
                except RuntimeError as e:
                    pytest.skip(f"this machine cannot mount a FUSE file system: {e}")
                b.overrides["log.dirs"] = disks[i].dir + "/data"
        c.start()
        tid = unique("txn-fault")
        p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": tid,
                      "transaction.timeout.ms": 60000, "message.timeout.ms": 60000})
        p.init_transactions(30)
        coordinator = wait_for(lambda: (lambda l: l if l > 0 else None)(
            leader_of(c, "__transaction_state")), 30, "the transaction coordinator")
        # The output partition led by a broker other than the coordinator.
        leader = next(i for i in (1, 2, 3) if i != coordinator)
        other = next(i for i in (1, 2, 3) if i not in (coordinator, leader))
        topic = unique("txn-out")
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=1,
                                      replica_assignment=[[leader, other, coordinator]])]
                            )[topic].result(30)
        wait_for(lambda: leader_of(c, topic) == leader, 30, "the output partition's leader")

        first = [f"a{i}" for i in range(100)]
        p.begin_transaction()
        for v in first:
            p.produce(topic, value=v, partition=0)
        assert p.flush(30) == 0

        # Pause the output leader, then commit: PrepareCommit is written (once the ISR of
        # __transaction_state has dropped the paused broker), the marker cannot be.
        c.signal(leader, signal.SIGSTOP)
        paused = leader
        outcome = {}

        def commit():
            try:
                p.commit_transaction(90)
                outcome["ok"] = True
            except Exception as e:  # noqa: BLE001
                outcome["error"] = e

        t = threading.Thread(target=commit)
        t.start()
        coord_log = c.brokers[coordinator]
        # Prepared and stuck on the marker: the coordinator logs the failed marker write, or a
        # few seconds pass (the marker request to a paused broker may still be waiting).
        deadline = time.time() + 6
        while time.time() < deadline and "writing transaction markers failed" not in coord_log.read_log():
            time.sleep(0.1)
        # As in Kafka, EndTxn may be answered once PrepareCommit is durable, before the markers
        # are written: the commit is decided, and the markers are the coordinator's to finish.

        if victim in ("coordinator", "coordinator_power_loss"):
            c.kill9(coordinator)
            if victim == "coordinator_power_loss":
                disks[coordinator].cut()
            c.signal(leader, signal.SIGCONT)
            paused = None
            time.sleep(1)
            c.restart(coordinator)
        else:
            c.signal(leader, signal.SIGCONT)
            paused = None
            c.kill9(leader)
            wait_for(lambda: leader_of(c, topic, avoid=(leader,)) not in (-1, leader), 30,
                     "a new leader of the output partition")
            time.sleep(1)
            c.restart(leader)

        t.join(100)
        assert outcome.get("ok"), f"commit_transaction: {outcome}"

        # The producer goes on: a second transaction commits normally.
        second = [f"b{i}" for i in range(50)]
        p.begin_transaction()
        for v in second:
            p.produce(topic, value=v, partition=0)
        p.commit_transaction(60)

        class B:
            bootstrap = c.bootstrap
        got = read(B, topic, "read_committed", partitions=1, expect=150, wait=60)
        assert got == sorted(first + second), (len(got), sorted(set(first + second) - set(got))[:5])
        assert read(B, topic, "read_uncommitted", partitions=1, expect=150, wait=10) == got

        wait_for(lambda: len(set(c.replica_logs(topic, 0).values())) == 1, 60,
                 "identical replicas of the output partition")
        for b in c.brokers.values():
            assert "panicked" not in b.read_log()
    finally:
        if paused is not None:
            c.signal(paused, signal.SIGCONT)
        c.stop()
        for d in disks.values():
            d.close()
        c.cleanup()

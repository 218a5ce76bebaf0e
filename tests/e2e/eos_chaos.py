#!/usr/bin/env python3
"""The exactly-once fault checker of issue 23 item 5 with librdkafka, run by hand: a
consume-transform-produce loop on the three-broker cluster while brokers are killed -9 and
restarted one at a time; every input record must be in the committed output exactly once.

    .venv/bin/python tests/e2e/eos_chaos.py [RUNS]

CI runs the same checker with the Java client (tests/e2e/test_eos_chaos.py). This one is not a
pytest test because librdkafka hangs in about one run in five: send_offsets_to_transaction()
ignores its timeout (librdkafka issue 5456) and waits on a group coordinator it decommissioned
when the killed broker left the metadata (issue 5511). Runs that complete are exact."""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique
from test_transactions import read
def pipeline_under_kill9():
    """A consume-transform-produce loop (read_committed input, transactional output with the
    group's offsets in each transaction) while brokers of the three-broker cluster are killed -9
    and restarted, one at a time (the coordinator, partition leaders, whoever): every input record
    is in the committed output exactly once."""
    import threading

    from cluster import Cluster, zookeeper_available
    if not zookeeper_available():
        raise SystemExit("ZooKeeper is not installed")
    c = Cluster(overrides={"transaction.state.log.num.partitions": 3,
                           "transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}).start()
    try:
        src, dst, group, n = "eos-in", "eos-out", unique("eos"), 800
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        for f in admin.create_topics([NewTopic(src, num_partitions=3, replication_factor=3),
                                      NewTopic(dst, num_partitions=3, replication_factor=3)
                                      ]).values():
            f.result(30)
        plain = Producer({"bootstrap.servers": c.bootstrap, "acks": "all",
                          "enable.idempotence": True})
        for i in range(n):
            plain.produce(src, key=str(i), value=f"r{i}")
        assert plain.flush(60) == 0

        cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "session.timeout.ms": 10000})
        cons.subscribe([src])
        tid = unique("eos-tid")

        def new_producer():
            p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": tid,
                          "acks": "all", "transaction.timeout.ms": 10000})
            p.init_transactions(60)
            return p

        def rewind():
            """Back to the group's committed offsets (waiting out UNSTABLE_OFFSET_COMMIT while a
            transaction's offsets are pending, and coordinator moves)."""
            parts = cons.assignment()
            if not parts:
                return
            for _ in range(120):
                try:
                    got = cons.committed(parts, timeout=10)
                except KafkaException:
                    got = None
                if got is not None and all(tp.error is None for tp in got):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"committed offsets unavailable: {got}")
            for tp in got:
                cons.seek(TopicPartition(tp.topic, tp.partition,
                                         tp.offset if tp.offset >= 0 else 0))

        stop = threading.Event()
        kills = []

        def chaos():
            # One broker down at a time (three replicas, min.insync.replicas=2): kill -9, restart,
            # then let its old ZooKeeper session expire and the ISRs fill again.
            for victim in (1, 2, 3):
                if stop.wait(1.0):
                    return
                c.kill9(victim)
                kills.append(victim)
                time.sleep(1.5)
                c.restart(victim)
                stop.wait(5.0)

        killer = threading.Thread(target=chaos)
        killer.start()
        p = new_producer()
        committed_in = 0
        deadline = time.time() + 150
        while committed_in < n and time.time() < deadline:
            msgs = [m for m in cons.consume(10, timeout=1.0) if m.error() is None]
            if not msgs:
                continue
            time.sleep(0.05)  # spread the run over the kills
            try:
                p.begin_transaction()
                for m in msgs:
                    p.produce(dst, key=m.key(), value=m.value().upper())
                p.send_offsets_to_transaction(cons.position(cons.assignment()),
                                              cons.consumer_group_metadata(), 30)
                for attempt in range(4):
                    try:
                        p.commit_transaction(30)
                        break
                    except KafkaException as e:
                        if not e.args[0].retriable() or attempt == 3:
                            raise
                committed_in += len(msgs)
            except KafkaException as e:
                err = e.args[0]
                if err.txn_requires_abort():
                    try:
                        p.abort_transaction(30)
                    except KafkaException:
                        p = new_producer()
                else:
                    p = new_producer()  # fatal or unknown: a new instance fences the old one
                rewind()
            except Exception:  # noqa: BLE001 (a produce() into a full queue, say)
                p = new_producer()
                rewind()
        stop.set()
        killer.join()
        cons.close()
        assert kills, "no broker was killed"

        class B:
            bootstrap = c.bootstrap
        out = read(B, dst, "read_committed", partitions=3, expect=n, wait=60)
        want = sorted(f"R{i}" for i in range(n))
        missing = sorted(set(want) - set(out))
        dups = sorted({v for v in out if out.count(v) > 1})
        assert not missing and not dups and len(out) == n, (
            f"{len(out)} records, missing {missing[:10]}, duplicated {dups[:10]}")
    finally:
        c.stop()
        c.cleanup()


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for r in range(runs):
        t = time.time()
        pipeline_under_kill9()
        print(f"run {r + 1}: exact ({time.time() - t:.0f} s)", flush=True)

"""Availability during failover (issue 25 item 7): on the three-broker cluster of
tests/e2e/cluster.py, an idempotent acks=all producer writes to two single-partition topics of
three replicas (min.insync.replicas=2): one led by the broker that is then killed -9, one led by
a broker that stays up. Prints, for each, the longest time without an acknowledgement around the
kill, and checks afterwards that every acknowledged value is in the log.

  RINGLET_BIN=target/release/ringlet python3 benches/e2e/failover.py [SESSION_MS...]

Each SESSION_MS (default 4000 18000) is a run with that `zookeeper.session.timeout.ms`: the
killed broker's registration lasts until its session expires, and only then does the controller
move its leaderships."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))

from cluster import Cluster  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def run(session_ms):
    c = Cluster(overrides={"zookeeper.session.timeout.ms": session_ms,
                           "auto.leader.rebalance.enable": "false"}).start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        ids = sorted(c.brokers)
        victim, survivor = ids[0], ids[1]
        # Leaders chosen by manual assignment (the preferred replica leads at creation).
        topics = {"victim": f"failover-v-{session_ms}", "survivor": f"failover-s-{session_ms}"}
        layout = {"victim": [victim, survivor, ids[2]], "survivor": [survivor, ids[2], victim]}
        fs = admin.create_topics([NewTopic(t, num_partitions=1, replica_assignment=[layout[k]],
                                           config={"min.insync.replicas": "2"})
                                  for k, t in topics.items()])
        for f in fs.values():
            f.result(30)
        p = Producer({"bootstrap.servers": c.bootstrap, "enable.idempotence": True,
                      "acks": "all", "linger.ms": 2, "message.timeout.ms": 120000})
        acks = {k: [] for k in topics}
        sent = {k: 0 for k in topics}
        stop = threading.Event()

        def on_ack(kind):
            def cb(err, msg):
                if err is None:
                    acks[kind].append((time.time(), msg.value().decode()))
            return cb

        def feed():
            while not stop.is_set():
                for kind, t in topics.items():
                    p.produce(t, value=f"{kind}-{sent[kind]}".encode(), on_delivery=on_ack(kind))
                    sent[kind] += 1
                p.poll(0)
                time.sleep(0.002)

        th = threading.Thread(target=feed)
        th.start()
        time.sleep(5)
        killed_at = time.time()
        c.kill9(victim)
        # Long enough for the session to expire and leaderships to move, then some.
        time.sleep(session_ms / 1000 + 15)
        stop.set()
        th.join()
        assert p.flush(120) == 0, "records left unacknowledged"
        out = {}
        for kind, t in topics.items():
            times = [a[0] for a in acks[kind]]
            window = [x for x in times if x >= killed_at - 1]
            gaps = [b - a for a, b in zip(window, window[1:])]
            first_after = next((x for x in times if x > killed_at), None)
            out[kind] = (max(gaps) if gaps else float("nan"),
                         (first_after - killed_at) if first_after else float("nan"),
                         len(acks[kind]))
        # Every acknowledged value is in the log (read from the new leaders).
        for kind, t in topics.items():
            cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": f"check-{t}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
            cons.assign([TopicPartition(t, 0, 0)])
            want = {v for _, v in acks[kind]}
            got = set()
            deadline = time.time() + 60
            while not want <= got and time.time() < deadline:
                m = cons.poll(0.5)
                if m is not None and m.error() is None:
                    got.add(m.value().decode())
            cons.close()
            missing = want - got
            assert not missing, f"{kind}: {len(missing)} acknowledged values missing"
        return out
    finally:
        c.stop()
        c.cleanup()


def main():
    sessions = [int(a) for a in sys.argv[1:]] or [4000, 18000]
    print("zookeeper.session.timeout.ms | topic led by | longest gap (s) | "
          "first ack after kill (s) | records acknowledged")
    for s in sessions:
        r = run(s)
        for kind in ("victim", "survivor"):
            gap, first, n = r[kind]
            who = "the killed broker" if kind == "victim" else "a broker that stays up"
            print(f"{s} | {who} | {gap:.2f} | {first:.2f} | {n}", flush=True)


if __name__ == "__main__":
    main()

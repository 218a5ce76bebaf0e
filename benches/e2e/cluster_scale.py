"""Scale of the three-broker cluster (issue 25 item 6): start-up, metadata propagation, broker
restart, controller failover and memory with many partitions, on the cluster of
tests/e2e/cluster.py (ZooKeeper, three brokers on this machine).

  RINGLET_BIN=target/release/ringlet python3 benches/e2e/cluster_scale.py [PARTITIONS] [RF]

PARTITIONS (default 10000) are spread over 100 topics with RF replicas each (default 3). Prints:
* create: CreateTopics of every topic until each partition has a leader, then until every
  partition is fully in sync;
* rss: each broker's resident memory once settled;
* propagation: a new one-partition topic created through broker 1 until every broker's
  Metadata answer shows it with a leader (median of 5);
* restart: broker 3 stopped with SIGTERM (controlled shutdown) and started again, until every
  partition is in sync again;
* failover: the controller killed -9, until every partition it led has a new leader as the
  surviving brokers' Metadata shows it (the ZooKeeper session timeout, 6 s here, is most of it).
"""
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))

from cluster import Cluster  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

SESSION_MS = 6000


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def health(admin, prefix):
    """(partitions, without a leader, under-replicated) of the topics named `prefix`*."""
    md = admin.list_topics(timeout=30)
    total = leaderless = under = 0
    for name, t in md.topics.items():
        if not name.startswith(prefix):
            continue
        for p in t.partitions.values():
            total += 1
            if p.leader < 0:
                leaderless += 1
            if len(p.isrs) < len(p.replicas):
                under += 1
    return total, leaderless, under


def wait(what, cond, timeout=600, every=0.05):
    start = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(every)


def main():
    partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rf = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per_topic = max(1, partitions // 100)
    c = Cluster(overrides={"auto.leader.rebalance.enable": "false",
                           "zookeeper.session.timeout.ms": SESSION_MS,
                           "replica.lag.time.max.ms": 30000,
                           "default.replication.factor": rf,
                           "min.insync.replicas": 1}).start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap, "socket.timeout.ms": 60000})
        start = time.monotonic()
        names = [f"scale-{i:03d}" for i in range(100)]
        for i in range(0, 100, 10):
            fs = admin.create_topics([NewTopic(n, num_partitions=per_topic, replication_factor=rf)
                                      for n in names[i:i + 10]], operation_timeout=120,
                                     request_timeout=180)
            for f in fs.values():
                f.result(300)
        led = time.monotonic() - start
        synced = led + wait("every partition in sync",
                            lambda: health(admin, "scale-")[1:] == (0, 0), every=0.5)
        total = health(admin, "scale-")[0]
        print(f"create: {total} partitions x {rf} replicas: all led after {led:.1f} s, "
              f"all in sync after {synced:.1f} s")
        time.sleep(3)
        print("rss: " + ", ".join(f"broker {i} {rss_mb(c.pid(i)):.0f} MB" for i in c.brokers))
        took = []
        for k in range(5):
            t = f"scale-probe-{k}"
            admins = [AdminClient({"bootstrap.servers": b.bootstrap}) for b in c.brokers.values()]
            t0 = time.monotonic()
            one = AdminClient({"bootstrap.servers": c.brokers[1].bootstrap})
            one.create_topics([NewTopic(t, num_partitions=1, replication_factor=rf)],
                              operation_timeout=0)[t].result(60)

            def seen_everywhere():
                for a in admins:
                    p = a.list_topics(t, timeout=10).topics[t].partitions
                    if not p or p[0].leader < 0:
                        return False
                return True
            wait("the probe topic everywhere", seen_everywhere, timeout=60, every=0.005)
            took.append(time.monotonic() - t0)
        print(f"propagation: new topic visible with a leader on all brokers: median "
              f"{statistics.median(took) * 1000:.0f} ms (runs {[round(x * 1000) for x in took]})")
        # A rolling restart's step: controlled shutdown (leadership moved away, the broker
        # leaves every ISR), then start-up until every partition is fully in sync again.
        t0 = time.monotonic()
        c.brokers[3].stop(timeout=300)
        down = time.monotonic() - t0
        under = health(admin, "scale-")[2]
        t0 = time.monotonic()
        c.restart(3)
        up = time.monotonic() - t0
        back = up + wait("the restarted broker back in sync",
                         lambda: health(admin, "scale-")[1:] == (0, 0), every=0.5)
        print(f"restart: broker 3 stopped (controlled shutdown) in {down:.1f} s "
              f"({under} partitions under-replicated), started and serving after {up:.1f} s, "
              f"every partition in sync after {back:.1f} s")
        controller = admin.list_topics(timeout=30).controller_id
        survivor = next(i for i in c.brokers if i != controller)
        watch = AdminClient({"bootstrap.servers": c.brokers[survivor].bootstrap,
                             "socket.timeout.ms": 60000})
        c.kill9(controller)
        t0 = time.monotonic()

        def led_elsewhere():
            md = watch.list_topics(timeout=30)
            return all(p.leader not in (-1, controller)
                       for n, t in md.topics.items() if n.startswith("scale-")
                       for p in t.partitions.values())
        took = wait("new leaders for the dead controller's partitions", led_elsewhere,
                    every=0.1)
        print(f"failover: controller {controller} killed -9, every partition led by a live "
              f"broker after {took:.1f} s (session timeout {SESSION_MS / 1000:.0f} s)")
    finally:
        c.stop()
        c.cleanup()


if __name__ == "__main__":
    main()

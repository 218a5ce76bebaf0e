"""Replication under faults: a workload of confluent-kafka clients against a three-broker Ringlet
cluster on ZooKeeper, a fault schedule, and a checker over everything the clients saw.

Workload: an idempotent acks=all producer writing unique values, a consumer reading every
partition from the start (auto.offset.reset=error, so a reset is an anomaly, not a silent
re-read), and a sampler of each partition's high watermark (ListOffsets latest).

Faults (each one checks what it must cause):
  kill9_leader      kill -9 a partition leader, restart it later
  pause_follower    SIGSTOP a follower: the ISR shrinks; SIGCONT: it rejoins
  min_isr           cut the leader's replication link: the ISR drops to the leader alone, an
                    acks=all produce fails with NOT_ENOUGH_REPLICAS and the high watermark stands
  zombie_leader     SIGSTOP a leader past its ZooKeeper session: a new leader is elected; on
                    SIGCONT the old one is fenced (it leads nothing, its ISR writes fail)
  kill9_controller  kill -9 the controller: another broker becomes controller
  sigterm_leader    controlled shutdown of a leader: leadership moves before the process exits
  kill9_follower_then_leader
                    kill -9 a follower and restart it at once (still in the ISR), then kill -9
                    the leader before the follower has caught up: the next leader may be that
                    follower, and it must have everything that was acknowledged
  power_loss_leader (with power_loss=True: every broker's log.dirs on its own ringlet-powerfail
                    file system) kill -9 a leader and cut its power: what it had not fsynced is
                    gone (default flushing); it restarts, truncates to the new leader's log and
                    catches up, and nothing acknowledged with acks=all is lost

With netns=True (issue 26 item 2) ZooKeeper and each broker run on their own network namespace
(tests/e2e/netns.py) and these network faults are drawn instead of the proxy cut:
  zk_isolated_leader        a leader cut off from ZooKeeper only (clients and brokers still reach
                            it): its session expires, another replica leads, the old one stops
                            leading; healed, it registers again and rejoins the ISR
  leader_cut_from_followers a leader cut off from the other brokers only (ZooKeeper and clients
                            still reach it): the ISR shrinks to the leader, acks=all writes are
                            refused (min.insync.replicas=2); healed, the followers rejoin
  one_way_to_followers      the leader's packets to the other brokers dropped, theirs to it
                            delivered (fetch requests arrive, answers never do): the ISR shrinks
  split_brain_leader        a leader cut off from ZooKeeper and the other brokers while clients
                            still reach it: a new leader is elected, the old one acknowledges
                            nothing more; healed, it truncates to the new leader's log
  zk_isolated_controller    the controller cut off from ZooKeeper: another broker takes over
  lossy_leader              30 % of the leader's packets to everyone dropped at random for a few
                            seconds (no netem here, so loss without delay): writes go on
  slow_leader               the leader's outgoing link limited to 1 Mbit/s (tc tbf: what exceeds
                            it queues up to 200 ms, then drops) for a few seconds: writes go on

Checks at the end, after healing: every acknowledged (partition, offset, value) is in the final
log; no offset holds two values in anything read or acknowledged; every record a consumer read
is at the same offset in the final log (nothing read was later truncated); no value refused with
NOT_ENOUGH_REPLICAS is ever read; no duplicate values; high watermarks and consumer offsets never
went backwards; the three replicas of every partition are byte-for-byte identical.

With `idempotent=False` (issue 26 item 5) the producer is at-least-once: duplicates are allowed,
but only where the client retried (librdkafka's statistics count its retried requests), and the
checker says why each happened: its copies lie in different leader epochs (a retry of a request
whose answer died with its leader) or in the same one (a retry to a leader that wrote the first
attempt but answered too late, e.g. a paused leader).

Run as a script for longer randomized campaigns:
    RINGLET_BIN=target/release/ringlet python3 tests/e2e/replication_check.py --runs 5 --faults 12
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster  # noqa: E402

TOPIC = "jepsen"
FAULTS = ["kill9_leader", "pause_follower", "min_isr", "zombie_leader", "kill9_controller",
          "sigterm_leader"]
# Drawn in randomized campaigns too: two faults back to back.
DOUBLE_FAULTS = ["kill9_follower_then_leader"]
# With netns=True: faults of the network between namespaces (tests/e2e/netns.py).
NET_FAULTS = ["zk_isolated_leader", "leader_cut_from_followers", "one_way_to_followers",
              "split_brain_leader", "zk_isolated_controller", "lossy_leader", "slow_leader"]


class PartitionMd:
    def __init__(self, d):
        self.leader = d.get("leader", -1)
        self.replicas = [r["id"] for r in d.get("replicas", [])]
        self.isrs = [r["id"] for r in d.get("isrs", [])]


class Metadata:
    def __init__(self, md):
        self.controller_id = md.get("controllerid", -1)
        self.brokers = [b["id"] for b in md.get("brokers", [])]
        t = (md.get("topics") or [{}])[0]
        self.partitions = {p["partition"]: PartitionMd(p) for p in t.get("partitions", [])}


class Run:
    def __init__(self, cluster, partitions, seed, log, idempotent=True):
        self.c = cluster
        self.idempotent = idempotent
        self.retries = 0         # retried produce requests (librdkafka's statistics)
        self.transmitted = 0     # messages transmitted, each attempt counted
        self.partitions = partitions
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = log or (lambda *a: None)
        self.lock = threading.Lock()
        self.acked = {}          # (p, offset) -> value
        self.acked_values = set()
        # Acknowledged without an offset: librdkafka's idempotent producer reports a message as
        # delivered with an unknown offset when it learns from a later response that the broker
        # already has it (a retry answered by sequence). Checked by value.
        self.acked_no_offset = set()
        self.failed = []         # (value, error) indeterminate
        self.refused = set()     # values refused with NOT_ENOUGH_REPLICAS (never appended)
        self.reads = []          # (p, offset, value)
        self.anomalies = []
        self.faults = []         # (name, details)
        self.hw_samples = 0
        self.stop = threading.Event()
        self.sent = 0
        self.paused = set()
        # Brokers cut off from ZooKeeper: their metadata may be stale (a zombie's), so it is
        # asked of the others.
        self.isolated = set()

    def anomaly(self, what):
        with self.lock:
            self.anomalies.append(what)
        self.log("ANOMALY", what)

    # --- metadata -------------------------------------------------------------------------
    # Asked of one broker that is running (kcat -L -J), never of a paused one: a client library
    # would wait on a paused broker's open connection.
    def metadata(self):
        for _ in range(30):
            for i, b in self.rng_order():
                if not b.alive() or i in self.paused or i in self.isolated:
                    continue
                try:
                    out = subprocess.run(["kcat", "-L", "-J", "-m", "2", "-b", b.bootstrap, "-t", TOPIC],
                                         capture_output=True, text=True, timeout=5).stdout
                    md = json.loads(out)
                except Exception:  # noqa: BLE001
                    continue
                if md.get("brokers"):
                    return Metadata(md)
            time.sleep(0.1)
        raise RuntimeError("no metadata")

    def rng_order(self):
        items = list(self.c.brokers.items())
        random.shuffle(items)
        return items

    def partition_md(self, p):
        return self.metadata().partitions[p]

    def wait(self, cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                v = cond()
                if v:
                    return v
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.1)
        self.log("timed out waiting for", what)
        return None

    # --- workload -------------------------------------------------------------------------
    def producer_loop(self):
        def stats(js):
            # Retried requests, and messages sent more than once (a message whose request died
            # with its connection is sent again without counting as a request retry).
            s = json.loads(js)
            with self.lock:
                requests = sum(b.get("txretries", 0) for b in s.get("brokers", {}).values())
                self.retries = max(self.retries, requests)
                self.transmitted = max(self.transmitted, s.get("txmsgs", 0))

        p = Producer({"bootstrap.servers": self.c.bootstrap, "acks": "all",
                      "enable.idempotence": self.idempotent, "compression.type": "none",
                      "message.timeout.ms": 60000, "linger.ms": 5, "retry.backoff.ms": 100,
                      "topic.metadata.refresh.interval.ms": 1000,
                      "statistics.interval.ms": 500, "stats_cb": stats})
        i = 0

        def cb(err, msg, value):
            with self.lock:
                if err is None and (msg.offset() is None or msg.offset() < 0):
                    self.acked_no_offset.add((msg.partition(), value))
                    self.acked_values.add(value)
                elif err is None:
                    k = (msg.partition(), msg.offset())
                    old = self.acked.get(k)
                    if old is not None and old != value:
                        self.anomalies.append(f"two values acknowledged at {k}: {old!r} {value!r}")
                    self.acked[k] = value
                    self.acked_values.add(value)
                else:
                    self.failed.append((value, str(err)))

        while not self.stop.is_set():
            value = f"{self.seed}-{i}".encode()
            try:
                p.produce(TOPIC, value=value, partition=i % self.partitions,
                          on_delivery=lambda e, m, v=value: cb(e, m, v))
                i += 1
            except BufferError:
                pass
            p.poll(0.002)
        self.sent = i
        left = p.flush(90)
        if left:
            self.log("producer: undelivered after flush", left)
        # One more statistics report, with every attempt counted.
        deadline = time.time() + 1.2
        while time.time() < deadline:
            p.poll(0.1)
        with self.lock:
            self.retries = max(self.retries, self.transmitted - i)

    def consumer_loop(self):
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": f"check-{self.seed}",
                      "enable.auto.commit": False, "auto.offset.reset": "error",
                      "fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 1000})
        c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        last = {}
        while not self.stop.is_set():
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._AUTO_OFFSET_RESET:
                    self.anomaly(f"consumer offset reset: {m.error()}")
                continue
            p, off = m.partition(), m.offset()
            if off <= last.get(p, -1):
                self.anomaly(f"consumer offsets went backwards on {p}: {last[p]} then {off}")
            last[p] = off
            with self.lock:
                self.reads.append((p, off, m.value()))
        c.close()

    def sampler_loop(self):
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": f"hw-{self.seed}",
                      "enable.auto.commit": False})
        last = {}
        while not self.stop.is_set():
            for p in range(self.partitions):
                try:
                    _, high = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=1,
                                                      cached=False)
                except Exception:  # noqa: BLE001
                    continue
                if high < last.get(p, -1):
                    self.anomaly(f"high watermark went backwards on {p}: {last[p]} then {high}")
                last[p] = max(high, last.get(p, -1))
                self.hw_samples += 1
            time.sleep(0.25)
        c.close()

    # --- faults ---------------------------------------------------------------------------
    def leader_of(self, p):
        return self.wait(lambda: (lambda l: l if l >= 0 else None)(self.partition_md(p).leader),
                         20, f"a leader for {p}")

    def fault(self, name):
        p = self.rng.randrange(self.partitions)
        # Each fault starts from a healthy cluster: every replica in sync.
        self.wait(lambda: all(len(self.partition_md(q).isrs) == 3 for q in range(self.partitions)),
                  30, "full ISRs before the next fault")
        t0 = time.time()
        d = getattr(self, name)(p)
        d["seconds"] = round(time.time() - t0, 1)
        self.faults.append((name, d))
        self.log("fault", name, d)
        return d

    def power_loss_leader(self, p):
        old = self.leader_of(p)
        self.c.kill9(old)
        self.disks[old].cut()
        new = self.wait(lambda: (lambda l: l if l not in (-1, old) else None)(self.partition_md(p).leader),
                        20, "a new leader")
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.c.restart(old)
        return {"partition": p, "power_lost": old, "new_leader": new, "ok": new is not None}

    # --- network faults (netns clusters) ---------------------------------------------------
    def _new_leader(self, p, old, timeout, what="a new leader"):
        return self.wait(lambda: (lambda l: l if l not in (-1, old) else None)(self.partition_md(p).leader),
                         timeout, what)

    def _heal_and_rejoin(self, p, broker):
        self.c.net.heal()
        self.isolated.discard(broker)
        return bool(self.wait(lambda: broker in self.partition_md(p).isrs, 40, f"{broker} back in the ISR"))

    def zk_isolated_leader(self, p):
        net, old = self.c.net, self.leader_of(p)
        net.block(self.c.host(old), net.hosts["zk"])
        self.isolated.add(old)
        t0 = time.time()
        new = self._new_leader(p, old, 30)
        moved = round(time.time() - t0, 1)
        ended = self.wait(lambda: "ZooKeeper session ended" in self.c.brokers[old].read_log(),
                          20, "the isolated broker to see its session end")
        time.sleep(self.rng.uniform(0.5, 1.5))
        rejoined = self._heal_and_rejoin(p, old)
        ok = new is not None and bool(ended) and rejoined
        if not ok:
            self.anomaly(f"leader {old} of {p} cut from ZooKeeper: new leader {new}, "
                         f"session ended {bool(ended)}, rejoined {rejoined}")
        return {"partition": p, "isolated": old, "new_leader": new, "leader_moved_s": moved,
                "session_ended": bool(ended), "rejoined_isr": rejoined, "ok": ok}

    def _refused_while_alone(self, p, leader):
        """Writes acks=all to `p` while its ISR is the leader alone: each must be refused."""
        probe = Producer({"bootstrap.servers": self.c.bootstrap, "acks": "all",
                          "enable.idempotence": False, "retries": 0, "message.timeout.ms": 4000})
        results = []
        for i in range(3):
            v = f"refused-{self.seed}-{p}-{len(self.faults)}-{i}".encode()
            probe.produce(TOPIC, value=v, partition=p,
                          on_delivery=lambda e, m, v=v: results.append((v, e)))
        probe.flush(10)
        codes = []
        for v, e in results:
            codes.append(e.code() if e else 0)
            if e is not None and e.code() == KafkaError.NOT_ENOUGH_REPLICAS:
                self.refused.add(v)
            elif e is None:
                self.anomaly(f"acks=all produce to {p} succeeded with ISR [{leader}] < min.insync.replicas")
            else:
                with self.lock:
                    self.failed.append((v, str(e)))
        return codes

    def leader_cut_from_followers(self, p):
        net, leader = self.c.net, self.leader_of(p)
        for i in self.c.brokers:
            if i != leader:
                net.block(self.c.host(leader), self.c.host(i))
        alone = self.wait(lambda: self.partition_md(p).isrs == [leader], 15, "ISR = leader only")
        codes = self._refused_while_alone(p, leader) if alone else []
        still = self.partition_md(p).leader
        rejoined = all(self._heal_and_rejoin(p, i) for i in self.c.brokers if i != leader)
        ok = bool(alone) and rejoined and all(c == KafkaError.NOT_ENOUGH_REPLICAS for c in codes)
        if not ok:
            self.anomaly(f"leader {leader} of {p} cut from its followers: isr_alone={bool(alone)} "
                         f"codes={codes} rejoined={rejoined}")
        return {"partition": p, "leader": leader, "isr_alone": bool(alone), "codes": codes,
                "leader_during": still, "rejoined": rejoined, "ok": ok}

    def one_way_to_followers(self, p):
        net, leader = self.c.net, self.leader_of(p)
        for i in self.c.brokers:
            if i != leader:
                net.block(self.c.host(leader), self.c.host(i), one_way=True)
        alone = self.wait(lambda: self.partition_md(p).isrs == [leader], 15, "ISR = leader only")
        time.sleep(self.rng.uniform(0.5, 1.5))
        rejoined = all(self._heal_and_rejoin(p, i) for i in self.c.brokers if i != leader)
        ok = bool(alone) and rejoined
        if not ok:
            self.anomaly(f"leader {leader} of {p} unheard by its followers: isr_alone={bool(alone)} "
                         f"rejoined={rejoined}")
        return {"partition": p, "leader": leader, "isr_alone": bool(alone), "rejoined": rejoined,
                "ok": ok}

    def split_brain_leader(self, p):
        net, old = self.c.net, self.leader_of(p)
        net.block(self.c.host(old), net.hosts["zk"])
        for i in self.c.brokers:
            if i != old:
                net.block(self.c.host(old), self.c.host(i))
        self.isolated.add(old)
        new = self._new_leader(p, old, 30)
        time.sleep(self.rng.uniform(1.0, 3.0))
        rejoined = self._heal_and_rejoin(p, old)
        ok = new is not None and rejoined
        if not ok:
            self.anomaly(f"leader {old} of {p} split from the cluster: new leader {new}, rejoined {rejoined}")
        return {"partition": p, "isolated": old, "new_leader": new, "rejoined_isr": rejoined, "ok": ok}

    def zk_isolated_controller(self, p):
        net = self.c.net
        old = self.wait(lambda: (lambda c: c if c >= 0 else None)(self.metadata().controller_id),
                        20, "a controller")
        net.block(self.c.host(old), net.hosts["zk"])
        self.isolated.add(old)
        new = self.wait(lambda: (lambda c: c if c not in (-1, old) else None)(self.metadata().controller_id),
                        30, "a new controller")
        led = self.wait(lambda: all(self.partition_md(q).leader not in (-1, old)
                                    for q in range(self.partitions)), 20, "leaders away from the cut-off controller")
        time.sleep(self.rng.uniform(0.3, 1.0))
        self.c.net.heal()
        self.isolated.discard(old)
        back = self.wait(lambda: all(len(self.partition_md(q).isrs) == 3 for q in range(self.partitions)),
                         40, "full ISRs after the controller's cut healed")
        ok = new is not None and bool(led) and bool(back)
        if not ok:
            self.anomaly(f"controller {old} cut from ZooKeeper: new controller {new}, "
                         f"leaders moved {bool(led)}, ISRs full again {bool(back)}")
        return {"isolated_controller": old, "new_controller": new, "ok": ok}

    def lossy_leader(self, p):
        net, leader = self.c.net, self.leader_of(p)
        for h in net.hosts.values():
            if h is not self.c.host(leader):
                net.loss(self.c.host(leader), h, 30)
        net.loss(self.c.host(leader), None, 30)
        with self.lock:
            before = len(self.acked)
        time.sleep(self.rng.uniform(3.0, 5.0))
        with self.lock:
            during = len(self.acked) - before
        self.c.net.heal()
        back = self.wait(lambda: len(self.partition_md(p).isrs) == 3, 40, "full ISR after the loss")
        ok = during > 0 and bool(back)
        if not ok:
            self.anomaly(f"30% loss on leader {leader}: {during} acknowledged meanwhile, ISR full again {bool(back)}")
        return {"partition": p, "leader": leader, "acknowledged_during": during, "ok": ok}

    def slow_leader(self, p):
        net, leader = self.c.net, self.leader_of(p)
        net.slow(self.c.host(leader), "1mbit")
        with self.lock:
            before = len(self.acked)
        time.sleep(self.rng.uniform(3.0, 5.0))
        with self.lock:
            during = len(self.acked) - before
        self.c.net.heal()
        back = self.wait(lambda: len(self.partition_md(p).isrs) == 3, 40, "full ISR after the slow link")
        ok = during > 0 and bool(back)
        if not ok:
            self.anomaly(f"leader {leader} on a 1 Mbit/s link: {during} acknowledged meanwhile, "
                         f"ISR full again {bool(back)}")
        return {"partition": p, "leader": leader, "acknowledged_during": during, "ok": ok}

    def kill9_leader(self, p):
        old = self.leader_of(p)
        self.c.kill9(old)
        new = self.wait(lambda: (lambda l: l if l not in (-1, old) else None)(self.partition_md(p).leader),
                        20, "a new leader")
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.c.restart(old)
        return {"partition": p, "killed": old, "new_leader": new, "ok": new is not None}

    def pause_follower(self, p):
        leader = self.leader_of(p)
        md = self.partition_md(p)
        f = self.rng.choice([b for b in md.replicas if b != leader])
        self.c.signal(f, signal.SIGSTOP)
        self.paused.add(f)
        shrunk = self.wait(lambda: f not in self.partition_md(p).isrs, 2.5, "ISR shrink")
        self.c.signal(f, signal.SIGCONT)
        self.paused.discard(f)
        expanded = self.wait(lambda: f in self.partition_md(p).isrs, 20, "ISR expand")
        if not shrunk:
            self.anomaly(f"ISR of {p} did not drop paused follower {f}")
        if not expanded:
            self.anomaly(f"follower {f} did not rejoin the ISR of {p}")
        return {"partition": p, "follower": f, "shrunk": bool(shrunk), "expanded": bool(expanded),
                "ok": bool(shrunk and expanded)}

    def min_isr(self, p):
        leader = self.leader_of(p)
        self.c.proxies[leader].cut()
        alone = self.wait(lambda: self.partition_md(p).isrs == [leader], 10, "ISR = leader only")
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": "probe"})
        hw0 = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5, cached=False)[1]
        probe = Producer({"bootstrap.servers": self.c.bootstrap, "acks": "all",
                          "enable.idempotence": False, "retries": 0, "message.timeout.ms": 3000})
        results = []
        values = [f"refused-{self.seed}-{p}-{i}".encode() for i in range(5)]
        for v in values:
            probe.produce(TOPIC, value=v, partition=p,
                          on_delivery=lambda e, m, v=v: results.append((v, e)))
        probe.flush(10)
        codes = [e.code() if e else 0 for _, e in results]
        time.sleep(0.5)
        hw1 = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5, cached=False)[1]
        c.close()
        for v, e in results:
            if e is not None and e.code() == KafkaError.NOT_ENOUGH_REPLICAS:
                self.refused.add(v)
            elif e is None:
                self.anomaly(f"acks=all produce to {p} succeeded with ISR [{leader}] < min.insync.replicas")
            else:
                with self.lock:
                    self.failed.append((v, str(e)))
        self.c.proxies[leader].heal()
        back = self.wait(lambda: len(self.partition_md(p).isrs) == 3, 20, "ISR back to 3")
        ok = bool(alone) and all(cd == KafkaError.NOT_ENOUGH_REPLICAS for cd in codes) and hw1 == hw0
        if not ok:
            self.anomaly(f"min.insync.replicas: isr_alone={bool(alone)} codes={codes} hw {hw0}->{hw1}")
        return {"partition": p, "leader": leader, "isr_alone": bool(alone), "codes": codes,
                "hw_before": hw0, "hw_after": hw1, "isr_restored": bool(back), "ok": ok}

    def zombie_leader(self, p):
        old = self.leader_of(p)
        self.c.signal(old, signal.SIGSTOP)
        self.paused.add(old)
        new = self.wait(lambda: (lambda l: l if l not in (-1, old) else None)(self.partition_md(p).leader),
                        25, "a new leader while the old one is paused")
        time.sleep(0.5)
        self.c.signal(old, signal.SIGCONT)
        self.paused.discard(old)
        fenced = self.wait(lambda: "fenced: no longer leading" in self.c.brokers[old].read_log()
                           or "ZooKeeper session ended" in self.c.brokers[old].read_log(),
                           15, "the old leader to notice it was fenced")
        rejoined = self.wait(lambda: old in self.partition_md(p).isrs, 30, "old leader back in ISR")
        ok = new is not None and bool(fenced)
        if not ok:
            self.anomaly(f"zombie leader {old} of {p}: new leader {new}, fenced {bool(fenced)}")
        return {"partition": p, "paused": old, "new_leader": new, "fenced": bool(fenced),
                "rejoined_isr": bool(rejoined), "ok": ok}

    def kill9_follower_then_leader(self, p):
        leader = self.leader_of(p)
        md = self.partition_md(p)
        f = self.rng.choice([b for b in md.replicas if b != leader])
        self.c.kill9(f)
        self.c.restart(f)
        time.sleep(self.rng.uniform(0.0, 0.5))
        self.c.kill9(leader)
        new = self.wait(lambda: (lambda l: l if l not in (-1, leader) else None)(self.partition_md(p).leader),
                        20, "a new leader")
        time.sleep(self.rng.uniform(0.5, 1.5))
        self.c.restart(leader)
        return {"partition": p, "follower": f, "leader": leader, "new_leader": new,
                "ok": new is not None}

    def kill9_controller(self, p):
        old = self.wait(lambda: (lambda c: c if c >= 0 else None)(self.metadata().controller_id),
                        20, "a controller")
        self.c.kill9(old)
        new = self.wait(lambda: (lambda c: c if c not in (-1, old) else None)(self.metadata().controller_id),
                        20, "a new controller")
        # The new controller must also move the partitions the old one led.
        led = self.wait(lambda: all(self.partition_md(q).leader not in (-1, old)
                                    for q in range(self.partitions)), 20, "leaders after controller kill")
        time.sleep(self.rng.uniform(0.3, 1.0))
        self.c.restart(old)
        ok = new is not None and bool(led)
        if not ok:
            self.anomaly(f"controller {old} killed: new controller {new}, leaders moved {bool(led)}")
        return {"killed_controller": old, "new_controller": new, "ok": ok}

    def sigterm_leader(self, p):
        old = self.leader_of(p)
        t0 = time.time()
        b = self.c.brokers[old]
        code = b.stop(signal.SIGTERM, timeout=60)
        exited = round(time.time() - t0, 2)
        # Leadership moved before the exit (the broker saw it in ZooKeeper, then exited), and
        # every broker's metadata shows the new leader promptly.
        said = "controlled shutdown: leadership moved away" in b.read_log()
        leader = self.wait(lambda: (lambda l: l if l not in (-1, old) else None)(self.partition_md(p).leader),
                           3, "the new leader in metadata")
        self.c.restart(old)
        ok = said and leader is not None and code == 0
        if not ok:
            self.anomaly(f"controlled shutdown of {old}: moved-away logged {said}, "
                         f"partition {p} leader after exit {leader}, exit code {code}")
        return {"partition": p, "stopped": old, "exit_code": code, "exit_seconds": exited,
                "leader_after": leader, "ok": ok}

    # --- final checks ---------------------------------------------------------------------
    def heal_and_check(self):
        if self.c.net:
            self.c.net.heal()
        self.isolated.clear()
        for i, b in self.c.brokers.items():
            if not b.alive():
                self.c.restart(i)
            if i in self.c.proxies:
                self.c.proxies[i].heal()
        full = self.wait(lambda: all(len(self.partition_md(p).isrs) == 3
                                     for p in range(self.partitions)), 60, "full ISRs")
        final, epochs = {}, {}
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": f"final-{self.seed}",
                      "enable.auto.commit": False, "auto.offset.reset": "error"})
        ends = {}
        for p in range(self.partitions):
            ends[p] = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10, cached=False)[1]
        c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        pos = {p: 0 for p in range(self.partitions)}
        deadline = time.time() + 120
        while any(pos[p] < ends[p] for p in pos) and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            final[(m.partition(), m.offset())] = m.value()
            epochs[(m.partition(), m.offset())] = m.leader_epoch()
            pos[m.partition()] = m.offset() + 1
        c.close()
        read_to_end = all(pos[p] >= ends[p] for p in pos)
        if not read_to_end:
            self.anomaly(f"final read stopped at {pos}, ends {ends}")
        lost = [(k, v) for k, v in self.acked.items() if final.get(k) != v]
        if lost:
            self.anomaly(f"{len(lost)} acknowledged records lost or changed, e.g. {lost[:3]}")
        changed = [(p, o, v) for p, o, v in self.reads if final.get((p, o), v) != v
                   or (p, o) not in final]
        if changed:
            self.anomaly(f"{len(changed)} records read were later truncated or changed, e.g. {changed[:3]}")
        seen = {}
        copies = {}
        dups = 0
        for k, v in final.items():
            if v in seen:
                dups += 1
            seen[v] = k
            copies.setdefault(v, []).append(epochs.get(k))
        # Why each duplicate is there: its copies in different leader epochs, or in one.
        dup_epochs = [e for e in copies.values() if len(e) > 1]
        across = sum(len(e) - 1 for e in dup_epochs if len(set(e)) > 1)
        lost_no_offset = [(p, v) for p, v in self.acked_no_offset if seen.get(v, (None,))[0] != p]
        if lost_no_offset:
            self.anomaly(f"{len(lost_no_offset)} records acknowledged without an offset are missing, "
                         f"e.g. {lost_no_offset[:3]}")
        lost = lost + lost_no_offset
        if dups and self.idempotent:
            self.anomaly(f"{dups} duplicate values in the final log")
        elif dups and not self.retries:
            self.anomaly(f"{dups} duplicate values in the final log, and the producer never retried")
        refused_read = [v for v in self.refused if v in seen]
        if refused_read:
            self.anomaly(f"values refused with NOT_ENOUGH_REPLICAS were read: {refused_read[:3]}")
        # Replicas must be byte-for-byte identical once caught up.
        time.sleep(1.0)
        diverged = []
        for p in range(self.partitions):
            for _ in range(20):
                logs = self.c.replica_logs(TOPIC, p)
                if len(set(logs.values())) == 1:
                    break
                time.sleep(0.5)
            else:
                diverged.append({i: len(v) for i, v in logs.items()})
        if diverged:
            self.anomaly(f"replica logs differ: {diverged}")
        logs = [b.read_log() for b in self.c.brokers.values()]
        return {
            "seed": self.seed,
            "faults": len(self.faults),
            "fault_kinds": sorted({f for f, _ in self.faults}),
            "faults_ok": sum(1 for _, d in self.faults if d.get("ok")),
            "produced": self.sent,
            "acknowledged": len(self.acked) + len(self.acked_no_offset),
            "acknowledged_without_offset": len(self.acked_no_offset),
            "indeterminate": len(self.failed),
            "refused_not_enough_replicas": len(self.refused),
            "consumer_reads": len(self.reads),
            "hw_samples": self.hw_samples,
            "final_records": len(final),
            "full_isr_at_end": bool(full),
            "lost": len(lost),
            "read_then_truncated": len(changed),
            "duplicates": dups,
            "duplicates_across_leader_change": across,
            "duplicates_same_leader_epoch": dups - across,
            "idempotent": self.idempotent,
            "producer_retries": self.retries,
            "replicas_identical": not diverged,
            # What the brokers did about it (from their logs).
            "leader_elections": sum(l.count(", leader epoch ") for l in logs),
            "truncations": sum(l.count("truncating to the leader's log") for l in logs),
            "isr_shrinks": sum(l.count("shrinking the ISR") for l in logs),
            "isr_expands": sum(l.count("expanding the ISR") for l in logs),
            "fenced_leaderships": sum(l.count("fenced: no longer leading") for l in logs),
            "anomalies": self.anomalies,
            "fault_log": self.faults,
        }


def campaign(seed=1, faults=None, nfaults=6, partitions=3, gap=(1.0, 2.5), log=print, overrides=None,
             power_loss=False, idempotent=True, netns=False):
    """One run: a fresh cluster, the workload, the faults (in order, or `nfaults` drawn at random
    with `seed`), then the checks. Returns the checker's summary. With `power_loss`, each broker's
    log.dirs is on its own power-loss file system (tests/e2e/powerfail.py) and
    `power_loss_leader` is among the faults drawn. With `netns`, every host on its own network
    namespace and the network faults (NET_FAULTS) drawn instead of `min_isr`."""
    cluster = Cluster(overrides=overrides, netns=netns)
    disks = {}
    run = None
    try:
        if power_loss:
            from powerfail import PowerFail
            for i, b in cluster.brokers.items():
                disks[i] = PowerFail()
                b.overrides["log.dirs"] = disks[i].dir + "/data"
        cluster.start()
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        fs = admin.create_topics([NewTopic(TOPIC, partitions, 3, config={"min.insync.replicas": "2"})])
        for f in fs.values():
            f.result(30)
        run = Run(cluster, partitions, seed, log, idempotent=idempotent)
        run.disks = disks
        threads = [threading.Thread(target=t, daemon=True)
                   for t in (run.producer_loop, run.consumer_loop, run.sampler_loop)]
        for t in threads:
            t.start()
        time.sleep(2)
        rng = random.Random(seed)
        pool = FAULTS + DOUBLE_FAULTS + (["power_loss_leader"] * 3 if power_loss else [])
        if netns:
            pool = [f for f in pool if f != "min_isr"] + NET_FAULTS * 2
        schedule = list(faults) if faults else [rng.choice(pool) for _ in range(nfaults)]
        for name in schedule:
            run.fault(name)
            time.sleep(rng.uniform(*gap))
        time.sleep(1)
        run.stop.set()
        for t in threads:
            t.join(120)
        return run.heal_and_check()
    finally:
        cluster.stop()
        for d in disks.values():
            d.close()
        if run is not None and not run.anomalies:
            cluster.cleanup()
        elif run is not None:
            print("kept data and logs for inspection:",
                  {i: b.data_dir for i, b in cluster.brokers.items()}, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--faults", type=int, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="append each run's summary (JSON lines)")
    ap.add_argument("--no-idempotence", action="store_true",
                    help="an at-least-once producer: duplicates allowed where it retried")
    ap.add_argument("--power-loss", action="store_true",
                    help="brokers on ringlet-powerfail file systems; power_loss_leader drawn too")
    ap.add_argument("--netns", action="store_true",
                    help="hosts on network namespaces; the network faults drawn too")
    a = ap.parse_args()
    base = a.seed if a.seed is not None else random.randrange(1 << 30)
    totals = {"runs": 0, "faults": 0, "acknowledged": 0, "lost": 0, "duplicates": 0, "anomalies": 0}
    for r in range(a.runs):
        seed = base + r
        print(f"== run {r + 1}/{a.runs} seed {seed}", flush=True)
        s = campaign(seed=seed, nfaults=a.faults, log=lambda *x: print(" ", *x, flush=True),
                     power_loss=a.power_loss, idempotent=not a.no_idempotence, netns=a.netns)
        print(json.dumps({k: v for k, v in s.items() if k != "fault_log"}), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(s) + "\n")
        totals["runs"] += 1
        totals["faults"] += s["faults"]
        totals["acknowledged"] += s["acknowledged"]
        totals["lost"] += s["lost"]
        totals["duplicates"] += s["duplicates"]
        totals["anomalies"] += len(s["anomalies"])
    print("TOTAL", json.dumps(totals))
    sys.exit(1 if totals["anomalies"] else 0)


if __name__ == "__main__":
    main()

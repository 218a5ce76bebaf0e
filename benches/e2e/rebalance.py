"""Rebalance time when an 11th member joins a group of 10 (issue 24 item 4), for one broker and
one group protocol: librdkafka consumers (confluent-kafka) in one process, a 44-partition topic
under a light produce load; the clock runs from the 11th member's subscribe() until every member
owns 4 partitions, none owned twice. Client and broker timers are left at their defaults (the
classic protocol: eager `range,roundrobin` or `cooperative-sticky`; KIP-848: the broker's 5 s
heartbeat interval), since they are what an application sees.

  python3 benches/e2e/rebalance.py BOOTSTRAP classic|cooperative|consumer [ROUNDS]

Prints one line per round (milliseconds) and the median."""
import statistics
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS, MEMBERS = 44, 10


def member(bootstrap, group, protocol):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "latest",
            "enable.auto.commit": True}
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    elif protocol == "cooperative":
        conf["partition.assignment.strategy"] = "cooperative-sticky"
    return Consumer(conf)


def owned(c):
    return {tp.partition for tp in c.assignment()}


def balanced(consumers):
    sets = [owned(c) for c in consumers]
    return (sum(map(len, sets)) == PARTITIONS and len(set().union(*sets)) == PARTITIONS
            and all(len(s) == PARTITIONS // len(consumers) for s in sets))


def settle(consumers, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in consumers:
            c.poll(0.01)
        if balanced(consumers):
            return True
    return False


def one_round(bootstrap, topic, protocol):
    group = f"rebalance-{uuid.uuid4().hex[:8]}"
    consumers = [member(bootstrap, group, protocol) for _ in range(MEMBERS)]
    for c in consumers:
        c.subscribe([topic])
    # Ten members settled first (10 over 44 partitions: 4 or 5 each).
    deadline = time.time() + 120
    while time.time() < deadline:
        for c in consumers:
            c.poll(0.01)
        sets = [owned(c) for c in consumers]
        if sum(map(len, sets)) == PARTITIONS and len(set().union(*sets)) == PARTITIONS \
                and all(sets):
            break
    else:
        raise SystemExit("ten members never settled")
    eleventh = member(bootstrap, group, protocol)
    start = time.time()
    eleventh.subscribe([topic])
    consumers.append(eleventh)
    if not settle(consumers):
        raise SystemExit("eleven members never settled")
    took = (time.time() - start) * 1000
    for c in consumers:
        c.close()
    return took


def main():
    bootstrap, protocol = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    topic = f"rebalance-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[
        topic].result(30)
    stop = threading.Event()

    def load():
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        while not stop.is_set():
            for i in range(PARTITIONS):
                p.produce(topic, value=b"x" * 100, partition=i)
            p.poll(0)
            time.sleep(0.05)
        p.flush(10)

    t = threading.Thread(target=load)
    t.start()
    times = []
    try:
        for r in range(rounds):
            ms = one_round(bootstrap, topic, protocol)
            times.append(ms)
            print(f"{protocol} round {r + 1}: {ms:.0f} ms", flush=True)
    finally:
        stop.set()
        t.join()
    print(f"{protocol} median: {statistics.median(times):.0f} ms")


if __name__ == "__main__":
    main()

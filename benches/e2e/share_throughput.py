"""Share-group read throughput on one partition (issue 24 item 4): N share consumers
(confluent-kafka `ShareConsumer`, one process each, implicit acknowledgement, librdkafka
defaults) of one share group drain a one-partition topic of RECORDS records of 100 bytes; the
clock runs from the moment every consumer is polling until the group has received them all.
The baseline, in the same run on the same topic: one classic consumer reading it all.

  python3 benches/e2e/share_throughput.py BOOTSTRAP [RECORDS] [CONSUMERS...]

Prints one line per configuration: records/s, and the ratio to the classic consumer."""
import multiprocessing as mp
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, ShareConsumer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)


def fill(bootstrap, topic, n):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 262144})
    value = b"x" * 100
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


def share_worker(bootstrap, group, topic, ready, go, counter, total):
    import os
    conf = {"bootstrap.servers": bootstrap, "group.id": group}
    if os.environ.get("RDK_DEBUG"):
        conf["debug"] = os.environ["RDK_DEBUG"]
    c = ShareConsumer(conf)
    c.subscribe([topic])
    ready.release()
    go.wait()
    while counter.value < total:
        msgs = c.poll(0.2) or []
        got = sum(1 for m in msgs if m.error() is None)
        if got:
            with counter.get_lock():
                counter.value += got
    c.close()


def share_run(bootstrap, topic, n, consumers):
    group = f"share-bench-{uuid.uuid4().hex[:8]}"
    a = AdminClient({"bootstrap.servers": bootstrap})
    r = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest",
                    incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([r])[r].result(30)
    ready, go = mp.Semaphore(0), mp.Event()
    counter = mp.Value("q", 0)
    procs = [mp.Process(target=share_worker, args=(bootstrap, group, topic, ready, go, counter, n))
             for _ in range(consumers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    start = time.time()
    go.set()
    while counter.value < n:
        time.sleep(0.01)
        if time.time() - start > 300:
            raise SystemExit(f"{consumers} share consumers: {counter.value} of {n} in 300 s")
    took = time.time() - start
    for p in procs:
        p.join(30)
    return n / took


def classic_run(bootstrap, topic, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"classic-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, start = 0, None
    while got < n:
        for m in c.consume(1000, 0.2):
            if m.error() is None:
                start = start or time.time()
                got += 1
    took = time.time() - start
    c.close()
    return n / took


def main():
    bootstrap = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    sizes = [int(x) for x in sys.argv[3:]] or [1, 4, 16]
    topic = f"share-bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    fill(bootstrap, topic, n)
    base = classic_run(bootstrap, topic, n)
    print(f"classic consumer: {base:.0f} records/s")
    for k in sizes:
        rate = share_run(bootstrap, topic, n, k)
        print(f"{k} share consumers: {rate:.0f} records/s ({rate / base:.2f} of classic)")


if __name__ == "__main__":
    mp.set_start_method("spawn")
    main()

"""Kill -9 campaign: an idempotent confluent-kafka producer (acks=all) writes numbered records to
several partitions while the broker is killed with SIGKILL at random moments and restarted, many
times. Then every record is read back with CRC checks on, and the acknowledged ones are checked:
all present, at the offset they were acknowledged with, in order, without duplicates.

Run by tests/e2e/test_kill9.py (a short campaign in CI) and by hand for a long one:

    .venv/bin/python tests/e2e/kill9.py --cycles 100 --flush durable
    .venv/bin/python tests/e2e/kill9.py --cycles 100 --flush default
    .venv/bin/python tests/e2e/kill9.py --cycles 30 --flush durable --power-loss
"""
import argparse
import json
import random
import signal
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, unique


def campaign(cycles, durable=True, partitions=3, seed=1, min_gap=0.3, max_gap=1.2, log=print,
             extra=None, after_kill=None):
    """`extra`: more broker overrides (e.g. `log.dirs` on the power-loss file system);
    `after_kill`: called between each kill and the restart (e.g. to cut the power)."""
    rnd = random.Random(seed)
    overrides = {"log.flush.interval.messages": 1} if durable else {}
    overrides.update(extra or {})
    b = Broker(overrides).start()
    data_dir, port = b.data_dir, b.port
    topic = unique("kill9")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=15)

    acked = {}          # (partition, seq) -> offset
    failed = []         # delivery errors
    lock = threading.Lock()
    stop = threading.Event()
    produced = [0]

    def on_delivery(err, msg):
        p, seq = msg.value().decode().split(":")
        with lock:
            if err is None:
                acked[(int(p), int(seq))] = msg.offset()
            else:
                failed.append(err.name())

    def produce():
        pr = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "enable.idempotence": True,
                       "acks": "all", "linger.ms": 2, "message.timeout.ms": 120000,
                       "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200})
        seqs = [0] * partitions
        while not stop.is_set():
            p = rnd.randrange(partitions)
            try:
                pr.produce(topic, value=f"{p}:{seqs[p]:09d}".encode(), partition=p,
                           on_delivery=on_delivery)
                seqs[p] += 1
                produced[0] += 1
            except BufferError:
                pr.poll(0.05)
                continue
            pr.poll(0)
            if produced[0] % 200 == 0:
                time.sleep(0.005)
        left = pr.flush(180)
        if left:
            failed.append(f"{left} never delivered")

    t = threading.Thread(target=produce)
    t.start()
    kills = 0
    try:
        for cycle in range(cycles):
            time.sleep(rnd.uniform(min_gap, max_gap))
            b.stop(signal.SIGKILL)
            kills += 1
            assert "panicked" not in b.read_log(), b.read_log()[-3000:]
            if after_kill:
                after_kill()
            b = Broker(overrides, data_dir=data_dir, port=port).start()
            if log:
                with lock:
                    log(f"cycle {cycle + 1}/{cycles}: {produced[0]} produced, {len(acked)} acknowledged")
        time.sleep(max_gap)
    finally:
        stop.set()
        t.join()

    # Read every partition back with CRC checks.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("verify"),
                  "enable.auto.commit": False, "check.crcs": True,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = {p: [] for p in range(partitions)}
    crc_errors, other_errors = 0, []
    eof = set()
    deadline = time.time() + 120
    while len(eof) < partitions and time.time() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.5):
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                elif "CRC" in str(m.error()) or m.error().code() == KafkaError._BAD_MSG:
                    crc_errors += 1
                else:
                    other_errors.append(str(m.error()))
                continue
            p, seq = m.value().decode().split(":")
            seen[int(p)].append((int(seq), m.offset()))
    c.close()

    lost, wrong_offset, duplicates, reordered = 0, 0, 0, 0
    records_checked = 0
    for p in range(partitions):
        by_seq = {}
        prev = -1
        for seq, off in seen[p]:
            records_checked += 1
            if seq in by_seq:
                duplicates += 1
            by_seq[seq] = off
            if seq <= prev:
                reordered += 1
            prev = max(prev, seq)
        for (ap, seq), off in acked.items():
            if ap != p:
                continue
            if seq not in by_seq:
                lost += 1
            elif by_seq[seq] != off:
                wrong_offset += 1
    b.stop()
    report = {
        "flush": "durable (log.flush.interval.messages=1)" if durable else "default (page cache)",
        "cycles": kills, "partitions": partitions, "produced": produced[0],
        "acknowledged": len(acked), "records_checked": records_checked,
        "lost": lost, "duplicates": duplicates, "reordered": reordered,
        "wrong_offset": wrong_offset, "crc_errors": crc_errors,
        "read_errors": other_errors[:5], "delivery_errors": sorted(set(failed))[:5],
        "partitions_read_to_end": len(eof),
    }
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--flush", choices=["durable", "default"], default="durable")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--power-loss", action="store_true",
                    help="log.dirs on ringlet-powerfail; the power is cut after each kill")
    args = ap.parse_args()
    print(f"seed {args.seed}")
    fs, extra = None, {}
    if args.power_loss:
        from powerfail import PowerFail
        fs = PowerFail()
        extra = {"log.dirs": fs.dir + "/data", "log.segment.bytes": 1048576}
    try:
        r = campaign(args.cycles, args.flush == "durable", args.partitions, args.seed,
                     extra=extra, after_kill=fs.cut if fs else None)
        if fs:
            r["power_cuts"] = fs.cuts
        print(json.dumps(r, indent=2))
    finally:
        if fs:
            fs.close()

"""Produce throughput of 1 KiB records with confluent-kafka (librdkafka) against any broker.

Usage: produce_confluent.py BOOTSTRAP TOPIC [RECORDS] [ACKS]
Prints one line: records, seconds, records/s, MB/s (MB = 10^6 bytes of record values).
"""
import sys
import time

from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 500_000
acks = sys.argv[4] if len(sys.argv) > 4 else "1"
value = bytes(range(256)) * 4
p = Producer({
    "bootstrap.servers": bootstrap,
    "acks": acks,
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "queue.buffering.max.messages": 1_000_000,
    "compression.type": "none",
})
errors = 0


def cb(err, _msg):
    global errors
    if err is not None:
        errors += 1


# Warm-up: create the topic and the connection.
p.produce(topic, value=value, on_delivery=cb)
p.flush(30)
start = time.perf_counter()
for _ in range(n):
    while True:
        try:
            p.produce(topic, value=value, on_delivery=cb)
            break
        except BufferError:
            p.poll(0.001)
p.flush(120)
secs = time.perf_counter() - start
print(f"records={n} seconds={secs:.3f} records_per_s={n / secs:,.0f} MB_per_s={n * len(value) / secs / 1e6:.1f} errors={errors}")

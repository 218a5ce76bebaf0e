"""Consume throughput with confluent-kafka (librdkafka): reads a topic's partitions from offset 0
until RECORDS records arrived. Usage: consume_confluent.py BOOTSTRAP TOPIC RECORDS [PARTITIONS]
"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition

bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
partitions = int(sys.argv[4]) if len(sys.argv) > 4 else 1
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "bench",
    "enable.auto.commit": False,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.max.messages.kbytes": 1024 * 1024,
})
c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
got = 0
nbytes = 0
start = time.perf_counter()
while got < n:
    for m in c.consume(num_messages=100_000, timeout=1.0):
        if m.error() is None:
            got += 1
            nbytes += len(m.value())
secs = time.perf_counter() - start
c.close()
print(f"records={got} seconds={secs:.3f} records_per_s={got / secs:,.0f} MB_per_s={nbytes / secs / 1e6:.1f}")

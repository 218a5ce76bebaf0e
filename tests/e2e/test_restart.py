"""Data survives a graceful restart and a SIGKILL restart."""
import signal

from confluent_kafka import Producer

from conftest import Broker, unique
from test_produce_consume import consume_all, create


def produce_n(b, topic, start, n):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1})
    for i in range(start, start + n):
        p.produce(topic, value=f"r{i}".encode())
    assert p.flush(30) == 0


def test_graceful_and_sigkill_restarts_keep_data(fresh_broker):
    b = fresh_broker({"log.flush.interval.messages": 1, "log.segment.bytes": 20000})
    topic = unique("restart")
    create(b, topic, 2)
    produce_n(b, topic, 0, 3000)
    assert b.stop(signal.SIGTERM) == 0
    assert "ringlet broker stopped" in b.read_log()

    b2 = Broker(b.overrides, data_dir=b.data_dir, port=b.port).start()
    try:
        assert len(consume_all(b2, topic, 2, 3000)) == 3000
        produce_n(b2, topic, 3000, 3000)
        b2.stop(signal.SIGKILL)

        b3 = Broker(b.overrides, data_dir=b.data_dir, port=b.port).start()
        try:
            msgs = consume_all(b3, topic, 2, 6000)
            assert sorted(int(m.value()[1:]) for m in msgs) == list(range(6000))
        finally:
            b3.stop()
    finally:
        b2.stop(signal.SIGKILL)

"""A short kill -9 campaign in CI (the long one is `tests/e2e/kill9.py --cycles 100`, with its
figures in docs/reliability.md): SIGKILL at random moments under an idempotent acks=all producer,
then every acknowledged record is checked."""
from kill9 import campaign


def check(r):
    assert r["acknowledged"] > 1000, r
    assert r["lost"] == 0 and r["duplicates"] == 0 and r["reordered"] == 0, r
    assert r["wrong_offset"] == 0 and r["crc_errors"] == 0 and r["read_errors"] == [], r
    assert r["partitions_read_to_end"] == r["partitions"], r
    assert r["records_checked"] >= r["acknowledged"], r


def test_sigkill_campaign_durable_flush():
    r = campaign(cycles=6, durable=True, seed=7, log=None)
    assert r["cycles"] == 6
    check(r)


def test_sigkill_campaign_default_flush():
    # A process kill leaves the page cache intact, so even unflushed acknowledged data survives;
    # recovery must still cut any torn tail and serve only whole batches.
    r = campaign(cycles=4, durable=False, seed=8, log=None)
    check(r)

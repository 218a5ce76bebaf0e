"""A 40-second soak in CI (the documented run is 10 minutes: `tests/e2e/soak.py --minutes 10`):
70% of the maximum rate, segments rolling and retention deleting them, no loss, and no growth in
memory or file descriptors."""
from soak import soak


def test_short_soak_has_no_growth_trend():
    r = soak(40, window=8, log=None)
    assert len(r["windows"]) >= 4, r["windows"]
    assert r["lost"] == 0 and r["duplicated"] == 0
    assert r["segments_deleted_by_retention"] > 0, "retention never deleted a segment"
    # Retention runs every second: what is left is 16 MiB plus what a partition takes in between
    # checks (with slack for a slow check), in 4 MiB segments.
    per_partition_mb_s = max(w["mb_s"] for w in r["windows"]) / 2
    assert r["segments_left_partition_0"] * 4.19 <= 16.8 + 4.2 + 3 * per_partition_mb_s, r
    # Memory settles after the first half: no more than 20% (+16 MB) above its first-half peak.
    assert r["rss_mb_second_half_max"] <= r["rss_mb_first_half_max"] * 1.2 + 16, r
    # Descriptors swing with the segments between retention checks (about 17 segments a second
    # per partition at full speed); a leak shows as growth: the second half's peak must not pass
    # the first half's by more than a few.
    first = max(s["fds"] for s in r["samples"] if s["t"] < 20)
    second = max(s["fds"] for s in r["samples"] if s["t"] >= 20)
    assert second <= first + 12, r
    assert all(w["mb_s"] > 0 for w in r["windows"])

"""Kafka's own tools (the seed's commands), run from the Maven jars against the broker under test.

The broker is COMPAT_BOOTSTRAP (scripts/compat.sh starts it); every tool is Kafka's class run
through compat/bin/<tool>.sh, as an operator would type it.
"""
import json
import os
import re
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(os.path.dirname(HERE), "bin")
BOOTSTRAP = os.environ.get("COMPAT_BOOTSTRAP", "127.0.0.1:9092")


def tool(name, *args, stdin=None, timeout=120, check=True):
    r = subprocess.run([os.path.join(BIN, f"{name}.sh"), *args], input=stdin, capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} exited {r.returncode}\n"
                             f"stdout: {r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}")
    return r


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


def topics(*args, **kw):
    return tool("kafka-topics", "--bootstrap-server", BOOTSTRAP, *args, **kw)


def produce_lines(topic, lines, *extra):
    tool("kafka-console-producer", "--bootstrap-server", BOOTSTRAP, "--topic", topic, *extra,
         stdin="".join(f"{l}\n" for l in lines))


def consume(topic, n, *extra):
    r = tool("kafka-console-consumer", "--bootstrap-server", BOOTSTRAP, "--topic", topic,
             "--from-beginning", "--max-messages", str(n), "--timeout-ms", "30000", *extra)
    return r.stdout.splitlines()


def test_topics_create_list_describe_delete():
    t = unique("tools-topic")
    out = topics("--create", "--topic", t, "--partitions", "3", "--replication-factor", "1",
                 "--config", "retention.ms=86400000").stdout
    assert f"Created topic {t}." in out
    assert t in topics("--list").stdout.split()
    desc = topics("--describe", "--topic", t).stdout
    assert "PartitionCount: 3" in desc and "ReplicationFactor: 1" in desc
    assert "retention.ms=86400000" in desc
    assert sum(1 for l in desc.splitlines() if "Partition: " in l and "Leader: " in l) == 3
    # Creating it again is refused with Kafka's message.
    again = topics("--create", "--topic", t, "--partitions", "1", check=False)
    assert again.returncode != 0 and "already exists" in (again.stdout + again.stderr)
    topics("--alter", "--topic", t, "--partitions", "4")
    assert "PartitionCount: 4" in topics("--describe", "--topic", t).stdout
    topics("--delete", "--topic", t)
    deadline = time.time() + 30
    while t in topics("--list").stdout.split() and time.time() < deadline:
        time.sleep(0.5)
    assert t not in topics("--list").stdout.split()


def test_console_producer_and_consumer_from_beginning():
    t = unique("tools-console")
    topics("--create", "--topic", t, "--partitions", "1")
    produce_lines(t, ["alice:1 coffee", "bob:2 tea", "carol:3 water"],
                  "--property", "parse.key=true", "--property", "key.separator=:")
    lines = consume(t, 3, "--property", "print.key=true", "--property", "key.separator=|")
    assert lines == ["alice|1 coffee", "bob|2 tea", "carol|3 water"]


def test_consumer_groups_describe_and_reset_offsets():
    t = unique("tools-groups")
    g = unique("tools-group")
    topics("--create", "--topic", t, "--partitions", "2")
    produce_lines(t, [f"m{i}" for i in range(10)])
    assert len(consume(t, 10, "--group", g)) == 10
    groups = lambda *a, **kw: tool("kafka-consumer-groups", "--bootstrap-server", BOOTSTRAP, *a, **kw)
    assert g in groups("--list").stdout.split()
    desc = groups("--describe", "--group", g).stdout
    rows = [l.split() for l in desc.splitlines() if l.startswith(g)]
    assert len(rows) == 2, desc
    header = next(l.split() for l in desc.splitlines() if "CURRENT-OFFSET" in l)
    cur, end, lag = header.index("CURRENT-OFFSET"), header.index("LOG-END-OFFSET"), header.index("LAG")
    assert sum(int(r[cur]) for r in rows) == 10
    assert sum(int(r[end]) for r in rows) == 10
    assert all(r[lag] == "0" for r in rows)
    # Dry run, then execute a reset to the earliest offsets: the lag becomes the whole topic.
    plan = groups("--reset-offsets", "--group", g, "--topic", t, "--to-earliest").stdout
    assert "NEW-OFFSET" in plan
    groups("--reset-offsets", "--group", g, "--topic", t, "--to-earliest", "--execute")
    desc = groups("--describe", "--group", g).stdout
    rows = [l.split() for l in desc.splitlines() if l.startswith(g)]
    assert sum(int(r[lag]) for r in rows) == 10, desc
    # One partition to a given offset (one that holds at least two records: the tool clamps an
    # offset past the log end to it, and the console producer may fill one partition only).
    part = header.index("PARTITION")
    full = next(r[part] for r in rows if int(r[end]) >= 2)
    groups("--reset-offsets", "--group", g, "--topic", f"{t}:{full}", "--to-offset", "1", "--execute")
    desc = groups("--describe", "--group", g).stdout
    row = next(r for r in ([l.split() for l in desc.splitlines() if l.startswith(g)]) if r[part] == full)
    assert row[cur] == "1", desc
    groups("--delete", "--group", g)
    assert g not in groups("--list").stdout.split()


def test_configs_alter_and_describe():
    t = unique("tools-configs")
    topics("--create", "--topic", t, "--partitions", "1")
    configs = lambda *a, **kw: tool("kafka-configs", "--bootstrap-server", BOOTSTRAP, *a, **kw)
    configs("--entity-type", "topics", "--entity-name", t, "--alter",
            "--add-config", "retention.ms=3600000,max.message.bytes=2000000")
    out = configs("--entity-type", "topics", "--entity-name", t, "--describe").stdout
    assert "retention.ms=3600000" in out and "max.message.bytes=2000000" in out
    configs("--entity-type", "topics", "--entity-name", t, "--alter", "--delete-config", "retention.ms")
    out = configs("--entity-type", "topics", "--entity-name", t, "--describe").stdout
    assert "retention.ms=3600000" not in out and "max.message.bytes=2000000" in out
    bad = configs("--entity-type", "topics", "--entity-name", t, "--alter", "--add-config",
                  "no.such.config=1", check=False)
    assert bad.returncode != 0
    out = configs("--entity-type", "brokers", "--entity-default", "--describe", check=False)
    assert out.returncode == 0, out.stderr


def test_configs_dynamic_broker_default():
    """kafka-configs --entity-type brokers --entity-default (KIP-226): a log default set for the
    whole cluster is described there and inherited by a topic without its own value."""
    configs = lambda *a, **kw: tool("kafka-configs", "--bootstrap-server", BOOTSTRAP, *a, **kw)
    default = ("--entity-type", "brokers", "--entity-default")
    configs(*default, "--alter", "--add-config", "log.retention.ms=604800001")
    try:
        assert "log.retention.ms=604800001" in configs(*default, "--describe").stdout
        t = unique("tools-dyn")
        topics("--create", "--topic", t, "--partitions", "1")
        out = configs("--entity-type", "topics", "--entity-name", t, "--describe", "--all").stdout
        assert "retention.ms=604800001" in out, out
    finally:
        configs(*default, "--alter", "--delete-config", "log.retention.ms")
    assert "log.retention.ms=604800001" not in configs(*default, "--describe").stdout


def test_topic_ids_are_printed_as_kafka_prints_them():
    """kafka-topics --describe prints the topic id as base64 (22 characters); it is random, not
    the all-zero id, and the same on every describe."""
    import re
    t = unique("tools-id")
    topics("--create", "--topic", t, "--partitions", "2", "--replication-factor", "1")
    ids = [re.search(r"TopicId: (\S+)", topics("--describe", "--topic", t).stdout).group(1)
           for _ in range(2)]
    assert ids[0] == ids[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", ids[0]) and ids[0] != "A" * 22, ids


def test_configs_describe_all_gives_sources_and_synonyms():
    """Every topic key with its source: the override as DYNAMIC_TOPIC_CONFIG, the rest from the
    broker key it falls back to, as Kafka 4.1 writes them."""
    t = unique("tools-cfgsrc")
    topics("--create", "--topic", t, "--partitions", "1", "--replication-factor", "1",
           "--config", "retention.bytes=1000")
    out = tool("kafka-configs", "--bootstrap-server", BOOTSTRAP, "--describe", "--all",
               "--entity-type", "topics", "--entity-name", t).stdout
    lines = [l.strip() for l in out.splitlines()]
    assert ("retention.bytes=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.bytes=1000, "
            "DEFAULT_CONFIG:log.retention.bytes=-1}") in lines, out
    assert "cleanup.policy=delete sensitive=false synonyms={DEFAULT_CONFIG:log.cleanup.policy=delete}" in lines
    assert ("max.message.bytes=1048588 sensitive=false synonyms={DEFAULT_CONFIG:message.max.bytes=1048588}"
            in lines)


@pytest.mark.parametrize("topic_codec", ["gzip", "snappy", "lz4", "zstd", "uncompressed"])
def test_topic_compression_type_is_what_the_java_consumer_reads(topic_codec):
    """A topic's compression.type recompresses what the Java producer sends in another codec;
    the Java consumer decompresses what the broker wrote (snappy in xerial's framing, LZ4 frames)."""
    t = unique(f"tools-codec-{topic_codec}")
    topics("--create", "--topic", t, "--partitions", "1", "--replication-factor", "1",
           "--config", f"compression.type={topic_codec}")
    producer_codec = "zstd" if topic_codec != "zstd" else "gzip"
    lines = [f"{topic_codec}-{i}-" + "z" * (i % 30) for i in range(40)]
    produce_lines(t, lines, "--compression-codec", producer_codec)
    assert consume(t, len(lines)) == lines


def test_preallocate_topic_config():
    """`preallocate` (Kafka's topic key, log.preallocate's default): set by kafka-topics, described
    by kafka-configs, a bad value refused; where the broker's data directory is known (Ringlet
    started by scripts/compat.sh), the active segment holds segment.bytes of disk while its size
    stays its batches'."""
    t = unique("tools-prealloc")
    topics("--create", "--topic", t, "--partitions", "1", "--config", "preallocate=true",
           "--config", "segment.bytes=8388608")
    out = tool("kafka-configs", "--bootstrap-server", BOOTSTRAP, "--entity-type", "topics",
               "--entity-name", t, "--describe").stdout
    assert "preallocate=true" in out, out
    bad = topics("--create", "--topic", unique("tools-prealloc-bad"), "--partitions", "1",
                 "--config", "preallocate=maybe", check=False)
    assert bad.returncode != 0 and "preallocate" in (bad.stdout + bad.stderr)
    produce_lines(t, ["a", "b", "c"])
    assert consume(t, 3) == ["a", "b", "c"]
    logdir = os.environ.get("COMPAT_LOG_DIR")
    if logdir and keep_size_supported(logdir):
        seg = os.path.join(logdir, f"{t}-0", "00000000000000000000.log")
        st = os.stat(seg)
        assert st.st_size < 8192, st.st_size  # its batches (direct mode: padded to one block)
        assert st.st_blocks * 512 >= 8388608, st.st_blocks  # the reservation


def keep_size_supported(d):
    """Whether d's file system reserves space with fallocate(FALLOC_FL_KEEP_SIZE)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    p = os.path.join(d, ".probe-falloc")
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        return libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(1 << 20)) == 0
    finally:
        os.close(fd)
        os.unlink(p)


def test_producer_perf_test():
    t = unique("tools-perf")
    topics("--create", "--topic", t, "--partitions", "2")
    out = tool("kafka-producer-perf-test", "--topic", t, "--num-records", "20000", "--record-size", "100",
               "--throughput", "-1", "--producer-props", f"bootstrap.servers={BOOTSTRAP}", "acks=all").stdout
    final = out.strip().splitlines()[-1]
    assert final.startswith("20000 records sent"), out
    consume_out = tool("kafka-get-offsets", "--bootstrap-server", BOOTSTRAP, "--topic", t).stdout
    assert sum(int(l.rsplit(":", 1)[1]) for l in consume_out.split()) == 20000


def test_verifiable_producer_and_consumer():
    t = unique("tools-verifiable")
    g = unique("tools-vgroup")
    topics("--create", "--topic", t, "--partitions", "2")
    out = tool("kafka-verifiable-producer", "--bootstrap-server", BOOTSTRAP, "--topic", t,
               "--max-messages", "200", "--acks", "-1").stdout
    events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    acked = [e for e in events if e.get("name") == "producer_send_success"]
    assert len(acked) == 200
    assert any(e.get("name") == "tool_data" and e.get("acked") == 200 for e in events), events[-3:]
    out = tool("kafka-verifiable-consumer", "--bootstrap-server", BOOTSTRAP, "--topic", t,
               "--group-id", g, "--max-messages", "200", "--reset-policy", "earliest").stdout
    events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    consumed = sum(e["count"] for e in events if e.get("name") == "records_consumed")
    assert consumed == 200
    committed = [e for e in events if e.get("name") == "offsets_committed"]
    assert committed and all(e["success"] for e in committed)


def test_broker_api_versions():
    out = tool("kafka-broker-api-versions", "--bootstrap-server", BOOTSTRAP).stdout
    assert "Produce(0):" in out and "Fetch(1):" in out and "ApiVersions(18):" in out


def test_delete_records_and_log_dirs():
    """kafka-delete-records moves the log start (kafka-get-offsets --time -2 shows it), and
    kafka-log-dirs lists the partition with its size."""
    t = unique("tools-delrec")
    topics("--create", "--topic", t, "--partitions", "1")
    produce_lines(t, [f"line {i}" for i in range(10)])
    spec = os.path.join("/tmp", f"{t}.json")
    with open(spec, "w") as f:
        json.dump({"version": 1, "partitions": [{"topic": t, "partition": 0, "offset": 4}]}, f)
    out = tool("kafka-delete-records", "--bootstrap-server", BOOTSTRAP,
               "--offset-json-file", spec).stdout
    os.unlink(spec)
    assert "low_watermark: 4" in out, out
    earliest = tool("kafka-get-offsets", "--bootstrap-server", BOOTSTRAP, "--topic", t,
                    "--time", "-2").stdout.split()
    assert earliest == [f"{t}:0:4"], earliest
    assert consume(t, 6) == [f"line {i}" for i in range(4, 10)]
    out = tool("kafka-log-dirs", "--bootstrap-server", BOOTSTRAP, "--describe",
               "--topic-list", t).stdout
    report = json.loads(next(l for l in out.splitlines() if l.startswith("{")))
    parts = [p for b in report["brokers"] for d in b["logDirs"] for p in d["partitions"]]
    assert [p["partition"] for p in parts] == [f"{t}-0"], report
    assert parts[0]["size"] > 0


def test_kafka_decodes_the_committed_offsets_in_consumer_offsets():
    """Committed offsets are `__consumer_offsets` records in Kafka's formats (OffsetCommitKey,
    OffsetCommitValue v3): kafka-dump-log's offsets decoder reads the group's commits."""
    logdir = os.environ.get("COMPAT_LOG_DIR")
    if not logdir:
        pytest.skip("the broker's data directory is not known (the reference Kafka)")
    t, g = unique("tools-offsets"), unique("tools-offsets-group")
    topics("--create", "--topic", t, "--partitions", "1")
    produce_lines(t, [f"m{i}" for i in range(7)])
    assert len(consume(t, 7, "--group", g)) == 7
    decoded = []
    for d in sorted(os.listdir(logdir)):
        if not d.startswith("__consumer_offsets-"):
            continue
        for f in sorted(os.listdir(os.path.join(logdir, d))):
            if f.endswith(".log"):
                # The active segment's preallocated tail ends the dump with an exception after
                # every record was printed: only what it printed counts.
                out = tool("kafka-dump-log", "--offsets-decoder", "--files",
                           os.path.join(logdir, d, f), check=False).stdout
                decoded += [l for l in out.splitlines() if f'"group":"{g}"' in l]
    assert decoded, "no record of the group decoded"
    last = decoded[-1]
    key = json.loads(re.search(r"key: (\{.*?\}\}) payload", last).group(1))
    value = json.loads(re.search(r"payload: (\{.*\}\})", last).group(1))
    assert key == {"type": "1", "data": {"group": g, "topic": t, "partition": 0}}, last
    assert value["version"] == "3" and value["data"]["offset"] == 7, last


def test_kafka_reads_the_segments_ringlet_compacted():
    """A compacted topic's cleaned segments, read by Kafka's own kafka-dump-log: every batch valid,
    only each key's latest value left, at the offset it was written at (needs the data directory
    of a Ringlet that scripts/compat.sh started, whose cleaner checks every 500 ms)."""
    logdir = os.environ.get("COMPAT_LOG_DIR")
    if not logdir:
        pytest.skip("the broker's data directory is not known (the reference Kafka)")
    t = unique("tools-compact")
    topics("--create", "--topic", t, "--partitions", "1", "--config", "cleanup.policy=compact",
           "--config", "segment.ms=100", "--config", "min.cleanable.dirty.ratio=0.01")
    for r in range(4):
        produce_lines(t, [f"k{i}:v{r}-{i}" for i in range(5)],
                      "--property", "parse.key=true", "--property", "key.separator=:")
        time.sleep(0.2)
    produce_lines(t, ["last:x"], "--property", "parse.key=true", "--property", "key.separator=:")
    seg = os.path.join(logdir, f"{t}-0", "00000000000000000000.log")
    # Round 3 wrote offsets 15-19; each key's latest. The cleaner may run between rolls and first
    # leave round 2's values (five records too), so wait for the final state, not for a count.
    want = {15 + i: (f"k{i}", f"v3-{i}") for i in range(5)}
    deadline = time.time() + 60
    while True:
        out = tool("kafka-dump-log", "--files", seg, "--deep-iteration", "--print-data-log").stdout
        assert "isvalid: false" not in out, out
        got = {}
        for l in out.splitlines():
            if "| offset:" not in l:
                continue
            offset = int(re.search(r"\| offset: (\d+)", l).group(1))
            got[offset] = (re.search(r"(?<![A-Za-z])key: (\S+)", l).group(1),
                           re.search(r"payload: (\S+)", l).group(1))
        if got == want or time.time() > deadline:
            break
        time.sleep(1)
    assert got == want, out[-2000:]


def test_transactions_tool_abort_and_force_terminate():
    """The operator's remedies for a hanging transaction (its producer stuck with it open, read_committed
    readers held at its first offset): `kafka-transactions abort` writes the abort marker at the
    partition itself (the producer found with DescribeProducers), and `forceTerminateTransaction`
    fences the transactional id at its coordinator and aborts what it has open."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    def last_stable():
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("lso"),
                      "isolation.level": "read_committed"})
        try:
            return c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False)[1]
        finally:
            c.close()

    def hang(tid):
        p = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": tid,
                      "transaction.timeout.ms": 600000})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(t, value=b"open")
        assert p.flush(10) == 0
        return p

    t = unique("tools-hang")
    topics("--create", "--topic", t, "--partitions", "1")
    produce_lines(t, ["before"])
    hung = hang(unique("hung-tid"))
    produce_lines(t, ["after"])
    assert last_stable() == 1
    tool("kafka-transactions", "--bootstrap-server", BOOTSTRAP, "abort", "--topic", t,
         "--partition", "0", "--start-offset", "1")
    # The marker is offset 3: everything before it is stable now.
    assert last_stable() == 4
    assert consume(t, 2, "--isolation-level", "read_committed") == ["before", "after"]
    tid = unique("stuck-tid")
    stuck = hang(tid)
    assert last_stable() == 4
    tool("kafka-transactions", "--bootstrap-server", BOOTSTRAP, "forceTerminateTransaction",
         "--transactionalId", tid)
    described = tool("kafka-transactions", "--bootstrap-server", BOOTSTRAP, "describe",
                     "--transactional-id", tid).stdout
    assert "Ongoing" not in described and tid in described, described
    deadline = time.time() + 10
    while last_stable() != 6 and time.time() < deadline:
        time.sleep(0.2)
    assert last_stable() == 6
    del hung, stuck


def test_transactions_tool_and_read_committed():
    """kafka-producer-perf-test writes transactionally (a commit every 300 ms), kafka-transactions
    lists and describes the id and the partition's producers, the console consumer reads every record with read_committed; on
    Ringlet, kafka-dump-log reads the commit markers, the aborted-transaction index and the
    producer-state snapshots the broker wrote (Kafka's formats)."""
    t, tid = unique("tools-txn"), unique("perf-tid")
    topics("--create", "--topic", t, "--partitions", "1", "--config", "segment.ms=1500")
    tool("kafka-producer-perf-test", "--topic", t, "--num-records", "2000", "--record-size", "50",
         "--throughput", "-1", "--transactional-id", tid, "--transaction-duration-ms", "300",
         "--producer-props", f"bootstrap.servers={BOOTSTRAP}")
    listed = tool("kafka-transactions", "--bootstrap-server", BOOTSTRAP, "list").stdout
    row = next((l.split() for l in listed.splitlines() if l.split()[:1] == [tid]), None)
    assert row is not None and row[-1] == "CompleteCommit", listed
    described = tool("kafka-transactions", "--bootstrap-server", BOOTSTRAP, "describe",
                     "--transactional-id", tid).stdout
    assert "CompleteCommit" in described and tid in described, described
    producers = tool("kafka-transactions", "--bootstrap-server", BOOTSTRAP, "describe-producers",
                     "--topic", t, "--partition", "0").stdout
    assert any(l.split()[:1] == [row[2]] for l in producers.splitlines()), producers
    got = consume(t, 2000, "--isolation-level", "read_committed")
    assert len(got) == 2000, len(got)
    logdir = os.environ.get("COMPAT_LOG_DIR")
    if not logdir:
        return
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": unique("abort-tid")})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(t, value=b"aborted")
    p.flush(10)
    p.abort_transaction(30)
    # Roll the segment (segment.ms) so that Kafka's tool reads whole files, not the active one.
    time.sleep(1.6)
    produce_lines(t, ["roll"])
    d = os.path.join(logdir, f"{t}-0")
    logs = sorted(f for f in os.listdir(d) if f.endswith(".log"))[:-1]
    dump = "".join(tool("kafka-dump-log", "--files", os.path.join(d, f), "--print-data-log").stdout
                   for f in logs)
    assert "endTxnMarker: COMMIT" in dump and "endTxnMarker: ABORT" in dump, dump[-2000:]
    assert "isvalid: false" not in dump
    index = "".join(tool("kafka-dump-log", "--files", os.path.join(d, f)).stdout
                    for f in sorted(os.listdir(d)) if f.endswith(".txnindex"))
    assert re.search(r"producerId: \d+ firstOffset: 2\d\d\d lastOffset: 2\d\d\d", index), index
    # Producer-state snapshots (written at each roll) in Kafka's format hold the perf producer.
    snaps = "".join(tool("kafka-dump-log", "--files", os.path.join(d, f)).stdout
                    for f in sorted(os.listdir(d)) if f.endswith(".snapshot"))
    assert re.search(rf"producerId: {row[2]} producerEpoch: \d+", snaps), snaps
    # The aborted record stays invisible to read_committed.
    assert "aborted" not in consume(t, 2001, "--isolation-level", "read_committed")


def test_share_groups_with_the_console_share_consumer():
    """KIP-932 with Kafka's tools: `share.auto.offset.reset` set with kafka-configs on the group,
    records read by kafka-console-share-consumer, the group listed, described (its start offset
    moved past what was acknowledged) and deleted with kafka-share-groups."""
    t, g = unique("tools-share"), unique("tools-sg")
    topics("--create", "--topic", t, "--partitions", "1")
    tool("kafka-configs", "--bootstrap-server", BOOTSTRAP, "--alter", "--entity-type", "groups",
         "--entity-name", g, "--add-config", "share.auto.offset.reset=earliest")
    produce_lines(t, ["a", "b", "c", "d", "e"])
    out = tool("kafka-console-share-consumer", "--bootstrap-server", BOOTSTRAP, "--topic", t,
               "--group", g, "--max-messages", "5", "--timeout-ms", "30000").stdout
    assert sorted(out.split()) == ["a", "b", "c", "d", "e"], out
    share = lambda *a, **kw: tool("kafka-share-groups", "--bootstrap-server", BOOTSTRAP, *a, **kw)
    assert g in share("--list").stdout.split()
    desc = share("--describe", "--group", g).stdout
    row = next(l.split() for l in desc.splitlines() if l.startswith(g))
    header = next(l.split() for l in desc.splitlines() if "START-OFFSET" in l)
    assert row[header.index("START-OFFSET")] == "5", desc
    share("--delete", "--group", g)
    assert g not in share("--list").stdout.split()

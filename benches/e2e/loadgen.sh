#!/usr/bin/env bash
# One run, all on this machine: the loopback limit (iperf3), the generator's ceiling (loadgen
# against the discarding sink), ringlet loadgen against ringlet serve (acks=1 and acks=all at full
# speed, then a fixed rate at half the acks=1 maximum with linger.ms=0), an existing tool
# (confluent-kafka) producing the same 1 KiB records, and a burst of 3 GB produced into the page
# cache then consumed from the segment files (splice path, then the copying path) by a
# consume-only run. Writes JSON reports to $OUT (default /tmp/ringlet-loadgen).
# Usage: benches/e2e/loadgen.sh [SECONDS]   (needs iperf3 and .venv; release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
OUT=${OUT:-/tmp/ringlet-loadgen}
mkdir -p "$OUT"
BIN=./target/release/ringlet
cargo build --release -q
PORT=19600
SINK_PORT=19601
DATA=$(mktemp -d /tmp/ringlet-lg-XXXX)
COMMON=(--record-size 1024 --partitions 2 --producers 1 --batch-size 262144 --max-in-flight 5 --warmup 2 --duration "$SECS" --quiet --output json)

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
if command -v iperf3 >/dev/null; then
  iperf3 -s -1 -p 19602 >/dev/null 2>&1 &
  sleep 0.5
  IPERF=$(iperf3 -c 127.0.0.1 -p 19602 -t 5 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e6))')
  echo "iperf3 -c 127.0.0.1 (single stream): $IPERF MB/s"
fi

$BIN loadgen-sink --port $SINK_PORT --partitions 2 2>/dev/null &
SINK=$!
sleep 0.5
$BIN loadgen --bootstrap-server 127.0.0.1:$SINK_PORT --topic sink "${COMMON[@]}" --linger-ms 2 --consumers 0 --acks 1 > "$OUT/sink.json"
kill $SINK

$BIN serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$DATA" > "$DATA.log" 2>&1 &
BROKER=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
kill -0 $BROKER 2>/dev/null || { echo "the broker did not start (port $PORT in use?):"; tail -5 "$DATA.log"; exit 1; }
# Delete each topic after its run (a run at full speed writes several GB, and the disk is
# finite), and sync: each run starts without the previous one's dirty pages to write back.
drop() { $BIN topics --bootstrap-server 127.0.0.1:$PORT --delete --topic "$1" >/dev/null; }
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic acks1 "${COMMON[@]}" --linger-ms 2 --consumers 1 --acks 1 > "$OUT/acks1.json"
drop acks1; sync
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic acksall "${COMMON[@]}" --linger-ms 2 --consumers 1 --acks all > "$OUT/acksall.json"
drop acksall; sync
HALF=$(python3 -c "import json; print(int(json.load(open('$OUT/acks1.json'))['produced']['records_per_s'] / 2))")
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic half "${COMMON[@]}" --linger-ms 0 --consumers 1 --acks 1 --rate "$HALF" > "$OUT/half.json"
drop half; sync
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic verify "${COMMON[@]}" --linger-ms 2 --consumers 1 --acks all --verify > "$OUT/verify.json"
drop verify; sync
CONFLUENT=$(.venv/bin/python benches/e2e/produce_confluent.py 127.0.0.1:$PORT confluent 1000000 1)
if ! kill $BROKER 2>/dev/null; then echo "broker exited early:"; grep -v INFO "$DATA.log" | tail -20; fi
wait $BROKER || true
rm -rf "$DATA" "$DATA.log"

# Burst: 3 GB into the page cache (fits in RAM; the disk is not the limit), then read back from
# the segment files by a consume-only run, on the splice path and then on the copying path.
DATA=$(mktemp -d /tmp/ringlet-lg-XXXX)
serve() {
  $BIN serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$DATA" "$@" >> "$DATA.log" 2>&1 &
  BROKER=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  kill -0 $BROKER 2>/dev/null || { echo "the broker did not start:"; tail -5 "$DATA.log"; exit 1; }
}
serve
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic burst --record-size 1024 --partitions 2 --batch-size 262144 --linger-ms 2 --records 3000000 --warmup 0 --quiet --output json --acks 1 > "$OUT/burst.json"
sleep 2
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic burst --producers 0 --consumers 1 --quiet --output json > "$OUT/consume_splice.json"
kill $BROKER; wait $BROKER || true
serve --override ringlet.fetch.zero.copy=false
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic burst --producers 0 --consumers 1 --quiet --output json > "$OUT/consume_copy.json"
kill $BROKER; wait $BROKER || true
rm -rf "$DATA" "$DATA.log"

python3 - "$OUT" "$CONFLUENT" "${IPERF:-0}" <<'PY'
import json, sys
out, confluent, iperf = sys.argv[1], sys.argv[2], float(sys.argv[3])
ratio = lambda mb: f" = {mb / iperf:.2f} x iperf3" if iperf else ""
def row(name, f):
    r = json.load(open(f"{out}/{f}.json"))
    p, a, e = r["produced"], r["produce_latency_from_intended"], r["end_to_end_latency"]
    rate = r["config"]["rate"] or "max"
    v = r.get("verification")
    ver = f"{v['lost']} lost / {v['duplicated']} dup" if v else ""
    print(f"| {name} | {rate} | {p['records_per_s']:,.0f} | {p['mb_per_s']:.0f} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} | {a['p999_ms']:.2f} | {a['max_ms']:.1f} | {e['p99_ms']:.2f} | {ver} |")
print("| run | rate (rec/s) | produced rec/s | MB/s | ack p50 ms | ack p99 ms | ack p99.9 ms | ack max ms | e2e p99 ms | verify |")
print("|---|---|---|---|---|---|---|---|---|---|")
row("loadgen -> sink (generator ceiling), acks=1", "sink")
row("loadgen -> ringlet, acks=1", "acks1")
row("loadgen -> ringlet, acks=all", "acksall")
row("loadgen -> ringlet, acks=1, half the acks=1 max, linger.ms=0", "half")
row("loadgen -> ringlet, acks=1, 3 GB burst into the page cache", "burst")
row("loadgen -> ringlet, acks=all, --verify", "verify")
print(f"\nconfluent-kafka producer (Python, librdkafka), 1 KiB, acks=1: {confluent}")
for name, f in [("splice path (default)", "consume_splice"), ("copying path", "consume_copy")]:
    c = json.load(open(f"{out}/{f}.json"))["consumed"]
    print(f"consume-only, 3 GB from segment files, {name}: {c['mb_per_s']:.0f} MB/s ({c['records_per_s']:,.0f} records/s){ratio(c['mb_per_s'])}")
b = json.load(open(f"{out}/burst.json"))["produced"]
print(f"produce burst, 3 GB into the page cache, acks=1: {b['mb_per_s']:.0f} MB/s{ratio(b['mb_per_s'])}")
PY

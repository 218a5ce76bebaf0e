#!/usr/bin/env bash
# One run, all on this machine: the loopback limit (iperf3), the generator's ceiling (loadgen
# against the discarding sink), ringlet loadgen against ringlet serve (acks=1 and acks=all at full
# speed, then a fixed rate at half the acks=1 maximum), and an existing tool (confluent-kafka)
# producing the same 1 KiB records. Writes JSON reports to $OUT (default /tmp/ringlet-loadgen).
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
COMMON=(--record-size 1024 --partitions 2 --producers 1 --batch-size 262144 --linger-ms 2 --max-in-flight 5 --warmup 2 --duration "$SECS" --quiet --output json)

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
if command -v iperf3 >/dev/null; then
  iperf3 -s -1 -p 19602 >/dev/null 2>&1 &
  sleep 0.5
  echo "iperf3 -c 127.0.0.1 (single stream): $(iperf3 -c 127.0.0.1 -p 19602 -t 5 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e6), "MB/s")')"
fi

$BIN loadgen-sink --port $SINK_PORT --partitions 2 2>/dev/null &
SINK=$!
sleep 0.5
$BIN loadgen --bootstrap-server 127.0.0.1:$SINK_PORT --topic sink "${COMMON[@]}" --consumers 0 --acks 1 > "$OUT/sink.json"
kill $SINK

$BIN serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$DATA" > "$DATA.log" 2>&1 &
BROKER=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic acks1 "${COMMON[@]}" --consumers 1 --acks 1 > "$OUT/acks1.json"
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic acksall "${COMMON[@]}" --consumers 1 --acks all > "$OUT/acksall.json"
HALF=$(python3 -c "import json; print(int(json.load(open('$OUT/acks1.json'))['produced']['records_per_s'] / 2))")
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic half "${COMMON[@]}" --consumers 1 --acks 1 --rate "$HALF" > "$OUT/half.json"
$BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic verify "${COMMON[@]}" --consumers 1 --acks all --verify > "$OUT/verify.json"
CONFLUENT=$(.venv/bin/python benches/e2e/produce_confluent.py 127.0.0.1:$PORT confluent 1000000 1)
kill $BROKER; wait $BROKER || true
rm -rf "$DATA" "$DATA.log"

python3 - "$OUT" "$CONFLUENT" <<'PY'
import json, sys
out, confluent = sys.argv[1], sys.argv[2]
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
row("loadgen -> ringlet, acks=1, half the acks=1 max", "half")
row("loadgen -> ringlet, acks=all, --verify", "verify")
print(f"\nconfluent-kafka producer (Python, librdkafka), 1 KiB, acks=1: {confluent}")
PY

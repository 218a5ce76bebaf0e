#!/usr/bin/env bash
# Produce latency while the log cleaner works on the same shard (issue 22 item 2): one broker, one
# shard (num.io.threads=1, so the cleaner and the producer share a ring and a thread), a
# compacted topic filled with FILL_MB of keyed records, then a fixed-rate produce to another topic
# measured twice per round: with the cleaner off (log.cleaner.enable=false) and with the cleaner
# compacting the filled topic (enabled, backoff 100 ms), interleaved, each arm on a restart of
# the same data (the cleaner arm first copies the filled data so that every round cleans the
# same dirty log).
#
# Usage: benches/e2e/compaction.sh [ROUNDS] [SECONDS] [FILL_MB] [RATE]
#   RINGLET_BIN  the release binary (default target/release/ringlet, built if missing)
#   THROTTLE     log.cleaner.io.max.bytes.per.second for the cleaner arm (default: none)
# Prints per arm p50/p99/p99.9 of the producer (CO-corrected, loadgen) and how long the cleaning
# took (the broker's "log cleaned" line).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}; SECS=${2:-15}; FILL_MB=${3:-300}; RATE=${4:-5000}
BIN=${RINGLET_BIN:-target/release/ringlet}
[ -x "$BIN" ] || cargo build --release -q -p ringlet-cli
OUT=$(mktemp -d /tmp/ringlet-compaction-XXXX)
PORT=19760
trap 'pkill -f "log.dirs=$OUT" 2>/dev/null || true' EXIT

start() { # DATA [overrides...] -> pid
  local data=$1; shift
  "$BIN" serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$data" \
    --override num.io.threads=1 --override log.cleaner.backoff.ms=100 "$@" >>"$data.log" 2>&1 &
  local pid=$!
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  echo "$pid"
}
stop() { kill "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

# The filled topic: FILL_MB of 1 KiB records over 20,000 keys, in 16 MiB segments, written with
# the cleaner off so that all of it is dirty.
FILLED="$OUT/filled"
pid=$(start "$FILLED" --override log.cleaner.enable=false)
"$BIN" topics --bootstrap-server 127.0.0.1:$PORT --create --topic table --partitions 1 \
  --config cleanup.policy=compact --config segment.bytes=16777216 \
  --config min.cleanable.dirty.ratio=0.01 >/dev/null
"$BIN" loadgen --bootstrap-server 127.0.0.1:$PORT --topic table --partitions 1 --keys 20000 \
  --record-size 1024 --records $((FILL_MB * 1024)) --warmup 0 --quiet --output json >"$OUT/fill.json"
"$BIN" topics --bootstrap-server 127.0.0.1:$PORT --create --topic load --partitions 1 >/dev/null
stop "$pid"

measure() { # ARM ROUND overrides...
  local arm=$1 round=$2; shift 2
  local data="$OUT/$arm-$round"
  rm -rf "$data"; cp -a "$FILLED" "$data"
  local pid; pid=$(start "$data" "$@")
  "$BIN" loadgen --bootstrap-server 127.0.0.1:$PORT --topic load --partitions 1 --record-size 1024 \
    --rate "$RATE" --duration "$SECS" --warmup 1 --acks 1 --quiet --output json >"$OUT/$arm-$round.json"
  stop "$pid"
  local cleaned; cleaned=$(sed "s/\x1b\[[0-9;]*m//g" "$data.log" | grep -a "log cleaned" | grep -ao 'ms=[0-9]*' | head -1 || true)
  python3 - "$OUT/$arm-$round.json" "$arm" "$round" "${cleaned:-(still running when the arm ended)}" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["produce_latency_from_intended"]
print(f"{sys.argv[2]:>10} round {sys.argv[3]}: p50 {p['p50_ms']} ms  p99 {p['p99_ms']} ms  "
      f"p99.9 {p['p999_ms']} ms  max {p['max_ms']} ms  {r['produced']['records_per_s']:.0f} records/s  "
      f"cleaning {sys.argv[4]}")
EOF
}

echo "fill: $(python3 -c "import json;r=json.load(open('$OUT/fill.json'));print(round(r['produced']['mb_per_s']))") MB/s; produce at $RATE records/s for ${SECS}s per arm"
for round in $(seq "$ROUNDS"); do
  measure no-cleaner "$round" --override log.cleaner.enable=false
  measure cleaner "$round" ${THROTTLE:+--override log.cleaner.io.max.bytes.per.second=$THROTTLE}
done
echo "reports in $OUT"

#!/usr/bin/env bash
# Whole-system figures with clients nobody here wrote: produce 1 KiB records with confluent-kafka
# and kcat, consume them back with the copying and the splice fetch paths. Prints a table.
# Usage: benches/e2e/run.sh [RECORDS]   (needs kcat and .venv, as scripts/test.sh sets up)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-500000}
PORT=19400
PY=.venv/bin/python
cargo build --release -q
DATA=$(mktemp -d /tmp/ringlet-bench-XXXX)
start_broker() {
  ./target/release/ringlet serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" \
    --override "log.dirs=$DATA" "$@" > "$DATA.log" 2>&1 &
  BROKER=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; exit 1
}
stop_broker() { kill "$BROKER"; wait "$BROKER" || true; }
cpu_ms() { awk '{print ($14+$15)*10}' /proc/"$BROKER"/stat; }

echo "machine: $(nproc) cores, $(uname -r)"
start_broker
c0=$(cpu_ms)
echo "produce, confluent-kafka, acks=1:   $($PY benches/e2e/produce_confluent.py 127.0.0.1:$PORT bench1k "$N" 1)"
c1=$(cpu_ms); echo "  broker CPU: $((c1 - c0)) ms"
echo "produce, confluent-kafka, acks=all: $($PY benches/e2e/produce_confluent.py 127.0.0.1:$PORT bench1k-all "$N" all)"
head -c 1000 /dev/zero | tr '\0' 'x' > "$DATA.line"; echo >> "$DATA.line"
for _ in $(seq 10); do cat "$DATA.line" "$DATA.line" "$DATA.line" "$DATA.line" "$DATA.line" "$DATA.line" "$DATA.line" "$DATA.line" "$DATA.line" "$DATA.line"; done > "$DATA.100"
for _ in $(seq $((N / 100))); do cat "$DATA.100"; done > "$DATA.lines"
t0=$(date +%s.%N)
kcat -b 127.0.0.1:$PORT -P -t bench-kcat -X linger.ms=5 -X batch.size=1000000 -l "$DATA.lines"
t1=$(date +%s.%N)
echo "produce, kcat -P (1000-byte lines): records=$N seconds=$(echo "$t1 - $t0" | bc) MB_per_s=$(echo "$N * 1001 / ($t1 - $t0) / 1000000" | bc)"
c0=$(cpu_ms)
echo "consume, copy path:   $($PY benches/e2e/consume_confluent.py 127.0.0.1:$PORT bench1k "$N")"
c1=$(cpu_ms); echo "  broker CPU: $((c1 - c0)) ms"
stop_broker
start_broker --override ringlet.fetch.zero.copy=true
c0=$(cpu_ms)
echo "consume, splice path: $($PY benches/e2e/consume_confluent.py 127.0.0.1:$PORT bench1k "$N")"
c1=$(cpu_ms); echo "  broker CPU: $((c1 - c0)) ms"
stop_broker
rm -rf "$DATA" "$DATA".*

#!/usr/bin/env bash
# Interleaved A/B of two ringlet builds as brokers, driven by one load generator (B's), so only
# the broker differs: rounds of A then B, each a fresh broker with 2 shards and two 10 s runs
# (acks=1, and acks=all with a consumer), 1 KiB records, 2 partitions, page-cache durability.
# Usage: benches/e2e/ab.sh BIN_A BIN_B [ROUNDS] [SECONDS]   -> one line per run, then medians.
set -euo pipefail
A=$1; B=$2; ROUNDS=${3:-3}; SECS=${4:-10}
PORT=19700
OUT=$(mktemp -d /tmp/ringlet-ab-XXXX)
COMMON=(--record-size 1024 --partitions 2 --producers 1 --batch-size 262144 --max-in-flight 5 --warmup 2 --duration "$SECS" --linger-ms 2 --quiet --output json)
one() { # label binary round
  local data; data=$(mktemp -d /tmp/ringlet-ab-data-XXXX)
  "$2" serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$data" --override num.io.threads=2 > "$data.log" 2>&1 &
  local broker=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  "$B" loadgen --bootstrap-server 127.0.0.1:$PORT --topic a1 "${COMMON[@]}" --consumers 0 --acks 1 > "$OUT/$1-$3-acks1.json"
  "$B" loadgen --bootstrap-server 127.0.0.1:$PORT --topic aall "${COMMON[@]}" --consumers 1 --acks all > "$OUT/$1-$3-acksall.json"
  kill $broker; wait $broker || true
  rm -rf "$data" "$data.log"; sync
}
for r in $(seq "$ROUNDS"); do one A "$A" "$r"; one B "$B" "$r"; done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def get(f):
    r = json.load(open(f"{out}/{f}.json"))
    return r["produced"]["mb_per_s"], r["produce_latency_from_send"]
for kind in ["acks1", "acksall"]:
    rows = {}
    for side in "AB":
        got = [get(f"{side}-{i}-{kind}") for i in range(1, rounds + 1)]
        rows[side] = [g[0] for g in got]
        print(kind, side, " ".join(f"{x:.0f}" for x in rows[side]), "MB/s;",
              "p99 from send (ms):", " ".join(f"{g[1].get('p99_ms', g[1].get('p99', 0))}" for g in got))
    ma, mb = statistics.median(rows["A"]), statistics.median(rows["B"])
    print(f"{kind}: median A {ma:.0f} MB/s, B {mb:.0f} MB/s, B/A {mb / ma:.3f}")
print("reports in", out)
PY

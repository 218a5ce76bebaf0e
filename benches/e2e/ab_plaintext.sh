#!/usr/bin/env bash
# Plaintext produce + consume A/B of two ringlet builds, alternating on one machine.
# Usage: BASE=/path/to/old/ringlet NEW=target/release/ringlet benches/e2e/ab_plaintext.sh
set -u
run() { # bin label round
  local BIN=$1 L=$2 R=$3 PORT=19392 DATA=$(mktemp -d /tmp/ringlet-ab-XXXX)
  $BIN serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$DATA" > $DATA.log 2>&1 &
  local B=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  $BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic ab --record-size 1024 --partitions 2 --batch-size 262144 --linger-ms 2 --records 1000000 --warmup 0 --quiet --output json --acks 1 --consumers 0 > /tmp/ab-p.json 2>/dev/null
  $BIN loadgen --bootstrap-server 127.0.0.1:$PORT --topic ab --producers 0 --consumers 1 --quiet --output json > /tmp/ab-c.json 2>/dev/null
  python3 -c "
import json; p=json.load(open('/tmp/ab-p.json'))['produced']; c=json.load(open('/tmp/ab-c.json'))['consumed']
print(f'round $R $L: produce {p[\"mb_per_s\"]:.0f} MB/s, consume {c[\"mb_per_s\"]:.0f} MB/s')"
  kill $B; wait $B; rm -rf $DATA $DATA.log; sync
}
for r in 1 2 3; do
  run "${BASE:?set BASE to the baseline binary}" base $r
  run "${NEW:-target/release/ringlet}" new $r
done

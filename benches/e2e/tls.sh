#!/usr/bin/env bash
# Fetch over TLS against plaintext: 1 GB (1M x 1 KiB records, 2 partitions) produced over
# PLAINTEXT, then read back by consume-only loadgen runs alternating between the PLAINTEXT
# listener (splice from the segment files) and the SSL listener (file bytes read into memory and
# encrypted by rustls; the client decrypts with rustls too). Same broker, same page cache.
# Usage: benches/e2e/tls.sh [rounds]   (release build: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/ringlet}
ROUNDS=${1:-2}
P1=${PORT:-19292}; P2=$((P1 + 1))
TMP=$(mktemp -d /tmp/ringlet-tls-XXXX)
trap 'kill $BROKER 2>/dev/null || true; cp "$TMP"/*.json /tmp/ 2>/dev/null; rm -rf "$TMP"' EXIT
cd "$TMP"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout b.key -out b.csr -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > b.ext
openssl x509 -req -in b.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile b.ext -out b.pem 2>/dev/null
printf "security.protocol=SSL\nssl.truststore.location=%s/ca.pem\n" "$TMP" > ssl.properties
cd - >/dev/null
$BIN serve --override "listeners=PLAINTEXT://127.0.0.1:$P1,SSL://127.0.0.1:$P2" --override "log.dirs=$TMP/data" \
  --override "ssl.keystore.certificate.chain=$TMP/b.pem" --override "ssl.keystore.key=$TMP/b.key" > "$TMP/broker.log" 2>&1 &
BROKER=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P1) 2>/dev/null && break; sleep 0.1; done
$BIN loadgen --bootstrap-server 127.0.0.1:$P1 --topic tls --record-size 1024 --partitions 2 --batch-size 262144 \
  --linger-ms 2 --records 1000000 --warmup 0 --quiet --output json --acks 1 > /dev/null 2>&1
for r in $(seq "$ROUNDS"); do
  for l in plain ssl; do
    if [ $l = plain ]; then args=(--bootstrap-server 127.0.0.1:$P1); else args=(--bootstrap-server 127.0.0.1:$P2 --command-config "$TMP/ssl.properties"); fi
    before=$(awk '{print $14 + $15}' /proc/$BROKER/stat)
    /usr/bin/time -f "%U %S" -o "$TMP/time" $BIN loadgen "${args[@]}" --topic tls --producers 0 --consumers 1 --quiet --output json > "$TMP/$l.json" 2>/dev/null
    after=$(awk '{print $14 + $15}' /proc/$BROKER/stat)
    python3 - "$TMP/$l.json" "$l" "$r" "$(cat "$TMP/time")" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["consumed"]
mb = c["mb_per_s"]
print(f"round {sys.argv[3]} {sys.argv[2]:5}: {c.get('records', 0):,} records, {mb:.0f} MB/s  broker CPU {int(sys.argv[5]) / int(sys.argv[6]):.2f} s, client CPU user+sys {sys.argv[4]} s")
PY
  done
done

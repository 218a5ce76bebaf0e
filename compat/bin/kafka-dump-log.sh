#!/usr/bin/env bash
# Kafka's bin/kafka-dump-log.sh: runs kafka.tools.DumpLogSegments from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool kafka.tools.DumpLogSegments "$@"

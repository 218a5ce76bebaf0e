#!/usr/bin/env bash
# Kafka's bin/kafka-storage.sh: runs kafka.tools.StorageTool from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool kafka.tools.StorageTool "$@"

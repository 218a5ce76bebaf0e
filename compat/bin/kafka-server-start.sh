#!/usr/bin/env bash
# Kafka's bin/kafka-server-start.sh: runs kafka.Kafka from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool kafka.Kafka "$@"

#!/usr/bin/env bash
# Kafka's bin/kafka-configs.sh: runs kafka.admin.ConfigCommand from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool kafka.admin.ConfigCommand "$@"

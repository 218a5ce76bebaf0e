#!/usr/bin/env bash
# Kafka's bin/kafka-delete-records.sh: runs org.apache.kafka.tools.DeleteRecordsCommand from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool org.apache.kafka.tools.DeleteRecordsCommand "$@"

#!/usr/bin/env bash
# Kafka's bin/kafka-producer-perf-test.sh: runs org.apache.kafka.tools.ProducerPerformance from the Maven jars (scripts/kafka-reference.sh fetch).
exec "$(dirname "$0")/../../scripts/kafka-reference.sh" tool org.apache.kafka.tools.ProducerPerformance "$@"

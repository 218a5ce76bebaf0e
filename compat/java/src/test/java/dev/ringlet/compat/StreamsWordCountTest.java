package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Kafka Streams' word count (at-least-once) over a fixed input must reach exactly the expected
 * counts. It needs a repartition topic, a compacted changelog topic and DeleteRecords on the
 * repartition topic: the broker's compaction work (issue "Log compaction") decides it.
 */
@Tag("streams")
class StreamsWordCountTest {
  static final List<String> INPUT = List.of(
      "all streams lead to kafka",
      "hello kafka streams",
      "join kafka summit",
      "kafka kafka kafka",
      "streams of streams");

  @Test
  void wordCountReachesTheExactCounts() throws Exception {
    String input;
    String output = Env.unique("wc-output");
    try (Admin admin = Env.admin()) {
      input = Env.topic(admin, "wc-input", 2);
    }
    Map<String, Long> expected = new TreeMap<>();
    for (String line : INPUT) {
      for (String w : line.toLowerCase(Locale.ROOT).split("\\W+")) {
        expected.merge(w, 1L, Long::sum);
      }
    }
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      int i = 0;
      for (String line : INPUT) {
        p.send(new ProducerRecord<>(input, "line-" + i++, line));
      }
      p.flush();
    }

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .flatMapValues(v -> Arrays.asList(v.toLowerCase(Locale.ROOT).split("\\W+")))
        .groupBy((k, w) -> w)
        .count(Materialized.as("counts"))
        .toStream()
        .to(output, Produced.with(Serdes.String(), Serdes.Long()));
    Path state = Files.createTempDirectory("ringlet-streams-");
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, Env.unique("wordcount"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, Env.bootstrap());
    props.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "1");
    props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
    props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());

    Map<String, Long> latest = new HashMap<>();
    try (KafkaStreams streams = new KafkaStreams(builder.build(), props)) {
      streams.start();
      Properties cp = Env.base();
      cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
      cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
      cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      cp.put(ConsumerConfig.GROUP_ID_CONFIG, Env.unique("wc-reader"));
      try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
        c.subscribe(List.of(output));
        long deadline = System.currentTimeMillis() + 90_000;
        while (!new TreeMap<>(latest).equals(expected) && System.currentTimeMillis() < deadline) {
          for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
            latest.put(r.key(), r.value());
          }
          if (streams.state() == KafkaStreams.State.ERROR || streams.state() == KafkaStreams.State.NOT_RUNNING) {
            throw new AssertionError("the Streams application stopped: " + streams.state());
          }
        }
      }
    }
    assertEquals(expected, new TreeMap<>(latest));
  }
}

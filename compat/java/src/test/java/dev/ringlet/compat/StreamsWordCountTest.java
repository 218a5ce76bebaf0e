package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.ConfigResource;
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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Kafka Streams' word count (at-least-once, and exactly_once_v2: transactions, TxnOffsetCommit
 * with the group's generation, read_committed) over a fixed input must reach exactly the expected
 * counts. It needs a repartition topic, a compacted changelog topic and DeleteRecords on the
 * repartition topic. Then the application stops, the broker restarts (when the harness gives
 * -Drestart.command), more input arrives, and a new instance with an empty state directory
 * restores its store from the compacted changelog and must reach the exact totals.
 */
@Tag("streams")
class StreamsWordCountTest {
  static final List<String> INPUT = List.of(
      "all streams lead to kafka",
      "hello kafka streams",
      "join kafka summit",
      "kafka kafka kafka",
      "streams of streams");
  static final List<String> MORE = List.of("kafka streams again", "hello again");

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {StreamsConfig.AT_LEAST_ONCE, StreamsConfig.EXACTLY_ONCE_V2})
  void wordCountReachesTheExactCounts(String guarantee) throws Exception {
    String input;
    String output = Env.unique("wc-output");
    String app = Env.unique("wordcount");
    try (Admin admin = Env.admin()) {
      input = Env.topic(admin, "wc-input", 2);
    }
    Map<String, Long> expected = new TreeMap<>();
    produce(input, INPUT, 0, expected);

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .flatMapValues(v -> Arrays.asList(v.toLowerCase(Locale.ROOT).split("\\W+")))
        .groupBy((k, w) -> w)
        .count(Materialized.as("counts"))
        .toStream()
        .to(output, Produced.with(Serdes.String(), Serdes.Long()));

    Map<String, Long> latest = new HashMap<>();
    try (KafkaStreams streams = new KafkaStreams(builder.build(), props(app, guarantee))) {
      streams.start();
      readUntil(output, expected, latest, streams, guarantee);
    }
    assertEquals(expected, new TreeMap<>(latest));

    // The changelog Streams created is compacted, as Streams asks.
    try (Admin admin = Env.admin()) {
      String changelog = app + "-counts-changelog";
      ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
      Config c = admin.describeConfigs(Set.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
      assertEquals("compact", c.get("cleanup.policy").value());
    }

    String restart = System.getProperty("restart.command", "");
    if (!restart.isEmpty()) {
      Process p = new ProcessBuilder("bash", restart).inheritIO().start();
      assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, "the broker restarted");
    }
    produce(input, MORE, INPUT.size(), expected);
    // A new instance with an empty state directory: the store comes back from the changelog.
    try (KafkaStreams streams = new KafkaStreams(builder.build(), props(app, guarantee))) {
      streams.start();
      readUntil(output, expected, latest, streams, guarantee);
    }
    assertEquals(expected, new TreeMap<>(latest));
  }

  static void produce(String topic, List<String> lines, int first, Map<String, Long> expected) {
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      int i = first;
      for (String line : lines) {
        p.send(new ProducerRecord<>(topic, "line-" + i++, line));
        for (String w : line.toLowerCase(Locale.ROOT).split("\\W+")) {
          expected.merge(w, 1L, Long::sum);
        }
      }
      p.flush();
    }
  }

  static Properties props(String app, String guarantee) throws Exception {
    Path state = Files.createTempDirectory("ringlet-streams-");
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, Env.bootstrap());
    props.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "1");
    props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
    props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
    return props;
  }

  /**
   * Reads the output topic from the start until every count is the expected one (90 s); under
   * exactly-once as a read_committed consumer, so only committed counts are seen.
   */
  static void readUntil(String output, Map<String, Long> expected, Map<String, Long> latest,
      KafkaStreams streams, String guarantee) {
    Properties cp = Env.base();
    cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
    cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    cp.put(ConsumerConfig.GROUP_ID_CONFIG, Env.unique("wc-reader"));
    if (guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
      cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    }
    try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
      c.subscribe(List.of(output));
      long deadline = System.currentTimeMillis() + 90_000;
      while (!new TreeMap<>(latest).equals(expected) && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
          latest.put(r.key(), r.value());
        }
        if (streams.state() == KafkaStreams.State.ERROR
            || streams.state() == KafkaStreams.State.NOT_RUNNING) {
          throw new AssertionError("the Streams application stopped: " + streams.state());
        }
      }
    }
  }
}

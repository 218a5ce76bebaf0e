package dev.ringlet.examples;

import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Kafka Streams' word count with {@code processing.guarantee=exactly_once_v2}: lines from INPUT
 * are split into words, counted in a state store (backed by a compacted changelog topic, through a
 * repartition topic), and every new count goes to OUTPUT, all inside Streams' transactions. Killed
 * at any instant and started again, the counts a read_committed reader sees stay exact.
 *
 * <p>Usage: {@code WordCountExample BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [GUARANTEE]}.
 * Runs until killed (or SIGTERM, which closes it cleanly).
 */
public final class WordCountExample {
  private WordCountExample() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 5) {
      System.err.println(
          "usage: WordCountExample BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [GUARANTEE]");
      System.exit(2);
    }
    Properties p = new Properties();
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
    p.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
        args.length > 5 ? args[5] : StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    // A killed instance's transaction is aborted by the broker after this long, and its group
    // member is dropped after this session timeout (the next instance's rebalance waits for it).
    p.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), "5000");
    p.put(StreamsConfig.consumerPrefix("session.timeout.ms"), "10000");

    StreamsBuilder b = new StreamsBuilder();
    b.<String, String>stream(args[2])
        .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
        .filter((k, word) -> !word.isEmpty())
        .groupBy((k, word) -> word)
        .count()
        .toStream()
        .to(args[3], Produced.with(Serdes.String(), Serdes.Long()));

    KafkaStreams streams = new KafkaStreams(b.build(), p);
    CountDownLatch done = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      done.countDown();
    }));
    streams.setStateListener((now, before) -> System.out.println("state " + before + " -> " + now));
    streams.start();
    done.await();
  }
}

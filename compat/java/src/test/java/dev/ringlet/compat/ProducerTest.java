package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidTimestampException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** What a producing application does: acks, idempotence, codecs, headers, large records. */
class ProducerTest {
  static Admin admin;

  @BeforeAll
  static void setUp() {
    admin = Env.admin();
  }

  @AfterAll
  static void tearDown() {
    admin.close();
  }

  /** Produces n records, then reads the partition from the start and checks they all came back in order. */
  private static void roundTrip(Map<String, Object> producerConfig, int n) throws Exception {
    String topic = Env.topic(admin, "produce", 1);
    List<Future<RecordMetadata>> sent = new ArrayList<>();
    try (KafkaProducer<String, String> p = Env.producer(producerConfig)) {
      for (int i = 0; i < n; i++) {
        sent.add(p.send(new ProducerRecord<>(topic, "k" + i, "v" + i)));
      }
      p.flush();
      for (Future<RecordMetadata> f : sent) {
        f.get(30, TimeUnit.SECONDS);
      }
    }
    try (var c = Env.consumer(null, Map.of())) {
      TopicPartition tp = new TopicPartition(topic, 0);
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      List<ConsumerRecord<String, String>> got = Env.pollUntil(c, n, Duration.ofSeconds(30));
      assertEquals(n, got.size(), "records read back");
      for (int i = 0; i < n; i++) {
        assertEquals(i, got.get(i).offset());
        assertEquals("k" + i, got.get(i).key());
        assertEquals("v" + i, got.get(i).value());
      }
    }
  }

  @ParameterizedTest(name = "acks={0}")
  @ValueSource(strings = {"0", "1", "all"})
  void acks(String acks) throws Exception {
    roundTrip(Map.of(ProducerConfig.ACKS_CONFIG, acks, ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false"), 200);
  }

  @Test
  void idempotentProducerWithFiveInFlight() throws Exception {
    roundTrip(Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true",
        ProducerConfig.ACKS_CONFIG, "all",
        ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5",
        ProducerConfig.LINGER_MS_CONFIG, "0",
        ProducerConfig.BATCH_SIZE_CONFIG, "512"), 2000);
  }

  @Test
  void offsetsReturnedAreConsecutive() throws Exception {
    String topic = Env.topic(admin, "offsets", 1);
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      long first = p.send(new ProducerRecord<>(topic, "a")).get(30, TimeUnit.SECONDS).offset();
      long second = p.send(new ProducerRecord<>(topic, "b")).get(30, TimeUnit.SECONDS).offset();
      assertEquals(0, first);
      assertEquals(1, second);
    }
  }

  @ParameterizedTest(name = "compression.type={0}")
  @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
  void compression(String codec) throws Exception {
    roundTrip(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec, ProducerConfig.LINGER_MS_CONFIG, "5"), 500);
  }

  @Test
  void headersRoundTrip() throws Exception {
    String topic = Env.topic(admin, "headers", 1);
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      var rec = new ProducerRecord<>(topic, null, "key", "value",
          List.<Header>of(new RecordHeader("trace", "abc".getBytes(StandardCharsets.UTF_8)),
              new RecordHeader("empty", new byte[0]),
              new RecordHeader("trace", "second".getBytes(StandardCharsets.UTF_8))));
      p.send(rec).get(30, TimeUnit.SECONDS);
    }
    try (var c = Env.consumer(null, Map.of())) {
      TopicPartition tp = new TopicPartition(topic, 0);
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      var got = Env.pollUntil(c, 1, Duration.ofSeconds(30));
      assertEquals(1, got.size());
      Header[] hs = got.get(0).headers().toArray();
      assertEquals(3, hs.length);
      assertEquals("trace", hs[0].key());
      assertEquals("abc", new String(hs[0].value(), StandardCharsets.UTF_8));
      assertEquals(0, hs[1].value().length);
      assertEquals("second", new String(hs[2].value(), StandardCharsets.UTF_8));
    }
  }

  @Test
  void recordNearMessageMaxBytesIsAccepted() throws Exception {
    String topic = Env.topic(admin, "large", 1);
    String big = "x".repeat(1_000_000);
    try (KafkaProducer<String, String> p = Env.producer(Map.of(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "2000000"))) {
      assertEquals(0, p.send(new ProducerRecord<>(topic, big)).get(30, TimeUnit.SECONDS).offset());
    }
    try (var c = Env.consumer(null, Map.of())) {
      TopicPartition tp = new TopicPartition(topic, 0);
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      var got = Env.pollUntil(c, 1, Duration.ofSeconds(30));
      assertEquals(1, got.size());
      assertEquals(big, got.get(0).value());
    }
  }

  @Test
  void recordOverMessageMaxBytesIsRefusedByTheBroker() throws Exception {
    String topic = Env.topic(admin, "toolarge", 1);
    // The client's own limit is raised so that the broker's message.max.bytes (1048588) judges.
    try (KafkaProducer<String, String> p = Env.producer(Map.of(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "3000000",
        ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false", ProducerConfig.RETRIES_CONFIG, "0"))) {
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> p.send(new ProducerRecord<>(topic, "y".repeat(1_100_000))).get(30, TimeUnit.SECONDS));
      assertInstanceOf(RecordTooLargeException.class, e.getCause());
      // The producer stays usable after the refusal.
      assertTrue(p.send(new ProducerRecord<>(topic, "small")).get(30, TimeUnit.SECONDS).offset() >= 0);
    }
  }

  @Test
  void producingToAnUnknownTopicAutoCreatesIt() throws Exception {
    String topic = Env.unique("autocreate");
    try (KafkaProducer<String, String> p = Env.producer(Map.of())) {
      RecordMetadata md = p.send(new ProducerRecord<>(topic, "v")).get(30, TimeUnit.SECONDS);
      assertEquals(0, md.offset());
      assertEquals(0, md.partition());
    }
  }

  /**
   * KIP-937 and KIP-467 (issue 21 item 1): a record two hours ahead of the broker's clock (over
   * Kafka 4's message.timestamp.after.max.ms of one hour) fails with the broker's per-record
   * reason; the other records of its batch fail as part of a rejected batch; nothing is written.
   */
  @Test
  void recordFarInTheFutureFailsAloneWithTheBrokersReason() throws Exception {
    String topic = Env.topic(admin, "future", 1);
    long now = System.currentTimeMillis();
    try (KafkaProducer<String, String> p = Env.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, "500",
        ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false", ProducerConfig.RETRIES_CONFIG, "0"))) {
      List<Future<RecordMetadata>> sent = new ArrayList<>();
      for (long ts : new long[] {now, now + 2 * 3600 * 1000L, now}) {
        sent.add(p.send(new ProducerRecord<>(topic, 0, ts, null, "v" + ts)));
      }
      p.flush();
      ExecutionException bad = assertThrows(ExecutionException.class, () -> sent.get(1).get(30, TimeUnit.SECONDS));
      assertInstanceOf(InvalidTimestampException.class, bad.getCause());
      assertTrue(bad.getCause().getMessage().contains("of message with offset 1 is out of range"),
          bad.getCause().getMessage());
      for (int i : new int[] {0, 2}) {
        int j = i;
        ExecutionException other = assertThrows(ExecutionException.class, () -> sent.get(j).get(30, TimeUnit.SECONDS));
        assertTrue(other.getCause().getMessage().contains("part of a batch"), other.getCause().getMessage());
      }
      // Nothing of the batch was written: the next record is offset 0.
      assertEquals(0, p.send(new ProducerRecord<>(topic, 0, now, null, "ok")).get(30, TimeUnit.SECONDS).offset());
    }
  }
}

package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Exactly-once with the Java client: transactions, read_committed, offsets in a transaction, fencing. */
class TransactionsTest {
  static Admin admin;

  @BeforeAll
  static void setUp() {
    admin = Env.admin();
  }

  @AfterAll
  static void tearDown() {
    admin.close();
  }

  static KafkaProducer<String, String> txProducer(String id) {
    KafkaProducer<String, String> p = Env.producer(Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id));
    p.initTransactions();
    return p;
  }

  static List<String> readAll(String topic, int partitions, String isolation, int expect) {
    try (var c = Env.consumer(null, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation))) {
      List<TopicPartition> tps = new ArrayList<>();
      for (int i = 0; i < partitions; i++) {
        tps.add(new TopicPartition(topic, i));
      }
      c.assign(tps);
      c.seekToBeginning(tps);
      List<String> out = new ArrayList<>();
      for (ConsumerRecord<String, String> r : Env.pollUntil(c, expect, Duration.ofSeconds(20))) {
        out.add(r.value());
      }
      // Nothing more may arrive.
      for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(700))) {
        out.add(r.value());
      }
      out.sort(null);
      return out;
    }
  }

  @Test
  void commitAbortAndReadCommitted() throws Exception {
    String topic = Env.topic(admin, "txn", 2);
    try (var p = txProducer(Env.unique("tid"))) {
      p.beginTransaction();
      for (int i = 0; i < 6; i++) {
        p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "c" + i));
      }
      p.commitTransaction();
      p.beginTransaction();
      for (int i = 0; i < 6; i++) {
        p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "a" + i));
      }
      p.flush();
      p.abortTransaction();
      p.beginTransaction();
      p.send(new ProducerRecord<>(topic, 0, "k", "d0"));
      p.commitTransaction();
    }
    List<String> committed = readAll(topic, 2, "read_committed", 7);
    assertEquals(List.of("c0", "c1", "c2", "c3", "c4", "c5", "d0"), committed);
    assertEquals(13, readAll(topic, 2, "read_uncommitted", 13).size());
  }

  @Test
  void offsetsCommitWithTheTransaction() throws Exception {
    String in = Env.topic(admin, "ctp-in", 1);
    String out = Env.topic(admin, "ctp-out", 1);
    String group = Env.unique("ctp");
    try (var plain = Env.producer(Map.of())) {
      for (int i = 0; i < 10; i++) {
        plain.send(new ProducerRecord<>(in, "v" + i));
      }
      plain.flush();
    }
    try (var c = Env.consumer(group, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"));
        var p = txProducer(Env.unique("ctp-tid"))) {
      c.subscribe(List.of(in));
      List<ConsumerRecord<String, String>> got = Env.pollUntil(c, 10, Duration.ofSeconds(30));
      assertEquals(10, got.size());
      p.beginTransaction();
      for (ConsumerRecord<String, String> r : got) {
        p.send(new ProducerRecord<>(out, r.value().toUpperCase()));
      }
      Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
      offsets.put(new TopicPartition(in, 0), new OffsetAndMetadata(10));
      p.sendOffsetsToTransaction(offsets, c.groupMetadata());
      p.commitTransaction();
      // Offsets sent in an aborted transaction never take effect.
      p.beginTransaction();
      p.send(new ProducerRecord<>(out, "never"));
      offsets.put(new TopicPartition(in, 0), new OffsetAndMetadata(5));
      p.sendOffsetsToTransaction(offsets, c.groupMetadata());
      p.abortTransaction();
    }
    var committed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    assertEquals(10, committed.get(new TopicPartition(in, 0)).offset());
    assertEquals(10, readAll(out, 1, "read_committed", 10).size());
  }

  @Test
  void secondInstanceFencesTheFirst() throws Exception {
    String topic = Env.topic(admin, "fence", 1);
    String id = Env.unique("fence-tid");
    var zombie = txProducer(id);
    zombie.beginTransaction();
    zombie.send(new ProducerRecord<>(topic, "zombie")).get(30, TimeUnit.SECONDS);
    try (var fresh = txProducer(id)) {
      fresh.beginTransaction();
      fresh.send(new ProducerRecord<>(topic, "fresh"));
      fresh.commitTransaction();
    }
    assertThrows(KafkaException.class, zombie::commitTransaction);
    zombie.close(Duration.ZERO);
    assertEquals(List.of("fresh"), readAll(topic, 1, "read_committed", 1));
  }

  @Test
  void adminListsAndDescribesTransactions() throws Exception {
    String topic = Env.topic(admin, "describe", 1);
    String id = Env.unique("described");
    try (var p = txProducer(id)) {
      p.beginTransaction();
      p.send(new ProducerRecord<>(topic, "x")).get(30, TimeUnit.SECONDS);
      TransactionDescription d = admin.describeTransactions(List.of(id)).description(id).get(30, TimeUnit.SECONDS);
      assertEquals(TransactionState.ONGOING, d.state());
      assertTrue(d.topicPartitions().contains(new TopicPartition(topic, 0)), d.toString());
      assertTrue(d.transactionStartTimeMs().isPresent());
      boolean listed = false;
      for (TransactionListing l : admin.listTransactions().all().get(30, TimeUnit.SECONDS)) {
        listed |= l.transactionalId().equals(id) && l.state() == TransactionState.ONGOING;
      }
      assertTrue(listed, "listTransactions shows the open transaction");
      p.commitTransaction();
      d = admin.describeTransactions(List.of(id)).description(id).get(30, TimeUnit.SECONDS);
      assertEquals(TransactionState.COMPLETE_COMMIT, d.state());
    }
  }
}

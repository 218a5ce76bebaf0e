package dev.ringlet.examples;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Exactly-once consume-transform-produce (the seed's third delivery semantic): each batch of input
 * records is written upper-cased to the output topic together with the group's input offsets in
 * one transaction, so a record is in the committed output once whatever fails.
 *
 * <p>Usage: {@code ExactlyOncePipelineExample BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID COUNT
 * [SECONDS]}. Runs until COUNT input records were committed (or SECONDS, default 120, passed) and
 * exits non-zero if fewer were. It survives broker failures as an application should: an abortable
 * error aborts the transaction and rewinds the consumer to the group's committed offsets; a fatal
 * one (fenced, or a state the producer cannot leave) replaces the producer, whose
 * initTransactions() fences the old one and aborts whatever it left open.
 *
 * <p>Settings: {@code transactional.id} (stable per input partition set), {@code
 * isolation.level=read_committed} on the consumer, {@code enable.auto.commit=false} (offsets go
 * through the transaction), and the producer's {@code transaction.timeout.ms}.
 */
public final class ExactlyOncePipelineExample {
  private ExactlyOncePipelineExample() {}

  /** EOS_TRACE set: print each committed transaction's offsets. */
  private static final boolean TRACE = System.getenv("EOS_TRACE") != null;

  public static void main(String[] args) {
    if (args.length < 6) {
      System.err.println(
          "usage: ExactlyOncePipelineExample BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID COUNT [SECONDS]");
      System.exit(2);
    }
    String bootstrap = args[0];
    String input = args[1];
    String output = args[2];
    int want = Integer.parseInt(args[5]);
    long seconds = args.length > 6 ? Long.parseLong(args[6]) : 120;

    Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    c.put(ConsumerConfig.GROUP_ID_CONFIG, args[3]);
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "10");
    c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
    c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());

    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[4]);
    p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "10000");
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());

    long deadline = System.currentTimeMillis() + seconds * 1000;
    int committed = 0;
    int aborted = 0;
    int replaced = 0;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
      consumer.subscribe(List.of(input));
      KafkaProducer<String, String> producer = newProducer(p, deadline);
      while (committed < want && System.currentTimeMillis() < deadline) {
        ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
        if (records.isEmpty()) {
          continue;
        }
        try {
          producer.beginTransaction();
          Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
          for (ConsumerRecord<String, String> r : records) {
            producer.send(new ProducerRecord<>(output, r.key(), r.value().toUpperCase()));
            next.put(
                new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
          }
          producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
          producer.commitTransaction();
          committed += records.count();
          if (TRACE) {
            System.out.println("committed " + next);
          }
        } catch (ProducerFencedException e) {
          System.out.println("fenced: " + e);
          producer.close(Duration.ZERO);
          producer = newProducer(p, deadline);
          replaced++;
          rewind(consumer, deadline);
        } catch (KafkaException e) {
          // Abortable (a leader or coordinator moved, a request timed out): abort and go back to
          // the committed offsets. If the abort fails too, a new producer fences this one.
          System.out.println("aborting after: " + e);
          try {
            producer.abortTransaction();
            aborted++;
          } catch (KafkaException again) {
            System.out.println("replacing the producer after: " + again);
            producer.close(Duration.ZERO);
            producer = newProducer(p, deadline);
            replaced++;
          }
          rewind(consumer, deadline);
        }
      }
      producer.close(Duration.ofSeconds(5));
    }
    System.out.printf(
        "committed %d records (%d aborted transactions, %d producers replaced)%n",
        committed, aborted, replaced);
    System.exit(committed >= want ? 0 : 1);
  }

  /** A transactional producer, retrying initTransactions() while the cluster recovers. */
  private static KafkaProducer<String, String> newProducer(Properties p, long deadline) {
    while (true) {
      KafkaProducer<String, String> producer = new KafkaProducer<>(p);
      try {
        producer.initTransactions();
        return producer;
      } catch (KafkaException e) {
        producer.close(Duration.ZERO);
        if (System.currentTimeMillis() > deadline) {
          throw e;
        }
        System.out.println("initTransactions failed, retrying: " + e);
      }
    }
  }

  /** Back to the group's committed offsets (the last committed transaction's). */
  private static void rewind(KafkaConsumer<String, String> consumer, long deadline) {
    Set<TopicPartition> assigned = consumer.assignment();
    while (true) {
      try {
        Map<TopicPartition, OffsetAndMetadata> committed =
            consumer.committed(assigned, Duration.ofSeconds(10));
        for (TopicPartition tp : assigned) {
          OffsetAndMetadata o = committed.get(tp);
          System.out.println("rewind " + tp + " to " + o);
          if (o != null) {
            consumer.seek(tp, o);
          } else {
            consumer.seekToBeginning(List.of(tp));
          }
        }
        return;
      } catch (KafkaException e) {
        if (System.currentTimeMillis() > deadline) {
          throw e;
        }
        System.out.println("reading committed offsets failed, retrying: " + e);
      }
    }
  }
}

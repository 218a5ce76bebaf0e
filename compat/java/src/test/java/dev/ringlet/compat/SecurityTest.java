package dev.ringlet.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileInputStream;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.ResourceNotFoundException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * ACLs and SCRAM users through the AdminClient over SASL_SSL. -Dsecurity.config names a client
 * properties file (bootstrap.servers, SASL_SSL, PLAIN as a super user, a PEM truststore) that
 * scripts/compat.sh writes for a secured broker it starts; without it the class is skipped.
 */
@EnabledIfSystemProperty(named = "security.config", matches = ".+")
class SecurityTest {
  private static Properties superUser() throws Exception {
    Properties p = new Properties();
    try (FileInputStream in = new FileInputStream(System.getProperty("security.config"))) {
      p.load(in);
    }
    return p;
  }

  private static Admin admin() throws Exception {
    return Admin.create(superUser());
  }

  /** A SCRAM-SHA-512 client of the same listener, as `user`. */
  private static KafkaProducer<String, String> producerAs(String user, String password) throws Exception {
    Properties p = superUser();
    p.put("sasl.mechanism", "SCRAM-SHA-512");
    p.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
        + user + "\" password=\"" + password + "\";");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    return new KafkaProducer<>(p);
  }

  @Test
  void aclsCreateDescribeDelete() throws Exception {
    try (Admin admin = admin()) {
      String principal = "User:" + Env.unique("acl-user");
      ResourcePattern topics = new ResourcePattern(ResourceType.TOPIC, "acl-", PatternType.PREFIXED);
      AclBinding read = new AclBinding(topics, new AccessControlEntry(principal, "*", AclOperation.READ, AclPermissionType.ALLOW));
      AclBinding deny = new AclBinding(topics, new AccessControlEntry(principal, "*", AclOperation.WRITE, AclPermissionType.DENY));
      admin.createAcls(List.of(read, deny)).all().get(30, TimeUnit.SECONDS);
      AclBindingFilter mine = new AclBindingFilter(ResourcePatternFilter.ANY,
          new AccessControlEntryFilter(principal, null, AclOperation.ANY, AclPermissionType.ANY));
      assertEquals(Set.of(read, deny), Set.copyOf(admin.describeAcls(mine).values().get(30, TimeUnit.SECONDS)));
      AclBindingFilter denies = new AclBindingFilter(ResourcePatternFilter.ANY,
          new AccessControlEntryFilter(principal, null, AclOperation.ANY, AclPermissionType.DENY));
      var deleted = admin.deleteAcls(List.of(denies)).all().get(30, TimeUnit.SECONDS);
      assertEquals(List.of(deny), List.copyOf(deleted));
      assertEquals(List.of(read), List.copyOf(admin.describeAcls(mine).values().get(30, TimeUnit.SECONDS)));
      admin.deleteAcls(List.of(mine)).all().get(30, TimeUnit.SECONDS);
      assertTrue(admin.describeAcls(mine).values().get(30, TimeUnit.SECONDS).isEmpty());
    }
  }

  @Test
  void scramUsersAuthenticateAndAreAuthorizedByAcls() throws Exception {
    String user = Env.unique("scram");
    String allowed = Env.unique("sec-allowed");
    String forbidden = Env.unique("sec-forbidden");
    try (Admin admin = admin()) {
      admin.createTopics(List.of(new NewTopic(allowed, 1, (short) 1), new NewTopic(forbidden, 1, (short) 1)))
          .all().get(30, TimeUnit.SECONDS);
      admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(user,
          new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), "s3cret-" + user)))
          .all().get(30, TimeUnit.SECONDS);
      var described = admin.describeUserScramCredentials(List.of(user)).all().get(30, TimeUnit.SECONDS).get(user);
      assertEquals(List.of(new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)), described.credentialInfos());
      ResourcePattern topic = new ResourcePattern(ResourceType.TOPIC, allowed, PatternType.LITERAL);
      admin.createAcls(List.of(
          new AclBinding(topic, new AccessControlEntry("User:" + user, "*", AclOperation.WRITE, AclPermissionType.ALLOW)),
          new AclBinding(topic, new AccessControlEntry("User:" + user, "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW))))
          .all().get(30, TimeUnit.SECONDS);

      try (KafkaProducer<String, String> p = producerAs(user, "s3cret-" + user)) {
        assertEquals(0, p.send(new ProducerRecord<>(allowed, "hello")).get(30, TimeUnit.SECONDS).offset());
        ExecutionException e = assertThrows(ExecutionException.class,
            () -> p.send(new ProducerRecord<>(forbidden, "no")).get(30, TimeUnit.SECONDS));
        assertInstanceOf(TopicAuthorizationException.class, e.getCause());
      }
      try (KafkaProducer<String, String> p = producerAs(user, "wrong")) {
        ExecutionException e = assertThrows(ExecutionException.class,
            () -> p.send(new ProducerRecord<>(allowed, "no")).get(30, TimeUnit.SECONDS));
        assertInstanceOf(SaslAuthenticationException.class, e.getCause());
      }

      admin.alterUserScramCredentials(List.of(new UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)))
          .all().get(30, TimeUnit.SECONDS);
      ExecutionException gone = assertThrows(ExecutionException.class,
          () -> admin.describeUserScramCredentials(List.of(user)).description(user).get(30, TimeUnit.SECONDS));
      assertInstanceOf(ResourceNotFoundException.class, gone.getCause());
    }
  }
}

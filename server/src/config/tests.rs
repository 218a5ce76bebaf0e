//! Parsing, defaults and errors of the broker configuration.

use super::*;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_follow_kafka() {
    let (c, unknown) = BrokerConfig::from_properties(&props(&[])).unwrap();
    assert!(unknown.is_empty());
    assert_eq!(c.listener.port, 9092);
    assert_eq!(c.log.segment_bytes, 1 << 30);
    assert_eq!(c.log.retention_ms, 168 * 3_600_000);
    assert_eq!(c.queued_max_requests, 500);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
}

#[test]
fn retention_precedence_and_units() {
    let (c, _) = BrokerConfig::from_properties(&props(&[
        ("log.retention.hours", "1"),
        ("log.retention.minutes", "5"),
    ]))
    .unwrap();
    assert_eq!(c.log.retention_ms, 300_000);
    let (c, _) = BrokerConfig::from_properties(&props(&[
        ("log.retention.ms", "10"),
        ("log.retention.minutes", "5"),
    ]))
    .unwrap();
    assert_eq!(c.log.retention_ms, 10);
}

#[test]
fn invalid_values_name_key_and_allowed_range() {
    let e = BrokerConfig::from_properties(&props(&[("num.io.threads", "zero")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("num.io.threads") && e.contains("zero") && e.contains("integer"),
        "{e}"
    );
    let e = BrokerConfig::from_properties(&props(&[("auto.create.topics.enable", "yes")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("true or false"), "{e}");
}

#[test]
fn docs_list_every_key() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    for (k, _, _) in KEYS {
        assert!(
            doc.contains(&format!("| `{k}` |")),
            "docs/configuration.md misses {k}"
        );
    }
    for k in super::topic::TOPIC_KEYS.iter().map(|k| k.name) {
        assert!(
            doc.contains(&format!("| `{k}` |")),
            "docs/configuration.md misses topic key {k}"
        );
    }
}

#[test]
fn unknown_keys_are_reported() {
    let (_, unknown) = BrokerConfig::from_properties(&props(&[("no.such.key", "1")])).unwrap();
    assert_eq!(unknown, vec!["no.such.key".to_string()]);
}

#[test]
fn listeners_and_port() {
    let (c, _) =
        BrokerConfig::from_properties(&props(&[("listeners", "PLAINTEXT://127.0.0.1:19092")]))
            .unwrap();
    assert_eq!(
        (c.listener.host.as_str(), c.listener.port),
        ("127.0.0.1", 19092)
    );
    assert_eq!(c.advertised.host, "127.0.0.1");
    let (c, _) = BrokerConfig::from_properties(&props(&[("port", "9093")])).unwrap();
    assert_eq!(c.listener.port, 9093);
}

#[test]
fn principal_mapping_rules_follow_kafka() {
    let rules = parse_principal_rules(
        "k",
        r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),O=(.*?)$/$1@$2/L, DEFAULT",
    )
    .unwrap();
    assert_eq!(
        map_principal(&rules, "CN=kafka-svc,OU=ServiceUsers,O=acme").as_deref(),
        Some("kafka-svc")
    );
    assert_eq!(
        map_principal(&rules, "CN=Alice,O=Acme").as_deref(),
        Some("alice@acme")
    );
    assert_eq!(map_principal(&rules, "C=US").as_deref(), Some("C=US"));
    let strict = parse_principal_rules("k", "RULE:^CN=([a-z]+)$/$1/U").unwrap();
    assert_eq!(map_principal(&strict, "CN=bob").as_deref(), Some("BOB"));
    assert_eq!(map_principal(&strict, "CN=bob,O=x"), None);
    assert!(parse_principal_rules("k", "RULE:^CN=(/$1").is_err());
    assert!(parse_principal_rules("k", "NOPE").is_err());
}

#[test]
fn named_listeners_protocols_and_security_keys() {
    let (c, unknown) = BrokerConfig::from_properties(&props(&[
            ("listeners", "PLAINTEXT://127.0.0.1:9092,INTERNAL://:9094"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT"),
            ("advertised.listeners", "INTERNAL://broker1:9094"),
            ("listener.name.internal.sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.internal.plain.sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="a-secret" user_bob="b";"#,
            ),
            ("super.users", "User:admin;User:CN=ops"),
        ]))
        .unwrap();
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(c.listeners.len(), 2);
    let internal = &c.listeners[1];
    assert_eq!(internal.protocol, SecurityProtocol::SaslPlaintext);
    assert_eq!(internal.advertised.host, "broker1");
    assert_eq!(c.listeners[0].advertised.host, "127.0.0.1");
    assert_eq!(internal.sasl_mechanisms, vec!["PLAIN".to_string()]);
    assert_eq!(
        internal.plain_users.get("admin").map(String::as_str),
        Some("a-secret")
    );
    assert_eq!(
        internal.plain_users.get("bob").map(String::as_str),
        Some("b")
    );
    assert_eq!(
        c.super_users,
        vec!["User:admin".to_string(), "User:CN=ops".to_string()]
    );
    // A listener name the map does not know, and an SSL listener without a keystore, stop start-up.
    assert!(BrokerConfig::from_properties(&props(&[("listeners", "FOO://:1")])).is_err());
    let e = BrokerConfig::from_properties(&props(&[("listeners", "SSL://:9093")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ssl.keystore.location"), "{e}");
}

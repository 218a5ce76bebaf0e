//! Kafka's names for error codes (`UNKNOWN_TOPIC_OR_PARTITION`, ...), taken from the protocol
//! crate's complete table so that no code is ever shown as a guess.

use kafka_protocol::error::ResponseError;
use std::sync::OnceLock;

/// Codes Kafka has assigned so far sit in `-1..=MAX_CODE`.
const MAX_CODE: i16 = 200;

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn names() -> &'static [Option<&'static str>] {
    static NAMES: OnceLock<Vec<Option<&'static str>>> = OnceLock::new();
    NAMES.get_or_init(|| {
        (-1..=MAX_CODE)
            .map(|code| match ResponseError::try_from_code(code) {
                None => Some("NONE"),
                Some(ResponseError::Unknown(_)) => None,
                Some(e) => Some(&*Box::leak(upper_snake(&format!("{e:?}")).into_boxed_str())),
            })
            .collect()
    })
}

/// Kafka's name of an error code; `UNKNOWN_ERROR_CODE` for a code Kafka has not assigned.
pub fn error_name(code: i16) -> &'static str {
    usize::try_from(i32::from(code) + 1)
        .ok()
        .and_then(|i| names().get(i).copied().flatten())
        .unwrap_or("UNKNOWN_ERROR_CODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(25), "UNKNOWN_MEMBER_ID");
        assert_eq!(error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_name(79), "MEMBER_ID_REQUIRED");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE");
        assert_eq!(error_name(-7), "UNKNOWN_ERROR_CODE");
    }
}

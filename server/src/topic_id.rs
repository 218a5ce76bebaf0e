//! Topic ids: random version-4 UUIDs, printed and stored in Kafka's base64 form.

/// A new topic id: a random (version 4) UUID, as Kafka's `Uuid.randomUuid` makes it, never the
/// two reserved ids (all zeros, and 1 for the metadata topic) and never one whose base64 form
/// starts with '-', which command-line tools would read as an option.
pub fn new() -> [u8; 16] {
    loop {
        let id = *uuid::Uuid::new_v4().as_bytes();
        if u128::from_be_bytes(id) > 1 && !print(id).starts_with('-') {
            return id;
        }
    }
}

/// A topic id as Kafka prints it (and as its ZooKeeper-mode brokers stored it): URL-safe base64
/// without padding, 22 characters.
pub fn print(id: [u8; 16]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// Reads a stored topic id: Kafka's base64 form, or the 32 hex digits earlier Ringlet builds
/// wrote; all zeros (Kafka's "no id") when it is neither.
pub fn parse(text: &str) -> [u8; 16] {
    use base64::Engine;
    let mut id = [0u8; 16];
    if text.len() == 32 {
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).unwrap_or(0);
        }
    } else if let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text) {
        if let Ok(b) = <[u8; 16]>::try_from(bytes.as_slice()) {
            id = b;
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_round_trip_in_kafkas_form() {
        let id = new();
        let printed = print(id);
        assert_eq!(printed.len(), 22);
        assert_eq!(parse(&printed), id);
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse(&hex), id);
        // Version 4, variant 1, as java.util.UUID.randomUUID makes them.
        assert_eq!(id[6] >> 4, 4);
        assert_eq!(id[8] >> 6, 2);
        // One id in 64 would start with '-' if it were not redrawn.
        for _ in 0..2000 {
            assert!(!print(new()).starts_with('-'));
        }
    }
}

//! SCRAM (RFC 5802/7677) as Kafka uses it for SASL/SCRAM-SHA-256 and SCRAM-SHA-512: the key
//! derivation shared by the broker (which stores only salted, hashed keys) and the client side of
//! the exchange (for `ringlet` tools talking to a SASL listener).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

/// Kafka's lower bound on SCRAM iterations (and its default).
pub const MIN_ITERATIONS: u32 = 4096;
/// Kafka's upper bound on SCRAM iterations.
pub const MAX_ITERATIONS: u32 = 16384;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The `mechanism` code of Describe/AlterUserScramCredentials.
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    pub fn output_len(self) -> usize {
        self.digest().output_len()
    }

    pub fn hmac_sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }

    /// Hi(password, salt, i) of RFC 5802.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        let n = std::num::NonZeroU32::new(iterations.max(1)).expect("nonzero");
        pbkdf2::derive(self.pbkdf2(), n, salt, password, &mut out);
        out
    }
}

/// What the broker stores for one user and mechanism: never the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Credential {
    /// From a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted(m: Mechanism, salt: Vec<u8>, iterations: u32, salted: &[u8]) -> Credential {
        let client_key = m.hmac_sign(salted, b"Client Key");
        Credential {
            salt,
            iterations,
            stored_key: m.hash(&client_key),
            server_key: m.hmac_sign(salted, b"Server Key"),
        }
    }

    /// From a password, with a fresh random salt.
    pub fn new(m: Mechanism, password: &str, iterations: u32) -> Credential {
        let salt = random_bytes(32);
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        Credential::from_salted(m, salt, iterations, &salted)
    }

    /// Whether `password` is the one this credential was made from (for SASL/PLAIN against
    /// SCRAM credentials). Constant-time comparison of the derived key.
    pub fn verifies(&self, m: Mechanism, password: &str) -> bool {
        let salted = m.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let stored = m.hash(&m.hmac_sign(&salted, b"Client Key"));
        constant_time_eq(&stored, &self.stored_key)
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    ring::rand::SystemRandom::new()
        .fill(&mut v)
        .expect("the system random source works");
    v
}

/// A printable nonce for SCRAM messages.
pub fn nonce() -> String {
    B64.encode(random_bytes(24)).replace([',', '='], "")
}

pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

/// RFC 5802's saslname escaping: `=` as `=3D`, `,` as `=2C`.
pub fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

pub fn unescape_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("3D") => out.push('='),
            Some("2C") => out.push(','),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The `key=value` attributes of a SCRAM message, in order.
pub fn attributes(msg: &str) -> Vec<(char, &str)> {
    msg.split(',')
        .filter_map(|a| {
            let mut ch = a.chars();
            let k = ch.next()?;
            (ch.next() == Some('=')).then(|| (k, &a[2..]))
        })
        .collect()
}

pub fn attribute<'a>(attrs: &[(char, &'a str)], key: char) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The client side of one SCRAM exchange.
pub struct Client {
    m: Mechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    auth_message: String,
    server_key: Vec<u8>,
}

impl Client {
    pub fn new(m: Mechanism, user: &str, password: &str) -> Client {
        let nonce = nonce();
        Client {
            m,
            password: password.into(),
            client_first_bare: format!("n={},r={nonce}", escape_name(user)),
            nonce,
            auth_message: String::new(),
            server_key: Vec::new(),
        }
    }

    pub fn first_message(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message for the server-first message.
    pub fn final_message(&mut self, server_first: &str) -> Result<String, String> {
        let attrs = attributes(server_first);
        if let Some(e) = attribute(&attrs, 'e') {
            return Err(format!("server refused: {e}"));
        }
        let (Some(nonce), Some(salt), Some(iters)) = (
            attribute(&attrs, 'r'),
            attribute(&attrs, 's').and_then(unb64),
            attribute(&attrs, 'i').and_then(|i| i.parse::<u32>().ok()),
        ) else {
            return Err(format!("malformed server-first message {server_first:?}"));
        };
        if !nonce.starts_with(&self.nonce) {
            return Err("server nonce does not extend the client nonce".into());
        }
        let salted = self
            .m
            .salted_password(self.password.as_bytes(), &salt, iters);
        let client_key = self.m.hmac_sign(&salted, b"Client Key");
        let stored_key = self.m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = self.m.hmac_sign(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.server_key = self.m.hmac_sign(&salted, b"Server Key");
        Ok(format!("{without_proof},p={}", b64(&proof)))
    }

    /// Checks the server-final message (the server proves it knows the credential too).
    pub fn verify_server(&self, server_final: &str) -> Result<(), String> {
        let attrs = attributes(server_final);
        if let Some(e) = attribute(&attrs, 'e') {
            return Err(format!("server refused: {e}"));
        }
        let expected = self
            .m
            .hmac_sign(&self.server_key, self.auth_message.as_bytes());
        match attribute(&attrs, 'v').and_then(unb64) {
            Some(v) if constant_time_eq(&v, &expected) => Ok(()),
            _ => Err("server signature does not verify".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_sha256_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let m = Mechanism::Sha256;
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let c = Credential::from_salted(m, salt, 4096, &salted);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let client_key = m.hmac_sign(&salted, b"Client Key");
        let sig = m.hmac_sign(&c.stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(b64(&proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let v = m.hmac_sign(&c.server_key, auth.as_bytes());
        assert_eq!(b64(&v), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert!(c.verifies(m, "pencil"));
        assert!(!c.verifies(m, "pencil2"));
    }

    #[test]
    fn names_escape_and_unescape() {
        assert_eq!(escape_name("a=b,c"), "a=3Db=2Cc");
        assert_eq!(unescape_name("a=3Db=2Cc").as_deref(), Some("a=b,c"));
        assert_eq!(unescape_name("a=4"), None);
    }
}

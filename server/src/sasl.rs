//! The server side of SASL on SASL_PLAINTEXT and SASL_SSL listeners: mechanism negotiation
//! (SaslHandshake), the PLAIN and SCRAM-SHA-256/512 exchanges (SaslAuthenticate, or raw tokens
//! after a v0 handshake), session expiry for re-authentication (KIP-368) and the slow-down of
//! failed attempts.

use crate::security::Credentials;
use ringlet_client::scram::{self, Credential, Mechanism};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one token does to the exchange.
pub enum Step {
    /// Send this token back and wait for the client's next one.
    Continue(Vec<u8>),
    /// Authenticated as `User:<name>`; send this (possibly empty) last token.
    Done { token: Vec<u8>, user: String },
    /// Refused; the reason goes to the log and (for clients) into the error message.
    Fail(String),
}

enum Exchange {
    /// No mechanism chosen yet (or the last exchange finished).
    Idle,
    /// A mechanism was chosen by SaslHandshake; its first token is awaited.
    Chosen(String),
    /// SCRAM: server-first sent, client-final awaited.
    ScramFinal {
        m: Mechanism,
        user: String,
        credential: Option<Credential>,
        nonce: String,
        gs2_header: String,
        auth_prefix: String,
    },
}

/// One connection's SASL state.
pub struct Authenticator {
    exchange: Exchange,
    /// The handshake was v0: the next frames are raw tokens, not SaslAuthenticate requests.
    pub raw_tokens: bool,
    /// The user of the last successful exchange.
    pub user: Option<String>,
    /// When the session ends (`connections.max.reauth.ms`).
    pub expires: Option<Instant>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            exchange: Exchange::Idle,
            raw_tokens: false,
            user: None,
            expires: None,
        }
    }
}

impl Authenticator {
    pub fn authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// SaslHandshake: picks the mechanism if the listener enables it.
    pub fn choose(&mut self, mechanism: &str, enabled: &[String], raw_tokens: bool) -> bool {
        if !enabled.iter().any(|m| m == mechanism) {
            return false;
        }
        self.exchange = Exchange::Chosen(mechanism.to_string());
        self.raw_tokens = raw_tokens;
        true
    }

    /// Whether a token is expected (a mechanism was chosen).
    pub fn in_exchange(&self) -> bool {
        !matches!(self.exchange, Exchange::Idle)
    }

    pub fn step(
        &mut self,
        token: &[u8],
        plain_users: &BTreeMap<String, String>,
        credentials: &Credentials,
    ) -> Step {
        match std::mem::replace(&mut self.exchange, Exchange::Idle) {
            Exchange::Idle => Step::Fail("SaslAuthenticate without a SaslHandshake".into()),
            Exchange::Chosen(m) if m == "PLAIN" => plain(token, plain_users, credentials),
            Exchange::Chosen(m) => {
                let m = Mechanism::from_name(&m).expect("enabled mechanisms are valid");
                match scram_first(m, token, credentials) {
                    Ok((next, reply)) => {
                        self.exchange = next;
                        Step::Continue(reply.into_bytes())
                    }
                    Err(e) => Step::Fail(e),
                }
            }
            Exchange::ScramFinal {
                m,
                user,
                credential,
                nonce,
                gs2_header,
                auth_prefix,
            } => scram_final(
                m,
                token,
                user,
                credential,
                &nonce,
                &gs2_header,
                &auth_prefix,
            ),
        }
    }
}

fn plain(token: &[u8], users: &BTreeMap<String, String>, credentials: &Credentials) -> Step {
    let Ok(text) = std::str::from_utf8(token) else {
        return Step::Fail("PLAIN token is not UTF-8".into());
    };
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Fail("malformed PLAIN token (expected authzid NUL user NUL password)".into());
    };
    if user.is_empty() {
        return Step::Fail("PLAIN token without a user name".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Step::Fail(format!("user {user} may not act as {authzid}"));
    }
    let ok = match users.get(user) {
        Some(pw) => scram::constant_time_eq(pw.as_bytes(), password.as_bytes()),
        None => Mechanism::ALL.into_iter().any(|m| {
            credentials
                .get(user, m)
                .is_some_and(|c| c.verifies(m, password))
        }),
    };
    if ok {
        Step::Done {
            token: Vec::new(),
            user: user.to_string(),
        }
    } else {
        Step::Fail(format!("invalid user name or password (user {user})"))
    }
}

fn scram_first(
    m: Mechanism,
    token: &[u8],
    credentials: &Credentials,
) -> Result<(Exchange, String), String> {
    let text = std::str::from_utf8(token).map_err(|_| "SCRAM message is not UTF-8".to_string())?;
    // gs2-header: "n,," or "y,," (no channel binding), optionally with an authzid "a=...".
    let mut it = text.splitn(3, ',');
    let (Some(cb), Some(authzid), Some(bare)) = (it.next(), it.next(), it.next()) else {
        return Err("malformed SCRAM client-first message".into());
    };
    if cb != "n" && cb != "y" {
        return Err("SCRAM channel binding is not supported".into());
    }
    let attrs = scram::attributes(bare);
    let user = scram::attribute(&attrs, 'n')
        .and_then(scram::unescape_name)
        .ok_or("SCRAM client-first message without a valid user name")?;
    let cnonce = scram::attribute(&attrs, 'r')
        .filter(|r| !r.is_empty())
        .ok_or("SCRAM client-first message without a nonce")?;
    if scram::attribute(&attrs, 'm').is_some() {
        return Err("SCRAM extensions are not supported".into());
    }
    if bare.split(',').any(|a| a == "tokenauth=true") {
        return Err("delegation tokens are not supported".into());
    }
    if let Some(a) = authzid.strip_prefix("a=") {
        if scram::unescape_name(a).as_deref() != Some(user.as_str()) {
            return Err(format!("user {user} may not act as {a}"));
        }
    }
    let credential = credentials.get(&user, m);
    // An unknown user gets a made-up salt, stable per user name, and fails only at the end: the
    // exchange does not tell which user names exist.
    let (salt, iterations) = match &credential {
        Some(c) => (c.salt.clone(), c.iterations),
        None => (
            m.hmac_sign(&fake_salt_key(), user.as_bytes())[..16].to_vec(),
            scram::MIN_ITERATIONS,
        ),
    };
    let nonce = format!("{cnonce}{}", scram::nonce());
    let server_first = format!("r={nonce},s={},i={iterations}", scram::b64(&salt));
    let gs2_header = format!("{cb},{authzid},");
    Ok((
        Exchange::ScramFinal {
            m,
            auth_prefix: format!("{bare},{server_first}"),
            user,
            credential,
            nonce,
            gs2_header,
        },
        server_first,
    ))
}

fn fake_salt_key() -> Vec<u8> {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| scram::random_bytes(32)).clone()
}

fn scram_final(
    m: Mechanism,
    token: &[u8],
    user: String,
    credential: Option<Credential>,
    nonce: &str,
    gs2_header: &str,
    auth_prefix: &str,
) -> Step {
    let Ok(text) = std::str::from_utf8(token) else {
        return Step::Fail("SCRAM message is not UTF-8".into());
    };
    let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
        return Step::Fail("SCRAM client-final message without a proof".into());
    };
    let attrs = scram::attributes(without_proof);
    if scram::attribute(&attrs, 'c') != Some(scram::b64(gs2_header.as_bytes()).as_str()) {
        return Step::Fail("SCRAM channel binding does not match the client-first message".into());
    }
    // Kafka checks that the nonce ends with the server's (not equality): librdkafka 2.0 sends
    // its client nonce in front of the server's combined nonce, and Kafka accepts it.
    if !scram::attribute(&attrs, 'r').is_some_and(|r| r.ends_with(nonce)) {
        return Step::Fail("SCRAM nonce does not match".into());
    }
    let Some(credential) = credential else {
        return Step::Fail(format!("invalid user name or password (user {user})"));
    };
    let Some(proof) = scram::unb64(proof).filter(|p| p.len() == m.output_len()) else {
        return Step::Fail("malformed SCRAM proof".into());
    };
    let auth_message = format!("{auth_prefix},{without_proof}");
    let signature = m.hmac_sign(&credential.stored_key, auth_message.as_bytes());
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    if !scram::constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
        return Step::Fail(format!("invalid user name or password (user {user})"));
    }
    let v = m.hmac_sign(&credential.server_key, auth_message.as_bytes());
    Step::Done {
        token: format!("v={}", scram::b64(&v)).into_bytes(),
        user,
    }
}

/// Recent authentication failures per client address, for the slow-down.
#[derive(Default)]
pub struct FailureLimiter {
    recent: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    /// Records a failure from `ip`; returns how long to wait before answering it:
    /// `base` doubled for every earlier failure from that address in the last minute, up to 5 s.
    pub fn failed(&self, ip: Option<std::net::IpAddr>, base: Duration) -> Duration {
        let Some(ip) = ip else { return base };
        let mut recent = self.recent.lock().expect("auth failures");
        let now = Instant::now();
        recent.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        let e = recent.entry(ip).or_insert((0, now));
        e.0 += 1;
        e.1 = now;
        (base * 2u32.saturating_pow(e.0 - 1).min(64)).min(Duration::from_secs(5).max(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Credentials, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "ringlet-sasl-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let c = Credentials::open(&dir).unwrap();
        c.alter(
            vec![(
                "alice".into(),
                Mechanism::Sha512,
                Credential::new(Mechanism::Sha512, "alice-secret", 4096),
            )],
            vec![],
        )
        .unwrap();
        (c, dir)
    }

    fn run(c: &Credentials, user: &str, pw: &str) -> Result<String, String> {
        let mut a = Authenticator::default();
        assert!(a.choose("SCRAM-SHA-512", &["SCRAM-SHA-512".into()], false));
        let mut client = scram::Client::new(Mechanism::Sha512, user, pw);
        let none = BTreeMap::new();
        let Step::Continue(first) = a.step(client.first_message().as_bytes(), &none, c) else {
            return Err("first".into());
        };
        let fin = client.final_message(std::str::from_utf8(&first).unwrap())?;
        match a.step(fin.as_bytes(), &none, c) {
            Step::Done { token, user } => {
                client.verify_server(std::str::from_utf8(&token).unwrap())?;
                Ok(user)
            }
            Step::Fail(e) => Err(e),
            Step::Continue(_) => Err("continue".into()),
        }
    }

    #[test]
    fn scram_round_trip_and_refusals() {
        let (c, dir) = store();
        assert_eq!(run(&c, "alice", "alice-secret").unwrap(), "alice");
        assert!(run(&c, "alice", "wrong").unwrap_err().contains("invalid"));
        assert!(run(&c, "mallory", "x").unwrap_err().contains("invalid"));
        // PLAIN accepts the SCRAM credential's password.
        let none = BTreeMap::new();
        assert!(matches!(
            plain(b"\0alice\0alice-secret", &none, &c),
            Step::Done { .. }
        ));
        assert!(matches!(plain(b"\0alice\0nope", &none, &c), Step::Fail(_)));
        assert!(matches!(plain(b"garbage", &none, &c), Step::Fail(_)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failures_slow_down() {
        let l = FailureLimiter::default();
        let ip = Some("10.0.0.1".parse().unwrap());
        let base = Duration::from_millis(100);
        assert_eq!(l.failed(ip, base), base);
        assert_eq!(l.failed(ip, base), base * 2);
        assert_eq!(l.failed(ip, base), base * 4);
        for _ in 0..10 {
            l.failed(ip, base);
        }
        assert_eq!(l.failed(ip, base), Duration::from_secs(5));
    }
}

//! Listeners: `listeners`, `advertised.listeners`, the security protocol map, and each
//! listener's TLS and SASL settings (possibly prefixed with `listener.name.<name>.`).

use super::{invalid, ConfigError};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The listener address.
#[derive(Clone, Debug)]
pub struct Listener {
    pub host: String,
    pub port: u16,
}

pub use ringlet_client::security::Protocol as SecurityProtocol;

/// Whether a TLS listener asks for client certificates (`ssl.client.auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// The TLS settings of one listener, as PEM bytes.
#[derive(Clone, Debug)]
pub struct SslSettings {
    pub certificate_chain: Vec<u8>,
    pub key: Vec<u8>,
    pub truststore: Option<Vec<u8>>,
    pub client_auth: ClientAuth,
    pub tls12: bool,
    pub tls13: bool,
    pub principal_rules: Vec<PrincipalRule>,
}

/// One entry of `ssl.principal.mapping.rules`.
#[derive(Clone, Debug)]
pub enum PrincipalRule {
    Default,
    Rule {
        pattern: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// Reads up to an unescaped `/`; returns the part (with `\/` unescaped) and the rest after it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Parses Kafka's `ssl.principal.mapping.rules`.
pub fn parse_principal_rules(key: &str, value: &str) -> Result<Vec<PrincipalRule>, ConfigError> {
    let allowed = "comma-separated RULE:regex/replacement/[L|U] entries and DEFAULT";
    let mut rules = Vec::new();
    let java_group = regex::Regex::new(r"\$(\d+)").expect("valid");
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix("DEFAULT") {
            rules.push(PrincipalRule::Default);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("RULE:") {
            let (pattern, r) = until_slash(r).ok_or_else(|| invalid(key, value, allowed))?;
            let (replacement, r) = until_slash(r).ok_or_else(|| invalid(key, value, allowed))?;
            let (case, r) = match r.chars().next() {
                Some(c @ ('L' | 'U')) => (Some(c), &r[1..]),
                _ => (None, r),
            };
            let anchored = format!("^(?:{pattern})$");
            let pattern = regex::Regex::new(&anchored)
                .map_err(|e| invalid(key, value, &format!("valid regular expressions ({e})")))?;
            // Java's `$1` is the regex crate's `${1}`.
            let replacement = java_group.replace_all(&replacement, "$${$1}").into_owned();
            rules.push(PrincipalRule::Rule {
                pattern,
                replacement,
                case,
            });
            rest = r;
        } else {
            return Err(invalid(key, value, allowed));
        }
        rest = rest.trim_start();
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err(invalid(key, value, allowed));
        }
    }
    if rules.is_empty() {
        rules.push(PrincipalRule::Default);
    }
    Ok(rules)
}

/// The user name for a certificate subject: the first rule that matches, or None.
pub fn map_principal(rules: &[PrincipalRule], subject: &str) -> Option<String> {
    for r in rules {
        match r {
            PrincipalRule::Default => return Some(subject.to_string()),
            PrincipalRule::Rule {
                pattern,
                replacement,
                case,
            } => {
                if pattern.is_match(subject) {
                    let name = pattern.replace(subject, replacement.as_str()).into_owned();
                    return Some(match case {
                        Some('L') => name.to_lowercase(),
                        Some('U') => name.to_uppercase(),
                        _ => name,
                    });
                }
            }
        }
    }
    None
}

/// One named listener: where, with which security protocol and settings.
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub listener: Listener,
    pub advertised: Listener,
    pub ssl: Option<SslSettings>,
    pub sasl_mechanisms: Vec<String>,
    /// PLAIN users and passwords from the JAAS configuration.
    pub plain_users: BTreeMap<String, String>,
}

/// `listeners` / `advertised.listeners` entries: NAME://host:port.
pub(super) fn parse_endpoints(
    key: &str,
    value: &str,
) -> Result<Vec<(String, Listener)>, ConfigError> {
    let mut out = Vec::new();
    for e in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = e
            .split_once("://")
            .ok_or_else(|| invalid(key, value, "NAME://host:port[,NAME://host:port...]"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, "NAME://host:port"))?;
        let port = port
            .parse()
            .map_err(|_| invalid(key, value, "a port in [0, 65535]"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|(n, _): &(String, Listener)| *n == name) {
            return Err(invalid(key, value, "each listener name once"));
        }
        out.push((
            name,
            Listener {
                host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
                port,
            },
        ));
    }
    if out.is_empty() {
        return Err(invalid(key, value, "one or more NAME://host:port"));
    }
    Ok(out)
}

/// A PEM value given inline (Kafka's `ssl.keystore.key` form) or as a path to a file.
fn pem_value(key: &str, value: &str) -> Result<Vec<u8>, ConfigError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.replace("\\n", "\n").into_bytes());
    }
    std::fs::read(value).map_err(|source| ConfigError::Read {
        path: PathBuf::from(format!("{value} ({key})")),
        source,
    })
}

/// Builds the listener specs from `listeners`, the protocol map, `advertised.listeners` and the
/// (possibly listener-prefixed) ssl.* and sasl.* keys.
pub(super) fn listener_specs(
    props: &BTreeMap<String, String>,
    endpoints: Vec<(String, Listener)>,
) -> Result<Vec<ListenerSpec>, ConfigError> {
    let map_key = "listener.security.protocol.map";
    let map_value = props.get(map_key).map_or(
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        String::as_str,
    );
    let mut map = BTreeMap::new();
    for e in map_value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (n, p) = e
            .split_once(':')
            .ok_or_else(|| invalid(map_key, map_value, "NAME:PROTOCOL,NAME:PROTOCOL"))?;
        let p = SecurityProtocol::parse(p.trim()).ok_or_else(|| {
            invalid(
                map_key,
                map_value,
                "protocols PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
            )
        })?;
        map.insert(n.trim().to_ascii_uppercase(), p);
    }
    let advertised = match props.get("advertised.listeners") {
        Some(v) => parse_endpoints("advertised.listeners", v)?,
        None => Vec::new(),
    };
    let mut specs = Vec::new();
    for (name, listener) in endpoints {
        let protocol = *map.get(&name).ok_or_else(|| {
            invalid(
                "listeners",
                &name,
                "a listener name that listener.security.protocol.map maps to a protocol",
            )
        })?;
        let keys = ListenerKeys {
            props,
            prefix: format!("listener.name.{}.", name.to_ascii_lowercase()),
        };
        let mut adv = advertised
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| listener.clone(), |(_, l)| l.clone());
        if adv.host.is_empty() || adv.host == "0.0.0.0" {
            adv.host = "localhost".into();
        }
        let ssl = if protocol.tls() {
            Some(ssl_settings(&keys, &name, protocol)?)
        } else {
            None
        };
        let (sasl_mechanisms, plain_users) = if protocol.sasl() {
            sasl_settings(&keys)?
        } else {
            (Vec::new(), BTreeMap::new())
        };
        specs.push(ListenerSpec {
            name,
            protocol,
            listener,
            advertised: adv,
            ssl,
            sasl_mechanisms,
            plain_users,
        });
    }
    Ok(specs)
}

/// One listener's view of the properties: `listener.name.<name>.<key>` first, then `<key>`.
struct ListenerKeys<'a> {
    props: &'a BTreeMap<String, String>,
    prefix: String,
}

impl ListenerKeys<'_> {
    /// The value of `k` for this listener, with the key it was found under.
    fn get(&self, k: &str) -> Option<(String, &str)> {
        let pk = format!("{}{k}", self.prefix);
        if let Some(v) = self.props.get(&pk) {
            return Some((pk, v.as_str()));
        }
        self.props.get(k).map(|v| (k.to_string(), v.as_str()))
    }
}

/// The TLS settings of a TLS listener: PEM key and certificates, trust store, client
/// authentication, protocol versions, principal mapping.
fn ssl_settings(
    keys: &ListenerKeys,
    name: &str,
    protocol: SecurityProtocol,
) -> Result<SslSettings, ConfigError> {
    for k in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some((k, v)) = keys.get(k) {
            if !v.eq_ignore_ascii_case("PEM") {
                return Err(invalid(
                    &k,
                    v,
                    "PEM (convert JKS/PKCS12 stores with keytool/openssl)",
                ));
            }
        }
    }
    if let Some((k, v)) = keys.get("ssl.key.password") {
        if !v.is_empty() {
            return Err(invalid(
                &k,
                "(hidden)",
                "unset: encrypted private keys are not supported; decrypt with `openssl pkey`",
            ));
        }
    }
    let (certificate_chain, key) = match (
                keys.get("ssl.keystore.certificate.chain"),
                keys.get("ssl.keystore.key"),
                keys.get("ssl.keystore.location"),
            ) {
                (Some((ck, c)), Some((kk, k)), _) => (pem_value(&ck, c)?, pem_value(&kk, k)?),
                (_, _, Some((lk, l))) => {
                    let pem = pem_value(&lk, l)?;
                    (pem.clone(), pem)
                }
                _ => {
                    return Err(invalid(
                        &format!("{}ssl.keystore.location", keys.prefix),
                        "(unset)",
                        &format!("listener {name} is {}: set ssl.keystore.location (PEM key and certificates) or ssl.keystore.certificate.chain and ssl.keystore.key", protocol.name()),
                    ))
                }
            };
    let truststore = match (
        keys.get("ssl.truststore.certificates"),
        keys.get("ssl.truststore.location"),
    ) {
        (Some((k, v)), _) | (None, Some((k, v))) => Some(pem_value(&k, v)?),
        _ => None,
    };
    let client_auth = match keys.get("ssl.client.auth") {
        None => ClientAuth::None,
        Some((k, v)) => match v.to_ascii_lowercase().as_str() {
            "none" | "" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return Err(invalid(&k, v, "none, requested or required")),
        },
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(invalid(
            &format!("{}ssl.truststore.location", keys.prefix),
            "(unset)",
            "the CA certificates to verify client certificates with (ssl.client.auth is on)",
        ));
    }
    let (mut tls12, mut tls13) = (true, true);
    if let Some((k, v)) = keys.get("ssl.enabled.protocols") {
        (tls12, tls13) = (false, false);
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p {
                "TLSv1.2" => tls12 = true,
                "TLSv1.3" => tls13 = true,
                _ => return Err(invalid(&k, v, "TLSv1.2 and/or TLSv1.3")),
            }
        }
        if !tls12 && !tls13 {
            return Err(invalid(&k, v, "TLSv1.2 and/or TLSv1.3"));
        }
    }
    let principal_rules = match keys.get("ssl.principal.mapping.rules") {
        Some((k, v)) => parse_principal_rules(&k, v)?,
        None => vec![PrincipalRule::Default],
    };
    Ok(SslSettings {
        principal_rules,
        certificate_chain,
        key,
        truststore,
        client_auth,
        tls12,
        tls13,
    })
}

/// The SASL mechanisms of a SASL listener and the PLAIN users of its JAAS configuration.
fn sasl_settings(
    keys: &ListenerKeys,
) -> Result<(Vec<String>, BTreeMap<String, String>), ConfigError> {
    let mut sasl_mechanisms = Vec::new();
    let mut plain_users = BTreeMap::new();
    let (k, v) = keys.get("sasl.enabled.mechanisms").unwrap_or((
        "sasl.enabled.mechanisms".into(),
        "SCRAM-SHA-256,SCRAM-SHA-512",
    ));
    for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if m != "PLAIN" && ringlet_client::scram::Mechanism::from_name(m).is_none() {
            return Err(invalid(&k, v, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"));
        }
        sasl_mechanisms.push(m.to_string());
    }
    if sasl_mechanisms.is_empty() {
        return Err(invalid(
            &k,
            v,
            "one or more of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ));
    }
    let jaas = keys
        .props
        .get(&format!("{}plain.sasl.jaas.config", keys.prefix))
        .or_else(|| keys.props.get(&format!("{}sasl.jaas.config", keys.prefix)))
        .or_else(|| keys.props.get("sasl.jaas.config"));
    if let Some(jaas) = jaas {
        for part in jaas.split_whitespace() {
            if let Some(rest) = part.strip_prefix("user_") {
                if let Some((user, _)) = rest.split_once('=') {
                    if let Some(pw) =
                        ringlet_client::security::jaas_option(jaas, &format!("user_{user}"))
                    {
                        plain_users.insert(user.to_string(), pw);
                    }
                }
            }
        }
    }
    Ok((sasl_mechanisms, plain_users))
}

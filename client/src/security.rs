//! How a client connection is secured: `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT,
//! SASL_SSL), TLS trust and client certificates as PEM files, and SASL PLAIN or SCRAM
//! credentials. Read from a properties file in the Java client's keys (`--command-config`, as
//! Kafka's tools take it) or librdkafka's (`sasl.username`, `ssl.ca.location`, ...).

use crate::scram;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Security {
    pub protocol: Protocol,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: String,
    pub username: String,
    pub password: String,
    /// PEM file of the CA certificates to trust (none: the broker's certificate is not checked,
    /// which only a test should do).
    pub ca_location: Option<PathBuf>,
    /// PEM client certificate chain and key, for `ssl.client.auth=required` brokers.
    pub certificate_location: Option<PathBuf>,
    pub key_location: Option<PathBuf>,
    /// `ssl.endpoint.identification.algorithm=https`: check the broker's host name.
    pub verify_hostname: bool,
}

/// Pulls `key="value"` out of a JAAS line (`sasl.jaas.config`).
pub fn jaas_option(jaas: &str, key: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(i) = rest.find(key) {
        let before_ok = i == 0
            || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let after = rest[i + key.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start().strip_prefix('"')?;
                return v.find('"').map(|end| v[..end].to_string());
            }
        }
        rest = &rest[i + key.len()..];
    }
    None
}

impl Security {
    pub fn from_properties(p: &BTreeMap<String, String>) -> Result<Security, String> {
        let get = |k: &str| {
            p.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut s = Security::default();
        if let Some(v) = get("security.protocol") {
            s.protocol = Protocol::parse(&v).ok_or_else(|| {
                format!(
                    "security.protocol={v}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                )
            })?;
        }
        s.mechanism = get("sasl.mechanism")
            .or_else(|| get("sasl.mechanisms"))
            .unwrap_or_else(|| "PLAIN".into());
        if s.mechanism != "PLAIN" && scram::Mechanism::from_name(&s.mechanism).is_none() {
            return Err(format!(
                "sasl.mechanism={}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                s.mechanism
            ));
        }
        if let Some(jaas) = get("sasl.jaas.config") {
            s.username = jaas_option(&jaas, "username").unwrap_or_default();
            s.password = jaas_option(&jaas, "password").unwrap_or_default();
        }
        if let Some(u) = get("sasl.username") {
            s.username = u;
        }
        if let Some(pw) = get("sasl.password") {
            s.password = pw;
        }
        s.ca_location = get("ssl.ca.location")
            .or_else(|| get("ssl.truststore.location"))
            .map(PathBuf::from);
        s.certificate_location = get("ssl.certificate.location")
            .or_else(|| get("ssl.keystore.location"))
            .map(PathBuf::from);
        s.key_location = get("ssl.key.location")
            .or_else(|| get("ssl.keystore.location"))
            .map(PathBuf::from);
        s.verify_hostname = get("ssl.endpoint.identification.algorithm")
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        if s.protocol.sasl() && s.username.is_empty() {
            return Err(format!(
                "security.protocol={} needs a user: sasl.jaas.config with username=\"...\" password=\"...\", or sasl.username and sasl.password",
                s.protocol.name()
            ));
        }
        Ok(s)
    }

    /// The rustls client configuration for TLS protocols.
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder =
            match &self.ca_location {
                Some(ca) => {
                    let mut roots = rustls::RootCertStore::empty();
                    for c in CertificateDer::pem_file_iter(ca)
                        .map_err(|e| format!("{}: {e}", ca.display()))?
                    {
                        roots
                            .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
                            .map_err(|e| format!("{}: {e}", ca.display()))?;
                    }
                    if self.verify_hostname {
                        builder.with_root_certificates(roots)
                    } else {
                        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                            Arc::new(roots),
                            provider,
                        )
                        .build()
                        .map_err(|e| e.to_string())?;
                        builder
                            .dangerous()
                            .with_custom_certificate_verifier(Arc::new(NoHostname(inner)))
                    }
                }
                None => return Err(
                    "TLS needs ssl.ca.location (ssl.truststore.location): the CA certificates, PEM"
                        .into(),
                ),
            };
        let config = match (&self.certificate_location, &self.key_location) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| e.to_string())?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// Checks the chain against the trusted CAs but not the host name: Kafka's clients default to no
/// host-name check too (`ssl.endpoint.identification.algorithm` empty in librdkafka's default
/// before 2.0, and brokers on 127.0.0.1 in tests).
#[derive(Debug)]
pub struct NoHostname(pub Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for NoHostname {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

static DEFAULT: OnceLock<Security> = OnceLock::new();

/// Sets how every [`crate::Conn::connect`] of this process secures its connection (the tools'
/// `--command-config`). Once per process; later calls are ignored.
pub fn set_default(s: Security) {
    let _ = DEFAULT.set(s);
}

pub fn default_security() -> Security {
    DEFAULT.get().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_options() {
        let j = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="a b";"#;
        assert_eq!(jaas_option(j, "username").as_deref(), Some("alice"));
        assert_eq!(jaas_option(j, "password").as_deref(), Some("a b"));
        let j = r#"PlainLoginModule required username="admin" password="pw" user_admin="pw" user_bob="bob-secret";"#;
        assert_eq!(jaas_option(j, "user_bob").as_deref(), Some("bob-secret"));
        assert_eq!(jaas_option(j, "username").as_deref(), Some("admin"));
    }
}

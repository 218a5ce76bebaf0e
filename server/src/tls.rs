//! TLS listeners: the rustls server configuration built from a listener's PEM settings, and the
//! principal of a verified client certificate.

use crate::config::{ClientAuth, SslSettings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

pub fn server_config(listener: &str, s: &SslSettings) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(&s.certificate_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("listener {listener}: certificate chain: {e}"))?;
    if chain.is_empty() {
        anyhow::bail!(
            "listener {listener}: the keystore holds no certificate (PEM `CERTIFICATE` blocks)"
        );
    }
    let key = PrivateKeyDer::from_pem_slice(&s.key).map_err(|e| {
        anyhow::anyhow!("listener {listener}: private key: {e} (an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key is needed)")
    })?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if s.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if s.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)?;
    let builder = match (&s.truststore, s.client_auth) {
        (Some(trust), ClientAuth::Requested | ClientAuth::Required) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(trust) {
                roots
                    .add(c.map_err(|e| anyhow::anyhow!("listener {listener}: truststore: {e}"))?)
                    .map_err(|e| anyhow::anyhow!("listener {listener}: truststore: {e}"))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if s.client_auth == ClientAuth::Requested {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build()?)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("listener {listener}: key and certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// The client side of a TLS listener, for this broker's connections to the others
/// (`inter.broker.listener.name`): the listener's truststore verifies the other broker, its
/// keystore is the client certificate when asked for, and the host name is checked when
/// `ssl.endpoint.identification.algorithm` is `https` (Kafka's default).
pub fn client_config(
    listener: &str,
    s: &SslSettings,
    verify_hostname: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Some(trust) = &s.truststore else {
        anyhow::bail!("listener {listener} carries replication (inter.broker.listener.name): it needs ssl.truststore.location (PEM) to verify the other brokers");
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(trust) {
        roots
            .add(c.map_err(|e| anyhow::anyhow!("listener {listener}: truststore: {e}"))?)
            .map_err(|e| anyhow::anyhow!("listener {listener}: truststore: {e}"))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ringlet_client::security::NoHostname(inner)))
    };
    let chain = CertificateDer::pem_slice_iter(&s.certificate_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("listener {listener}: certificate chain: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&s.key)
        .map_err(|e| anyhow::anyhow!("listener {listener}: private key: {e}"))?;
    Ok(Arc::new(builder.with_client_auth_cert(chain, key)?))
}

/// The verified client certificate's subject in RFC 2253 form (`CN=alice,OU=eng,O=acme`), as
/// Kafka's default `ssl.principal.mapping.rules` gives it.
pub fn client_principal(conn: &rustls::ServerConnection) -> Option<String> {
    let cert = conn.peer_certificates()?.first()?;
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let mut rdns = Vec::new();
    for rdn in x509.subject().iter() {
        let mut parts = Vec::new();
        for a in rdn.iter() {
            let oid = a.attr_type();
            let name = x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                .map(str::to_string)
                .unwrap_or_else(|_| oid.to_id_string());
            let value = a.as_str().map(str::to_string).unwrap_or_else(|_| {
                format!(
                    "#{}",
                    a.as_slice()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                )
            });
            parts.push(format!("{name}={}", escape_rfc2253(&value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, ch) in v.chars().enumerate() {
        if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (ch == '#' || ch == ' '))
        {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

//! SaslHandshake and SaslAuthenticate on SASL listeners, handled by the connection's reader
//! before anything else may start: until a client has authenticated only ApiVersions and these
//! two are served (anything else closes the connection, as Kafka does).

use super::{encode, frame_response, Handled, Pending};
use crate::broker::Broker;
use crate::sasl::{Authenticator, Step};
use crate::security::Session;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use ringlet_engine::runtime::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// What the reader does with a frame on a SASL listener.
pub enum Gate {
    /// An ordinary request of an authenticated client (or ApiVersions): start it as usual.
    Pass,
    /// A SASL step: send this response; close the connection after it when `close`.
    Respond { pending: Pending, close: bool },
    /// Close the connection now, for this reason.
    Close(String),
}

fn respond(handled: Handled, close: bool) -> Gate {
    Gate::Respond {
        pending: Box::pin(std::future::ready(handled)),
        close,
    }
}

/// Answers a failed authentication after the slow-down and closes the connection.
fn fail_later(broker: &Broker, session: &Session, parts: Handled) -> Gate {
    let base = Duration::from_millis(broker.config.connection_failed_authentication_delay_ms);
    let ip = session.host.parse().ok();
    let delay = broker.auth_failures.failed(ip, base);
    Gate::Respond {
        pending: Box::pin(async move {
            io::sleep(delay).await;
            parts
        }),
        close: true,
    }
}

/// The header of a SaslHandshake or SaslAuthenticate frame (the only APIs this is called for,
/// so ApiVersions' KIP-511 answer does not arise).
fn header(frame: &mut Bytes) -> Result<(RequestHeader, ApiKey, i16), String> {
    super::request_header(frame).map_err(|e| match e {
        super::HeaderError::Close(reason) => reason,
        super::HeaderError::ApiVersionsUnsupported { .. } => "unsupported ApiVersions".into(),
    })
}

pub fn gate(
    broker: &Arc<Broker>,
    session: &Session,
    auth: &mut Authenticator,
    mut frame: Bytes,
) -> Gate {
    let listener = &broker.config.listeners[session.listener];
    if auth.raw_tokens && auth.in_exchange() {
        // After a v0 handshake the tokens travel without a Kafka header.
        return match auth.step(&frame, &listener.plain_users, &broker.credentials) {
            Step::Continue(token) => respond(Ok(Some(raw(token))), false),
            Step::Done { token, user } => {
                auth.raw_tokens = false;
                authenticated(broker, session, auth, &user);
                respond(Ok(Some(raw(token))), false)
            }
            Step::Fail(reason) => {
                log_failure(session, &reason);
                fail_later(
                    broker,
                    session,
                    Err(format!("SASL authentication failed: {reason}")),
                )
            }
        };
    }
    if frame.len() < 8 {
        return Gate::Close(format!(
            "request frame of {} bytes is too short for a header",
            frame.len()
        ));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    if api_key == ApiKey::SaslHandshake as i16 {
        let (h, _, version) = match header(&mut frame) {
            Ok(x) => x,
            Err(e) => return Gate::Close(e),
        };
        let req: SaslHandshakeRequest = match super::decode(&mut frame, version, "SaslHandshake") {
            Ok(r) => r,
            Err(e) => return Gate::Close(e),
        };
        let mechanisms: Vec<StrBytes> = listener
            .sasl_mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let mut resp = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        if auth.in_exchange() {
            resp.error_code = ILLEGAL_SASL_STATE;
        } else if !auth.choose(
            req.mechanism.as_str(),
            &listener.sasl_mechanisms,
            version == 0,
        ) {
            tracing::info!(peer = %session.peer, mechanism = %req.mechanism.as_str(), enabled = ?listener.sasl_mechanisms, "SASL mechanism not enabled (sasl.enabled.mechanisms)");
            resp.error_code = UNSUPPORTED_SASL_MECHANISM;
        }
        let handled = encode(&resp, version).map(|b| {
            Some(frame_response(
                h.correlation_id,
                ApiKey::SaslHandshake.response_header_version(version),
                b,
            ))
        });
        let close = resp.error_code == ILLEGAL_SASL_STATE;
        return respond(handled, close);
    }
    if api_key == ApiKey::SaslAuthenticate as i16 {
        let (h, _, version) = match header(&mut frame) {
            Ok(x) => x,
            Err(e) => return Gate::Close(e),
        };
        let req: SaslAuthenticateRequest =
            match super::decode(&mut frame, version, "SaslAuthenticate") {
                Ok(r) => r,
                Err(e) => return Gate::Close(e),
            };
        let hv = ApiKey::SaslAuthenticate.response_header_version(version);
        let out = |resp: &SaslAuthenticateResponse| {
            encode(resp, version).map(|b| Some(frame_response(h.correlation_id, hv, b)))
        };
        if !auth.in_exchange() {
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(ILLEGAL_SASL_STATE)
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate before a SaslHandshake",
                )));
            return respond(out(&resp), true);
        }
        return match auth.step(&req.auth_bytes, &listener.plain_users, &broker.credentials) {
            Step::Continue(token) => respond(
                out(&SaslAuthenticateResponse::default().with_auth_bytes(token.into())),
                false,
            ),
            Step::Done { token, user } => {
                if let Some(previous) = &auth.user {
                    if *previous != user {
                        let reason = format!("re-authentication as {user}, not {previous}");
                        log_failure(session, &reason);
                        let resp = SaslAuthenticateResponse::default()
                            .with_error_code(SASL_AUTHENTICATION_FAILED)
                            .with_error_message(Some(StrBytes::from_string(reason)));
                        return fail_later(broker, session, out(&resp));
                    }
                }
                authenticated(broker, session, auth, &user);
                let lifetime = auth.expires.map_or(0, |e| {
                    e.saturating_duration_since(Instant::now()).as_millis() as i64
                });
                let resp = SaslAuthenticateResponse::default()
                    .with_auth_bytes(token.into())
                    .with_session_lifetime_ms(lifetime);
                respond(out(&resp), false)
            }
            Step::Fail(reason) => {
                log_failure(session, &reason);
                let m = listener.sasl_mechanisms.join(",");
                let resp = SaslAuthenticateResponse::default()
                    .with_error_code(SASL_AUTHENTICATION_FAILED)
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Authentication failed: invalid credentials or malformed SASL message (enabled mechanisms: {m})"
                    ))));
                fail_later(broker, session, out(&resp))
            }
        };
    }
    if !auth.authenticated() {
        if api_key == ApiKey::ApiVersions as i16 {
            return Gate::Pass;
        }
        return Gate::Close(format!(
            "request (api key {api_key}) before SASL authentication on listener {}",
            listener.name
        ));
    }
    if auth.expires.is_some_and(|e| Instant::now() >= e) {
        return Gate::Close(
            "SASL session expired (connections.max.reauth.ms) and the client did not re-authenticate"
                .into(),
        );
    }
    Gate::Pass
}

fn raw(token: Vec<u8>) -> Vec<crate::response::Part> {
    let mut b = BytesMut::with_capacity(4 + token.len());
    b.put_i32(token.len() as i32);
    b.put_slice(&token);
    vec![crate::response::Part::Bytes(b.freeze())]
}

fn authenticated(broker: &Broker, session: &Session, auth: &mut Authenticator, user: &str) {
    let first = auth.user.is_none();
    auth.user = Some(user.to_string());
    let max = broker.config.connections_max_reauth_ms;
    auth.expires = (max > 0).then(|| Instant::now() + Duration::from_millis(max));
    *session.principal.borrow_mut() = format!("User:{user}");
    if first {
        tracing::debug!(peer = %session.peer, user, "SASL authentication succeeded");
    } else {
        tracing::debug!(peer = %session.peer, user, "SASL re-authentication succeeded");
    }
}

fn log_failure(session: &Session, reason: &str) {
    tracing::warn!(peer = %session.peer, %reason, "SASL authentication failed");
}

/// SaslHandshake / SaslAuthenticate on a listener without SASL: ILLEGAL_SASL_STATE.
pub fn not_sasl(
    api_key: ApiKey,
    frame: &mut Bytes,
    version: i16,
) -> Result<Option<BytesMut>, String> {
    if api_key == ApiKey::SaslHandshake {
        let _: SaslHandshakeRequest = super::decode(frame, version, "SaslHandshake")?;
        encode(
            &SaslHandshakeResponse::default().with_error_code(ILLEGAL_SASL_STATE),
            version,
        )
        .map(Some)
    } else {
        let _: SaslAuthenticateRequest = super::decode(frame, version, "SaslAuthenticate")?;
        let r = SaslAuthenticateResponse::default()
            .with_error_code(ILLEGAL_SASL_STATE)
            .with_error_message(Some(StrBytes::from_static_str(
                "this listener does not use SASL",
            )));
        encode(&r, version).map(Some)
    }
}

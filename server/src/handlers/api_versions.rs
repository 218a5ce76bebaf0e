//! ApiVersions: what this broker speaks.

use super::{encode, HandlerResult, SUPPORTED};
use crate::error_code as ec;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|&(k, min, max)| {
            let valid = k.valid_versions();
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min.max(valid.min))
                .with_max_version(max.min(valid.max))
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

pub fn handle(_body: &mut Bytes, version: i16) -> HandlerResult {
    // The request body (client software name and version) is informational only.
    encode(&response(ec::NONE), version).map(Some)
}

pub fn unsupported() -> Result<BytesMut, String> {
    encode(&response(ec::UNSUPPORTED_VERSION), 0)
}

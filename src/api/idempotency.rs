//! Idempotency keys: a create sent again with the same key answers the job first created,
//! and creates nothing (see `Store::create_keyed`).

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::domain::NewJob;
use crate::store::IdempotencyKey;

/// The header of a single create's key.
pub const HEADER: &str = "Idempotency-Key";

/// The longest key, in bytes.
const MAX_KEY_BYTES: usize = 255;

/// Checks a key: 1 to [`MAX_KEY_BYTES`] bytes of visible ASCII.
///
/// # Errors
/// 400 naming `field`.
pub fn check(key: &str, field: &str) -> Result<(), ApiError> {
    let visible = key.bytes().all(|byte| byte.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_KEY_BYTES || !visible {
        return Err(ApiError::invalid(
            field,
            "invalid_field",
            format!("an idempotency key must be 1 to {MAX_KEY_BYTES} visible ASCII characters"),
        ));
    }
    Ok(())
}

/// The `Idempotency-Key` header of `request`, checked, if it has one.
///
/// # Errors
/// 400 naming the header.
pub fn from_header(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::invalid(
            HEADER,
            "invalid_field",
            "an idempotency key must be visible ASCII",
        )
    })?;
    check(key, HEADER)?;
    Ok(Some(key.to_owned()))
}

/// `key` with the hash of the job asked for: its fields as checked (so that a body sent again
/// with its fields in another order or spacing is the same request), its new id aside.
pub fn keyed(key: String, job: &NewJob) -> IdempotencyKey {
    let asked = serde_json::json!({
        "name": job.name,
        "spec": job.spec,
        "execute_at": job.execute_at,
        "max_retries": job.max_retries,
        "timeout_secs": job.timeout_secs,
        "metadata": job.metadata,
        "retry_backoff": job.retry_backoff,
    });
    let digest = Sha256::digest(asked.to_string().as_bytes());
    IdempotencyKey {
        key,
        request_hash: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
    }
}

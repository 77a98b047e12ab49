//! Reading request bodies within bounds.
//!
//! A body is read whole before it is parsed, so three limits keep clients from holding the
//! server with one:
//!
//! - **size**: a body declared (`Content-Length`) larger than its route accepts is refused
//!   before a byte of it is read, and one that grows past it while read is refused then;
//! - **time**: the whole body must arrive within `http.body_timeout`, or the request is
//!   answered `408` and its connection closed;
//! - **memory, in total**: every body being read or parsed holds its size from one budget
//!   (`http.max_body_memory`) until its request is answered. A body that does not fit in
//!   what is left is refused with `503` and `Retry-After`, so that stalled bodies cannot
//!   add up to more than the budget however many connections carry them.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The memory every request body being read shares, and the time each may take.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    timeout: Duration,
}

impl BodyBudget {
    /// A budget of `bytes` in total; each body must arrive within `timeout`.
    pub fn new(bytes: usize, timeout: Duration) -> Self {
        let total = bytes.min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
            timeout,
        }
    }

    /// Bytes of the budget not held by a body now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Bytes of the budget held by bodies now.
    pub fn held(&self) -> usize {
        self.total.saturating_sub(self.available())
    }

    /// Takes `bytes` more of the budget into `held`.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Result<(), ApiError> {
        let Ok(wanted) = u32::try_from(bytes) else {
            return Err(busy(self.total));
        };
        let permit = Arc::clone(&self.bytes)
            .try_acquire_many_owned(wanted)
            .map_err(|_| busy(self.total))?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body read whole. It holds its size of the [`BodyBudget`] until dropped.
#[derive(Debug)]
pub struct Body {
    pub bytes: web::BytesMut,
    held: Option<OwnedSemaphorePermit>,
}

impl Body {
    /// Splits the bytes from the share of the budget they hold, for a caller that moves the
    /// bytes elsewhere (to parse them) and keeps the share until it answers.
    pub fn into_parts(self) -> (web::BytesMut, Held) {
        (self.bytes, Held(self.held))
    }
}

/// A share of the [`BodyBudget`], given back when dropped.
#[derive(Debug)]
pub struct Held(#[allow(dead_code, reason = "held for its Drop")] Option<OwnedSemaphorePermit>);

/// Refuses a request whose body is not declared as JSON.
///
/// # Errors
/// 415 naming the content type given.
pub fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the body must be JSON with `Content-Type: application/json`, not `{content_type}`"
            ),
        ))
    }
}

/// Reads the body of `request`, at most `limit` bytes, within the budget's time and memory.
///
/// # Errors
/// 413 for a body over `limit` (declared or read), 408 when it does not arrive in time, 503
/// when the memory budget cannot hold it now, 400 when the connection fails.
pub async fn read(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    budget: &BodyBudget,
) -> Result<Body, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let declared = declared
        .map(|declared| usize::try_from(declared).map_err(|_| too_large()))
        .transpose()?;
    let mut held = None;
    if let Some(declared) = declared {
        if declared > limit {
            return Err(too_large());
        }
        budget.take(&mut held, declared)?;
    }
    let reading = async {
        // The declared size is within the limit and held from the budget already.
        let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("cannot read the body: {error}"),
                )
            })?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            if declared.is_none() {
                budget.take(&mut held, chunk.len())?;
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(budget.timeout, reading)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {} s (http.body_timeout)",
                    budget.timeout.as_secs_f64()
                ),
            )
        })??;
    Ok(Body { bytes, held })
}

fn busy(total: usize) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
        format!(
            "the request bodies being read fill the server's budget of {total} bytes \
             (http.max_body_memory); retry shortly"
        ),
    );
    error.retry_after = Some(1);
    error
}

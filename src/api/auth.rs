//! Bearer-token authentication of the `/api/v1` routes, when `auth.tokens` is set.
//!
//! The middleware wraps the scope of the routes it guards (see [`super::routes`]): it runs for
//! every request the router sends there, whatever spelling of the path got it there, and it
//! reads nothing of the path itself.

use actix_web::body::EitherBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};

use super::AppState;
use super::error::ApiError;

/// Refuses requests without `Authorization: Bearer <one of auth.tokens>` with 401.
///
/// # Errors
/// Those of the wrapped service.
pub async fn require_token<B: actix_web::body::MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let tokens = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.services.settings.auth.tokens.clone())
        .unwrap_or_default();
    if tokens.is_empty() {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let presented = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented.is_some_and(|presented| {
        tokens
            .iter()
            .any(|token| constant_time_eq(token.as_bytes(), presented.as_bytes()))
    }) {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let error = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid `Authorization: Bearer <token>` header is required",
    );
    let response = error.error_response().map_into_right_body();
    Ok(request.into_response(response))
}

/// Compares without an early exit, so response times do not reveal how much of a token
/// matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

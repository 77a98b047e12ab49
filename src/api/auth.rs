//! Bearer-token authentication and roles on the `/api/v1` routes, when `auth.tokens` is set.
//!
//! Two middlewares, both attached to what the router matched and reading nothing of the path:
//! [`authenticate`] wraps the `/api/v1` scope and names the caller from its token (or answers
//! `401`); [`require_role`] wraps each route (see [`super::endpoint::Endpoint`]) and answers
//! `403` to a caller whose role is short of the route's.

use actix_web::body::EitherBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};

use super::AppState;
use super::error::ApiError;
use crate::config::{AccessRole, Credential, hash_token};

/// Who made a request: the name of its token (`anonymous` when no token is configured) and
/// its role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: AccessRole,
}

impl Caller {
    /// Anyone, when no token is configured (the API then listens on loopback only, unless
    /// `auth.allow_anonymous` says otherwise).
    fn anonymous() -> Self {
        Self {
            name: "anonymous".to_owned(),
            role: AccessRole::Admin,
        }
    }
}

/// The name of the token that made `request` (`anonymous` when no token is configured).
pub fn caller_name(request: &actix_web::HttpRequest) -> Option<String> {
    request
        .extensions()
        .get::<Caller>()
        .map(|caller| caller.name.clone())
}

/// The caller whose token matches `presented`, compared in constant time with every token.
fn identify(credentials: &[Credential], presented: &str) -> Option<Caller> {
    let digest = hash_token(presented);
    let mut found = None;
    for credential in credentials {
        if constant_time_eq(&credential.sha256, &digest) && found.is_none() {
            found = Some(Caller {
                name: credential.name.clone(),
                role: credential.role,
            });
        }
    }
    found
}

/// Names the caller from `Authorization: Bearer <token>` (stored in the request's
/// extensions as a [`Caller`]), or refuses the request with `401`.
///
/// # Errors
/// Those of the wrapped service.
pub async fn authenticate<B: actix_web::body::MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let credentials = request
        .app_data::<web::Data<AppState>>()
        .map(|state| std::sync::Arc::clone(&state.credentials))
        .unwrap_or_default();
    let caller = if credentials.is_empty() {
        Some(Caller::anonymous())
    } else {
        request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(|presented| identify(&credentials, presented))
    };
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    tracing::warn!(
        method = %request.method(),
        path = request.path(),
        "refused: no valid token"
    );
    let error = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid `Authorization: Bearer <token>` header is required",
    );
    let response = error.error_response().map_into_right_body();
    Ok(request.into_response(response))
}

/// What a route needs: `reads` for `GET` and `HEAD`, `writes` for the other methods.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub reads: AccessRole,
    pub writes: AccessRole,
}

/// Refuses a caller whose role is short of what the route needs for the request's method
/// with `403`, naming the role needed.
///
/// # Errors
/// Those of the wrapped service.
pub async fn require_role<B: actix_web::body::MessageBody + 'static>(
    access: Access,
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let needed = if matches!(*request.method(), Method::GET | Method::HEAD) {
        access.reads
    } else {
        access.writes
    };
    let caller = request.extensions().get::<Caller>().cloned();
    match caller {
        Some(caller) if caller.role >= needed => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
        caller => {
            let name = caller.map_or_else(|| "none".to_owned(), |caller| caller.name);
            tracing::warn!(
                token = %name,
                method = %request.method(),
                route = request.match_pattern().as_deref().unwrap_or(""),
                needed = needed.as_str(),
                "refused: the token's role does not allow this route"
            );
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this call needs a token with the role `{}` (or above)",
                    needed.as_str()
                ),
            );
            let response = error.error_response().map_into_right_body();
            Ok(request.into_response(response))
        }
    }
}

/// Compares without an early exit, so response times do not reveal how much of a token
/// matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

//! One path and the methods it serves. A request for the path with another method answers
//! `405 Method Not Allowed` with an `Allow` header and the API's JSON error body (rather than
//! falling through to `404`), and a path served for `GET` answers `HEAD` too, without a body.

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{
    FromRequest, Handler, HttpResponse, Resource, Responder, ResponseError, guard, middleware, web,
};

use super::auth::{Access, require_role};
use super::error::ApiError;
use crate::config::AccessRole;

/// A resource being built, with the methods it serves so far and the role each needs.
#[allow(
    missing_debug_implementations,
    reason = "holds an actix resource, which has no Debug"
)]
pub struct Endpoint {
    resource: Resource,
    allowed: Vec<Method>,
    access: Access,
    /// Whether callers' roles are checked (not for the probes, which are open).
    guarded: bool,
}

impl Endpoint {
    /// An endpoint at `path` serving no method yet: `GET` needs a `reader`, the other methods
    /// a `writer`.
    pub fn new(path: &str) -> Self {
        Self {
            resource: web::resource(path),
            allowed: Vec::new(),
            access: Access {
                reads: AccessRole::Reader,
                writes: AccessRole::Writer,
            },
            guarded: true,
        }
    }

    /// Open to every caller, with or without a token (the probes and the metrics).
    pub fn open(mut self) -> Self {
        self.guarded = false;
        self
    }

    /// Every method needs an `admin`.
    pub fn admin(mut self) -> Self {
        self.access = Access {
            reads: AccessRole::Admin,
            writes: AccessRole::Admin,
        };
        self
    }

    /// The methods other than `GET` need `role`.
    pub fn writes_need(mut self, role: AccessRole) -> Self {
        self.access.writes = role;
        self
    }

    /// Serves `GET` (and `HEAD`) with `handler`.
    pub fn get<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.allowed.extend([Method::GET, Method::HEAD]);
        self.resource = self.resource.route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        );
        self
    }

    /// Serves `POST` with `handler`.
    pub fn post<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.allowed.push(Method::POST);
        self.resource = self.resource.route(web::post().to(handler));
        self
    }

    /// Serves `PATCH` with `handler`.
    pub fn patch<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.allowed.push(Method::PATCH);
        self.resource = self.resource.route(web::patch().to(handler));
        self
    }

    /// Serves `DELETE` with `handler`.
    pub fn delete<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.allowed.push(Method::DELETE);
        self.resource = self.resource.route(web::delete().to(handler));
        self
    }

    /// The resource, answering `405` for the methods it does not serve, and `403` to a caller
    /// whose role is short of the method's.
    pub fn build(self) -> impl HttpServiceFactory {
        let access = self.access;
        let allowed = self
            .allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        self.resource
            .default_service(web::to(move |request: actix_web::HttpRequest| {
                let allowed = allowed.clone();
                async move { method_not_allowed(request.method(), &allowed) }
            }))
            .wrap(middleware::Condition::new(
                self.guarded,
                middleware::from_fn(move |request, next| require_role(access, request, next)),
            ))
    }
}

fn method_not_allowed(method: &Method, allowed: &str) -> HttpResponse {
    let error = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not served here; use {allowed}"),
    );
    let mut response = error.error_response();
    if let Ok(value) = HeaderValue::from_str(allowed) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

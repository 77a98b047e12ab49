//! The API's errors: a status code and a JSON body
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use uuid::Uuid;

use crate::store::StoreError;

/// An error answered to an API caller.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable name of the problem.
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Per-item problems of a batch request.
    pub items: Option<Vec<ItemProblem>>,
    /// Seconds after which the caller may try again (`Retry-After`), when it is worth it.
    pub retry_after: Option<u64>,
}

/// One refused item of a batch request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemProblem {
    /// The item's position in the request, from 0.
    pub index: usize,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable name of the problem (`invalid_field`, `not_found`, …).
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A batch's refused jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemProblem>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            items: None,
            retry_after: None,
        }
    }

    /// `404`: no job has the id `id`.
    pub fn no_job(id: Uuid) -> Self {
        Self::not_found(format!("no job has the id {id}"))
    }

    /// `404`: no schedule has the id `id`.
    pub fn no_schedule(id: Uuid) -> Self {
        Self::not_found(format!("no schedule has the id {id}"))
    }

    /// A 400 about `field`.
    pub fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, code, message)
        }
    }

    /// A 503 for a request the process can no longer serve because it is stopping.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this instance is shutting down; retry on another",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // The store's reason names the value it refused; the same request would be
            // refused again.
            StoreError::Refused(reason) => {
                tracing::warn!(%reason, "the store refused a request");
                Self::new(StatusCode::BAD_REQUEST, "refused_by_store", reason)
            }
            // Not the caller's doing: the cause is logged here.
            StoreError::Corrupt { .. } | StoreError::Migration(_) => {
                tracing::error!(%error, "the store holds what Kairos cannot read");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "corrupt_data",
                    "the store holds a value Kairos does not write; see the server's log",
                )
            }
            // The cause is logged here; the caller learns only that it may retry.
            StoreError::Unavailable(_) | StoreError::DataDirectory { .. } => {
                tracing::error!(%error, "database error while serving a request");
                let mut error = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; retry later",
                );
                error.retry_after = Some(1);
                error
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                field: self.field.clone(),
                items: self.items.clone(),
            },
        })
    }
}

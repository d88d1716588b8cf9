//! Types of the admin API that exist for its OpenAPI document or its health answers: the error
//! envelope (its `code` enum is [`CoordError::CODES`]), `/healthz` and `/readyz`.

use serde::Serialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::CoordError;
use quota_shared::openapi as common;

/// The JSON error envelope every refusal of this API has.
pub(crate) struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        common::error_schema(&CoordError::CODES, "coordinator").into()
    }
}

impl ToSchema for ErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

/// `GET /healthz`: the process is alive.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    pub(crate) status: &'static str,
}

/// `GET /readyz`: whether this instance reaches etcd, and whether it leads.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(pattern = "^(ready|not_ready)$")]
    pub(crate) status: &'static str,
    /// This instance's id.
    pub(crate) id: String,
    /// Ready: whether it leads now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) leader: Option<bool>,
    /// Not ready: the etcd error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) etcd: Option<String>,
}

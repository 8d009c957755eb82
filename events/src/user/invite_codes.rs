//! Invite codes as the API shows them: the answer of `POST invite-codes` and of
//! `GET invite-codes`. With the `openapi` feature their schemas are derived from these types.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::view::format_date;

/// One invite code, `ABCD-1234-<epoch millis>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = InviteCode))]
#[serde(rename_all = "camelCase")]
pub struct InviteCodeView {
    pub code: String,
    /// The user who redeemed it (absent until somebody did).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub target_id: Option<uuid::Uuid>,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub created_at: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub updated_at: String,
}

impl InviteCodeView {
    pub fn new(
        code: impl Into<String>,
        target_id: Option<uuid::Uuid>,
        created_at: &DateTime<Utc>,
        updated_at: &DateTime<Utc>,
    ) -> Self {
        Self {
            code: code.into(),
            target_id,
            created_at: format_date(created_at),
            updated_at: format_date(updated_at),
        }
    }
}

/// Invite codes (the ones generated, or an owner's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = InviteCodes))]
#[serde(rename_all = "camelCase")]
pub struct InviteCodesView {
    pub invite_codes: Vec<InviteCodeView>,
}

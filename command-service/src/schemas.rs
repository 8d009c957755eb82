//! The answers of the write side that are not a domain view: the envelopes' `data` of
//! `create`, `update` and the role and application writes. The views inside them are the
//! domain's (`events`, feature `openapi`); each route's body type is beside its handler, and
//! the token endpoint's form and answer are in [`crate::oauth`].

use events::application::ApplicationView;
use events::role::RoleView;
use events::user::UserView;
use serde::Serialize;
use utoipa::ToSchema;

/// `create`'s answer (201).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsertedCount {
    pub inserted_count: u64,
}

/// `update`'s answer: the user after the change.
#[derive(Serialize, ToSchema)]
pub struct UserAnswer {
    pub user: UserView,
}

/// A role answered by `create` and `update`.
#[derive(Serialize, ToSchema)]
pub struct RoleAnswer {
    pub role: RoleView,
}

/// An application answered by `create` and `update`.
#[derive(Serialize, ToSchema)]
pub struct ClientAnswer {
    pub client: CreatedClient,
}

/// An application with, in the create answer only, its secret (shown nowhere else).
#[derive(Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub application: ApplicationView,
    /// Only in the create answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

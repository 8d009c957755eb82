//! A role as the API shows it (API.md §5): the answer of `roles create` and `update`, the rows of
//! `/roles/list` and the state in Kafka's role messages. One type for all of them; with the
//! `openapi` feature its schema is derived from it.

use serde::{Deserialize, Serialize};

use super::Role;
use crate::scopes::Scope;
use crate::values::{Ranking, RoleDescription, RoleDisplayName, RoleId};

/// A live role. The read model stores it as its JSON and reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Role))]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, min_length = 1, max_length = 128, pattern = "^[a-zA-Z0-9_]+$")
    )]
    pub id: RoleId,
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, min_length = 1, max_length = 128)
    )]
    pub display_name: RoleDisplayName,
    /// A lower number is more powerful.
    #[cfg_attr(feature = "openapi", schema(value_type = u64, minimum = 1))]
    pub ranking: Ranking,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, min_length = 1, max_length = 512)
    )]
    pub description: Option<RoleDescription>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub scope: Vec<Scope>,
    /// Liquid's role type: `client` for `internal_client` and `external_client`, else `user`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(user|client)$"))]
    pub kind: String,
    /// System roles cannot be updated or deleted.
    pub system: bool,
}

impl RoleView {
    /// The view of a role state; `None` for a deleted role.
    pub fn of(role: &Role) -> Option<Self> {
        (!role.deleted).then(|| Self {
            id: role.id.clone(),
            display_name: role.display_name.clone(),
            ranking: role.ranking,
            description: role.description.clone(),
            scope: role.scope.clone(),
            kind: role.id.kind().to_owned(),
            system: role.system,
        })
    }

    /// The state this view shows, to fold further events into (the read model keeps views).
    pub fn into_state(self) -> Role {
        Role {
            id: self.id,
            display_name: self.display_name,
            ranking: self.ranking,
            description: self.description,
            scope: self.scope,
            system: self.system,
            deleted: false,
        }
    }
}

//! An application (an OAuth client) as the API shows it (API.md §4): the answer of
//! `client create` and `update`, the rows of `/client/admin-api/list` and the state in Kafka's
//! application messages. Never its secret: the view has no field for it. With the `openapi`
//! feature its schema is derived from it.

use serde::{Deserialize, Serialize};

use super::Application;
use crate::scopes::Scope;
use crate::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, Grant, RedirectUri,
};

/// A live application. The read model stores it as its JSON and reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Client))]
#[serde(rename_all = "camelCase")]
pub struct ApplicationView {
    /// The database id, used as `target`.
    #[serde(rename = "_id")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ApplicationId,
    /// The OAuth `client_id`.
    #[serde(rename = "id")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub client_id: ClientId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub display_name: ApplicationDisplayName,
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = "^(internal_client|external_client)$")
    )]
    pub role: ClientRole,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub grants: Vec<Grant>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub redirect_uris: Vec<RedirectUri>,
    pub is_public: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub scope: Vec<Scope>,
}

impl ApplicationView {
    /// The view of an application state; `None` for a deleted application.
    pub fn of(application: &Application) -> Option<Self> {
        (!application.deleted).then(|| Self {
            id: application.id,
            client_id: application.client_id.clone(),
            display_name: application.display_name.clone(),
            role: application.role,
            grants: application.grants.clone(),
            redirect_uris: application.redirect_uris.clone(),
            is_public: application.is_public,
            scope: application.scope.clone(),
        })
    }

    /// The state this view shows (without its secret, which the read side never has), to fold
    /// further events into (the read model keeps views).
    pub fn into_state(self) -> Application {
        Application {
            id: self.id,
            client_id: self.client_id,
            display_name: self.display_name,
            role: self.role,
            grants: self.grants,
            redirect_uris: self.redirect_uris,
            is_public: self.is_public,
            secret_hash: None,
            scope: self.scope,
            deleted: false,
        }
    }
}

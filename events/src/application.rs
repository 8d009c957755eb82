//! The application aggregate (an OAuth client of Liquid): one stream `client-<id>` per
//! application, where the id is its `_id`, not its OAuth `client_id`.
//!
//! Rules it enforces on its own state: the OAuth `client_id` is taken once (case-insensitively,
//! through the `client-id` claim); a public client has no secret and no `client_credentials`
//! grant; a confidential client has a secret; commands on a missing or deleted application are
//! `NotFound`. The secret is held only as an argon2 hash, in events of its own
//! ([`ApplicationEvent::SecretSet`]) so that read models and Kafka can skip them whole.

pub mod view;

pub use view::ApplicationView;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::metadata::{CommandContext, EventFamily};
use crate::scopes::{Scope, ScopeOperation};
use crate::store::UniqueClaim;
use crate::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, Grant, RedirectUri, SecretHash,
};
use crate::{Aggregate, DomainError};

/// The uniqueness kind of OAuth client ids.
pub const CLIENT_ID_CLAIM: &str = "client-id";

/// An application as far as deciding needs: `None` until created.
pub type ApplicationState = Option<Application>;

#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: ApplicationId,
    pub client_id: ClientId,
    pub display_name: ApplicationDisplayName,
    pub role: ClientRole,
    /// Sorted, without duplicates.
    pub grants: Vec<Grant>,
    pub redirect_uris: Vec<RedirectUri>,
    pub is_public: bool,
    pub secret_hash: Option<SecretHash>,
    pub scope: Vec<Scope>,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApplicationCommand {
    Create(CreateApplication),
    Update(UpdateApplication),
    /// `access` on a client target.
    ChangeScopes {
        operation: ScopeOperation,
        scopes: Vec<Scope>,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateApplication {
    /// Minted by the command service (UUIDv7); also the stream id.
    pub id: ApplicationId,
    pub client_id: ClientId,
    pub display_name: ApplicationDisplayName,
    pub role: ClientRole,
    pub grants: Vec<Grant>,
    pub redirect_uris: Vec<RedirectUri>,
    pub is_public: bool,
    /// The hash of the secret; `None` for a public client.
    pub secret_hash: Option<SecretHash>,
    /// The body's scope, or the default `["delegated:all"]`.
    pub scope: Vec<Scope>,
}

/// An `update` of an application: any of its fields. A new secret comes as its hash; a new
/// `scope` replaces the whole scope, in the same decision as the other fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateApplication {
    pub changes: ApplicationChanges,
    pub secret_hash: Option<SecretHash>,
    pub scope: Option<Vec<Scope>>,
}

/// The described fields of an application that changed (or are asked to change).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<ApplicationDisplayName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ClientRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<Grant>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<RedirectUri>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_public: Option<bool>,
}

impl ApplicationChanges {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The part of these changes that differs from `application`.
    fn changed_from(self, application: &Application) -> Self {
        Self {
            client_id: self.client_id.filter(|c| c != &application.client_id),
            display_name: self.display_name.filter(|d| d != &application.display_name),
            role: self.role.filter(|r| r != &application.role),
            grants: self
                .grants
                .map(|g| normalized_grants(&g))
                .filter(|g| g != &application.grants),
            redirect_uris: self
                .redirect_uris
                .filter(|r| r != &application.redirect_uris),
            is_public: self.is_public.filter(|p| p != &application.is_public),
        }
    }
}

/// The events of an application stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
pub enum ApplicationEvent {
    /// An application was registered; a confidential one's secret follows as `SecretSet`.
    #[serde(rename = "ApplicationCreated")]
    Created {
        id: ApplicationId,
        client_id: ClientId,
        display_name: ApplicationDisplayName,
        role: ClientRole,
        grants: Vec<Grant>,
        redirect_uris: Vec<RedirectUri>,
        is_public: bool,
        scope: Vec<Scope>,
    },
    /// The fields that changed.
    #[serde(rename = "ApplicationUpdated")]
    Updated(ApplicationChanges),
    /// The secret became this argon2 hash.
    #[serde(rename = "ApplicationSecretSet")]
    SecretSet { secret_hash: SecretHash },
    /// The application became public, so its secret no longer authenticates it.
    #[serde(rename = "ApplicationSecretRemoved")]
    SecretRemoved {},
    /// The application's scope list became this (sorted, without duplicates).
    #[serde(rename = "ApplicationScopesChanged")]
    ScopesChanged { scope: Vec<Scope> },
    #[serde(rename = "ApplicationDeleted")]
    Deleted {},
}

impl EventFamily for ApplicationEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "ApplicationCreated",
        "ApplicationUpdated",
        "ApplicationSecretSet",
        "ApplicationSecretRemoved",
        "ApplicationScopesChanged",
        "ApplicationDeleted",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "ApplicationCreated",
            Self::Updated(_) => "ApplicationUpdated",
            Self::SecretSet { .. } => "ApplicationSecretSet",
            Self::SecretRemoved {} => "ApplicationSecretRemoved",
            Self::ScopesChanged { .. } => "ApplicationScopesChanged",
            Self::Deleted {} => "ApplicationDeleted",
        }
    }

    fn contains_secret(&self) -> bool {
        matches!(self, Self::SecretSet { .. })
    }
}

impl Application {
    /// The stream of the application with this id: `client-<id>`.
    pub fn stream_name(id: ApplicationId) -> String {
        <Application as Aggregate>::stream_name(&id)
    }

    /// Whether the application may use `grant`.
    pub fn allows(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }
}

impl Aggregate for Application {
    type Id = ApplicationId;
    type State = ApplicationState;
    type Command = ApplicationCommand;
    type Event = ApplicationEvent;

    const CATEGORY: &'static str = "client";

    fn decide(
        state: &ApplicationState,
        command: ApplicationCommand,
        context: &CommandContext,
    ) -> Result<Vec<ApplicationEvent>, DomainError> {
        decide(state, command, context)
    }

    fn evolve(state: ApplicationState, event: &ApplicationEvent) -> ApplicationState {
        evolve(state, event)
    }

    fn unique_values(state: &ApplicationState) -> BTreeSet<UniqueClaim> {
        match state {
            Some(application) if !application.deleted => BTreeSet::from([UniqueClaim::new(
                CLIENT_ID_CLAIM,
                application.client_id.as_str(),
            )]),
            _ => BTreeSet::new(),
        }
    }
}

fn normalized_grants(grants: &[Grant]) -> Vec<Grant> {
    let set: BTreeSet<Grant> = grants.iter().copied().collect();
    set.into_iter().collect()
}

/// The secret rules on what an application will be: public clients have no secret and cannot
/// use `client_credentials`; confidential clients need a secret.
fn check_client_kind(
    is_public: bool,
    grants: &[Grant],
    new_secret: bool,
    has_secret_after: bool,
) -> Result<(), DomainError> {
    if is_public {
        if new_secret {
            return Err(DomainError::PublicClientWithSecret);
        }
        if grants.contains(&Grant::ClientCredentials) {
            return Err(DomainError::PublicClientWithClientCredentials);
        }
    } else if !has_secret_after {
        return Err(DomainError::ConfidentialClientWithoutSecret);
    }
    Ok(())
}

/// The events `command` causes for an application in `state`.
pub fn decide(
    state: &ApplicationState,
    command: ApplicationCommand,
    _context: &CommandContext,
) -> Result<Vec<ApplicationEvent>, DomainError> {
    let live = state.as_ref().filter(|application| !application.deleted);
    match (live, command) {
        (Some(_), ApplicationCommand::Create(_)) => Err(DomainError::AlreadyExists),
        (None, ApplicationCommand::Create(create)) => create_application(create),
        (None, _) => Err(DomainError::NotFound),
        (Some(application), ApplicationCommand::Update(update)) => {
            update_application(application, update)
        }
        (Some(application), ApplicationCommand::ChangeScopes { operation, scopes }) => {
            let scope = operation.apply(&application.scope, &scopes);
            Ok(if scope == application.scope {
                Vec::new()
            } else {
                vec![ApplicationEvent::ScopesChanged { scope }]
            })
        }
        (Some(_), ApplicationCommand::Delete) => Ok(vec![ApplicationEvent::Deleted {}]),
    }
}

fn create_application(create: CreateApplication) -> Result<Vec<ApplicationEvent>, DomainError> {
    let grants = normalized_grants(&create.grants);
    let has_secret = create.secret_hash.is_some();
    check_client_kind(create.is_public, &grants, has_secret, has_secret)?;
    let mut events = vec![ApplicationEvent::Created {
        id: create.id,
        client_id: create.client_id,
        display_name: create.display_name,
        role: create.role,
        grants,
        redirect_uris: create.redirect_uris,
        is_public: create.is_public,
        scope: crate::scopes::normalized(&create.scope),
    }];
    if let Some(secret_hash) = create.secret_hash {
        events.push(ApplicationEvent::SecretSet { secret_hash });
    }
    Ok(events)
}

fn update_application(
    application: &Application,
    update: UpdateApplication,
) -> Result<Vec<ApplicationEvent>, DomainError> {
    let changes = update.changes.changed_from(application);
    let is_public = changes.is_public.unwrap_or(application.is_public);
    let grants = changes.grants.as_ref().unwrap_or(&application.grants);
    let new_secret = update.secret_hash.is_some();
    let has_secret_after = new_secret || (!is_public && application.secret_hash.is_some());
    check_client_kind(is_public, grants, new_secret, has_secret_after)?;
    let mut events = Vec::new();
    if !changes.is_empty() {
        events.push(ApplicationEvent::Updated(changes));
    }
    if let Some(secret_hash) = update.secret_hash {
        events.push(ApplicationEvent::SecretSet { secret_hash });
    } else if is_public && application.secret_hash.is_some() {
        events.push(ApplicationEvent::SecretRemoved {});
    }
    if let Some(scope) = update.scope.map(|scope| crate::scopes::normalized(&scope)) {
        if scope != application.scope {
            events.push(ApplicationEvent::ScopesChanged { scope });
        }
    }
    Ok(events)
}

/// The application after `event`.
pub fn evolve(state: ApplicationState, event: &ApplicationEvent) -> ApplicationState {
    if let ApplicationEvent::Created {
        id,
        client_id,
        display_name,
        role,
        grants,
        redirect_uris,
        is_public,
        scope,
    } = event
    {
        return Some(Application {
            id: *id,
            client_id: client_id.clone(),
            display_name: display_name.clone(),
            role: *role,
            grants: grants.clone(),
            redirect_uris: redirect_uris.clone(),
            is_public: *is_public,
            secret_hash: None,
            scope: scope.clone(),
            deleted: false,
        });
    }
    let mut application = state?;
    match event {
        ApplicationEvent::Created { .. } => {}
        ApplicationEvent::Updated(changes) => {
            if let Some(client_id) = &changes.client_id {
                application.client_id = client_id.clone();
            }
            if let Some(display_name) = &changes.display_name {
                application.display_name = display_name.clone();
            }
            if let Some(role) = changes.role {
                application.role = role;
            }
            if let Some(grants) = &changes.grants {
                application.grants = grants.clone();
            }
            if let Some(redirect_uris) = &changes.redirect_uris {
                application.redirect_uris = redirect_uris.clone();
            }
            if let Some(is_public) = changes.is_public {
                application.is_public = is_public;
            }
        }
        ApplicationEvent::SecretSet { secret_hash } => {
            application.secret_hash = Some(secret_hash.clone());
        }
        ApplicationEvent::SecretRemoved {} => application.secret_hash = None,
        ApplicationEvent::ScopesChanged { scope } => application.scope = scope.clone(),
        ApplicationEvent::Deleted {} => application.deleted = true,
    }
    Some(application)
}

#[cfg(test)]
mod tests;

//! The role aggregate: one stream `role-<id>` per role (the id is the role's own id).
//!
//! Rules it enforces on its own state: a role id is taken once (case-insensitively, through the
//! `role-id` claim); system roles cannot be updated or deleted; commands on a missing or deleted
//! role are `NotFound`. A deleted role's id is free again, and re-creating it continues the
//! same stream. Moving a deleted role's users to the default role is the command service's job
//! (it touches user streams).

pub mod view;

pub use view::RoleView;

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};

use crate::metadata::{CommandContext, EventFamily};
use crate::scopes::{Scope, ScopeOperation};
use crate::store::UniqueClaim;
use crate::values::{Ranking, RoleDescription, RoleDisplayName, RoleId};
use crate::{Aggregate, DomainError};

/// The uniqueness kind of role ids.
pub const ROLE_ID_CLAIM: &str = "role-id";

/// A role as far as deciding needs: `None` until created.
pub type RoleState = Option<Role>;

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub id: RoleId,
    pub display_name: RoleDisplayName,
    pub ranking: Ranking,
    pub description: Option<RoleDescription>,
    pub scope: Vec<Scope>,
    /// Created by userledger at first start; never updated or deleted.
    pub system: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoleCommand {
    Create(CreateRole),
    Update(UpdateRole),
    /// `access` on a role target. Allowed on system roles too: `access` is how an operator
    /// decides what the default `user` role may do, and the contract forbids only `update`.
    ChangeScopes {
        operation: ScopeOperation,
        scopes: Vec<Scope>,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateRole {
    pub id: RoleId,
    pub display_name: RoleDisplayName,
    pub ranking: Ranking,
    pub description: Option<RoleDescription>,
    /// Empty through the API (a body's `scope` is ignored); set for the system roles.
    pub scope: Vec<Scope>,
    /// True only for the roles userledger seeds ([`system_roles`]).
    pub system: bool,
}

/// An `update` of a role. `description: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRole {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<RoleDisplayName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub description: Option<Option<RoleDescription>>,
}

/// A field that is present is `Some`, even when `null` (cleared).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl UpdateRole {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The part of this update that differs from `role`.
    fn changed_from(self, role: &Role) -> Self {
        Self {
            display_name: self.display_name.filter(|d| d != &role.display_name),
            ranking: self.ranking.filter(|r| r != &role.ranking),
            description: self.description.filter(|d| d != &role.description),
        }
    }
}

/// The events of a role stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
pub enum RoleEvent {
    #[serde(rename = "RoleCreated")]
    Created {
        id: RoleId,
        display_name: RoleDisplayName,
        ranking: Ranking,
        description: Option<RoleDescription>,
        scope: Vec<Scope>,
        system: bool,
    },
    /// The fields that changed.
    #[serde(rename = "RoleUpdated")]
    Updated(UpdateRole),
    /// The role's scope list became this (sorted, without duplicates).
    #[serde(rename = "RoleScopesChanged")]
    ScopesChanged { scope: Vec<Scope> },
    #[serde(rename = "RoleDeleted")]
    Deleted {},
}

impl EventFamily for RoleEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "RoleCreated",
        "RoleUpdated",
        "RoleScopesChanged",
        "RoleDeleted",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "RoleCreated",
            Self::Updated(_) => "RoleUpdated",
            Self::ScopesChanged { .. } => "RoleScopesChanged",
            Self::Deleted {} => "RoleDeleted",
        }
    }
}

impl Role {
    /// The stream of the role with this id: `role-<id>`.
    pub fn stream_name(id: &RoleId) -> String {
        <Role as Aggregate>::stream_name(id)
    }
}

impl Aggregate for Role {
    type Id = RoleId;
    type State = RoleState;
    type Command = RoleCommand;
    type Event = RoleEvent;

    const CATEGORY: &'static str = "role";

    fn decide(
        state: &RoleState,
        command: RoleCommand,
        context: &CommandContext,
    ) -> Result<Vec<RoleEvent>, DomainError> {
        decide(state, command, context)
    }

    fn evolve(state: RoleState, event: &RoleEvent) -> RoleState {
        evolve(state, event)
    }

    fn unique_values(state: &RoleState) -> BTreeSet<UniqueClaim> {
        match state {
            Some(role) if !role.deleted => {
                BTreeSet::from([UniqueClaim::new(ROLE_ID_CLAIM, role.id.as_str())])
            }
            _ => BTreeSet::new(),
        }
    }
}

/// The events `command` causes for a role in `state`.
pub fn decide(
    state: &RoleState,
    command: RoleCommand,
    _context: &CommandContext,
) -> Result<Vec<RoleEvent>, DomainError> {
    let live = state.as_ref().filter(|role| !role.deleted);
    match (live, command) {
        (Some(_), RoleCommand::Create(_)) => Err(DomainError::AlreadyExists),
        (None, RoleCommand::Create(create)) => Ok(vec![RoleEvent::Created {
            id: create.id,
            display_name: create.display_name,
            ranking: create.ranking,
            description: create.description,
            scope: crate::scopes::normalized(&create.scope),
            system: create.system,
        }]),
        (None, _) => Err(DomainError::NotFound),
        (Some(role), RoleCommand::Update(_)) if role.system => Err(DomainError::SystemRoleUpdate),
        (Some(role), RoleCommand::Update(update)) => {
            let changed = update.changed_from(role);
            Ok(if changed.is_empty() {
                Vec::new()
            } else {
                vec![RoleEvent::Updated(changed)]
            })
        }
        (Some(role), RoleCommand::ChangeScopes { operation, scopes }) => {
            let scope = operation.apply(&role.scope, &scopes);
            Ok(if scope == role.scope {
                Vec::new()
            } else {
                vec![RoleEvent::ScopesChanged { scope }]
            })
        }
        (Some(role), RoleCommand::Delete) if role.system => Err(DomainError::SystemRoleDelete),
        (Some(_), RoleCommand::Delete) => Ok(vec![RoleEvent::Deleted {}]),
    }
}

/// The role after `event`.
pub fn evolve(state: RoleState, event: &RoleEvent) -> RoleState {
    if let RoleEvent::Created {
        id,
        display_name,
        ranking,
        description,
        scope,
        system,
    } = event
    {
        return Some(Role {
            id: id.clone(),
            display_name: display_name.clone(),
            ranking: *ranking,
            description: description.clone(),
            scope: scope.clone(),
            system: *system,
            deleted: false,
        });
    }
    let mut role = state?;
    match event {
        RoleEvent::Created { .. } => {}
        RoleEvent::Updated(update) => {
            if let Some(display_name) = &update.display_name {
                role.display_name = display_name.clone();
            }
            if let Some(ranking) = update.ranking {
                role.ranking = ranking;
            }
            if let Some(description) = &update.description {
                role.description = description.clone();
            }
        }
        RoleEvent::ScopesChanged { scope } => role.scope = scope.clone(),
        RoleEvent::Deleted {} => role.deleted = true,
    }
    Some(role)
}

/// Whether a holder of rank `actor` may act on a holder of rank `target` (API.md §2): a lower
/// number is more powerful; an unknown role (`None`) has rank 0; peers (equal ranks) pass unless
/// `can_edit_peer_data` is off.
pub fn outranks(actor: Option<Ranking>, target: Option<Ranking>, can_edit_peer_data: bool) -> bool {
    let actor = actor.map_or(0, Ranking::get);
    let target = target.map_or(0, Ranking::get);
    if can_edit_peer_data {
        actor <= target
    } else {
        actor < target
    }
}

/// The roles userledger creates at first start (API.md §2): `super_admin` holds `*` and
/// `internal_client` `client:all`, as the contract names; `admin` gets `admin:all`, which the
/// contract leaves open, since an admin role that passes no admin check would be no admin.
pub fn system_roles() -> Vec<CreateRole> {
    let table: [(RoleId, &str, i64, &[&str]); 5] = [
        (RoleId::super_admin(), "Super Admin", 1, &["*"]),
        (RoleId::admin(), "Admin", 2, &["admin:all"]),
        (RoleId::user(), "User", 100, &[]),
        (
            RoleId::internal_client(),
            "Internal Client",
            2,
            &["client:all"],
        ),
        (RoleId::external_client(), "External Client", 100, &[]),
    ];
    // Every entry is valid (a test checks that none is dropped).
    table
        .into_iter()
        .filter_map(|(id, display_name, ranking, scope)| {
            Some(CreateRole {
                id,
                display_name: RoleDisplayName::parse(display_name).ok()?,
                ranking: Ranking::new(ranking).ok()?,
                description: None,
                scope: scope
                    .iter()
                    .map(|s| Scope::parse(s))
                    .collect::<Result<_, _>>()
                    .ok()?,
                system: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;

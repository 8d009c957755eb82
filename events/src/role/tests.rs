//! Given/when/then tests of the role aggregate.

use serde_json::json;

use super::*;
use crate::testing::{self, Given};

fn given(history: impl IntoIterator<Item = RoleEvent>) -> Given<Role> {
    testing::given(history)
}

fn id() -> RoleId {
    RoleId::parse("Moderator").unwrap()
}

fn display_name(value: &str) -> RoleDisplayName {
    RoleDisplayName::parse(value).unwrap()
}

fn rank(value: i64) -> Ranking {
    Ranking::new(value).unwrap()
}

fn scope(name: &str) -> Scope {
    Scope::parse(name).unwrap()
}

fn create_command() -> CreateRole {
    CreateRole {
        id: id(),
        display_name: display_name("Moderator"),
        ranking: rank(10),
        description: None,
        scope: Vec::new(),
        system: false,
    }
}

fn created() -> RoleEvent {
    RoleEvent::Created {
        id: id(),
        display_name: display_name("Moderator"),
        ranking: rank(10),
        description: None,
        scope: Vec::new(),
        system: false,
    }
}

fn system_created() -> RoleEvent {
    RoleEvent::Created {
        id: RoleId::admin(),
        display_name: display_name("Admin"),
        ranking: rank(2),
        description: None,
        scope: Vec::new(),
        system: true,
    }
}

fn claim() -> UniqueClaim {
    UniqueClaim::new(ROLE_ID_CLAIM, "moderator")
}

#[test]
fn create_makes_a_role_and_claims_its_id() {
    given([])
        .when(RoleCommand::Create(create_command()))
        .then([created()])
        .then_claims(&[claim()], &[]);
}

#[test]
fn create_normalizes_the_scope_list() {
    let command = CreateRole {
        scope: vec![scope("client:all"), scope("admin:all"), scope("client:all")],
        ..create_command()
    };
    let role = given([])
        .when(RoleCommand::Create(command))
        .state_after()
        .unwrap();
    assert_eq!(role.scope, vec![scope("admin:all"), scope("client:all")]);
}

#[test]
fn create_on_an_existing_role_is_refused() {
    given([created()])
        .when(RoleCommand::Create(create_command()))
        .then_error(DomainError::AlreadyExists);
}

#[test]
fn a_deleted_role_can_be_created_again() {
    given([created(), RoleEvent::Deleted {}])
        .when(RoleCommand::Create(create_command()))
        .then([created()])
        .then_claims(&[claim()], &[]);
}

#[test]
fn update_records_the_fields_that_change() {
    let update = UpdateRole {
        display_name: Some(display_name("Moderator")),
        ranking: Some(rank(5)),
        description: Some(Some(RoleDescription::parse("Keeps order").unwrap())),
    };
    given([created()])
        .when(RoleCommand::Update(update))
        .then([RoleEvent::Updated(UpdateRole {
            display_name: None,
            ranking: Some(rank(5)),
            description: Some(Some(RoleDescription::parse("Keeps order").unwrap())),
        })]);
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    given([created()])
        .when(RoleCommand::Update(UpdateRole {
            ranking: Some(rank(10)),
            description: Some(None),
            ..UpdateRole::default()
        }))
        .then_nothing();
}

#[test]
fn system_roles_cannot_be_updated() {
    given([system_created()])
        .when(RoleCommand::Update(UpdateRole {
            ranking: Some(rank(3)),
            ..UpdateRole::default()
        }))
        .then_error(DomainError::SystemRoleUpdate);
}

#[test]
fn system_roles_cannot_be_deleted() {
    given([system_created()])
        .when(RoleCommand::Delete)
        .then_error(DomainError::SystemRoleDelete);
}

#[test]
fn delete_deletes_and_releases_the_id() {
    given([created()])
        .when(RoleCommand::Delete)
        .then([RoleEvent::Deleted {}])
        .then_claims(&[], &[claim()]);
}

#[test]
fn commands_on_a_missing_or_deleted_role_are_not_found() {
    given([])
        .when(RoleCommand::Delete)
        .then_error(DomainError::NotFound);
    given([created(), RoleEvent::Deleted {}])
        .when(RoleCommand::Update(UpdateRole::default()))
        .then_error(DomainError::NotFound);
}

#[test]
fn scopes_change_through_access() {
    given([created()])
        .when(RoleCommand::ChangeScopes {
            operation: ScopeOperation::Add,
            scopes: vec![scope("admin:profile:read")],
        })
        .then([RoleEvent::ScopesChanged {
            scope: vec![scope("admin:profile:read")],
        }]);
}

#[test]
fn system_roles_scopes_change_through_access() {
    given([system_created()])
        .when(RoleCommand::ChangeScopes {
            operation: ScopeOperation::Set,
            scopes: vec![scope("admin:all")],
        })
        .then([RoleEvent::ScopesChanged {
            scope: vec![scope("admin:all")],
        }]);
}

#[test]
fn a_scope_change_that_changes_nothing_emits_nothing() {
    given([created()])
        .when(RoleCommand::ChangeScopes {
            operation: ScopeOperation::Remove,
            scopes: vec![scope("admin:all")],
        })
        .then_nothing();
}

#[test]
fn outranking_follows_the_contract() {
    assert!(outranks(Some(rank(1)), Some(rank(2)), true));
    assert!(
        outranks(Some(rank(2)), Some(rank(2)), true),
        "peers pass by default"
    );
    assert!(
        !outranks(Some(rank(2)), Some(rank(2)), false),
        "strict without peer editing"
    );
    assert!(!outranks(Some(rank(3)), Some(rank(2)), true));
    assert!(
        outranks(None, Some(rank(1)), false),
        "an unknown role has rank 0"
    );
    assert!(!outranks(Some(rank(1)), None, true));
}

#[test]
fn the_system_roles_are_the_contracts_five() {
    let roles = system_roles();
    let summary: Vec<(String, u32, Vec<String>)> = roles
        .iter()
        .map(|r| {
            (
                r.id.to_string(),
                r.ranking.get(),
                r.scope.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("super_admin".to_owned(), 1, vec!["*".to_owned()]),
            ("admin".to_owned(), 2, vec!["admin:all".to_owned()]),
            ("user".to_owned(), 100, vec![]),
            (
                "internal_client".to_owned(),
                2,
                vec!["client:all".to_owned()]
            ),
            ("external_client".to_owned(), 100, vec![]),
        ]
    );
    assert!(roles.iter().all(|r| r.system));
}

#[test]
fn the_role_stream_is_named_by_its_id() {
    assert_eq!(Role::stream_name(&id()), "role-Moderator");
}

#[test]
fn every_role_event_round_trips_through_the_store_encoding() {
    let events = [
        created(),
        RoleEvent::Updated(UpdateRole {
            description: Some(None),
            ..UpdateRole::default()
        }),
        RoleEvent::ScopesChanged {
            scope: vec![Scope::root()],
        },
        RoleEvent::Deleted {},
    ];
    for event in &events {
        testing::assert_round_trip(event);
    }
    let new = crate::metadata::encode(&events[0], &testing::context().metadata(uuid::Uuid::nil()))
        .unwrap();
    assert_eq!(new.event_type, "RoleCreated");
    assert_eq!(new.data["displayName"], json!("Moderator"));
    assert_eq!(new.data["ranking"], json!(10));
}

#[test]
fn a_stream_loads_into_its_state_and_revision() {
    use crate::store::{ExpectedRevision, Position, RecordedEvent};
    use crate::{load, Loaded};
    let empty: Loaded<Role> = load(&[]).unwrap();
    assert_eq!(empty.state, None);
    assert_eq!(empty.expected_revision(), ExpectedRevision::NoStream);
    let context = testing::context();
    let recorded: Vec<RecordedEvent> = [created(), RoleEvent::Deleted {}]
        .iter()
        .enumerate()
        .map(|(revision, event)| {
            let new =
                crate::metadata::encode(event, &context.metadata(uuid::Uuid::now_v7())).unwrap();
            RecordedEvent {
                stream: Role::stream_name(&id()),
                revision: revision as u64,
                position: Position::at(revision as u64 + 1),
                event_id: new.event_id,
                event_type: new.event_type,
                data: new.data,
                metadata: new.metadata,
                recorded_at: testing::now(),
            }
        })
        .collect();
    let loaded: Loaded<Role> = load(&recorded).unwrap();
    assert!(loaded.state.as_ref().is_some_and(|role| role.deleted));
    assert_eq!(loaded.expected_revision(), ExpectedRevision::Exact(1));
    let mut foreign = recorded[0].clone();
    foreign.event_type = "UserCreated".to_owned();
    assert!(load::<Role>(&[foreign]).is_err());
}

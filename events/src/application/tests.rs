//! Given/when/then tests of the application aggregate.

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::testing::{self, Given};

fn given(history: impl IntoIterator<Item = ApplicationEvent>) -> Given<Application> {
    testing::given(history)
}

fn id() -> ApplicationId {
    ApplicationId::from_uuid(Uuid::from_u128(0xa1))
}

fn client_id(value: &str) -> ClientId {
    ClientId::parse(value).unwrap()
}

fn hash(n: u8) -> SecretHash {
    SecretHash::parse(&format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${n}")).unwrap()
}

fn uri() -> RedirectUri {
    RedirectUri::parse("https://admin.example.com/callback").unwrap()
}

fn create_command() -> CreateApplication {
    CreateApplication {
        id: id(),
        client_id: client_id("Nitrogen_UI"),
        display_name: ApplicationDisplayName::parse("Nitrogen admin").unwrap(),
        role: ClientRole::InternalClient,
        grants: vec![
            Grant::RefreshToken,
            Grant::ClientCredentials,
            Grant::RefreshToken,
        ],
        redirect_uris: vec![uri()],
        is_public: false,
        secret_hash: Some(hash(1)),
        scope: vec![Scope::delegated_all()],
    }
}

fn created() -> ApplicationEvent {
    ApplicationEvent::Created {
        id: id(),
        client_id: client_id("Nitrogen_UI"),
        display_name: ApplicationDisplayName::parse("Nitrogen admin").unwrap(),
        role: ClientRole::InternalClient,
        grants: vec![Grant::ClientCredentials, Grant::RefreshToken],
        redirect_uris: vec![uri()],
        is_public: false,
        scope: vec![Scope::delegated_all()],
    }
}

fn secret_set() -> ApplicationEvent {
    ApplicationEvent::SecretSet {
        secret_hash: hash(1),
    }
}

fn public_created() -> ApplicationEvent {
    ApplicationEvent::Created {
        id: id(),
        client_id: client_id("Nitrogen_UI"),
        display_name: ApplicationDisplayName::parse("Nitrogen admin").unwrap(),
        role: ClientRole::ExternalClient,
        grants: vec![Grant::AuthorizationCode],
        redirect_uris: vec![uri()],
        is_public: true,
        scope: vec![Scope::delegated_all()],
    }
}

fn claim(value: &str) -> UniqueClaim {
    UniqueClaim::new(CLIENT_ID_CLAIM, value)
}

fn update(changes: ApplicationChanges, secret_hash: Option<SecretHash>) -> ApplicationCommand {
    ApplicationCommand::Update(UpdateApplication {
        changes,
        secret_hash,
        scope: None,
    })
}

#[test]
fn create_registers_a_confidential_client_with_its_secret_hash() {
    given([])
        .when(ApplicationCommand::Create(create_command()))
        .then([created(), secret_set()])
        .then_claims(&[claim("nitrogen_ui")], &[]);
}

#[test]
fn create_registers_a_public_client_without_a_secret() {
    let command = CreateApplication {
        role: ClientRole::ExternalClient,
        grants: vec![Grant::AuthorizationCode],
        is_public: true,
        secret_hash: None,
        ..create_command()
    };
    given([])
        .when(ApplicationCommand::Create(command))
        .then([public_created()]);
}

#[test]
fn a_public_client_cannot_have_a_secret() {
    let command = CreateApplication {
        grants: vec![Grant::AuthorizationCode],
        is_public: true,
        ..create_command()
    };
    given([])
        .when(ApplicationCommand::Create(command))
        .then_error(DomainError::PublicClientWithSecret);
}

#[test]
fn a_public_client_cannot_use_client_credentials() {
    let command = CreateApplication {
        is_public: true,
        secret_hash: None,
        ..create_command()
    };
    given([])
        .when(ApplicationCommand::Create(command))
        .then_error(DomainError::PublicClientWithClientCredentials);
}

#[test]
fn a_confidential_client_needs_a_secret() {
    let command = CreateApplication {
        secret_hash: None,
        ..create_command()
    };
    given([])
        .when(ApplicationCommand::Create(command))
        .then_error(DomainError::ConfidentialClientWithoutSecret);
}

#[test]
fn create_on_an_existing_application_is_refused() {
    given([created(), secret_set()])
        .when(ApplicationCommand::Create(create_command()))
        .then_error(DomainError::AlreadyExists);
}

#[test]
fn update_records_the_fields_that_change() {
    let changes = ApplicationChanges {
        display_name: Some(ApplicationDisplayName::parse("Nitrogen console").unwrap()),
        role: Some(ClientRole::InternalClient),
        grants: Some(vec![Grant::RefreshToken, Grant::ClientCredentials]),
        ..ApplicationChanges::default()
    };
    given([created(), secret_set()])
        .when(update(changes, None))
        .then([ApplicationEvent::Updated(ApplicationChanges {
            display_name: Some(ApplicationDisplayName::parse("Nitrogen console").unwrap()),
            ..ApplicationChanges::default()
        })]);
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    given([created(), secret_set()])
        .when(update(
            ApplicationChanges {
                is_public: Some(false),
                redirect_uris: Some(vec![uri()]),
                ..ApplicationChanges::default()
            },
            None,
        ))
        .then_nothing();
}

#[test]
fn a_new_client_id_moves_the_claim() {
    let changes = ApplicationChanges {
        client_id: Some(client_id("nitrogen_two")),
        ..ApplicationChanges::default()
    };
    given([created(), secret_set()])
        .when(update(changes.clone(), None))
        .then([ApplicationEvent::Updated(changes)])
        .then_claims(&[claim("nitrogen_two")], &[claim("nitrogen_ui")]);
}

#[test]
fn update_sets_a_new_secret() {
    given([created(), secret_set()])
        .when(update(ApplicationChanges::default(), Some(hash(2))))
        .then([ApplicationEvent::SecretSet {
            secret_hash: hash(2),
        }]);
}

#[test]
fn becoming_public_drops_the_secret() {
    let changes = ApplicationChanges {
        grants: Some(vec![Grant::AuthorizationCode]),
        is_public: Some(true),
        ..ApplicationChanges::default()
    };
    let application = given([created(), secret_set()])
        .when(update(changes.clone(), None))
        .then([
            ApplicationEvent::Updated(changes),
            ApplicationEvent::SecretRemoved {},
        ])
        .state_after()
        .unwrap();
    assert_eq!(application.secret_hash, None);
    assert!(!application.allows(Grant::ClientCredentials));
}

#[test]
fn becoming_public_while_keeping_client_credentials_is_refused() {
    given([created(), secret_set()])
        .when(update(
            ApplicationChanges {
                is_public: Some(true),
                ..ApplicationChanges::default()
            },
            None,
        ))
        .then_error(DomainError::PublicClientWithClientCredentials);
}

#[test]
fn a_public_client_cannot_be_given_a_secret() {
    given([public_created()])
        .when(update(ApplicationChanges::default(), Some(hash(2))))
        .then_error(DomainError::PublicClientWithSecret);
}

#[test]
fn a_public_client_cannot_be_given_client_credentials() {
    given([public_created()])
        .when(update(
            ApplicationChanges {
                grants: Some(vec![Grant::ClientCredentials]),
                ..ApplicationChanges::default()
            },
            None,
        ))
        .then_error(DomainError::PublicClientWithClientCredentials);
}

#[test]
fn becoming_confidential_needs_a_secret() {
    let to_confidential = ApplicationChanges {
        is_public: Some(false),
        ..ApplicationChanges::default()
    };
    given([public_created()])
        .when(update(to_confidential.clone(), None))
        .then_error(DomainError::ConfidentialClientWithoutSecret);
    given([public_created()])
        .when(update(to_confidential.clone(), Some(hash(3))))
        .then([
            ApplicationEvent::Updated(to_confidential),
            ApplicationEvent::SecretSet {
                secret_hash: hash(3),
            },
        ]);
}

#[test]
fn scopes_change_through_access() {
    given([created(), secret_set()])
        .when(ApplicationCommand::ChangeScopes {
            operation: ScopeOperation::Add,
            scopes: vec![Scope::parse("client:profile:read").unwrap()],
        })
        .then([ApplicationEvent::ScopesChanged {
            scope: vec![
                Scope::parse("client:profile:read").unwrap(),
                Scope::delegated_all(),
            ],
        }]);
    given([created(), secret_set()])
        .when(ApplicationCommand::ChangeScopes {
            operation: ScopeOperation::Set,
            scopes: vec![Scope::delegated_all()],
        })
        .then_nothing();
}

#[test]
fn an_update_changes_fields_and_scope_in_one_decision() {
    let read = Scope::parse("client:profile:read").unwrap();
    let changes = ApplicationChanges {
        display_name: Some(ApplicationDisplayName::parse("Nitrogen Admin UI v2").unwrap()),
        ..ApplicationChanges::default()
    };
    given([created(), secret_set()])
        .when(ApplicationCommand::Update(UpdateApplication {
            changes: changes.clone(),
            secret_hash: None,
            scope: Some(vec![read.clone()]),
        }))
        .then([
            ApplicationEvent::Updated(changes),
            ApplicationEvent::ScopesChanged { scope: vec![read] },
        ]);
    given([created(), secret_set()])
        .when(ApplicationCommand::Update(UpdateApplication {
            scope: Some(vec![Scope::delegated_all()]),
            ..UpdateApplication::default()
        }))
        .then_nothing();
}

#[test]
fn delete_deletes_and_releases_the_client_id() {
    given([created(), secret_set()])
        .when(ApplicationCommand::Delete)
        .then([ApplicationEvent::Deleted {}])
        .then_claims(&[], &[claim("nitrogen_ui")]);
}

#[test]
fn commands_on_a_missing_or_deleted_application_are_not_found() {
    given([])
        .when(ApplicationCommand::Delete)
        .then_error(DomainError::NotFound);
    given([created(), secret_set(), ApplicationEvent::Deleted {}])
        .when(update(ApplicationChanges::default(), None))
        .then_error(DomainError::NotFound);
}

#[test]
fn every_application_event_round_trips_and_only_the_secret_event_holds_a_secret() {
    let events = [
        created(),
        secret_set(),
        ApplicationEvent::Updated(ApplicationChanges {
            is_public: Some(true),
            ..ApplicationChanges::default()
        }),
        ApplicationEvent::SecretRemoved {},
        ApplicationEvent::ScopesChanged { scope: vec![] },
        ApplicationEvent::Deleted {},
    ];
    for event in &events {
        testing::assert_round_trip(event);
        assert_eq!(
            event.contains_secret(),
            matches!(event, ApplicationEvent::SecretSet { .. })
        );
    }
    let new =
        crate::metadata::encode(&created(), &testing::context().metadata(Uuid::nil())).unwrap();
    assert_eq!(new.data["clientId"], json!("Nitrogen_UI"));
    assert_eq!(new.data["role"], json!("internal_client"));
    assert_eq!(
        new.data["grants"],
        json!(["client_credentials", "refresh_token"])
    );
    assert_eq!(Application::stream_name(id()), format!("client-{}", id()));
}

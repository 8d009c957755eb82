//! First start: the system roles always; a `super_admin` user and an `internal_client`
//! application when configured (`USERLEDGER_BOOTSTRAP_*`) and absent. Idempotent across
//! restarts (each step checks first) and across concurrent starts (the streams' expected
//! revisions and the uniqueness claims let exactly one writer win; the others find it done).

use anyhow::{anyhow, Context};
use events::application::{Application, ApplicationCommand, CreateApplication, CLIENT_ID_CLAIM};
use events::metadata::{Actor, CommandContext};
use events::role::{system_roles, Role, RoleCommand};
use events::scopes::Scope;
use events::store::UniqueClaim;
use events::user::{CreateUser, User, UserCommand, USERNAME_CLAIM};
use events::values::{
    ApplicationDisplayName, ApplicationId, ClientId, ClientRole, Credits, Email, Grant, PersonName,
    RoleId, UserId, Username,
};
use uuid::Uuid;

use crate::pipeline::{execute, Failure};
use crate::AppState;

/// Runs every first-start step. Safe to call on every start.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    let context = CommandContext::new(Uuid::now_v7(), Actor::system(), chrono::Utc::now());
    for role in system_roles() {
        let id = role.id.clone();
        match execute::<Role, _>(&*state.store, &id, &context, 3, |current| {
            // Already there (another start won, or an earlier one): nothing to do.
            match current {
                Some(existing) if !existing.deleted => Err(Failure::Api(
                    http_edge::envelope::ApiError::refused("AlreadyBootstrapped"),
                )),
                _ => Ok(RoleCommand::Create(role.clone())),
            }
        })
        .await
        {
            Ok(_) => tracing::info!(role = %id, "created system role"),
            Err(Failure::Api(http_edge::envelope::ApiError::Refused {
                code: "AlreadyBootstrapped",
                ..
            })) => {}
            Err(Failure::Taken(_)) => {}
            Err(Failure::Api(error)) => return Err(anyhow!("creating system role {id}: {error}")),
        }
    }
    if let Some(admin) = &state.settings.bootstrap_admin {
        bootstrap_admin(state, admin, &context).await?;
    }
    if let Some(client) = &state.settings.bootstrap_client {
        bootstrap_client(state, client, &context).await?;
    }
    Ok(())
}

async fn bootstrap_admin(
    state: &AppState,
    admin: &crate::settings::BootstrapAdmin,
    context: &CommandContext,
) -> anyhow::Result<()> {
    let username = Username::parse(&admin.username)
        .map_err(|e| anyhow!("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME: {}", e.msg))?;
    let email = Email::parse(&admin.email)
        .map_err(|e| anyhow!("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL: {}", e.msg))?;
    events::values::Password::parse(&admin.password)
        .map_err(|e| anyhow!("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD: {}", e.msg))?;
    let claim = UniqueClaim::new(USERNAME_CLAIM, username.as_str());
    if state.store.claim_holder(&claim).await?.is_some() {
        return Ok(());
    }
    let password_hash = state
        .hasher
        .hash(&admin.password)
        .await
        .map_err(|e| anyhow!("hashing the bootstrap password: {e}"))?;
    let id = UserId::new();
    let create = CreateUser {
        id,
        username,
        email,
        password_hash,
        first_name: PersonName::parse("Super").map_err(|e| anyhow!(e.msg))?,
        last_name: PersonName::parse("Admin").map_err(|e| anyhow!(e.msg))?,
        middle_name: None,
        role: RoleId::super_admin(),
        phone: None,
        phone_country_code: None,
        credits: Credits::new(state.settings.initial_credits),
        invite_codes: Vec::new(),
        invited_by: None,
    };
    match execute::<User, _>(&*state.store, &id, context, 1, |_| {
        Ok(UserCommand::Create(create.clone()))
    })
    .await
    {
        Ok(_) => {
            tracing::info!(user = %id, "created the bootstrap super_admin");
            Ok(())
        }
        // A concurrent start created it first.
        Err(Failure::Taken(_)) => Ok(()),
        Err(Failure::Api(error)) => Err(anyhow!("creating the bootstrap admin: {error}")),
    }
}

async fn bootstrap_client(
    state: &AppState,
    client: &crate::settings::BootstrapClient,
    context: &CommandContext,
) -> anyhow::Result<()> {
    let client_id = ClientId::parse(&client.client_id)
        .map_err(|e| anyhow!("USERLEDGER_BOOTSTRAP_CLIENT_ID: {}", e.msg))?;
    events::values::ClientSecret::parse(&client.secret)
        .map_err(|e| anyhow!("USERLEDGER_BOOTSTRAP_CLIENT_SECRET: {}", e.msg))?;
    let claim = UniqueClaim::new(CLIENT_ID_CLAIM, client_id.as_str());
    if state.store.claim_holder(&claim).await?.is_some() {
        return Ok(());
    }
    let secret_hash = state
        .hasher
        .hash(&client.secret)
        .await
        .map_err(|e| anyhow!("hashing the bootstrap client secret: {e}"))?;
    let id = ApplicationId::new();
    let create = CreateApplication {
        id,
        client_id,
        display_name: ApplicationDisplayName::parse("Internal client (bootstrap)")
            .map_err(|e| anyhow!(e.msg))?,
        role: ClientRole::InternalClient,
        grants: vec![
            Grant::ClientCredentials,
            Grant::AuthorizationCode,
            Grant::RefreshToken,
            Grant::Password,
        ],
        redirect_uris: Vec::new(),
        is_public: false,
        secret_hash: Some(secret_hash),
        scope: vec![Scope::parse("*").context("the catalogue has *")?],
    };
    match execute::<Application, _>(&*state.store, &id, context, 1, |_| {
        Ok(ApplicationCommand::Create(create.clone()))
    })
    .await
    {
        Ok(_) => {
            tracing::info!(application = %id, "created the bootstrap internal client");
            Ok(())
        }
        Err(Failure::Taken(_)) => Ok(()),
        Err(Failure::Api(error)) => Err(anyhow!("creating the bootstrap client: {error}")),
    }
}

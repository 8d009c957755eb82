//! A realistic stream of writes for tests that run processes against a busy log.

use chrono::Utc;
use command_service::pipeline::execute;
use command_service::AppState;
use events::metadata::{Actor, CommandContext};
use events::role::{CreateRole, Role, RoleCommand};
use events::user::{CreateUser, CreditsChange, Toggle, User, UserCommand};
use events::values::{
    Credits, Email, PersonName, Ranking, RoleDisplayName, RoleId, SecretHash, UserId, Username,
};
use uuid::Uuid;

/// A valid argon2id hash with minimal cost: tests of the log do not hash passwords.
pub const HASH: &str = "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA";

/// `count` events from one writer (`writer` names its users and roles), on `users_per_writer`
/// users of its own: creations, then mostly credit increments, some verification toggles and
/// invite codes; a few roles. The credits it gave.
pub async fn write_history(
    state: &AppState,
    writer: usize,
    count: usize,
    users_per_writer: usize,
) -> u64 {
    let context = || CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
    let user = |id: UserId, command: UserCommand| async move {
        execute::<User, _>(&*state.store, &id, &context(), 5, |_| Ok(command.clone()))
            .await
            .map_err(|e| format!("{:?}", http_edge::envelope::ApiError::from(e)))
            .expect("the user command runs");
    };
    let mut users = Vec::new();
    for n in 0..users_per_writer {
        let id = UserId::new();
        let username = format!("w{writer}_user_{n}");
        user(
            id,
            create_user(id, &username, &format!("{username}@example.com")),
        )
        .await;
        users.push((id, false));
    }
    let mut credits = 0;
    for step in users_per_writer..count {
        let (id, verified) = &mut users[step % users_per_writer];
        if step % 200 == 0 {
            let role = RoleId::parse(&format!("w{writer}_role_{step}")).unwrap();
            let command = RoleCommand::Create(CreateRole {
                id: role.clone(),
                display_name: RoleDisplayName::parse("Moderator").unwrap(),
                ranking: Ranking::new(10).unwrap(),
                description: None,
                scope: Vec::new(),
                system: false,
            });
            execute::<Role, _>(&*state.store, &role, &context(), 5, |_| Ok(command.clone()))
                .await
                .map_err(|e| format!("{:?}", http_edge::envelope::ApiError::from(e)))
                .expect("the role command runs");
        } else if step % 50 == 0 {
            let codes = command_service::users::invite_codes::draw(2, Utc::now());
            user(*id, UserCommand::GenerateInviteCodes(codes)).await;
        } else if step % 13 == 0 {
            *verified = !*verified;
            let toggle = if *verified {
                Toggle::on(None)
            } else {
                Toggle::off(None)
            };
            user(*id, UserCommand::SetVerified(toggle)).await;
        } else {
            let amount = (step % 5 + 1) as u64;
            credits += amount;
            user(
                *id,
                UserCommand::ChangeCredits(CreditsChange::Increment(Credits::new(amount))),
            )
            .await;
        }
    }
    credits
}

/// The command that creates a plain user (role `user`, no credits) named `username`.
pub fn create_user(id: UserId, username: &str, email: &str) -> UserCommand {
    UserCommand::Create(CreateUser {
        id,
        username: Username::parse(username).unwrap(),
        email: Email::parse(email).unwrap(),
        password_hash: SecretHash::parse(HASH).unwrap(),
        first_name: PersonName::parse("Ada").unwrap(),
        last_name: PersonName::parse("Lovelace").unwrap(),
        middle_name: None,
        role: RoleId::user(),
        phone: None,
        phone_country_code: None,
        credits: Credits::new(0),
        invite_codes: Vec::new(),
        invited_by: None,
    })
}

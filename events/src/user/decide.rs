//! The user's rules: which events a command causes, or why it is refused.

use std::collections::BTreeSet;

use super::commands::{
    CreateUser, CreditsChange, SubscriptionChange, Toggle, UpdateUser, UserCommand,
    MAX_INVITE_CODES_PER_REQUEST,
};
use super::events::UserEvent;
use super::{User, UserState};
use crate::metadata::{Actor, CommandContext};
use crate::scopes::{Scope, ScopeOperation};
use crate::values::{CustomData, InviteCode, Reason, RoleId, UserId};
use crate::DomainError;

pub(super) fn decide(
    state: &UserState,
    command: UserCommand,
    context: &CommandContext,
) -> Result<Vec<UserEvent>, DomainError> {
    if let UserCommand::Create(create) = command {
        return match state {
            Some(_) => Err(DomainError::AlreadyExists),
            None => create_user(create),
        };
    }
    if let UserCommand::Erase = command {
        return match state {
            Some(_) => Ok(vec![UserEvent::Erased {}]),
            None => Err(DomainError::NotFound),
        };
    }
    let user = match state {
        Some(user) if !user.deleted => user,
        _ => return Err(DomainError::NotFound),
    };
    let actor = &context.actor;
    match command {
        UserCommand::Create(_) => Err(DomainError::AlreadyExists),
        UserCommand::Erase => unreachable!("decided above"),
        UserCommand::Update(update) => Ok(update_user(user, update)),
        UserCommand::ReplaceCustomData(custom_data) => Ok(replace_custom_data(user, custom_data)),
        UserCommand::SetBanned(toggle) => Ok(toggle_flag(user.banned, toggle, actor, Flag::Banned)),
        UserCommand::SetRestricted(toggle) => Ok(toggle_flag(
            user.restricted,
            toggle,
            actor,
            Flag::Restricted,
        )),
        UserCommand::SetVerified(toggle) => {
            Ok(toggle_flag(user.verified, toggle, actor, Flag::Verified))
        }
        UserCommand::ChangeCredits(change) => change_credits(user, change),
        UserCommand::ChangeScopes { operation, scopes } => {
            Ok(change_scopes(user, operation, &scopes))
        }
        UserCommand::ChangeSubscription(change) => Ok(change_subscription(user, change)),
        UserCommand::SetSubscriptionCancelled(cancelled) => {
            Ok(set_subscription_cancelled(user, cancelled))
        }
        UserCommand::GenerateInviteCodes(codes) => generate_invite_codes(user, codes),
        UserCommand::RedeemInviteCode { code, redeemed_by } => {
            redeem_invite_code(user, code, redeemed_by)
        }
        UserCommand::ChangeRole(role) => Ok(change_role(user, role)),
        UserCommand::Delete => Ok(vec![UserEvent::Deleted {}]),
        UserCommand::SetPrivate(private) => Ok(match (user.private, private) {
            (false, true) => vec![UserEvent::MadePrivate {}],
            (true, false) => vec![UserEvent::MadePublic {}],
            _ => vec![],
        }),
    }
}

fn create_user(create: CreateUser) -> Result<Vec<UserEvent>, DomainError> {
    let CreateUser {
        id,
        username,
        email,
        password_hash,
        first_name,
        last_name,
        middle_name,
        role,
        phone,
        phone_country_code,
        credits,
        invite_codes,
        invited_by,
    } = create;
    check_new_invite_codes(&[], &invite_codes)?;
    let sanitized_email = email.sanitized();
    let mut events = vec![
        UserEvent::Created {
            id,
            username,
            email,
            sanitized_email,
            // API.md §3: new users created through the API count as verified addresses.
            email_verified: true,
            first_name,
            last_name,
            middle_name,
            role,
            phone,
            phone_country_code,
            scope: vec![Scope::delegated_all()],
            credits,
            custom_data: CustomData::empty(),
            invited_by,
        },
        UserEvent::PasswordSet { password_hash },
    ];
    if !invite_codes.is_empty() {
        events.push(UserEvent::InviteCodesGenerated {
            codes: invite_codes,
        });
    }
    Ok(events)
}

/// One event per kind of change, in a fixed order; fields already holding the asked value are
/// left out, and the delete comes last so that the other changes are still recorded.
fn update_user(user: &User, update: UpdateUser) -> Vec<UserEvent> {
    let UpdateUser {
        profile,
        email,
        username,
        password_hash,
        role,
        delete,
    } = update;
    let mut events = Vec::new();
    if let Some(username) = username.filter(|u| u != &user.username) {
        events.push(UserEvent::UsernameChanged { username });
    }
    if let Some(email) = email.filter(|e| e != &user.email) {
        let sanitized_email = email.sanitized();
        events.push(UserEvent::EmailChanged {
            email,
            sanitized_email,
        });
    }
    let profile = user.profile.changed_by(profile);
    if !profile.is_empty() {
        events.push(UserEvent::ProfileUpdated(profile));
    }
    // A new hash is always a change: the same password hashes differently with a new salt.
    if let Some(password_hash) = password_hash {
        events.push(UserEvent::PasswordSet { password_hash });
    }
    events.extend(change_role_events(user, role));
    if delete {
        events.push(UserEvent::Deleted {});
    }
    events
}

fn change_role(user: &User, role: RoleId) -> Vec<UserEvent> {
    change_role_events(user, Some(role)).collect()
}

fn change_role_events(user: &User, role: Option<RoleId>) -> impl Iterator<Item = UserEvent> {
    role.filter(|r| r != &user.role)
        .map(|role| UserEvent::RoleChanged { role })
        .into_iter()
}

fn replace_custom_data(user: &User, custom_data: CustomData) -> Vec<UserEvent> {
    if custom_data == user.custom_data {
        return Vec::new();
    }
    vec![UserEvent::CustomDataReplaced { custom_data }]
}

/// The three on/off states that record a reason and who changed them.
#[derive(Clone, Copy)]
enum Flag {
    Banned,
    Restricted,
    Verified,
}

/// Turning a flag to the state it already has changes nothing and records nothing: the first
/// ban's reason, date and author stay, rather than being overwritten by a repeat.
fn toggle_flag(current: bool, toggle: Toggle, actor: &Actor, flag: Flag) -> Vec<UserEvent> {
    if toggle.state == current {
        return Vec::new();
    }
    let reason: Option<Reason> = toggle.reason;
    let by = actor.clone();
    let event = match (flag, toggle.state) {
        (Flag::Banned, true) => UserEvent::Banned { reason, by },
        (Flag::Banned, false) => UserEvent::Unbanned { reason, by },
        (Flag::Restricted, true) => UserEvent::Restricted { reason, by },
        (Flag::Restricted, false) => UserEvent::Unrestricted { reason, by },
        (Flag::Verified, true) => UserEvent::Verified { reason, by },
        (Flag::Verified, false) => UserEvent::Unverified { reason, by },
    };
    vec![event]
}

/// Credits never go negative; a change by 0 or a set to the balance is a no-op (API.md §6).
fn change_credits(user: &User, change: CreditsChange) -> Result<Vec<UserEvent>, DomainError> {
    let balance = user.credits;
    let event = match change {
        CreditsChange::Increment(amount) => {
            balance
                .checked_add(amount)
                .ok_or(DomainError::CreditsOverflow {
                    balance,
                    requested: amount,
                })?;
            (amount.get() > 0).then_some(UserEvent::CreditsIncreased { amount })
        }
        CreditsChange::Decrement(amount) => {
            balance
                .checked_sub(amount)
                .ok_or(DomainError::InsufficientCredits {
                    balance,
                    requested: amount,
                })?;
            (amount.get() > 0).then_some(UserEvent::CreditsDecreased { amount })
        }
        CreditsChange::Set(credits) => {
            (credits != balance).then_some(UserEvent::CreditsSet { credits })
        }
    };
    Ok(event.into_iter().collect())
}

fn change_scopes(user: &User, operation: ScopeOperation, scopes: &[Scope]) -> Vec<UserEvent> {
    let scope = operation.apply(&user.scope, scopes);
    if scope == crate::scopes::normalized(&user.scope) {
        return Vec::new();
    }
    vec![UserEvent::ScopesChanged { scope }]
}

fn change_subscription(user: &User, change: SubscriptionChange) -> Vec<UserEvent> {
    match change {
        SubscriptionChange::Activate {
            tier,
            expiry,
            identifier,
        } => {
            let current = user.subscription.as_ref();
            // No tier keeps the current one; the base tier (None) for a new subscription.
            let tier = tier.or_else(|| current.and_then(|s| s.tier.clone()));
            let unchanged = current.is_some_and(|s| {
                s.tier == tier && s.expiry == expiry && s.identifier == identifier
            });
            if unchanged && !user.subscription_cancelled {
                return Vec::new();
            }
            vec![UserEvent::SubscriptionActivated {
                tier,
                expiry,
                identifier,
            }]
        }
        SubscriptionChange::Deactivate if user.subscription.is_some() => {
            vec![UserEvent::SubscriptionDeactivated {}]
        }
        SubscriptionChange::Deactivate => Vec::new(),
    }
}

/// The cancellation flag can be set whatever the subscription's state, as in Liquid; it only
/// records the user's wish not to renew.
fn set_subscription_cancelled(user: &User, cancelled: bool) -> Vec<UserEvent> {
    match (cancelled, user.subscription_cancelled) {
        (true, false) => vec![UserEvent::SubscriptionCancelled {}],
        (false, true) => vec![UserEvent::SubscriptionCancellationWithdrawn {}],
        _ => Vec::new(),
    }
}

fn generate_invite_codes(
    user: &User,
    codes: Vec<InviteCode>,
) -> Result<Vec<UserEvent>, DomainError> {
    let existing: Vec<&InviteCode> = user.invite_codes.iter().map(|c| &c.code).collect();
    check_new_invite_codes(&existing, &codes)?;
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![UserEvent::InviteCodesGenerated { codes }])
}

/// At most [`MAX_INVITE_CODES_PER_REQUEST`] new codes, none repeated or already held.
fn check_new_invite_codes(
    existing: &[&InviteCode],
    codes: &[InviteCode],
) -> Result<(), DomainError> {
    if codes.len() > MAX_INVITE_CODES_PER_REQUEST {
        return Err(DomainError::GenerationTargetExceededForRequest {
            requested: codes.len(),
            max: MAX_INVITE_CODES_PER_REQUEST,
        });
    }
    let mut seen: BTreeSet<&InviteCode> = existing.iter().copied().collect();
    for code in codes {
        if !seen.insert(code) {
            return Err(DomainError::InviteCodeAlreadyExists(code.clone()));
        }
    }
    Ok(())
}

fn redeem_invite_code(
    user: &User,
    code: InviteCode,
    redeemed_by: UserId,
) -> Result<Vec<UserEvent>, DomainError> {
    let issued = user
        .invite_codes
        .iter()
        .find(|c| c.code == code)
        .ok_or_else(|| DomainError::InviteCodeNotFound(code.clone()))?;
    if issued.redeemed_by.is_some() {
        return Err(DomainError::InviteCodeAlreadyRedeemed(code));
    }
    Ok(vec![UserEvent::InviteCodeRedeemed { code, redeemed_by }])
}

//! Given/when/then tests of the user aggregate: one per command and per rule.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::metadata::{Actor, EventFamily};
use crate::scopes::ScopeOperation;
use crate::testing::{self, actor, now, When};
use crate::values::{
    Bio, CountryCode, Credits, CustomData, Email, InviteCode, LanguageCode, PersonName, Reason,
    RoleId, SecretHash, SubscriptionIdentifier, SubscriptionTier, UserId, Username,
};

fn given(history: impl IntoIterator<Item = UserEvent>) -> testing::Given<User> {
    testing::given(history)
}

fn when(command: UserCommand) -> When<User> {
    given([created()]).when(command)
}

fn user_id() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x1))
}

fn hash(n: u8) -> SecretHash {
    SecretHash::parse(&format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${n}")).unwrap()
}

fn name(value: &str) -> PersonName {
    PersonName::parse(value).unwrap()
}

fn scope(name: &str) -> Scope {
    Scope::parse(name).unwrap()
}

fn reason() -> Reason {
    Reason::parse("breaking the rules").unwrap()
}

fn code(n: u32) -> InviteCode {
    InviteCode::parse(&format!("ABCD-{n:04}-1700000000000")).unwrap()
}

fn create_command() -> CreateUser {
    CreateUser {
        id: user_id(),
        username: Username::parse("Alice_01").unwrap(),
        email: Email::parse("Alice.Smith+news@Gmail.com").unwrap(),
        password_hash: hash(1),
        first_name: name("Alice"),
        last_name: name("Smith"),
        middle_name: None,
        role: RoleId::user(),
        phone: None,
        phone_country_code: None,
        credits: Credits::new(10),
        invite_codes: Vec::new(),
        invited_by: None,
    }
}

fn created() -> UserEvent {
    UserEvent::Created {
        id: user_id(),
        username: Username::parse("alice_01").unwrap(),
        email: Email::parse("Alice.Smith+news@Gmail.com").unwrap(),
        sanitized_email: SanitizedEmail::parse("alicesmith@gmail.com").unwrap(),
        email_verified: true,
        first_name: name("Alice"),
        last_name: name("Smith"),
        middle_name: None,
        role: RoleId::user(),
        phone: None,
        phone_country_code: None,
        scope: vec![Scope::delegated_all()],
        credits: Credits::new(10),
        custom_data: CustomData::empty(),
        invited_by: None,
    }
}

fn claim(kind: &str, value: &str) -> UniqueClaim {
    UniqueClaim::new(kind, value)
}

fn expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
}

fn activated() -> UserEvent {
    UserEvent::SubscriptionActivated {
        tier: Some(SubscriptionTier::parse("premium").unwrap()),
        expiry: expiry(),
        identifier: None,
    }
}

// --- create -------------------------------------------------------------------------------

#[test]
fn create_registers_the_user_with_a_separate_password_event() {
    given([])
        .when(UserCommand::Create(create_command()))
        .then([
            created(),
            UserEvent::PasswordSet {
                password_hash: hash(1),
            },
        ])
        .then_claims(
            &[
                claim(EMAIL_CLAIM, "alicesmith@gmail.com"),
                claim(USERNAME_CLAIM, "alice_01"),
            ],
            &[],
        );
}

#[test]
fn create_with_invite_codes_generates_them() {
    let command = CreateUser {
        invite_codes: vec![code(1), code(2)],
        ..create_command()
    };
    given([]).when(UserCommand::Create(command)).then([
        created(),
        UserEvent::PasswordSet {
            password_hash: hash(1),
        },
        UserEvent::InviteCodesGenerated {
            codes: vec![code(1), code(2)],
        },
    ]);
}

#[test]
fn create_on_an_existing_user_is_refused() {
    when(UserCommand::Create(create_command())).then_error(DomainError::AlreadyExists);
}

#[test]
fn create_on_a_deleted_user_is_refused() {
    given([created(), UserEvent::Deleted {}])
        .when(UserCommand::Create(create_command()))
        .then_error(DomainError::AlreadyExists);
}

#[test]
fn a_new_user_has_the_contracts_defaults() {
    let user = given([])
        .when(UserCommand::Create(create_command()))
        .state_after()
        .unwrap();
    assert_eq!(user.scope, vec![Scope::delegated_all()]);
    assert!(user.email_verified);
    assert_eq!(user.custom_data.as_json(), &json!({}));
    assert_eq!(user.credits, Credits::new(10));
    assert_eq!(user.password_hash, Some(hash(1)));
    assert_eq!(User::stream_name(user.id), format!("user-{}", user_id()));
}

// --- not found ----------------------------------------------------------------------------

#[test]
fn commands_on_a_missing_user_are_not_found() {
    given([])
        .when(UserCommand::SetBanned(Toggle::on(None)))
        .then_error(DomainError::NotFound);
}

#[test]
fn commands_on_a_deleted_user_are_not_found() {
    given([created(), UserEvent::Deleted {}])
        .when(UserCommand::ChangeCredits(CreditsChange::Increment(
            Credits::new(1),
        )))
        .then_error(DomainError::NotFound);
}

// --- erase --------------------------------------------------------------------------------

#[test]
fn erase_forgets_the_user_and_frees_their_username_and_email() {
    when(UserCommand::Erase)
        .then([UserEvent::Erased {}])
        .then_claims(
            &[],
            &[
                claim(EMAIL_CLAIM, "alicesmith@gmail.com"),
                claim(USERNAME_CLAIM, "alice_01"),
            ],
        );
}

#[test]
fn a_deleted_user_can_be_erased() {
    given([created(), UserEvent::Deleted {}])
        .when(UserCommand::Erase)
        .then([UserEvent::Erased {}]);
}

#[test]
fn nothing_happens_to_an_erased_user() {
    given([created(), UserEvent::Erased {}])
        .when(UserCommand::Erase)
        .then_error(DomainError::NotFound);
    given([created(), UserEvent::Erased {}])
        .when(UserCommand::SetBanned(Toggle::on(None)))
        .then_error(DomainError::NotFound);
}

// --- update -------------------------------------------------------------------------------

#[test]
fn update_records_only_the_profile_fields_that_change() {
    let update = UpdateUser {
        profile: ProfileChanges {
            first_name: Some(name("Alice")),
            last_name: Some(name("Jones")),
            bio: Some(Some(Bio::parse("Hello there").unwrap())),
            country: Some(Some(CountryCode::parse("de").unwrap())),
            ..ProfileChanges::default()
        },
        ..UpdateUser::default()
    };
    when(UserCommand::Update(update)).then([UserEvent::ProfileUpdated(ProfileChanges {
        last_name: Some(name("Jones")),
        bio: Some(Some(Bio::parse("Hello there").unwrap())),
        country: Some(Some(CountryCode::parse("DE").unwrap())),
        ..ProfileChanges::default()
    })]);
}

#[test]
fn update_can_clear_an_optional_field() {
    let set_language = UserEvent::ProfileUpdated(ProfileChanges {
        preferred_language: Some(Some(LanguageCode::parse("en").unwrap())),
        ..ProfileChanges::default()
    });
    let clear = ProfileChanges {
        preferred_language: Some(None),
        ..ProfileChanges::default()
    };
    let when = given([created(), set_language])
        .when(UserCommand::Update(UpdateUser {
            profile: clear.clone(),
            ..UpdateUser::default()
        }))
        .then([UserEvent::ProfileUpdated(clear)]);
    let user = when.state_after().unwrap();
    assert_eq!(user.profile.preferred_language, None);
}

#[test]
fn clearing_an_empty_field_changes_nothing() {
    when(UserCommand::Update(UpdateUser {
        profile: ProfileChanges {
            middle_name: Some(None),
            ..ProfileChanges::default()
        },
        ..UpdateUser::default()
    }))
    .then_nothing();
}

#[test]
fn a_cleared_field_is_null_in_the_event_and_an_untouched_one_is_absent() {
    let event = UserEvent::ProfileUpdated(ProfileChanges {
        bio: Some(None),
        ..ProfileChanges::default()
    });
    let new = crate::metadata::encode(&event, &testing::context().metadata(Uuid::nil())).unwrap();
    assert_eq!(new.data, json!({"bio": null}));
}

#[test]
fn update_renames_and_moves_the_username_claim() {
    let username = Username::parse("alice_02").unwrap();
    when(UserCommand::Update(UpdateUser {
        username: Some(username.clone()),
        ..UpdateUser::default()
    }))
    .then([UserEvent::UsernameChanged { username }])
    .then_claims(
        &[claim(USERNAME_CLAIM, "alice_02")],
        &[claim(USERNAME_CLAIM, "alice_01")],
    );
}

#[test]
fn update_to_the_same_username_in_another_case_changes_nothing() {
    when(UserCommand::Update(UpdateUser {
        username: Some(Username::parse("ALICE_01").unwrap()),
        ..UpdateUser::default()
    }))
    .then_nothing();
}

#[test]
fn update_changes_the_email_and_moves_the_email_claim() {
    let email = Email::parse("alice@example.com").unwrap();
    when(UserCommand::Update(UpdateUser {
        email: Some(email.clone()),
        ..UpdateUser::default()
    }))
    .then([UserEvent::EmailChanged {
        sanitized_email: email.sanitized(),
        email,
    }])
    .then_claims(
        &[claim(EMAIL_CLAIM, "alice@example.com")],
        &[claim(EMAIL_CLAIM, "alicesmith@gmail.com")],
    );
}

#[test]
fn an_email_with_the_same_sanitized_form_keeps_its_claim() {
    let email = Email::parse("alicesmith@gmail.com").unwrap();
    when(UserCommand::Update(UpdateUser {
        email: Some(email.clone()),
        ..UpdateUser::default()
    }))
    .then([UserEvent::EmailChanged {
        sanitized_email: email.sanitized(),
        email,
    }])
    .then_claims(&[], &[]);
}

#[test]
fn update_sets_a_new_password_hash() {
    when(UserCommand::Update(UpdateUser {
        password_hash: Some(hash(2)),
        ..UpdateUser::default()
    }))
    .then([UserEvent::PasswordSet {
        password_hash: hash(2),
    }]);
}

#[test]
fn update_changes_the_role_unless_it_is_the_same() {
    when(UserCommand::Update(UpdateUser {
        role: Some(RoleId::admin()),
        ..UpdateUser::default()
    }))
    .then([UserEvent::RoleChanged {
        role: RoleId::admin(),
    }]);
    when(UserCommand::Update(UpdateUser {
        role: Some(RoleId::user()),
        ..UpdateUser::default()
    }))
    .then_nothing();
}

#[test]
fn update_with_is_deleted_deletes_last_and_releases_every_claim() {
    let last_name = name("Jones");
    when(UserCommand::Update(UpdateUser {
        profile: ProfileChanges {
            last_name: Some(last_name.clone()),
            ..ProfileChanges::default()
        },
        delete: true,
        ..UpdateUser::default()
    }))
    .then([
        UserEvent::ProfileUpdated(ProfileChanges {
            last_name: Some(last_name),
            ..ProfileChanges::default()
        }),
        UserEvent::Deleted {},
    ])
    .then_claims(
        &[],
        &[
            claim(EMAIL_CLAIM, "alicesmith@gmail.com"),
            claim(USERNAME_CLAIM, "alice_01"),
        ],
    );
}

#[test]
fn an_empty_update_changes_nothing() {
    when(UserCommand::Update(UpdateUser::default())).then_nothing();
}

#[test]
fn update_of_several_kinds_emits_one_event_each_in_order() {
    let username = Username::parse("alice_02").unwrap();
    let email = Email::parse("alice@example.com").unwrap();
    when(UserCommand::Update(UpdateUser {
        username: Some(username.clone()),
        email: Some(email.clone()),
        password_hash: Some(hash(3)),
        role: Some(RoleId::admin()),
        ..UpdateUser::default()
    }))
    .then([
        UserEvent::UsernameChanged { username },
        UserEvent::EmailChanged {
            sanitized_email: email.sanitized(),
            email,
        },
        UserEvent::PasswordSet {
            password_hash: hash(3),
        },
        UserEvent::RoleChanged {
            role: RoleId::admin(),
        },
    ]);
}

// --- delete and role change ----------------------------------------------------------------

#[test]
fn delete_deletes_and_releases_the_claims() {
    when(UserCommand::Delete)
        .then([UserEvent::Deleted {}])
        .then_claims(
            &[],
            &[
                claim(EMAIL_CLAIM, "alicesmith@gmail.com"),
                claim(USERNAME_CLAIM, "alice_01"),
            ],
        );
}

#[test]
fn change_role_moves_the_user_to_another_role() {
    given([
        created(),
        UserEvent::RoleChanged {
            role: RoleId::admin(),
        },
    ])
    .when(UserCommand::ChangeRole(RoleId::user()))
    .then([UserEvent::RoleChanged {
        role: RoleId::user(),
    }]);
    when(UserCommand::ChangeRole(RoleId::user())).then_nothing();
}

// --- custom data ---------------------------------------------------------------------------

#[test]
fn custom_data_is_replaced_whole() {
    let data = CustomData::parse(json!({"plan": "x"}), 1024).unwrap();
    when(UserCommand::ReplaceCustomData(data.clone()))
        .then([UserEvent::CustomDataReplaced { custom_data: data }]);
}

#[test]
fn replacing_custom_data_with_the_same_value_changes_nothing() {
    when(UserCommand::ReplaceCustomData(CustomData::empty())).then_nothing();
}

// --- private accounts ----------------------------------------------------------------------

#[test]
fn an_account_is_made_private_and_public_again_once_each() {
    when(UserCommand::SetPrivate(true)).then([UserEvent::MadePrivate {}]);
    when(UserCommand::SetPrivate(false)).then_nothing();
    given([created(), UserEvent::MadePrivate {}])
        .when(UserCommand::SetPrivate(true))
        .then_nothing();
    given([created(), UserEvent::MadePrivate {}])
        .when(UserCommand::SetPrivate(false))
        .then([UserEvent::MadePublic {}]);
}

// --- ban, restrict, verify -----------------------------------------------------------------

#[test]
fn ban_records_the_reason_and_who_banned() {
    when(UserCommand::SetBanned(Toggle::on(Some(reason())))).then([UserEvent::Banned {
        reason: Some(reason()),
        by: actor(),
    }]);
}

#[test]
fn ban_records_a_client_as_the_banner() {
    let client = Actor::client(crate::values::ApplicationId::from_uuid(Uuid::from_u128(7)));
    given([created()])
        .by(client.clone())
        .when(UserCommand::SetBanned(Toggle::on(None)))
        .then([UserEvent::Banned {
            reason: None,
            by: client,
        }]);
}

#[test]
fn banning_a_banned_user_changes_nothing() {
    given([
        created(),
        UserEvent::Banned {
            reason: None,
            by: actor(),
        },
    ])
    .when(UserCommand::SetBanned(Toggle::on(Some(reason()))))
    .then_nothing();
}

#[test]
fn unban_lifts_a_ban() {
    given([
        created(),
        UserEvent::Banned {
            reason: None,
            by: actor(),
        },
    ])
    .when(UserCommand::SetBanned(Toggle::off(Some(reason()))))
    .then([UserEvent::Unbanned {
        reason: Some(reason()),
        by: actor(),
    }]);
}

#[test]
fn unbanning_a_user_who_is_not_banned_changes_nothing() {
    when(UserCommand::SetBanned(Toggle::off(None))).then_nothing();
}

#[test]
fn restrict_and_unrestrict() {
    when(UserCommand::SetRestricted(Toggle::on(Some(reason())))).then([UserEvent::Restricted {
        reason: Some(reason()),
        by: actor(),
    }]);
    given([
        created(),
        UserEvent::Restricted {
            reason: None,
            by: actor(),
        },
    ])
    .when(UserCommand::SetRestricted(Toggle::off(None)))
    .then([UserEvent::Unrestricted {
        reason: None,
        by: actor(),
    }]);
}

#[test]
fn restricting_twice_changes_nothing() {
    given([
        created(),
        UserEvent::Restricted {
            reason: None,
            by: actor(),
        },
    ])
    .when(UserCommand::SetRestricted(Toggle::on(None)))
    .then_nothing();
    when(UserCommand::SetRestricted(Toggle::off(None))).then_nothing();
}

#[test]
fn verify_and_unverify() {
    when(UserCommand::SetVerified(Toggle::on(None))).then([UserEvent::Verified {
        reason: None,
        by: actor(),
    }]);
    given([
        created(),
        UserEvent::Verified {
            reason: None,
            by: actor(),
        },
    ])
    .when(UserCommand::SetVerified(Toggle::off(Some(reason()))))
    .then([UserEvent::Unverified {
        reason: Some(reason()),
        by: actor(),
    }]);
}

#[test]
fn verifying_twice_changes_nothing() {
    given([
        created(),
        UserEvent::Verified {
            reason: None,
            by: actor(),
        },
    ])
    .when(UserCommand::SetVerified(Toggle::on(None)))
    .then_nothing();
    when(UserCommand::SetVerified(Toggle::off(None))).then_nothing();
}

// --- credits -------------------------------------------------------------------------------

fn credits(change: CreditsChange) -> When<User> {
    when(UserCommand::ChangeCredits(change))
}

#[test]
fn increment_adds_credits() {
    let state = credits(CreditsChange::Increment(Credits::new(5)))
        .then([UserEvent::CreditsIncreased {
            amount: Credits::new(5),
        }])
        .state_after();
    assert_eq!(state.map(|u| u.credits), Some(Credits::new(15)));
}

#[test]
fn increment_by_zero_changes_nothing() {
    credits(CreditsChange::Increment(Credits::ZERO)).then_nothing();
}

#[test]
fn increment_beyond_the_largest_balance_is_refused() {
    given([
        created(),
        UserEvent::CreditsSet {
            credits: Credits::new(u64::MAX),
        },
    ])
    .when(UserCommand::ChangeCredits(CreditsChange::Increment(
        Credits::new(1),
    )))
    .then_error(DomainError::CreditsOverflow {
        balance: Credits::new(u64::MAX),
        requested: Credits::new(1),
    });
}

#[test]
fn decrement_removes_credits_down_to_zero() {
    let state = credits(CreditsChange::Decrement(Credits::new(10)))
        .then([UserEvent::CreditsDecreased {
            amount: Credits::new(10),
        }])
        .state_after();
    assert_eq!(state.map(|u| u.credits), Some(Credits::ZERO));
}

#[test]
fn decrement_beyond_the_balance_is_insufficient_credits() {
    credits(CreditsChange::Decrement(Credits::new(11))).then_error(
        DomainError::InsufficientCredits {
            balance: Credits::new(10),
            requested: Credits::new(11),
        },
    );
}

#[test]
fn decrement_by_zero_changes_nothing() {
    credits(CreditsChange::Decrement(Credits::ZERO)).then_nothing();
}

#[test]
fn set_replaces_the_balance() {
    credits(CreditsChange::Set(Credits::new(3))).then([UserEvent::CreditsSet {
        credits: Credits::new(3),
    }]);
}

#[test]
fn set_to_the_balance_changes_nothing() {
    credits(CreditsChange::Set(Credits::new(10))).then_nothing();
}

#[test]
fn a_history_of_credit_changes_folds_to_the_exact_balance() {
    let mut history = vec![created()];
    history.extend((0..1000).map(|_| UserEvent::CreditsIncreased {
        amount: Credits::new(1),
    }));
    history.push(UserEvent::CreditsDecreased {
        amount: Credits::new(10),
    });
    let user = User::fold(&history).unwrap();
    assert_eq!(user.credits, Credits::new(1000));
}

// --- scopes --------------------------------------------------------------------------------

#[test]
fn scopes_can_be_added_removed_and_set() {
    when(UserCommand::ChangeScopes {
        operation: ScopeOperation::Add,
        scopes: vec![scope("admin:profile:read")],
    })
    .then([UserEvent::ScopesChanged {
        scope: vec![scope("admin:profile:read"), scope("delegated:all")],
    }]);
    when(UserCommand::ChangeScopes {
        operation: ScopeOperation::Remove,
        scopes: vec![scope("delegated:all")],
    })
    .then([UserEvent::ScopesChanged { scope: vec![] }]);
    when(UserCommand::ChangeScopes {
        operation: ScopeOperation::Set,
        scopes: vec![scope("client:all")],
    })
    .then([UserEvent::ScopesChanged {
        scope: vec![scope("client:all")],
    }]);
}

#[test]
fn scope_changes_that_change_nothing_emit_nothing() {
    when(UserCommand::ChangeScopes {
        operation: ScopeOperation::Add,
        scopes: vec![scope("delegated:all")],
    })
    .then_nothing();
    when(UserCommand::ChangeScopes {
        operation: ScopeOperation::Remove,
        scopes: vec![scope("admin:all")],
    })
    .then_nothing();
}

// --- subscriptions -------------------------------------------------------------------------

#[test]
fn activating_needs_an_expiry() {
    let error = SubscriptionChange::from_request(true, None, None, None).unwrap_err();
    assert_eq!(error.field, "expiry");
    assert_eq!(
        SubscriptionChange::from_request(false, None, None, None),
        Ok(SubscriptionChange::Deactivate)
    );
}

#[test]
fn activate_starts_a_subscription() {
    let identifier = SubscriptionIdentifier::parse("sub_42").unwrap();
    when(UserCommand::ChangeSubscription(
        SubscriptionChange::Activate {
            tier: Some(SubscriptionTier::parse("premium").unwrap()),
            expiry: expiry(),
            identifier: Some(identifier.clone()),
        },
    ))
    .then([UserEvent::SubscriptionActivated {
        tier: Some(SubscriptionTier::parse("premium").unwrap()),
        expiry: expiry(),
        identifier: Some(identifier),
    }]);
}

#[test]
fn activate_without_a_tier_keeps_the_current_tier() {
    let later = expiry() + Duration::days(30);
    given([created(), activated()])
        .when(UserCommand::ChangeSubscription(
            SubscriptionChange::Activate {
                tier: None,
                expiry: later,
                identifier: None,
            },
        ))
        .then([UserEvent::SubscriptionActivated {
            tier: Some(SubscriptionTier::parse("premium").unwrap()),
            expiry: later,
            identifier: None,
        }]);
}

#[test]
fn activate_without_a_tier_on_a_new_subscription_is_the_base_tier() {
    when(UserCommand::ChangeSubscription(
        SubscriptionChange::Activate {
            tier: None,
            expiry: expiry(),
            identifier: None,
        },
    ))
    .then([UserEvent::SubscriptionActivated {
        tier: None,
        expiry: expiry(),
        identifier: None,
    }]);
}

#[test]
fn activating_the_same_subscription_again_changes_nothing() {
    given([created(), activated()])
        .when(UserCommand::ChangeSubscription(
            SubscriptionChange::Activate {
                tier: None,
                expiry: expiry(),
                identifier: None,
            },
        ))
        .then_nothing();
}

#[test]
fn activating_again_withdraws_a_cancellation() {
    let state = given([created(), activated(), UserEvent::SubscriptionCancelled {}])
        .when(UserCommand::ChangeSubscription(
            SubscriptionChange::Activate {
                tier: None,
                expiry: expiry(),
                identifier: None,
            },
        ))
        .then([activated()])
        .state_after()
        .unwrap();
    assert!(!state.subscription_cancelled);
}

#[test]
fn deactivate_ends_a_subscription() {
    given([created(), activated()])
        .when(UserCommand::ChangeSubscription(
            SubscriptionChange::Deactivate,
        ))
        .then([UserEvent::SubscriptionDeactivated {}]);
}

#[test]
fn deactivating_without_a_subscription_changes_nothing() {
    when(UserCommand::ChangeSubscription(
        SubscriptionChange::Deactivate,
    ))
    .then_nothing();
}

#[test]
fn cancel_and_withdraw_a_cancellation() {
    given([created(), activated()])
        .when(UserCommand::SetSubscriptionCancelled(true))
        .then([UserEvent::SubscriptionCancelled {}]);
    given([created(), activated(), UserEvent::SubscriptionCancelled {}])
        .when(UserCommand::SetSubscriptionCancelled(false))
        .then([UserEvent::SubscriptionCancellationWithdrawn {}]);
}

#[test]
fn cancelling_twice_or_withdrawing_nothing_changes_nothing() {
    given([created(), activated(), UserEvent::SubscriptionCancelled {}])
        .when(UserCommand::SetSubscriptionCancelled(true))
        .then_nothing();
    when(UserCommand::SetSubscriptionCancelled(false)).then_nothing();
}

// --- invite codes ---------------------------------------------------------------------------

#[test]
fn invite_codes_are_generated() {
    let codes: Vec<InviteCode> = (1..=15).map(code).collect();
    let user = when(UserCommand::GenerateInviteCodes(codes.clone()))
        .then([UserEvent::InviteCodesGenerated { codes }])
        .state_after()
        .unwrap();
    assert_eq!(user.unredeemed_invite_codes(), 15);
}

#[test]
fn more_than_15_invite_codes_at_once_are_refused() {
    let codes: Vec<InviteCode> = (1..=16).map(code).collect();
    when(UserCommand::GenerateInviteCodes(codes)).then_error(
        DomainError::GenerationTargetExceededForRequest {
            requested: 16,
            max: MAX_INVITE_CODES_PER_REQUEST,
        },
    );
}

#[test]
fn more_than_15_invite_codes_at_creation_are_refused() {
    let command = CreateUser {
        invite_codes: (1..=16).map(code).collect(),
        ..create_command()
    };
    given([]).when(UserCommand::Create(command)).then_error(
        DomainError::GenerationTargetExceededForRequest {
            requested: 16,
            max: 15,
        },
    );
}

#[test]
fn generating_no_invite_codes_changes_nothing() {
    when(UserCommand::GenerateInviteCodes(Vec::new())).then_nothing();
}

#[test]
fn a_repeated_invite_code_is_refused() {
    when(UserCommand::GenerateInviteCodes(vec![code(1), code(1)]))
        .then_error(DomainError::InviteCodeAlreadyExists(code(1)));
    given([
        created(),
        UserEvent::InviteCodesGenerated {
            codes: vec![code(1)],
        },
    ])
    .when(UserCommand::GenerateInviteCodes(vec![code(1)]))
    .then_error(DomainError::InviteCodeAlreadyExists(code(1)));
}

#[test]
fn an_invite_code_is_redeemed_once() {
    let newcomer = UserId::from_uuid(Uuid::from_u128(0x2));
    let generated = UserEvent::InviteCodesGenerated {
        codes: vec![code(1)],
    };
    given([created(), generated.clone()])
        .when(UserCommand::RedeemInviteCode {
            code: code(1),
            redeemed_by: newcomer,
        })
        .then([UserEvent::InviteCodeRedeemed {
            code: code(1),
            redeemed_by: newcomer,
        }]);
    given([
        created(),
        generated,
        UserEvent::InviteCodeRedeemed {
            code: code(1),
            redeemed_by: newcomer,
        },
    ])
    .when(UserCommand::RedeemInviteCode {
        code: code(1),
        redeemed_by: newcomer,
    })
    .then_error(DomainError::InviteCodeAlreadyRedeemed(code(1)));
}

#[test]
fn redeeming_an_unknown_invite_code_is_refused() {
    when(UserCommand::RedeemInviteCode {
        code: code(9),
        redeemed_by: user_id(),
    })
    .then_error(DomainError::InviteCodeNotFound(code(9)));
}

// --- events ----------------------------------------------------------------------------------

#[test]
fn every_user_event_round_trips_through_the_store_encoding() {
    let events = vec![
        created(),
        UserEvent::PasswordSet {
            password_hash: hash(1),
        },
        UserEvent::ProfileUpdated(ProfileChanges {
            middle_name: Some(None),
            first_name: Some(name("Al")),
            ..ProfileChanges::default()
        }),
        UserEvent::EmailChanged {
            email: Email::parse("a@b.io").unwrap(),
            sanitized_email: SanitizedEmail::parse("a@b.io").unwrap(),
        },
        UserEvent::UsernameChanged {
            username: Username::parse("someone").unwrap(),
        },
        UserEvent::RoleChanged {
            role: RoleId::admin(),
        },
        UserEvent::Banned {
            reason: Some(reason()),
            by: actor(),
        },
        UserEvent::Unbanned {
            reason: None,
            by: actor(),
        },
        UserEvent::Restricted {
            reason: None,
            by: actor(),
        },
        UserEvent::Unrestricted {
            reason: None,
            by: actor(),
        },
        UserEvent::Verified {
            reason: None,
            by: Actor::system(),
        },
        UserEvent::Unverified {
            reason: None,
            by: actor(),
        },
        UserEvent::CreditsIncreased {
            amount: Credits::new(1),
        },
        UserEvent::CreditsDecreased {
            amount: Credits::new(1),
        },
        UserEvent::CreditsSet {
            credits: Credits::new(1),
        },
        UserEvent::ScopesChanged {
            scope: vec![Scope::root()],
        },
        activated(),
        UserEvent::SubscriptionDeactivated {},
        UserEvent::SubscriptionCancelled {},
        UserEvent::SubscriptionCancellationWithdrawn {},
        UserEvent::CustomDataReplaced {
            custom_data: CustomData::parse(json!(null), 10).unwrap(),
        },
        UserEvent::InviteCodesGenerated {
            codes: vec![code(1)],
        },
        UserEvent::InviteCodeRedeemed {
            code: code(1),
            redeemed_by: user_id(),
        },
        UserEvent::Deleted {},
        UserEvent::MadePrivate {},
        UserEvent::MadePublic {},
        UserEvent::Erased {},
    ];
    let mut names: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    names.sort_unstable();
    let mut known = UserEvent::EVENT_TYPES.to_vec();
    known.sort_unstable();
    assert_eq!(names, known, "every event type is covered once");
    for event in &events {
        testing::assert_round_trip(event);
    }
}

#[test]
fn user_events_have_camel_case_payloads() {
    let new =
        crate::metadata::encode(&created(), &testing::context().metadata(Uuid::nil())).unwrap();
    assert_eq!(new.event_type, "UserCreated");
    assert_eq!(new.data["sanitizedEmail"], json!("alicesmith@gmail.com"));
    assert_eq!(new.data["firstName"], json!("Alice"));
    assert_eq!(new.data["scope"], json!(["delegated:all"]));
    assert!(new.data.get("password").is_none() && new.data.get("passwordHash").is_none());
    let banned = UserEvent::Banned {
        reason: None,
        by: actor(),
    };
    let new = crate::metadata::encode(&banned, &testing::context().metadata(Uuid::nil())).unwrap();
    assert_eq!(new.event_type, "UserBanned");
    assert_eq!(new.data["by"]["kind"], json!("user"));
    assert_eq!(new.metadata["occurredAt"], json!("2026-03-04T05:06:07Z"));
    assert_eq!(new.metadata["schemaVersion"], json!(1));
}

#[test]
fn only_the_password_event_holds_a_secret() {
    assert!(UserEvent::PasswordSet {
        password_hash: hash(1)
    }
    .contains_secret());
    assert!(!created().contains_secret());
    let logged = format!(
        "{:?}",
        UserEvent::PasswordSet {
            password_hash: hash(1)
        }
    );
    assert!(!logged.contains("argon2"));
}

#[test]
fn the_test_clock_is_fixed() {
    assert_eq!(testing::context().now, now());
}

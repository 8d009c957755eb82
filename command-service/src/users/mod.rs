//! The user write routes of API.md §3, each mounted under `/user/admin-api/<path>` (delegated
//! tokens) and `/user/client-api/<path>` (client tokens), except `verify` (admin only). The
//! [`Caller`] extractor enforces the token kind by prefix; handlers check scopes, parse every
//! field into value types (reporting all invalid fields), check ranking, and run one command
//! per user stream through [`crate::pipeline::execute`].
//!
//! # Layout
//! One file per command: [`create`], [`update`], [`custom_data`], [`toggles`] (ban, restrict,
//! verify), [`credits`], [`access`], [`subscription`] (and subscription-cancel),
//! [`invite_codes`]; [`erase`] (forgetting a person, admin only); [`own`] (`PATCH /user/me`, a person's own profile); [`view`] builds the user object answered by `update`. This file holds the
//! router and what the handlers share: ranking and loading users. Each command's body type
//! is in its file, beside its handler.

pub mod access;
pub mod create;
pub mod credits;
pub mod custom_data;
pub mod erase;
pub mod invite_codes;
pub mod own;
pub mod subscription;
pub mod toggles;
pub mod update;
pub mod view;

use events::role::{outranks, Role};
use events::values::{Ranking, RoleId, UserId};
use serde_json::json;

use crate::pipeline::load_known;
use crate::schemas;
use crate::AppState;
use http_edge::auth::{Caller, Edge};
use http_edge::envelope::ApiError;
use http_edge::{Doc, Routes};

/// Every user write route, on both edges where the contract has them, with its documentation.
pub fn router() -> Routes<AppState> {
    let verify = Doc::post("/user/admin-api/verify", "Verify or unverify a user")
        .session(Edge::Admin, "admin:profile:verifications:write")
        .json_body::<toggles::ToggleBody>()
        .write()
        .done("set; the date and who did it are recorded (`verifiedDate`, `verifiedBy`)")
        .error(404, "NotFound", "no live user has this `target`")
        .error(
            401,
            "InsufficientPrivileges",
            "the caller does not out-rank the user",
        )
        .error(
            409,
            "ResourceConflict",
            "the user's role changed during the request",
        );
    let own_profile = Doc::patch("/user/me", "Change your own profile")
        .session(Edge::Admin, "delegated:profile:write")
        .json_body::<own::OwnProfileUpdate>()
        .write()
        .hashes()
        .ok::<schemas::UserAnswer>("you, after the update")
        .error(
            401,
            "Unauthorized",
            "`currentPassword` is not your password",
        );
    let erase = Doc::post(
        "/user/admin-api/erase",
        "Erase a person: destroy their key, free their username and email, remove them from \
         every read model (userledger's own)",
    )
    .session(Edge::Admin, "admin:profile:erase:write")
    .json_body::<erase::EraseBody>()
    .write()
    .done("erased: their personal data reads as \"[erased]\" in the log from now on")
    .error(
        404,
        "NotFound",
        "no user has this `target` (or they were erased already)",
    )
    .error(
        409,
        "ResourceConflict",
        "the person's data written before sealing began is still in the clear: run \
         `userledger encrypt-history` first (nothing was done)",
    )
    .error(
        401,
        "InsufficientPrivileges",
        "the caller is not a super_admin (USERLEDGER_ERASURE_SUPER_ADMIN_ONLY), or does not \
         out-rank the user",
    );
    [Edge::Admin, Edge::Client].into_iter().fold(
        Routes::new()
            .route(verify, toggles::verify_user)
            .route(erase, erase::erase_user)
            .route(own_profile, own::update_own_profile),
        |routes, edge| routes.merge(edge_router(edge)),
    )
}

/// The user write routes of one edge: `/user/<edge>-api/<path>`.
fn edge_router(edge: Edge) -> Routes<AppState> {
    let at = |path: &str| format!("/user/{}-api/{path}", edge.as_str());
    let missing = |doc: Doc| doc.error(404, "NotFound", "no live user has this `target`");
    let outranked = |doc: Doc| {
        doc.error(
            401,
            "InsufficientPrivileges",
            "the caller does not out-rank the user (super_admins always do)",
        )
        .error(
            409,
            "ResourceConflict",
            "the user's role changed during the request",
        )
    };
    Routes::new()
        .route(
            Doc::post(at("create"), "Create users, all or nothing")
                .shared(edge, "profile:create:write")
                .json_array_body::<create::NewUser>()
                .write()
                .hashes()
                .enveloped::<schemas::InsertedCount>(201, "every user was created")
                .error(
                    400,
                    "ClientInputError",
                    "a username or email is taken, or repeated in the batch \
                     (`additionalInfo.existingUsers`)",
                )
                .error(400, "NotFound", "a `role` does not exist")
                .error(
                    401,
                    "InsufficientPrivileges",
                    "the caller does not out-rank a `role`",
                ),
            create::create_users,
        )
        .route(
            outranked(missing(
                Doc::patch(at("update"), "Update a user's profile")
                    .shared(edge, "profile:write")
                    .json_body::<update::UserUpdate>()
                    .write()
                    .hashes()
                    .ok::<schemas::UserAnswer>("the user after the update"),
            ))
            .error(
                401,
                "InsufficientPrivileges",
                "a field is not editable, or its sensitivity scope is not held, or the caller \
                 does not out-rank the new `role`",
            )
            .error(400, "NotFound", "the new `role` does not exist")
            .error(
                409,
                "ResourceConflict",
                "the username or email is taken (`additionalInfo.duplicateFields`)",
            ),
            update::update_user,
        )
        .route(
            missing(
                Doc::put(at("custom-data"), "Replace a user's custom data")
                    .shared(edge, "profile:custom-data:write")
                    .json_body::<custom_data::CustomDataBody>()
                    .write()
                    .done("replaced"),
            ),
            custom_data::replace_custom_data,
        )
        .route(
            outranked(missing(
                Doc::post(at("ban"), "Ban or unban a user")
                    .shared(edge, "profile:ban:write")
                    .json_body::<toggles::ToggleBody>()
                    .write()
                    .done("set; `bannedDate`, `bannedBy`, `bannedReason` are recorded"),
            )),
            toggles::ban_user,
        )
        .route(
            outranked(missing(
                Doc::post(at("restrict"), "Restrict or unrestrict a user")
                    .shared(edge, "profile:restrict:write")
                    .json_body::<toggles::ToggleBody>()
                    .write()
                    .done("set; `restrictedDate`, `restrictedBy`, `restrictedReason` are recorded"),
            )),
            toggles::restrict_user,
        )
        .route(
            missing(
                Doc::post(
                    at("credits"),
                    "Increment, decrement or set a user's credits",
                )
                .shared(edge, "profile:credits:write")
                .json_body::<credits::CreditsBody>()
                .write()
                .done("changed (a `set` to the current value is a no-op)"),
            )
            .error(
                400,
                "InsufficientCredits",
                "a decrement larger than the balance (nothing changes)",
            ),
            credits::change_credits,
        )
        .route(
            outranked(missing(
                Doc::post(
                    at("access"),
                    "Add, remove or set the scopes of users, applications or roles",
                )
                .shared(edge, "profile:access:write")
                .json_body::<access::AccessBody>()
                .write()
                .done("changed"),
            ))
            .error(
                400,
                "ClientInputError",
                "a scope is unknown or not held by the caller",
            )
            .error(400, "InvalidTarget", "no application has a `targets` id")
            .error(400, "NotFound", "no role has a `targets` id")
            .error(
                401,
                "InsufficientPrivileges",
                "the caller does not out-rank a role",
            ),
            access::change_access,
        )
        .route(
            missing(
                Doc::post(at("subscription"), "Turn a user's subscription on or off")
                    .shared(edge, "profile:subscriptions:write")
                    .json_body::<subscription::SubscriptionBody>()
                    .write()
                    .done("set"),
            ),
            subscription::change_subscription,
        )
        .route(
            missing(
                Doc::post(
                    at("subscription-cancel"),
                    "Mark a user's subscription cancelled or not",
                )
                .shared(edge, "profile:subscriptions:write")
                .json_body::<subscription::SubscriptionCancelBody>()
                .write()
                .done("set"),
            ),
            subscription::set_subscription_cancelled,
        )
        .route(
            missing(
                Doc::post(at("invite-codes"), "Generate invite codes for a user")
                    .shared(edge, "social:invite-code:write")
                    .json_body::<invite_codes::InviteCodesBody>()
                    .write()
                    .ok::<events::user::InviteCodesView>("the codes generated"),
            )
            .error(
                400,
                "GenerationTargetExceededForRequest",
                "more than 15 codes asked at once",
            ),
            invite_codes::generate_invite_codes,
        )
}

/// The ranking of a role, `None` when it does not exist (or was deleted), as commands find it
/// ([`load_known`]).
pub(crate) async fn role_rank(
    state: &AppState,
    role: &RoleId,
) -> Result<Option<Ranking>, ApiError> {
    let (role, _) = load_known::<Role>(&*state.store, role).await?;
    Ok(role.filter(|r| !r.deleted).map(|r| r.ranking))
}

/// The caller's ranking: that of their role (`None`, rank 0, for an unknown role).
pub(crate) async fn caller_rank(
    state: &AppState,
    caller: &Caller,
) -> Result<Option<Ranking>, ApiError> {
    match RoleId::parse(caller.role()) {
        Ok(role) => role_rank(state, &role).await,
        Err(_) => Ok(None),
    }
}

/// Whether the caller out-ranks a holder of `role` (API.md §2), without the super_admin
/// bypass (the caller decides where it applies).
pub(crate) async fn caller_outranks(
    state: &AppState,
    caller: &Caller,
    role: &RoleId,
) -> Result<bool, ApiError> {
    let actor = caller_rank(state, caller).await?;
    let target = role_rank(state, role).await?;
    Ok(outranks(actor, target, state.settings.can_edit_peer_data))
}

/// 400 NotFound: the role does not exist (Liquid's code for an unknown role, API.md §1).
pub(crate) fn unknown_role(role: &RoleId) -> ApiError {
    ApiError::Refused {
        code: "NotFound",
        info: Some(json!({ "role": role.as_str(), "reason": "the role does not exist" })),
    }
}

/// 401 InsufficientPrivileges for a ranking refusal.
pub(crate) fn outranked(what: &str, role: &RoleId) -> ApiError {
    ApiError::InsufficientPrivileges(json!({
        "reason": format!("the caller does not out-rank {what}"),
        "role": role.as_str(),
    }))
}

/// The ranking rule of writes on an existing user: a super_admin may act on anyone; anyone else
/// must out-rank the user's role.
pub(crate) async fn require_outranks_user(
    state: &AppState,
    caller: &Caller,
    role: &RoleId,
) -> Result<(), ApiError> {
    if caller.is_super_admin() || caller_outranks(state, caller, role).await? {
        Ok(())
    } else {
        Err(outranked("the target user's role", role))
    }
}

/// Loads a live user for the checks that precede its command, or 404: as the command will find
/// it ([`load_known`]).
pub(crate) async fn load_user(
    state: &AppState,
    id: &UserId,
) -> Result<events::user::User, ApiError> {
    let (user, _) = load_known::<events::user::User>(&*state.store, id).await?;
    user.filter(|u| !u.deleted).ok_or_else(ApiError::not_found)
}

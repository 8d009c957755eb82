//! The settings Liquid's callers read (its option names, with this service's values):
//! `GET /system/settings-insecure` without a token (what a sign-up or login page needs to know)
//! and `GET /system/settings` for a signed-in user (those, plus the service's name and the
//! limits an admin UI shows).

use axum::extract::State;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::users::invite_codes;
use crate::AppState;
use http_edge::auth::{Caller, Edge};
use http_edge::envelope::Answer;
use http_edge::openapi::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use http_edge::{Doc, Routes};

/// `{"settings": {"<Liquid's option name>": value}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExposedSettings {
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
}

pub fn router() -> Routes<AppState> {
    Routes::new()
        .route(
            Doc::get(
                "/system/settings-insecure",
                "The settings a page without a token needs",
            )
            .public()
            .ok::<ExposedSettings>(
                "whether accounts can be created, invite-only, email verification, \
                     password reset, phone numbers and Google sign-in, by Liquid's option names",
            ),
            insecure,
        )
        .route(
            Doc::get(
                "/system/settings",
                "The settings a signed-in user's UI needs",
            )
            .session_or_super_admin(Edge::Admin, "delegated:system:settings:read")
            .ok::<ExposedSettings>(
                "the public settings, plus `system.app-name`, the page limits, \
                     `admin-api.user.profile.can-edit-peer-data` and the invite codes per person",
            ),
            signed_in,
        )
}

/// What a page without a token may know. Self sign-up, email verification and password reset
/// are not offered yet; phone numbers are accepted.
fn public_settings(state: &AppState) -> Map<String, Value> {
    let settings = json!({
        "privilege.can-create-account": false,
        "privilege.can-use-phone-number": true,
        "user.account-creation.enable-invite-only": state.settings.invite_only,
        "user.account-creation.require-email-verification": false,
        "privilege.can-reset-password": false,
        "user.account-creation.sso.google.enabled": false,
    });
    settings.as_object().cloned().unwrap_or_default()
}

/// `GET /system/settings-insecure`.
async fn insecure(State(state): State<AppState>) -> Answer {
    Answer::ok(ExposedSettings {
        settings: public_settings(&state),
    })
}

/// `GET /system/settings`: the public settings and those of a signed-in user's UI. (Liquid
/// means to answer both and, by a slip, answers only the latter.)
async fn signed_in(State(state): State<AppState>, _caller: Caller) -> Answer {
    let mut settings = public_settings(&state);
    settings.extend([
        ("system.app-name".to_owned(), json!(state.settings.app_name)),
        (
            "admin-api.user.profile.can-edit-peer-data".to_owned(),
            json!(state.settings.can_edit_peer_data),
        ),
        (
            "pagination.default-limit".to_owned(),
            json!(DEFAULT_PAGE_LIMIT),
        ),
        ("pagination.max-limit".to_owned(), json!(MAX_PAGE_LIMIT)),
        (
            "user.account-creation.invites-per-person".to_owned(),
            json!(invite_codes::DEFAULT_COUNT),
        ),
    ]);
    Answer::ok(ExposedSettings { settings })
}

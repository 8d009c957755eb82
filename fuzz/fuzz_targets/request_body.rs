//! Request bodies as the routes read them: the first byte picks a route's body type and the
//! content type it is sent with, the rest is the body. Every body is either read or refused
//! with a 4xx; none panics or answers 5xx.

#![no_main]

use std::sync::OnceLock;

use axum::extract::{FromRequest, Request};
use axum::response::IntoResponse;
use command_service::clients::{ClientUpdate, NewClient};
use command_service::oauth::introspect::IntrospectionRequest;
use command_service::roles::{NewRole, RoleUpdate};
use command_service::users::create::NewUser;
use command_service::users::credits::CreditsBody;
use command_service::users::custom_data::CustomDataBody;
use command_service::users::own::OwnProfileUpdate;
use command_service::users::subscription::SubscriptionBody;
use command_service::users::toggles::ToggleBody;
use command_service::users::update::UserUpdate;
use http_edge::body::{Body, Json, JsonBody, JsonList, JsonOrForm};
use http_edge::ApiError;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-8",
    "text/plain",
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fn request(content_type: &str, body: &[u8]) -> Request {
    Request::builder()
        .method("POST")
        .uri("/fuzz")
        .header("content-type", content_type)
        .body(axum::body::Body::from(body.to_vec()))
        .expect("a request")
}

/// Reads `body` as the extractor `E` does, and checks a refusal is the caller's fault.
async fn read<E: FromRequest<(), Rejection = ApiError>>(content_type: &str, body: &[u8]) {
    if let Err(refusal) = E::from_request(request(content_type, body), &()).await {
        let status = refusal.into_response().status();
        assert!(status.is_client_error(), "a body was refused with {status}");
    }
}

async fn read_as<T: Body + Send>(kind: u8, content_type: &str, body: &[u8]) {
    match kind % 3 {
        0 => read::<Json<T>>(content_type, body).await,
        1 => read::<JsonList<T>>(content_type, body).await,
        _ => read::<JsonOrForm<T>>(content_type, body).await,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&choice, body)) = input.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(choice >> 6)];
    let kind = choice >> 4 & 0b11;
    runtime().block_on(async {
        match choice & 0x0f {
            0 => read_as::<NewUser>(kind, content_type, body).await,
            1 => read_as::<UserUpdate>(kind, content_type, body).await,
            2 => read_as::<OwnProfileUpdate>(kind, content_type, body).await,
            3 => read_as::<CreditsBody>(kind, content_type, body).await,
            4 => read_as::<CustomDataBody>(kind, content_type, body).await,
            5 => read_as::<SubscriptionBody>(kind, content_type, body).await,
            6 => read_as::<ToggleBody>(kind, content_type, body).await,
            7 => read_as::<NewRole>(kind, content_type, body).await,
            8 => read_as::<RoleUpdate>(kind, content_type, body).await,
            9 => read_as::<NewClient>(kind, content_type, body).await,
            10 => read_as::<ClientUpdate>(kind, content_type, body).await,
            11 => read_as::<IntrospectionRequest>(kind, content_type, body).await,
            _ => read::<JsonBody>(content_type, body).await,
        }
    });
});

//! What Liquid's callers read about the service itself, without a token: the scope catalogue
//! (`GET /user/scopes`) and the version (`GET /system/version`).

use std::collections::BTreeMap;

use events::scopes::{describe, ScopeCatalogue};
use http_edge::envelope::Answer;
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /user/scopes`'s answer: every scope of the catalogue by its name.
#[derive(Debug, Serialize, ToSchema)]
pub struct Scopes {
    pub scopes: BTreeMap<String, ScopeEntry>,
}

/// A scope, its description and its parent (every scope has one but `*`, which grants all).
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeEntry {
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// `GET /user/scopes`.
pub async fn scopes() -> Answer {
    let catalogue = ScopeCatalogue::get();
    let scopes = catalogue
        .all()
        .map(|name| {
            let entry = ScopeEntry {
                name: name.to_owned(),
                description: describe(name),
                parent: catalogue.parent(name).map(str::to_owned),
            };
            (name.to_owned(), entry)
        })
        .collect();
    Answer::ok(Scopes { scopes })
}

/// `GET /system/version`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    /// This build's version (the crate's).
    pub version: &'static str,
}

/// `GET /system/version`.
pub async fn version() -> Answer {
    Answer::ok(Version {
        version: env!("CARGO_PKG_VERSION"),
    })
}

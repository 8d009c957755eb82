//! The scope catalogue: every scope Liquid knows and its parent (`scopes.tsv`, a copy of the
//! contract's `scopes.tsv`, compiled in so the crate never reads `../shared` at build or run time),
//! plus userledger's own `admin:profile:history:read` and `client:profile:history:read` (the
//! audit history routes; README, "Audit") and `admin:profile:erase:write` (erasing a person;
//! README, "Erasure").
//!
//! Holding a scope grants the scope itself and all its descendants; `*` is the root, so it grants
//! everything. Sensitivity levels such as `admin:profile:sensitive:high:write` and
//! `...:extreme:write` are siblings: neither grants the other.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::values::ValidationError;

const CATALOGUE_TSV: &str = include_str!("scopes.tsv");

/// The root scope: it grants every scope.
pub const ROOT: &str = "*";

/// Every known scope mapped to its parent (`None` for the root).
pub struct ScopeCatalogue {
    parents: HashMap<&'static str, Option<&'static str>>,
    order: Vec<&'static str>,
}

static CATALOGUE: LazyLock<ScopeCatalogue> = LazyLock::new(|| ScopeCatalogue::parse(CATALOGUE_TSV));

impl ScopeCatalogue {
    /// The catalogue compiled into this crate.
    pub fn get() -> &'static ScopeCatalogue {
        &CATALOGUE
    }

    /// Reads `scope<TAB>parent` lines after a header line. An empty parent marks the root.
    fn parse(tsv: &'static str) -> Self {
        let mut parents = HashMap::new();
        let mut order = Vec::new();
        for line in tsv.lines().skip(1) {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut columns = line.split('\t');
            let name = columns.next().unwrap_or_default().trim();
            let parent = columns.next().map(str::trim).filter(|p| !p.is_empty());
            parents.insert(name, parent);
            order.push(name);
        }
        Self { parents, order }
    }

    /// Whether `name` is a scope of the catalogue.
    pub fn is_known(&self, name: &str) -> bool {
        self.parents.contains_key(name)
    }

    /// Every scope, in catalogue order (the root first).
    pub fn all(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.order.iter().copied()
    }

    /// The parent of a known scope (`None` for the root or an unknown scope).
    pub fn parent(&self, name: &str) -> Option<&'static str> {
        self.parents.get(name).copied().flatten()
    }

    /// Whether holding `held` grants `wanted`: `held` is `wanted` or one of its ancestors.
    /// An unknown name grants nothing and is granted by nothing, not even by itself, so a typo in
    /// a token or a check can never open a door.
    pub fn grants(&self, held: &str, wanted: &str) -> bool {
        if !self.is_known(held) || !self.is_known(wanted) {
            return false;
        }
        let mut current = Some(wanted);
        // The catalogue is a tree of about a hundred scopes; the bound guards against a cycle
        // in a hand-edited file.
        for _ in 0..=self.order.len() {
            match current {
                Some(scope) if scope == held => return true,
                Some(scope) => current = self.parent(scope),
                None => return false,
            }
        }
        false
    }

    /// Whether any scope of `held` grants `wanted`.
    pub fn set_grants<S: AsRef<str>>(&self, held: &[S], wanted: &str) -> bool {
        held.iter().any(|h| self.grants(h.as_ref(), wanted))
    }
}

/// Whether `name` is a known scope (see [`ScopeCatalogue::is_known`]).
pub fn is_known(name: &str) -> bool {
    ScopeCatalogue::get().is_known(name)
}

/// Whether holding `held` grants `wanted` (see [`ScopeCatalogue::grants`]).
pub fn grants(held: &str, wanted: &str) -> bool {
    ScopeCatalogue::get().grants(held, wanted)
}

/// Whether any scope of `held` grants `wanted` (see [`ScopeCatalogue::set_grants`]).
pub fn set_grants<S: AsRef<str>>(held: &[S], wanted: &str) -> bool {
    ScopeCatalogue::get().set_grants(held, wanted)
}

/// A scope of the catalogue. Holding one is the proof that the name is known.
///
/// Deserialising does not consult the catalogue: events keep the scopes they were decided with
/// even if a later catalogue drops one (the log is the truth; it must stay readable).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// Parses a scope name; it must be in the catalogue.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        if is_known(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(ValidationError::new(
                "scope",
                format!("{name:?} is not a known scope"),
            ))
        }
    }

    /// The root scope `*`.
    pub fn root() -> Self {
        Self(ROOT.to_owned())
    }

    /// `delegated:all`, the scope of every new user and the default scope of a new application.
    pub fn delegated_all() -> Self {
        Self("delegated:all".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether holding this scope grants `wanted`.
    pub fn grants(&self, wanted: &str) -> bool {
        grants(&self.0, wanted)
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Scope {
    type Error = ValidationError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl std::str::FromStr for Scope {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What holding a scope lets an application do, in words a person reads on a consent page
/// (made from the scope's name: `delegated:profile:read` is "See your profile").
pub fn describe(name: &str) -> String {
    match name {
        ROOT => return "Do everything, as you can".to_owned(),
        "delegated:all" => return "Act on your behalf, wherever you can".to_owned(),
        _ => {}
    }
    let mut parts: Vec<&str> = name.split(':').collect();
    let on_behalf = parts.first() == Some(&"delegated");
    if parts.len() > 1 {
        parts.remove(0);
    }
    let action = parts.pop().unwrap_or_default();
    let subject = parts.join(" ").replace('-', " ");
    let subject = if on_behalf {
        format!("your {subject}")
    } else {
        subject
    };
    match action {
        "read" => format!("See {subject}"),
        "write" => format!("Change {subject}"),
        "delete" => format!("Delete {subject}"),
        "all" => format!("Do everything with {subject}"),
        other => format!("{} {subject}", other.replace('-', " ")),
    }
}

impl crate::values::FieldValue for Scope {
    fn from_json(value: &serde_json::Value) -> Result<Self, ValidationError> {
        Self::parse(crate::values::text_of(value)?)
    }
}

/// A scope's schema: the catalogue's names.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A scope of the catalogue (`GET /user/scopes` in Liquid).",
            ))
            .enum_values(Some(ScopeCatalogue::get().all()))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Scope {}

crate::values::rules::wire_enum!(
    /// What an `access` request changes the scope of: users, applications (`client`) or roles.
    ScopeHolder, "targetType" {
        User = "user",
        Client = "client",
        Role = "role",
    }
);

crate::values::rules::wire_enum!(
    /// How an `access` request changes a scope list: `add` the given scopes, remove them
    /// (`del`), or `set` the list to them.
    ScopeOperation, "operation" {
        Add = "add",
        Remove = "del",
        Set = "set",
    }
);

impl ScopeOperation {
    /// The list after applying this operation with `scopes` to `current`: sorted, no duplicates,
    /// so that two equal sets compare equal and a no-op is easy to see.
    pub fn apply(self, current: &[Scope], scopes: &[Scope]) -> Vec<Scope> {
        let mut result: Vec<Scope> = match self {
            ScopeOperation::Add => current.iter().chain(scopes).cloned().collect(),
            ScopeOperation::Remove => current
                .iter()
                .filter(|s| !scopes.contains(s))
                .cloned()
                .collect(),
            ScopeOperation::Set => scopes.to_vec(),
        };
        result.sort();
        result.dedup();
        result
    }
}

/// A user token's scope (API.md §2), from everything the user may hold (their scope and their
/// role's) and, for any application but an internal client, everything the application may
/// hold (its scope and its role's; `None` for an internal client): through an internal client,
/// everything the user may hold; through any other, the `requested` scopes (all of both, when
/// none are requested) that both may hold. Sorted, without duplicates.
pub fn user_token_scope(
    user_may_have: &[String],
    client_may_have: Option<&[String]>,
    requested: Option<&[String]>,
) -> Vec<String> {
    let Some(client_may_have) = client_may_have else {
        return sorted(user_may_have.to_vec());
    };
    let candidates: Vec<String> = match requested {
        Some(requested) => requested.to_vec(),
        None => user_may_have
            .iter()
            .chain(client_may_have)
            .cloned()
            .collect(),
    };
    sorted(
        candidates
            .into_iter()
            .filter(|scope| set_grants(user_may_have, scope) && set_grants(client_may_have, scope))
            .collect(),
    )
}

/// The scope of a token refreshed from one of scope `previous`: [`user_token_scope`] as of now,
/// never more than `previous` had, and nothing the user or the application has lost since.
pub fn refreshed_token_scope(
    user_may_have: &[String],
    client_may_have: Option<&[String]>,
    previous: &[String],
) -> Vec<String> {
    user_token_scope(user_may_have, client_may_have, Some(previous))
        .into_iter()
        .filter(|scope| set_grants(previous, scope))
        .collect()
}

/// Sorted, without duplicates.
pub fn sorted(mut scopes: Vec<String>) -> Vec<String> {
    scopes.sort();
    scopes.dedup();
    scopes
}

/// A scope list in the canonical form events carry: sorted, without duplicates.
pub fn normalized(scopes: &[Scope]) -> Vec<Scope> {
    ScopeOperation::Set.apply(&[], scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_user_token_has_what_the_user_and_the_application_both_may_hold() {
        let user = owned(&["delegated:all", "admin:profile:read"]);
        let client = owned(&["delegated:profile:all"]);
        // An internal client hands out everything the user may hold, whatever is requested.
        assert_eq!(
            user_token_scope(&user, None, Some(&owned(&["delegated:profile:read"]))),
            owned(&["admin:profile:read", "delegated:all"])
        );
        // Any other: what both may hold, of what is requested (or of everything).
        assert_eq!(
            user_token_scope(&user, Some(&client), None),
            owned(&["delegated:profile:all"])
        );
        assert_eq!(
            user_token_scope(
                &user,
                Some(&client),
                Some(&owned(&["delegated:profile:read", "admin:profile:read"]))
            ),
            owned(&["delegated:profile:read"])
        );
        // A refresh never widens the first token, through either kind of application.
        let previous = owned(&["delegated:profile:read"]);
        assert_eq!(
            refreshed_token_scope(&user, None, &previous),
            Vec::<String>::new()
        );
        assert_eq!(
            refreshed_token_scope(&owned(&["delegated:profile:read"]), None, &previous),
            previous
        );
        assert_eq!(
            refreshed_token_scope(&user, Some(&client), &previous),
            previous
        );
    }

    #[test]
    fn the_catalogue_holds_every_line_of_the_contract() {
        let catalogue = ScopeCatalogue::get();
        // The contract's 98, userledger's two history scopes and its erasure scope.
        assert_eq!(catalogue.all().count(), 101);
        assert_eq!(
            catalogue.parent("admin:profile:erase:write"),
            Some("admin:profile:all")
        );
        assert_eq!(
            catalogue.parent("admin:profile:history:read"),
            Some("admin:profile:all")
        );
        assert_eq!(
            catalogue.parent("client:profile:history:read"),
            Some("client:profile:all")
        );
        assert_eq!(catalogue.all().next(), Some("*"));
        assert!(catalogue
            .all()
            .all(|s| s == ROOT || catalogue.parent(s).is_some()));
        assert!(catalogue
            .all()
            .filter_map(|s| catalogue.parent(s))
            .all(|p| catalogue.is_known(p)));
    }

    #[test]
    fn known_and_unknown_scopes() {
        assert!(is_known("*"));
        assert!(is_known("admin:profile:sensitive:extreme:write"));
        assert!(is_known("delegated:all"));
        assert!(!is_known("admin:profile:nonsense"));
        assert!(!is_known(""));
        assert!(!is_known("ADMIN:ALL"));
    }

    #[test]
    fn a_scope_grants_itself_and_its_descendants() {
        assert!(grants("admin:profile:read", "admin:profile:read"));
        assert!(grants("admin:profile:all", "admin:profile:read"));
        assert!(grants("admin:all", "admin:profile:sensitive:extreme:write"));
        assert!(grants(
            "client:profile:write",
            "client:profile:access:write"
        ));
        assert!(grants(
            "delegated:social:follow:write",
            "delegated:social:follow:accept"
        ));
    }

    #[test]
    fn a_scope_does_not_grant_its_ancestors_or_cousins() {
        assert!(!grants("admin:profile:read", "admin:profile:all"));
        assert!(!grants("admin:all", "client:profile:read"));
        assert!(!grants("client:all", "admin:profile:read"));
        assert!(!grants(
            "admin:profile:all",
            "admin:profile:sensitive:low:write"
        ));
    }

    #[test]
    fn the_root_grants_everything() {
        let catalogue = ScopeCatalogue::get();
        assert!(catalogue.all().all(|s| grants("*", s)));
    }

    #[test]
    fn sensitivity_levels_are_siblings() {
        let extreme = "admin:profile:sensitive:extreme:write";
        let high = "admin:profile:sensitive:high:write";
        assert!(!grants(extreme, high));
        assert!(!grants(high, extreme));
        assert!(grants("admin:profile:sensitive:write", high));
        assert!(grants("admin:profile:sensitive:write", extreme));
    }

    #[test]
    fn unknown_scopes_grant_nothing_and_are_granted_by_nothing() {
        assert!(!grants("admin:nonsense", "admin:nonsense"));
        assert!(!grants("*", "admin:nonsense"));
        assert!(!grants("admin:nonsense", "admin:profile:read"));
    }

    #[test]
    fn a_set_grants_what_any_member_grants() {
        let held = ["delegated:all", "admin:profile:read"];
        assert!(set_grants(&held, "delegated:profile:write"));
        assert!(set_grants(&held, "admin:profile:read"));
        assert!(!set_grants(&held, "admin:profile:write"));
        let none: [&str; 0] = [];
        assert!(!set_grants(&none, "delegated:all"));
        let scopes = vec![Scope::root()];
        assert!(set_grants(&scopes, "client:roles:delete"));
    }

    #[test]
    fn a_scope_parses_only_from_the_catalogue() {
        assert_eq!(
            Scope::parse("admin:all").map(|s| s.to_string()),
            Ok("admin:all".into())
        );
        let error = Scope::parse("admin:everything").unwrap_err();
        assert_eq!(error.field, "scope");
        assert!(error.msg.contains("admin:everything"));
    }

    #[test]
    fn scope_operations_give_a_sorted_set() {
        let s = |n: &str| Scope::parse(n).unwrap();
        let current = vec![s("delegated:all"), s("admin:profile:read")];
        assert_eq!(
            ScopeOperation::Add.apply(&current, &[s("admin:all"), s("delegated:all")]),
            vec![s("admin:all"), s("admin:profile:read"), s("delegated:all")]
        );
        assert_eq!(
            ScopeOperation::Remove.apply(&current, &[s("delegated:all"), s("client:all")]),
            vec![s("admin:profile:read")]
        );
        assert_eq!(
            ScopeOperation::Set.apply(&current, &[s("client:all"), s("client:all")]),
            vec![s("client:all")]
        );
    }
}

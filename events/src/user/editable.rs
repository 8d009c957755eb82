//! The profile fields a user's `update` may write, and how sensitive each one is (API.md §3):
//! writing a field needs the shared `E:profile:sensitive:<level>:write` of its level. The write
//! side enforces it, and `editable-fields` tells a caller what it may write, from this one list.

/// The editable fields and the sensitivity level of their write.
pub const EDITABLE_FIELDS: &[(&str, &str)] = &[
    ("firstName", "low"),
    ("lastName", "low"),
    ("middleName", "low"),
    ("bio", "low"),
    ("pronouns", "low"),
    ("customLink", "low"),
    ("organization", "low"),
    ("designation", "low"),
    ("gender", "low"),
    ("preferredLanguage", "low"),
    ("email", "medium"),
    ("username", "high"),
    ("password", "high"),
    ("role", "high"),
    ("country", "high"),
    ("isDeleted", "extreme"),
];

/// The scope, after the edge (`profile:sensitive:high:write`), that writing a field of
/// `level` needs.
pub fn sensitivity_scope(level: &str) -> String {
    format!("profile:sensitive:{level}:write")
}

/// The fields a user may change on their own account (`PATCH /user/me`), as `GET /user/me`
/// lists them (Liquid's default `user.profile.editable-fields`).
pub const SELF_EDITABLE_FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "middleName",
    "password",
    "bio",
    "pronouns",
    "customLink",
    "organization",
    "gender",
    "preferredLanguage",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scopes;

    #[test]
    fn every_level_names_a_scope_of_both_edges() {
        for (_, level) in EDITABLE_FIELDS {
            let x = sensitivity_scope(level);
            assert!(scopes::is_known(&format!("admin:{x}")), "{x}");
            assert!(scopes::is_known(&format!("client:{x}")), "{x}");
        }
    }
}

//! The sign-in pages, rendered on the server (maud: HTML written in Rust, escaped by default).
//! No script: every page works with JavaScript off. Each form carries its CSRF token and the
//! OAuth parameters it continues with, as hidden fields.

use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The OAuth parameters a page passes on, as hidden fields, in a stable order.
pub type Hidden<'a> = &'a [(&'static str, String)];

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1c1e21;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;padding:2rem 2.25rem;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);
width:100%;max-width:22rem}
h1{font-size:1.35rem;margin:0 0 .25rem}
p.lead{margin:0 0 1.5rem;color:#555}
label{display:block;font-weight:600;margin:1rem 0 .35rem}
input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:.6rem .7rem;
font-size:1rem;border:1px solid #b8bcc4;border-radius:6px}
input:focus,button:focus{outline:3px solid #8ab4f8;outline-offset:1px}
button{margin-top:1.5rem;width:100%;padding:.7rem;font-size:1rem;font-weight:600;border:0;
border-radius:6px;background:#1a56db;color:#fff;cursor:pointer}
button.secondary{background:#e4e6eb;color:#1c1e21;margin-top:.75rem}
.error{background:#fdecea;color:#8a1c12;border-radius:6px;padding:.6rem .75rem;margin:0 0 1rem}
ul{padding-left:1.2rem}
";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

fn hidden(fields: Hidden<'_>) -> Markup {
    html! {
        @for (name, value) in fields {
            input type="hidden" name=(name) value=(value);
        }
    }
}

/// The login form. `error` is shown above it (never saying whether an account exists).
pub fn login(
    app_name: &str,
    username: &str,
    error: Option<&str>,
    csrf: &str,
    fields: Hidden<'_>,
) -> Markup {
    layout(
        &format!("Sign in to {app_name}"),
        html! {
            h1 { "Sign in" }
            p.lead { "to continue to " strong { (app_name) } }
            @if let Some(error) = error {
                p.error role="alert" id="login-error" { (error) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                (hidden(fields))
                label for="username" { "Username or email" }
                input type="text" id="username" name="username" value=(username)
                    autocomplete="username" autocapitalize="none" spellcheck="false" required
                    autofocus[username.is_empty()]
                    aria-describedby=[error.map(|_| "login-error")];
                label for="password" { "Password" }
                input type="password" id="password" name="password"
                    autocomplete="current-password" required autofocus[!username.is_empty()];
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The consent page of an external application: what it asks for, allow or deny.
pub fn consent(
    app_name: &str,
    user_name: &str,
    scopes: &[(String, String)],
    csrf: &str,
    fields: Hidden<'_>,
) -> Markup {
    layout(
        &format!("Allow {app_name}?"),
        html! {
            h1 { "Allow " (app_name) "?" }
            p.lead { "Signed in as " strong { (user_name) } "." }
            p { (app_name) " asks to:" }
            ul {
                @for (name, description) in scopes {
                    li { (description) " " small { code { (name) } } }
                }
            }
            form method="post" action="/oauth/authorize" {
                input type="hidden" name="csrf" value=(csrf);
                (hidden(fields))
                button type="submit" name="consent" value="allow" { "Allow" }
                button.secondary type="submit" name="consent" value="deny" { "Deny" }
            }
        },
    )
}

/// A page that only says something: an error that cannot go back to the application, or
/// "you are signed in" when no application asked.
pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        html! {
            h1 { (title) }
            p { (text) }
        },
    )
}

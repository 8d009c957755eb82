//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`, with Swagger UI at
//! `GET /docs`.
//!
//! # One source for the router and the document
//! A route can only be mounted through [`Routes::route`], which takes the route's [`Doc`] (its
//! entry in the route table) and its handler: the path and the method the router answers are
//! read from the `Doc`, the route's [`Policy`] (edge, scope check, read or write, idempotency,
//! rate-limit class) is enforced by the middleware mounted with it ([`crate::policy`]), and
//! the same `Doc` becomes the route's operation in the document. A [`crate::Server`] takes
//! [`Routes`], not axum routers, so a route cannot reach the application without its
//! documentation and its policy, and the document of a process lists exactly the routes that
//! process answers (the write side alone, the read side alone, or both). The black-box test
//! `tests/tests/openapi.rs` checks what types cannot: that every documented route answers (no
//! 404 or 405), that every route refuses a token without its scope, and that the route list
//! is the contract's.
//!
//! Why not `#[utoipa::path]` on the handlers: most user routes are one handler mounted on two
//! edges (`/user/admin-api/*`, `/user/client-api/*`) with different tokens and scopes, and an
//! attribute names one path; and attributes would leave the router's `.route(...)` calls a
//! second list to keep in step. The schemas of bodies and answers are `ToSchema` types: the
//! envelopes here ([`schemas`]), the user, role and application views derived from the
//! domain's types (`events`, feature `openapi`), the bodies beside the routes that take them.
//!
//! # Layout
//! - [`Doc`]: one route's documentation: summary, token and scope check, body, query,
//!   answers and the error codes it can answer.
//! - [`Routes`]: routes and their documentation, built together.
//! - [`document`]: the whole document of a set of routes; [`meta_routes`]: `/openapi.json`
//!   and `/docs` themselves.
//! - [`schemas`]: the envelopes and the error shapes.

pub mod schemas;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request};
use axum::handler::Handler;
use axum::http::{header, Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, on, MethodFilter, Route};
use axum::{Extension, Router};
use tower::{Layer, Service};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, Paths,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{AdditionalProperties, AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
};
use utoipa::ToSchema;

use crate::auth::Edge;
use crate::body::Body;
use crate::policy::{self, Access, Feature, Policy, RateClass, ScopeCheck};

/// A named schema for the document's components.
type NamedSchema = (String, RefOr<Schema>);

/// The security scheme of delegated (user) tokens.
pub const DELEGATED: &str = "delegated";
/// The security scheme of client (application) tokens.
pub const CLIENT: &str = "client";

/// One error the route can answer: its status, its `error` code and when.
struct ErrorCase {
    status: u16,
    code: &'static str,
    when: String,
}

/// Records per page of a paged read when `limit` is missing or unusable (Liquid's
/// `pagination.default-limit`).
pub const DEFAULT_PAGE_LIMIT: i64 = 10;
/// The most records one page holds (Liquid's `pagination.max-limit`).
pub const MAX_PAGE_LIMIT: i64 = 1000;

/// The documentation of one route: where it is (method and path, which the router uses too)
/// and its OpenAPI operation.
#[must_use]
pub struct Doc {
    method: Method,
    path: String,
    summary: String,
    description: Vec<String>,
    security: Vec<SecurityRequirement>,
    parameters: Vec<utoipa::openapi::path::Parameter>,
    body: Option<utoipa::openapi::request_body::RequestBody>,
    answers: Vec<(u16, utoipa::openapi::Response)>,
    errors: Vec<ErrorCase>,
    schemas: Vec<NamedSchema>,
    /// OAuth's error shape instead of the envelope (`/oauth/token`).
    oauth_errors: bool,
    policy: Policy,
}

impl Doc {
    pub fn new(method: Method, path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            summary: summary.into(),
            description: Vec::new(),
            security: Vec::new(),
            parameters: Vec::new(),
            body: None,
            answers: Vec::new(),
            errors: Vec::new(),
            schemas: Vec::new(),
            oauth_errors: false,
            policy: Policy::default(),
        }
    }

    pub fn get(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::GET, path, summary)
    }

    pub fn post(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::POST, path, summary)
    }

    pub fn put(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::PUT, path, summary)
    }

    pub fn patch(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path, summary)
    }

    pub fn delete(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path, summary)
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// A paragraph of the operation's description.
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description.push(text.into());
        self
    }

    /// Answers without a token.
    pub fn public(self) -> Self {
        self.describe("**Token**: none.")
    }

    /// The `shared E:x` check of API.md §2 on `edge` (E is the edge's name).
    pub fn shared(mut self, edge: Edge, x: &str) -> Self {
        let named = format!("{}:{x}", edge.as_str());
        let other = match edge {
            Edge::Admin => format!("client:{x}"),
            Edge::Client => format!("admin:{x}"),
        };
        let scheme = scheme(edge);
        self.policy.caller = Some((edge, ScopeCheck::Shared(x.to_owned())));
        self.security = vec![
            SecurityRequirement::new(scheme, [named.as_str()]),
            SecurityRequirement::new(scheme, [other.as_str()]),
        ];
        self.authenticated(edge).describe(format!(
            "**Scope check**: shared `{named}`: passes when the token's scope grants \
             `client:{x}`; or it grants `admin:{x}` and so does the scope of the application \
             that issued it; or the caller is a super_admin."
        ))
    }

    /// The `session s` check of API.md §2 on `edge`.
    pub fn session(mut self, edge: Edge, s: &str) -> Self {
        self.policy.caller = Some((edge, ScopeCheck::Session(s.to_owned())));
        self.security = vec![SecurityRequirement::new(scheme(edge), [s])];
        self.authenticated(edge).describe(format!(
            "**Scope check**: session `{s}`: the token's scope and the scope of the application \
             that issued it must both grant it; no super_admin bypass."
        ))
    }

    /// The session check, with the super_admin bypass (`/roles/list`).
    pub fn session_or_super_admin(mut self, edge: Edge, s: &str) -> Self {
        self.policy.caller = Some((edge, ScopeCheck::SessionOrSuperAdmin(s.to_owned())));
        self.security = vec![SecurityRequirement::new(scheme(edge), [s])];
        self.authenticated(edge).describe(format!(
            "**Scope check**: session `{s}` (the token's scope and the scope of the application \
             that issued it must both grant it), or the caller is a super_admin."
        ))
    }

    /// Any of `scopes` on `edge`, each a session check (applications: by their role; the
    /// handler checks the one that applies). A caller holding none is refused naming the last.
    pub fn session_any(mut self, edge: Edge, scopes: &[&str], rule: &str) -> Self {
        let any = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.policy.caller = Some((edge, ScopeCheck::SessionAny(any)));
        self.security = scopes
            .iter()
            .map(|s| SecurityRequirement::new(scheme(edge), [*s]))
            .collect();
        self.authenticated(edge)
            .describe(format!("**Scope check**: session, {rule}"))
    }

    fn authenticated(self, edge: Edge) -> Self {
        let doc = match edge {
            Edge::Admin => self
                .describe(
                    "**Token**: delegated (a user's token, from the `password` or \
                     `refresh_token` grant).",
                )
                .error(403, "Banned", "the token's user is banned"),
            Edge::Client => self.describe(
                "**Token**: client (an application's own token, from the \
                 `client_credentials` grant); a delegated token is refused.",
            ),
        };
        doc.fails_internally()
            .error(
                401,
                "Unauthorized",
                "no, malformed, expired or revoked bearer token, or a token of the other kind",
            )
            .error(
                401,
                "InsufficientPrivileges",
                "the token lacks the scope (`additionalInfo.requiredScope`)",
            )
    }

    /// 500 InternalServerError: the route reaches storage, which may fail.
    pub fn fails_internally(self) -> Self {
        self.error(
            500,
            "InternalServerError",
            "an unexpected failure (logged, never detailed)",
        )
    }

    /// A JSON body of type `T`: the handler reads it as `Json<T>` (or through
    /// `T::from_json`), so the schema states what is enforced.
    pub fn json_body<T: Body>(mut self) -> Self {
        let schema = self.register_body::<T>();
        self.with_json_body(schema)
    }

    /// A JSON body that is an array of at least one `T` (`JsonList<T>`).
    pub fn json_array_body<T: Body>(mut self) -> Self {
        let item = self.register_body::<T>();
        let array = utoipa::openapi::schema::ArrayBuilder::new()
            .items(item)
            .min_items(Some(1));
        self.with_json_body(RefOr::T(Schema::Array(array.build())))
    }

    fn with_json_body(mut self, schema: RefOr<Schema>) -> Self {
        self.body = Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .required(Some(Required::True))
                .build(),
        );
        self.error(
            400,
            "ClientInputError",
            "a field fails validation (every invalid field is listed in \
             `additionalInfo.errors`), the body is not JSON, or `Content-Type` is not \
             `application/json`",
        )
        .error(
            413,
            "ClientInputError",
            "the body is over the configured limit",
        )
    }

    /// A form-urlencoded body of schema `T`.
    pub fn form_body<T: ToSchema>(mut self) -> Self {
        let schema = self.register::<T>();
        self.body = Some(
            RequestBodyBuilder::new()
                .content(
                    "application/x-www-form-urlencoded",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .required(Some(Required::True))
                .build(),
        );
        self
    }

    /// A query parameter (a string as sent; the description says how it is read).
    pub fn query(mut self, name: &str, required: bool, description: &str) -> Self {
        self.parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        self
    }

    /// A segment of the path (`{name}` in it).
    pub fn path_parameter(mut self, name: &str, description: &str) -> Self {
        self.parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        self
    }

    fn header(mut self, name: &str, description: &str) -> Self {
        self.parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        self
    }

    /// `limit` and `offset` as `list` reads them.
    pub fn paged(self) -> Self {
        self.query(
            "limit",
            false,
            &format!(
                "page size: default {DEFAULT_PAGE_LIMIT}, at most {MAX_PAGE_LIMIT}; `0`, empty \
                 or junk means the default, `25.7` means 25"
            ),
        )
        .query(
            "offset",
            false,
            "the `_id` of the last record of the previous page (keyset paging in creation order)",
        )
    }

    /// `limit` and `offset` of a page of records newest first (keyset on `_id`).
    pub fn newest_first_paged(self) -> Self {
        self.query(
            "limit",
            false,
            &format!(
                "page size: default {DEFAULT_PAGE_LIMIT}, at most {MAX_PAGE_LIMIT} (read as \
                 `list` reads it)"
            ),
        )
        .query(
            "offset",
            false,
            "the `_id` of the last record of the previous page (records older than it follow)",
        )
    }

    /// A write: `Idempotency-Key` is honoured (POST, PUT, PATCH), the answer carries the
    /// consistency token of the events it appended, and the writes rate limit applies.
    pub fn write(mut self) -> Self {
        self.policy.access = Access::Write;
        self.policy.rate = Some(RateClass::Writes);
        if [Method::POST, Method::PUT, Method::PATCH].contains(&self.method) {
            self.policy.idempotent = true;
            self = self
                .header(
                    "Idempotency-Key",
                    "a retry with the same key and body gets the first answer (marked \
                     `Idempotent-Replayed: true`) and appends nothing; keys are per caller and \
                     kept a day",
                )
                .error(
                    400,
                    "ClientInputError",
                    "the `Idempotency-Key` was used with another body, or is malformed",
                )
                .error(
                    409,
                    "ResourceConflict",
                    "a request with this `Idempotency-Key` is still in progress",
                );
        }
        self.error(
            429,
            "RateLimitError",
            "over the writes rate limit of the calling application or of this IP address \
             (`Retry-After`; `USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE`)",
        )
    }

    /// The route belongs to `feature`, which configuration can turn off.
    pub fn part_of(mut self, feature: Feature) -> Self {
        self.policy.feature = Some(feature);
        let Feature::FollowApis = feature;
        self.error(
            404,
            "NotFound",
            "the follow routes are turned off (`USERLEDGER_CAN_USE_FOLLOW_APIS=false`)",
        )
    }

    /// The token endpoint: counted among the writes in flight, against the token rate limit.
    pub fn token_requests(mut self) -> Self {
        self.policy.access = Access::Write;
        self.policy.rate = Some(RateClass::Token);
        self
    }

    /// Never waits among the requests in flight (liveness, the documentation).
    pub fn unlimited(mut self) -> Self {
        self.policy.access = Access::Unlimited;
        self
    }

    /// A read of the read models: honours `X-Consistency-Token` (read your writes).
    pub fn read(self) -> Self {
        self.header(
            "X-Consistency-Token",
            "a write's consistency token: the read waits (at most 2 s) until the read model \
             has reached it",
        )
        .error(
            400,
            "ClientInputError",
            "the `X-Consistency-Token` is not a log position",
        )
        .error(
            503,
            "ServiceUnavailable",
            "the read model did not reach the `X-Consistency-Token` in time (`Retry-After`)",
        )
    }

    /// The route hashes a password or a secret on the bounded pool.
    pub fn hashes(self) -> Self {
        self.error(
            503,
            "ServiceUnavailable",
            "the password hashing pool is saturated (`Retry-After`)",
        )
    }

    /// 200 `{"ok":1,"data":T}`.
    pub fn ok<T: ToSchema>(self, description: &str) -> Self {
        self.enveloped::<T>(200, description)
    }

    /// `status` `{"ok":1,"data":T}`.
    pub fn enveloped<T: ToSchema>(mut self, status: u16, description: &str) -> Self {
        let data = self.register::<T>();
        let schema = ObjectBuilder::new()
            .property(
                "ok",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some([1])),
            )
            .required("ok")
            .property("data", data)
            .required("data");
        self.answer(status, description, "application/json", schema.into())
    }

    /// 200 `{"ok":1}`.
    pub fn done(mut self, description: &str) -> Self {
        let schema = self.register::<schemas::Done>();
        self.answer(200, description, "application/json", schema)
    }

    /// A 200 outside the envelope (`/oauth/token`, `/projections/status`).
    pub fn plain<T: ToSchema>(mut self, content_type: &str, description: &str) -> Self {
        let schema = self.register::<T>();
        self.answer(200, description, content_type, schema)
    }

    /// A text answer (`/metrics`, `/docs`).
    pub fn text(self, status: u16, content_type: &str, description: &str) -> Self {
        let schema = ObjectBuilder::new().schema_type(Type::String).into();
        self.answer(status, description, content_type, schema)
    }

    /// 303 See Other, with `Location`.
    pub fn redirect(mut self, description: &str) -> Self {
        let location = HeaderBuilder::new()
            .description(Some("where to go"))
            .build();
        let response = ResponseBuilder::new()
            .description(description)
            .header("Location", location);
        self.answers.push((303, response.build()));
        self
    }

    fn answer(
        mut self,
        status: u16,
        description: &str,
        content_type: &str,
        schema: RefOr<Schema>,
    ) -> Self {
        let mut response = ResponseBuilder::new().description(description).content(
            content_type,
            ContentBuilder::new().schema(Some(schema)).build(),
        );
        if self.is_write() {
            response = response.header(
                "X-Consistency-Token",
                HeaderBuilder::new()
                    .description(Some(
                        "the log position of the last event appended (absent when nothing was)",
                    ))
                    .build(),
            );
        }
        self.answers.push((status, response.build()));
        self
    }

    fn is_write(&self) -> bool {
        self.policy.rate == Some(RateClass::Writes)
    }

    /// An error the route can answer, in the envelope (or OAuth's shape on `/oauth/token`).
    pub fn error(mut self, status: u16, code: &'static str, when: impl Into<String>) -> Self {
        self.errors.push(ErrorCase {
            status,
            code,
            when: when.into(),
        });
        self
    }

    /// Errors in OAuth's shape (`{"error","error_description"}`) instead of the envelope.
    pub fn oauth_errors(mut self) -> Self {
        self.oauth_errors = true;
        self.errors.clear();
        self
    }

    /// Adds `T` (and what it refers to) to the document's schemas; its reference.
    fn register<T: ToSchema>(&mut self) -> RefOr<Schema> {
        register::<T>(&mut self.schemas)
    }

    /// Registers a body's schema, closed (`additionalProperties: false`) when the body refuses
    /// fields it does not read.
    fn register_body<T: Body>(&mut self) -> RefOr<Schema> {
        let reference = self.register::<T>();
        if T::CLOSED {
            let name = T::name();
            for (named, schema) in &mut self.schemas {
                if *named == name {
                    if let RefOr::T(Schema::Object(object)) = schema {
                        object.additional_properties =
                            Some(Box::new(AdditionalProperties::FreeForm(false)));
                    }
                }
            }
        }
        reference
    }

    /// The operation, and the schemas it refers to.
    fn into_operation(mut self) -> (HttpMethod, String, Operation, Vec<NamedSchema>) {
        let error_schema = if self.oauth_errors {
            register::<schemas::OAuthError>(&mut self.schemas)
        } else {
            register::<schemas::ErrorEnvelope>(&mut self.schemas)
        };
        let mut responses = ResponsesBuilder::new();
        for (status, response) in self.answers {
            responses = responses.response(status.to_string(), response);
        }
        let mut by_status: BTreeMap<u16, Vec<&ErrorCase>> = BTreeMap::new();
        for case in &self.errors {
            by_status.entry(case.status).or_default().push(case);
        }
        for (status, cases) in by_status {
            let mut codes: Vec<&str> = Vec::new();
            for case in &cases {
                if !codes.contains(&case.code) {
                    codes.push(case.code);
                }
            }
            let description = cases
                .iter()
                .map(|c| format!("- `{}`: {}", c.code, c.when))
                .collect::<Vec<_>>()
                .join("\n");
            let schema = AllOfBuilder::new().item(error_schema.clone()).item(
                ObjectBuilder::new().property(
                    "error",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(codes)),
                ),
            );
            responses = responses.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(schema)).build(),
                    )
                    .build(),
            );
        }
        let method = http_method(&self.method);
        let operation_id = format!(
            "{}{}",
            self.method.as_str().to_lowercase(),
            self.path.replace(['/', '-', '{', '}'], "_")
        );
        let mut operation = OperationBuilder::new()
            .summary(Some(self.summary))
            .description(Some(self.description.join("\n\n")))
            .operation_id(Some(operation_id))
            .tag(tag_of(&self.path))
            .parameters(Some(self.parameters))
            .request_body(self.body)
            .responses(responses.build());
        if !self.security.is_empty() {
            operation = operation.securities(Some(self.security));
        }
        (method, self.path, operation.build(), self.schemas)
    }
}

fn scheme(edge: Edge) -> &'static str {
    match edge {
        Edge::Admin => DELEGATED,
        Edge::Client => CLIENT,
    }
}

fn register<T: ToSchema>(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        _ => HttpMethod::Trace,
    }
}

/// The tag (the group in the interactive page) of a path.
fn tag_of(path: &str) -> &'static str {
    if path.ends_with("/history") {
        "Audit"
    } else if path.starts_with("/oauth/") {
        "OAuth"
    } else if path.starts_with("/user/admin-api/") {
        "Users: admin API"
    } else if path.starts_with("/user/client-api/") {
        "Users: client API"
    } else if path.starts_with("/roles/") {
        "Roles"
    } else if path.starts_with("/client/admin-api/") {
        "Applications"
    } else {
        "Operations"
    }
}

/// Routes and their documentation, built together: the only way to mount a route (see the
/// module's documentation). `S` is the state of their handlers.
#[must_use]
pub struct Routes<S = ()> {
    router: Router<S>,
    paths: Paths,
    schemas: Vec<NamedSchema>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Paths::new(),
            schemas: Vec::new(),
        }
    }

    /// Mounts `handler` at the method and path of `doc`, behind the enforcement of its policy,
    /// and documents it with `doc`.
    pub fn route<H, T>(mut self, doc: Doc, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(doc.method().clone())
            .unwrap_or_else(|_| panic!("{} is not a method a route can take", doc.method()));
        let enforced = from_fn_with_state(Arc::new(doc.policy.clone()), policy::enforce);
        self.router = self
            .router
            .route(doc.path(), on(filter, handler).route_layer(enforced));
        let (method, path, operation, schemas) = doc.into_operation();
        self.paths.add_path_operation(path, vec![method], operation);
        self.schemas.extend(schemas);
        self
    }

    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.merge(other.paths);
        self.schemas.extend(other.schemas);
        self
    }

    /// Applies `layer` to every route so far (as [`Router::layer`]); adds no route.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }

    /// The routes with their handlers' state given: ready to serve beside routes of another
    /// state (the write side's and the read side's, in one process).
    pub fn with_state(self, state: S) -> Routes<()> {
        Routes {
            router: self.router.with_state(state),
            paths: self.paths,
            schemas: self.schemas,
        }
    }

    /// The router, and the documentation of its routes.
    pub(crate) fn into_parts(self) -> (Router<S>, Documented) {
        (
            self.router,
            Documented {
                paths: self.paths,
                schemas: self.schemas,
            },
        )
    }
}

/// The documentation of a set of routes, without the routes.
pub(crate) struct Documented {
    paths: Paths,
    schemas: Vec<NamedSchema>,
}

const INTRO: &str = "Users, roles and OAuth applications for Liquid's admin and client APIs \
(userledger's wire contract, API.md).

**Envelope.** Success: `{\"ok\":1,\"data\":{...}}`, or `{\"ok\":1}` when there is nothing to \
return. Error: `{\"ok\":0,\"error\":\"<Code>\",\"additionalInfo\":{...}}`. `/oauth/token` answers \
in OAuth's shape instead. Each operation lists the codes it can answer under each status.

**Tokens.** `POST /oauth/token` issues them. Delegated tokens (a user's) are taken by \
`/user/admin-api/*`, `/client/admin-api/*`, `/roles/admin-api/*` and `/roles/list`; client \
tokens (an application's own, `client_credentials`) by `/user/client-api/*` and \
`/roles/client-api/*`. Each operation's security requirement lists the scope(s) that pass its \
check (alternatives are separate requirements) and its description names the check: **shared** \
or **session** (API.md §2). A scope grants its descendants; `*` grants everything.

**Consistency.** Writes answer `X-Consistency-Token`; a read that sends it back waits until \
the read model has reached it.";

/// The OpenAPI document of `parts`.
pub(crate) fn document(parts: impl IntoIterator<Item = Documented>) -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas = Vec::new();
    for part in parts {
        paths.merge(part.paths);
        schemas.extend(part.schemas);
    }
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(description))
                .build(),
        )
    };
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            DELEGATED,
            bearer(
                "A delegated token: a user's access token (`password` or `refresh_token` grant \
                 of `POST /oauth/token`). Its scope is the user's scope plus the user's role's \
                 when the issuing application is an internal_client.",
            ),
        )
        .security_scheme(
            CLIENT,
            bearer(
                "A client token: an application's own access token (`client_credentials` \
                 grant of `POST /oauth/token`); its user is the application.",
            ),
        );
    // One entry per name: the same type is registered by every route that uses it.
    let unique: BTreeMap<String, RefOr<Schema>> = schemas.into_iter().collect();
    for (name, schema) in unique {
        components = components.schema(name, schema);
    }
    let tags = [
        ("OAuth", "Tokens (API.md §2)"),
        (
            "Users: admin API",
            "User routes for delegated tokens (API.md §3)",
        ),
        (
            "Users: client API",
            "User routes for client tokens (API.md §3)",
        ),
        ("Roles", "Roles (API.md §5)"),
        ("Applications", "OAuth applications (API.md §4)"),
        (
            "Audit",
            "History and point-in-time state of users, roles and applications",
        ),
        (
            "Operations",
            "Liveness, read-model status, metrics, this document",
        ),
    ]
    .map(|(name, description)| {
        TagBuilder::new()
            .name(name)
            .description(Some(description))
            .build()
    });
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("userledger")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(INTRO))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some(tags))
        .build()
}

/// The document as served, built once at start.
#[derive(Clone)]
struct Served {
    json: Bytes,
    swagger: Arc<utoipa_swagger_ui::Config<'static>>,
}

/// `GET /openapi.json` and `GET /docs`, documented like every route; their handlers find the
/// document in an extension that [`serve`] adds.
pub(crate) fn meta_routes() -> Routes {
    Routes::new()
        .route(
            Doc::get("/openapi.json", "This OpenAPI 3.1 document")
                .public()
                .unlimited()
                .plain::<schemas::OpenApiDocument>("application/json", "the document"),
            openapi_json,
        )
        .route(
            Doc::get("/docs", "The interactive documentation (Swagger UI)")
                .public()
                .unlimited()
                .describe(
                    "Redirects to `/docs/`, Swagger UI on this document; its assets are served \
                     by the service itself (no network needed).",
                )
                .redirect("to `/docs/`"),
            || async { Redirect::to("/docs/") },
        )
}

/// Serves `document` to [`meta_routes`]' handlers, and Swagger UI's page and assets under
/// `/docs/` (which are not API routes, so they are not in the document).
pub(crate) fn serve(meta: Router, document: &OpenApi) -> Router {
    let json = document
        .to_json()
        .unwrap_or_else(|error| panic!("the OpenAPI document serialises: {error}"));
    let served = Served {
        json: Bytes::from(json),
        swagger: Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")),
    };
    meta.route("/docs/", get(swagger_asset))
        .route("/docs/{*asset}", get(swagger_asset))
        .layer(Extension(served))
}

async fn openapi_json(Extension(served): Extension<Served>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], served.json).into_response()
}

async fn swagger_asset(
    asset: Option<Path<String>>,
    Extension(served): Extension<Served>,
) -> Response {
    let asset = asset.map(|Path(asset)| asset).unwrap_or_default();
    match utoipa_swagger_ui::serve(&asset, served.swagger.clone()) {
        Ok(Some(file)) => (
            [(header::CONTENT_TYPE, file.content_type)],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::error!(%error, "serving Swagger UI");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

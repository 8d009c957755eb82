//! What the publisher tells about: users, roles, applications, users' sign-in attempts, and
//! the relations between two users (follows and blocks). For each kind, how its
//! stream folds and what of its state is public (never a password hash or a client secret).

use events::application::{self, Application, ApplicationEvent, ApplicationState};
use events::metadata::{Decoded, EventFamily};
use events::role::{self, Role, RoleEvent, RoleState};
use events::sign_in::{SignInEvent, SignIns};
use events::social::{Follow, Relation, Social, SocialEvent};
use events::user::{User, UserEvent, UserView};
use events::Aggregate;
use serde::Serialize;

use events::application::ApplicationView;
use events::role::RoleView;

/// A kind of stream the publisher publishes.
pub trait Subject: Send + Sync + 'static {
    /// The stream category (`user` for `user-<id>`).
    const CATEGORY: &'static str;
    /// The name of the state in the payload and the kind in `ce_type` (`user`, `role`,
    /// `application`).
    const KIND: &'static str;
    type Event: EventFamily + Send + Sync;
    type State: Default + Clone + Send + Sync;

    fn evolve(state: Self::State, decoded: &Decoded<Self::Event>) -> Self::State;

    /// The state as downstream services may see it; `null` when there is none (deleted).
    fn public(state: &Self::State) -> impl Serialize + '_;
}

pub struct Users;

impl Subject for Users {
    const CATEGORY: &'static str = User::CATEGORY;
    const KIND: &'static str = "user";
    type Event = UserEvent;
    type State = Option<UserView>;

    fn evolve(state: Self::State, decoded: &Decoded<UserEvent>) -> Self::State {
        UserView::evolve(state, &decoded.event, &decoded.metadata)
    }

    fn public(state: &Self::State) -> impl Serialize + '_ {
        // The user object of the contract: it never holds the password hash.
        state
    }
}

pub struct Roles;

impl Subject for Roles {
    const CATEGORY: &'static str = Role::CATEGORY;
    const KIND: &'static str = "role";
    type Event = RoleEvent;
    type State = RoleState;

    fn evolve(state: Self::State, decoded: &Decoded<RoleEvent>) -> Self::State {
        role::evolve(state, &decoded.event)
    }

    fn public(state: &Self::State) -> impl Serialize + '_ {
        state.as_ref().and_then(RoleView::of)
    }
}

pub struct Applications;

impl Subject for Applications {
    const CATEGORY: &'static str = Application::CATEGORY;
    const KIND: &'static str = "application";
    type Event = ApplicationEvent;
    type State = ApplicationState;

    fn evolve(state: Self::State, decoded: &Decoded<ApplicationEvent>) -> Self::State {
        application::evolve(state, &decoded.event)
    }

    fn public(state: &Self::State) -> impl Serialize + '_ {
        // The document the applications read model holds: no secret hash.
        state.as_ref().and_then(ApplicationView::of)
    }
}

/// A user's sign-in attempts (`signin-<user id>`), published with the user's other changes
/// (same topic, same key: in order with them).
pub struct SignInAttempts;

impl Subject for SignInAttempts {
    const CATEGORY: &'static str = SignIns::CATEGORY;
    const KIND: &'static str = "signin";
    type Event = SignInEvent;
    /// The attempts recorded so far.
    type State = u64;

    fn evolve(state: u64, _: &Decoded<SignInEvent>) -> u64 {
        state + 1
    }

    fn public(state: &u64) -> impl Serialize + '_ {
        serde_json::json!({ "attempts": state })
    }
}

/// What holds between two users (`relation-<lower id>-<higher id>`): the follows and follow
/// requests between them, and who of them blocks the other.
pub struct Relations;

impl Subject for Relations {
    const CATEGORY: &'static str = Social::CATEGORY;
    const KIND: &'static str = "relation";
    type Event = SocialEvent;
    type State = Relation;

    fn evolve(state: Relation, decoded: &Decoded<SocialEvent>) -> Relation {
        Social::evolve(state, &decoded.event)
    }

    fn public(state: &Relation) -> impl Serialize + '_ {
        let follows: Vec<_> = state
            .follows
            .iter()
            .map(|(source, follow)| {
                serde_json::json!({
                    "source": source,
                    "approved": *follow == Follow::Accepted,
                })
            })
            .collect();
        serde_json::json!({ "follows": follows, "blockers": state.blockers })
    }
}

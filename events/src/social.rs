//! The social graph: follows, follow requests and blocks between two users, as facts on one
//! stream per pair of users, `relation-<lower id>-<higher id>` ([`Pair`]).
//!
//! Everything that can hold between two people is decided on that one stream, so the rules
//! that tie a follow to a block hold under any interleaving of requests: a follow is refused
//! while its target blocks its source, and a block ends every follow and follow request between
//! the two, in both directions, in the same append (Liquid leaves pending requests standing; a
//! request from someone blocked could then still be accepted). Repeated follows, unfollows,
//! blocks and unblocks change nothing.
//!
//! Whether an account is private is the account's own fact (on the user's stream); a follow is
//! decided with what the command service read of it: a follow of a private account is a
//! request, of a public one a follow at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::metadata::{CommandContext, EventFamily};
use crate::store::UniqueClaim;
use crate::values::UserId;
use crate::{Aggregate, DomainError};

/// Two different users, in id order: the id of their relation's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    lower: UserId,
    higher: UserId,
}

impl Pair {
    /// The pair of `a` and `b`, in either order; refused for one user with themselves.
    pub fn of(a: UserId, b: UserId) -> Result<Self, DomainError> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Ok(Self {
                lower: a,
                higher: b,
            }),
            std::cmp::Ordering::Greater => Ok(Self {
                lower: b,
                higher: a,
            }),
            std::cmp::Ordering::Equal => Err(DomainError::SelfRelation),
        }
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lower, self.higher)
    }
}

/// A follow from `source` (the follower) to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub source: UserId,
    pub target: UserId,
}

/// A follow (or request) that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    #[serde(flatten)]
    pub edge: Edge,
    /// Whether it was a follow, counted in the two users' follower and following counts, and
    /// not a request.
    pub accepted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SocialEvent {
    /// `source` follows `target`, a public account, from now on.
    Followed(Edge),
    /// `source` asked to follow `target`, a private account.
    FollowRequested(Edge),
    /// `target` accepted `source`'s request (or made the account public): `source` follows.
    FollowRequestAccepted(Edge),
    /// `source` stopped following `target`, or withdrew the request.
    Unfollowed(Ended),
    /// The follow (or request) of `source` to `target` was ended by `target` removing the
    /// follower, or by a block between the two.
    FollowRemoved(Ended),
    /// `source` blocks `target`.
    Blocked(Edge),
    /// `source` no longer blocks `target`.
    Unblocked(Edge),
}

impl EventFamily for SocialEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "Followed",
        "FollowRequested",
        "FollowRequestAccepted",
        "Unfollowed",
        "FollowRemoved",
        "Blocked",
        "Unblocked",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Followed(_) => "Followed",
            Self::FollowRequested(_) => "FollowRequested",
            Self::FollowRequestAccepted(_) => "FollowRequestAccepted",
            Self::Unfollowed(_) => "Unfollowed",
            Self::FollowRemoved(_) => "FollowRemoved",
            Self::Blocked(_) => "Blocked",
            Self::Unblocked(_) => "Unblocked",
        }
    }
}

impl SocialEvent {
    /// The follower (or blocker) and the followed (or blocked) the event is about.
    pub fn edge(&self) -> &Edge {
        match self {
            Self::Followed(edge)
            | Self::FollowRequested(edge)
            | Self::FollowRequestAccepted(edge)
            | Self::Blocked(edge)
            | Self::Unblocked(edge) => edge,
            Self::Unfollowed(ended) | Self::FollowRemoved(ended) => &ended.edge,
        }
    }

    /// How the event moves the two users' counts: `(user, following, followers)` for each
    /// whose counts change. Only accepted follows count, as in Liquid.
    pub fn count_changes(&self) -> Vec<(UserId, i64, i64)> {
        let counted = |edge: &Edge, by: i64| vec![(edge.source, by, 0), (edge.target, 0, by)];
        match self {
            Self::Followed(edge) | Self::FollowRequestAccepted(edge) => counted(edge, 1),
            Self::Unfollowed(ended) | Self::FollowRemoved(ended) if ended.accepted => {
                counted(&ended.edge, -1)
            }
            _ => Vec::new(),
        }
    }
}

/// Where a follow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    Requested,
    Accepted,
}

/// What holds between the two users of a pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relation {
    /// The follows between them, by follower.
    pub follows: BTreeMap<UserId, Follow>,
    /// Those of the two who block the other.
    pub blockers: BTreeSet<UserId>,
}

#[derive(Debug, Clone)]
pub enum SocialCommand {
    /// Follow, as a request when the target's account is private.
    Follow {
        edge: Edge,
        target_private: bool,
    },
    /// Stop following, or withdraw the request.
    Unfollow(Edge),
    /// The target accepts the source's request.
    Accept(Edge),
    /// The target removes the source as a follower (or refuses the request).
    RemoveFollower(Edge),
    Block(Edge),
    Unblock(Edge),
}

/// The relation between two users.
#[derive(Debug, Clone, Copy, Default)]
pub struct Social;

impl Aggregate for Social {
    type Id = Pair;
    type State = Relation;
    type Command = SocialCommand;
    type Event = SocialEvent;

    const CATEGORY: &'static str = "relation";

    fn decide(
        state: &Relation,
        command: SocialCommand,
        _: &CommandContext,
    ) -> Result<Vec<SocialEvent>, DomainError> {
        use SocialCommand as C;
        use SocialEvent as E;
        let follow = |edge: &Edge| state.follows.get(&edge.source).copied();
        let ended = |edge: Edge, follow: Follow| Ended {
            edge,
            accepted: follow == Follow::Accepted,
        };
        Ok(match command {
            C::Follow { edge, .. } if state.blockers.contains(&edge.target) => {
                return Err(DomainError::Blocked)
            }
            C::Follow { edge, .. } if follow(&edge).is_some() => vec![],
            C::Follow {
                edge,
                target_private: true,
            } => vec![E::FollowRequested(edge)],
            C::Follow { edge, .. } => vec![E::Followed(edge)],
            C::Unfollow(edge) => match follow(&edge) {
                Some(follow) => vec![E::Unfollowed(ended(edge, follow))],
                None => vec![],
            },
            C::Accept(edge) => match follow(&edge) {
                Some(Follow::Requested) => vec![E::FollowRequestAccepted(edge)],
                Some(Follow::Accepted) => vec![],
                None => return Err(DomainError::NotFound),
            },
            C::RemoveFollower(edge) => match follow(&edge) {
                Some(follow) => vec![E::FollowRemoved(ended(edge, follow))],
                None => return Err(DomainError::NotFound),
            },
            C::Block(edge) if state.blockers.contains(&edge.source) => vec![],
            C::Block(edge) => {
                // Every follow between the two ends with the block, the blocker's own too.
                let removed = state.follows.iter().map(|(&source, &follow)| {
                    let target = if source == edge.source {
                        edge.target
                    } else {
                        edge.source
                    };
                    E::FollowRemoved(ended(Edge { source, target }, follow))
                });
                removed.chain([E::Blocked(edge)]).collect()
            }
            C::Unblock(edge) if state.blockers.contains(&edge.source) => {
                vec![E::Unblocked(edge)]
            }
            C::Unblock(_) => vec![],
        })
    }

    fn evolve(mut state: Relation, event: &SocialEvent) -> Relation {
        use SocialEvent as E;
        match event {
            E::Followed(edge) | E::FollowRequestAccepted(edge) => {
                state.follows.insert(edge.source, Follow::Accepted);
            }
            E::FollowRequested(edge) => {
                state.follows.insert(edge.source, Follow::Requested);
            }
            E::Unfollowed(ended) | E::FollowRemoved(ended) => {
                state.follows.remove(&ended.edge.source);
            }
            E::Blocked(edge) => {
                state.blockers.insert(edge.source);
            }
            E::Unblocked(edge) => {
                state.blockers.remove(&edge.source);
            }
        }
        state
    }

    fn unique_values(_: &Relation) -> BTreeSet<UniqueClaim> {
        BTreeSet::new()
    }
}

#[cfg(test)]
mod tests;

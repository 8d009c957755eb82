use uuid::Uuid;

use super::*;
use crate::testing::given;

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

/// Ann (1) and Bob (2).
fn ann_to_bob() -> Edge {
    Edge {
        source: user(1),
        target: user(2),
    }
}

fn bob_to_ann() -> Edge {
    Edge {
        source: user(2),
        target: user(1),
    }
}

fn ended(edge: Edge, accepted: bool) -> Ended {
    Ended { edge, accepted }
}

fn follow(edge: Edge, target_private: bool) -> SocialCommand {
    SocialCommand::Follow {
        edge,
        target_private,
    }
}

#[test]
fn a_pair_is_the_same_stream_from_either_side_and_never_one_user_alone() {
    let (ann, bob) = (user(1), user(2));
    assert_eq!(Pair::of(ann, bob), Pair::of(bob, ann));
    assert_eq!(
        Social::stream_name(&Pair::of(bob, ann).unwrap()),
        format!("relation-{ann}-{bob}")
    );
    assert_eq!(Pair::of(ann, ann), Err(DomainError::SelfRelation));
}

#[test]
fn a_public_account_is_followed_at_once_a_private_one_is_asked() {
    given::<Social>([])
        .when(follow(ann_to_bob(), false))
        .then([SocialEvent::Followed(ann_to_bob())]);
    let state = given::<Social>([])
        .when(follow(ann_to_bob(), true))
        .then([SocialEvent::FollowRequested(ann_to_bob())])
        .state_after();
    assert_eq!(state.follows[&user(1)], Follow::Requested);
    given::<Social>([SocialEvent::FollowRequested(ann_to_bob())])
        .when(SocialCommand::Accept(ann_to_bob()))
        .then([SocialEvent::FollowRequestAccepted(ann_to_bob())]);
}

#[test]
fn repeated_follows_unfollows_accepts_blocks_and_unblocks_change_nothing() {
    let following = [SocialEvent::Followed(ann_to_bob())];
    given::<Social>(following.clone())
        .when(follow(ann_to_bob(), true))
        .then_nothing();
    given::<Social>([SocialEvent::FollowRequested(ann_to_bob())])
        .when(follow(ann_to_bob(), false))
        .then_nothing();
    given::<Social>(following.clone())
        .when(SocialCommand::Accept(ann_to_bob()))
        .then_nothing();
    given::<Social>([])
        .when(SocialCommand::Unfollow(ann_to_bob()))
        .then_nothing();
    given::<Social>([SocialEvent::Blocked(ann_to_bob())])
        .when(SocialCommand::Block(ann_to_bob()))
        .then_nothing();
    given::<Social>([])
        .when(SocialCommand::Unblock(ann_to_bob()))
        .then_nothing();
    // Each direction is its own: Bob may follow Ann back.
    given::<Social>(following)
        .when(follow(bob_to_ann(), false))
        .then([SocialEvent::Followed(bob_to_ann())]);
}

#[test]
fn a_follow_is_refused_while_its_target_blocks_the_source() {
    given::<Social>([SocialEvent::Blocked(bob_to_ann())])
        .when(follow(ann_to_bob(), false))
        .then_error(DomainError::Blocked);
    // As in Liquid, the blocker is not stopped by their own block.
    given::<Social>([SocialEvent::Blocked(ann_to_bob())])
        .when(follow(ann_to_bob(), false))
        .then([SocialEvent::Followed(ann_to_bob())]);
    given::<Social>([
        SocialEvent::Blocked(bob_to_ann()),
        SocialEvent::Unblocked(bob_to_ann()),
    ])
    .when(follow(ann_to_bob(), false))
    .then([SocialEvent::Followed(ann_to_bob())]);
}

#[test]
fn a_block_ends_every_follow_and_request_between_the_two() {
    let state = given::<Social>([
        SocialEvent::Followed(ann_to_bob()),
        SocialEvent::FollowRequested(bob_to_ann()),
    ])
    .when(SocialCommand::Block(bob_to_ann()))
    .then([
        SocialEvent::FollowRemoved(ended(ann_to_bob(), true)),
        SocialEvent::FollowRemoved(ended(bob_to_ann(), false)),
        SocialEvent::Blocked(bob_to_ann()),
    ])
    .state_after();
    assert!(state.follows.is_empty());
    assert_eq!(state.blockers, BTreeSet::from([user(2)]));
}

#[test]
fn only_an_existing_request_is_accepted_and_only_a_follower_removed() {
    given::<Social>([])
        .when(SocialCommand::Accept(ann_to_bob()))
        .then_error(DomainError::NotFound);
    given::<Social>([])
        .when(SocialCommand::RemoveFollower(ann_to_bob()))
        .then_error(DomainError::NotFound);
    given::<Social>([SocialEvent::FollowRequested(ann_to_bob())])
        .when(SocialCommand::RemoveFollower(ann_to_bob()))
        .then([SocialEvent::FollowRemoved(ended(ann_to_bob(), false))]);
    given::<Social>([SocialEvent::Followed(ann_to_bob())])
        .when(SocialCommand::Unfollow(ann_to_bob()))
        .then([SocialEvent::Unfollowed(ended(ann_to_bob(), true))]);
    given::<Social>([SocialEvent::FollowRequested(ann_to_bob())])
        .when(SocialCommand::Unfollow(ann_to_bob()))
        .then([SocialEvent::Unfollowed(ended(ann_to_bob(), false))]);
}

#[test]
fn the_events_read_as_liquid_names_the_two_sides() {
    let json = serde_json::to_value(SocialEvent::Blocked(ann_to_bob())).unwrap();
    assert_eq!(json["type"], "Blocked");
    assert_eq!(json["data"]["source"], user(1).to_string());
    assert_eq!(json["data"]["target"], user(2).to_string());
    let json = serde_json::to_value(SocialEvent::Unfollowed(ended(ann_to_bob(), true))).unwrap();
    assert_eq!(
        json["data"],
        serde_json::json!({"source": user(1), "target": user(2), "accepted": true})
    );
}

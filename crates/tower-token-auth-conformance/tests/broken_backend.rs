//! The kit catches check-then-act backends: a copy of the docs' mutex-
//! guarded backend whose method checks, lets go of its lock, yields, locks
//! again and acts on the stale check makes the race behaviour of that
//! method fail, with a message that names the method and the guarantee.
//! The same backend without the fault passes the whole kit.

mod support;

use std::sync::Arc;

use tower_token_auth::token::ManualClock;
use tower_token_auth::PayRequestScopes;
use tower_token_auth_conformance::{self as kit, Harness, Violation};

use support::{Faults, RowStore};

fn broken(faults: Faults) -> Harness<RowStore<PayRequestScopes>> {
    Harness::new(RowStore::with(faults))
}

fn assert_starts_with(violation: &Violation, expected: &str) {
    let message = violation.to_string();
    assert!(
        message.starts_with(expected),
        "expected a message starting with\n  {expected}\ngot\n  {message}"
    );
    assert!(
        violation.schedule().is_some(),
        "the message names the schedule: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_then_act_exchange_is_caught() {
    let violation = kit::exchanges_of_one_refresh_token_have_one_winner(broken(Faults {
        exchange: true,
        ..Faults::default()
    }))
    .await
    .expect_err("two exchanges of one refresh token both succeed");
    assert_starts_with(
        &violation,
        "TokenBackend::exchange: of two concurrent exchanges of one refresh token exactly one \
         must be Exchanged and the other AlreadySpent; got [Exchanged, Exchanged] (schedule: \
         second call started after 0 polls of the first, then alternating polls)",
    );
    assert_eq!(violation.method(), "TokenBackend::exchange");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_then_act_exchange_is_caught_against_a_family_revocation() {
    let violation = kit::revoke_family_and_exchange_of_one_family_are_serialised(broken(Faults {
        exchange: true,
        ..Faults::default()
    }))
    .await
    .expect_err("an exchange stores a live pair into a revoked family");
    assert_starts_with(
        &violation,
        "TokenBackend::revoke_family with TokenBackend::exchange: revoke_family and exchange of \
         one family are serialised",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_family_that_revokes_a_stale_member_list_is_caught() {
    let violation = kit::revoke_family_and_exchange_of_one_family_are_serialised(broken(Faults {
        revoke_family: true,
        ..Faults::default()
    }))
    .await
    .expect_err("a pair stored during the revocation lives on");
    assert_starts_with(
        &violation,
        "TokenBackend::revoke_family with TokenBackend::exchange: revoke_family and exchange of \
         one family are serialised: the revocation runs before the exchange (which then answers \
         NotLive and stores nothing) or after it (and revokes the pair the exchange stored); got \
         exchange answered Exchanged, revoke_family returned 2 records, and the new access token \
         the exchange stored is live (schedule: first call exchange, second call revoke_family; \
         second call started after 0 polls of the first, then alternating polls)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_scopes_that_writes_back_a_stale_record_is_caught() {
    let violation =
        kit::update_scopes_racing_a_revocation_never_revives_the_token(broken(Faults {
            update_scopes: true,
            ..Faults::default()
        }))
        .await
        .expect_err("a scope change revives a revoked token");
    assert_starts_with(
        &violation,
        "TokenBackend::update_scopes: the check and the write are one atomic step: a scope \
         change racing a revocation never revives the token; got revoke returned the record \
         revoked, update_scopes answered Some, and get then returns it with revoked_at None \
         (schedule: first call update_scopes, second call revoke; second call started after 1 \
         poll of the first",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_then_act_revoke_is_caught() {
    let violation = kit::concurrent_revocations_of_one_token_have_one_winner(broken(Faults {
        revoke: true,
        ..Faults::default()
    }))
    .await
    .expect_err("two revocations of one token both win");
    assert_starts_with(
        &violation,
        "TokenBackend::revoke: of concurrent revocations of one id exactly one returns Some; got \
         [Some, Some] (schedule: second call started after 0 polls of the first, then \
         alternating polls)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_race_behaviours_pass_on_the_correct_backend() {
    let correct = || Harness::new(RowStore::<PayRequestScopes>::correct());
    kit::exchanges_of_one_refresh_token_have_one_winner(correct())
        .await
        .unwrap();
    kit::revoke_family_and_exchange_of_one_family_are_serialised(correct())
        .await
        .unwrap();
    kit::update_scopes_racing_a_revocation_never_revives_the_token(correct())
        .await
        .unwrap();
    kit::concurrent_revocations_of_one_token_have_one_winner(correct())
        .await
        .unwrap();
    kit::record_use_racing_a_revocation_keeps_both_writes(correct())
        .await
        .unwrap();
}

/// A behaviour is a `Send` future: it can run in a task of its own.
#[test]
fn behaviours_are_send_futures() {
    fn send<T: Send>(_: T) {}
    let h = || Harness::new(RowStore::<PayRequestScopes>::correct());
    send(kit::exchanges_of_one_refresh_token_have_one_winner(h()));
    send(kit::revoke_family_and_exchange_of_one_family_are_serialised(h()));
    send(kit::update_scopes_racing_a_revocation_never_revives_the_token(h()));
    send(kit::concurrent_revocations_of_one_token_have_one_winner(h()));
    send(kit::record_use_racing_a_revocation_keeps_both_writes(h()));
    send(kit::racing_exchanges_end_with_the_family_revoked(h()));
    send(kit::issue_find_list_get_and_revoke(h()));
    send(kit::expiry_is_judged_at_the_boundary(h()));
    send(kit::client_registrations_are_stored_capped_and_expire(h()));
}

/// The whole kit, through the public macro, on the correct backend: its
/// lock held across an `.await` makes the other call of each race wait,
/// and no schedule deadlocks.
mod correct {
    use super::*;

    async fn fresh_backend(_clock: Arc<ManualClock>) -> RowStore<PayRequestScopes> {
        RowStore::correct()
    }

    tower_token_auth_conformance::conformance_tests!(fresh_backend);
}

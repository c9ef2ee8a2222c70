//! The refresh exchange through the manager: rotation, reuse detection,
//! narrowing, bounded storage, and the races where the manager's own check
//! is stale by the time the backend runs.

use std::time::Duration;

use tower_token_auth::audit::AuditEvent;
use tower_token_auth::bitflags::Flags as _;
use tower_token_auth::manager::{GrantError, InvalidGrantReason};
use tower_token_auth::store::TokenBackend;
use tower_token_auth::token::{TokenDigest, TokenId, TokenKind, TokenStatus};

use crate::picks;
use crate::violation::{ensure, ensure_eq, method as m, Answer};
use crate::{start_time, Harness, Violation};

const AUDIT: &str = "TokenManager (audit)";
const REFRESH: &str = "TokenManager::refresh";

/// An exchange spends the refresh token and stores a new pair of the same
/// family; the new refresh token rotates in turn; the grant keeps its two
/// newest access tokens.
pub async fn refresh_rotates_within_the_family<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let scopes = picks::all::<B::Scopes>();
    let tokens = &h.tokens;
    let pair = tokens
        .issue_pair("agent", "u1", Some(scopes))
        .await
        .answer(m::INSERT)?;
    let family =
        pair.refresh.record.family.ok_or_else(|| {
            Violation::new("TokenManager::issue_pair", "a pair has a family", "None")
        })?;
    ensure_eq!(
        family.started_at,
        start_time(),
        "TokenManager::issue_pair",
        "a family starts when its first pair is issued"
    );
    h.clock.advance(Duration::from_secs(3600));
    h.events.take();

    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    match &h.events.take()[..] {
        [AuditEvent::TokenCreated { .. }, AuditEvent::TokenCreated { .. }, AuditEvent::RefreshRotated {
            old,
            access,
            refresh,
            owner,
        }] => ensure_eq!(
            (*old, *access, *refresh, owner.as_str()),
            (
                pair.refresh.record.id,
                next.access.record.id,
                next.refresh.record.id,
                "u1"
            ),
            AUDIT,
            "a rotation is audited as two token_created and one refresh_rotated"
        ),
        other => {
            return Err(Violation::new(
                AUDIT,
                "a rotation is audited as two token_created and one refresh_rotated",
                format!("{other:?}"),
            ))
        }
    }
    ensure_eq!(
        (
            next.access.record.kind,
            next.refresh.record.kind,
            next.access.record.family,
            next.refresh.record.family,
            next.access.record.scopes,
            next.access.record.name(),
            next.access.record.created_at,
        ),
        (
            TokenKind::Access,
            TokenKind::Refresh,
            Some(family),
            Some(family),
            scopes,
            "agent",
            h.now(),
        ),
        REFRESH,
        "a rotation mints an access and a refresh token of the same family, scopes and name"
    );

    let old = h
        .record(
            &pair.refresh.secret.digest(),
            "keeps the spent refresh token (reuse detection needs it)",
        )
        .await?;
    ensure_eq!(
        (old.spent_at, old.is_revoked()),
        (Some(h.now()), false),
        m::EXCHANGE,
        "sets the presented refresh token's spent_at to Exchange::at, and does not revoke it"
    );
    for token in [&next.access, &next.refresh] {
        let stored = h
            .record(
                &token.secret.digest(),
                "finds the pair an exchange stored once it returned",
            )
            .await?;
        ensure_eq!(
            *stored,
            *token.record,
            m::EXCHANGE,
            "stores Exchange::access and Exchange::refresh exactly as given"
        );
    }
    // The access token before the new one stays valid (requests on their
    // way); the grant keeps two.
    let before = h
        .record(
            &pair.access.secret.digest(),
            "keeps the newest Exchange::retain_access access tokens (here 2)",
        )
        .await?;
    ensure!(
        !before.is_revoked(),
        m::EXCHANGE,
        "revokes nothing",
        "the previous access token revoked"
    );

    let unknown = tokens.refresh(&TokenDigest::of("unknown"), None).await;
    ensure!(
        matches!(
            unknown,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
        ),
        m::FIND,
        "answers None for an unknown digest",
        "{unknown:?}"
    );
    let access = tokens.refresh(&next.access.secret.digest(), None).await;
    ensure!(
        matches!(
            access,
            Err(GrantError::InvalidGrant(
                InvalidGrantReason::NotARefreshToken
            ))
        ),
        m::FIND,
        "returns the record's kind as it was stored",
        "an access token exchanged: {access:?}"
    );
    let third = tokens
        .refresh(&next.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    let ancient = h.find(&pair.access.secret.digest()).await?;
    ensure!(
        ancient.is_none(),
        m::EXCHANGE,
        "deletes the family's access tokens but the newest Exchange::retain_access (here 2)",
        "an access token two rotations old is still stored"
    );
    let newest = h
        .record(&third.access.secret.digest(), "stores the new pair")
        .await?;
    ensure!(
        !newest.is_revoked(),
        m::EXCHANGE,
        "stores the new pair live",
        "the new access token revoked"
    );
    Ok(())
}

/// A refresh token that belongs to no family is never exchanged: its reuse
/// could not revoke a grant.
pub async fn refresh_token_of_no_family_is_refused<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let pair = h
        .tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let mut orphan = (*pair.refresh.record).clone();
    orphan.id = TokenId::random().answer("TokenId::random")?;
    orphan.digest = TokenDigest::of("pr_rt_orphan");
    orphan.family = None;
    h.tokens
        .backend()
        .insert(&[orphan])
        .await
        .answer(m::INSERT)?;
    let refused = h
        .tokens
        .refresh(&TokenDigest::of("pr_rt_orphan"), None)
        .await;
    ensure!(
        matches!(
            refused,
            Err(GrantError::InvalidGrant(InvalidGrantReason::NoFamily))
        ),
        m::FIND,
        "returns the record's family as it was stored (none)",
        "{refused:?}"
    );
    let still = h
        .record(&TokenDigest::of("pr_rt_orphan"), "keeps every record")
        .await?;
    ensure!(
        still.spent_at.is_none(),
        REFRESH,
        "a refresh token of no family is never spent",
        "spent at {:?}",
        still.spent_at
    );
    Ok(())
}

/// A spent refresh token presented again revokes its whole family, and is
/// audited as the critical event it is.
pub async fn reusing_a_spent_refresh_token_revokes_the_family<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let tokens = &h.tokens;
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    h.events.take();
    let reuse = tokens.refresh(&pair.refresh.secret.digest(), None).await;
    ensure!(
        matches!(
            reuse,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ),
        m::FIND,
        "returns a spent refresh token with its spent_at",
        "a replay answered {reuse:?}"
    );
    let family = pair.refresh.record.family.map(|f| f.id);
    match &h.events.take()[..] {
        [AuditEvent::FamilyRevokedOnReuse {
            family: f,
            presented,
            owner,
            tokens: n,
        }] => ensure_eq!(
            (Some(*f), *presented, owner.as_str(), *n),
            (family, pair.refresh.record.id, "u1", 4),
            m::REVOKE_FAMILY,
            "revokes and returns every record of the family that is not revoked yet \
             (two access tokens, the spent and the live refresh token)"
        ),
        other => {
            return Err(Violation::new(
                AUDIT,
                "one family_revoked_on_reuse event per replay",
                format!("{other:?}"),
            ))
        }
    }
    for token in [&pair.access, &pair.refresh, &next.access, &next.refresh] {
        h.ensure_revoked(
            &token.secret.digest(),
            m::REVOKE_FAMILY,
            "a replay revokes every record of the family",
        )
        .await?;
    }
    let after = tokens.refresh(&next.refresh.secret.digest(), None).await;
    ensure!(
        matches!(
            after,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
        ),
        m::EXCHANGE,
        "a revoked refresh token is never exchanged",
        "{after:?}"
    );
    Ok(())
}

/// `scope` may narrow the access token, never widen it; a refused widening
/// spends nothing; the new refresh token keeps the old one's scope.
///
/// A scope set too small to narrow (fewer than three scopes without a
/// proper subset) checks the refusal of a widening only.
pub async fn refresh_scope_may_narrow_but_not_widen<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let tokens = &h.tokens;
    let Some(n) = picks::narrowing::<B::Scopes>() else {
        return Ok(());
    };
    let pair = tokens
        .issue_pair("agent", "u1", Some(n.grant))
        .await
        .answer(m::INSERT)?;
    let digest = pair.refresh.secret.digest();
    for wider in [n.outside, n.grant.union(n.outside)] {
        let refused = tokens.refresh(&digest, Some(wider)).await;
        ensure!(
            matches!(refused, Err(GrantError::InvalidScope)),
            REFRESH,
            "a refresh never widens the grant's scopes",
            "{refused:?}"
        );
    }
    let unspent = h.record(&digest, "keeps every record").await?;
    ensure!(
        unspent.spent_at.is_none(),
        REFRESH,
        "a refused widening spends nothing",
        "spent"
    );
    let narrowed = tokens
        .refresh(&digest, Some(n.inside))
        .await
        .answer(m::EXCHANGE)?;
    ensure_eq!(
        (
            narrowed.access.record.scopes,
            narrowed.refresh.record.scopes
        ),
        (n.inside, n.grant),
        REFRESH,
        "a narrowed refresh narrows the access token; the refresh token keeps the grant's"
    );
    let again = tokens
        .refresh(&narrowed.refresh.secret.digest(), Some(B::Scopes::empty()))
        .await
        .answer(m::EXCHANGE)?;
    ensure_eq!(
        again.access.record.scopes,
        n.grant,
        m::FIND,
        "returns the refresh token's scopes as they were stored"
    );
    Ok(())
}

/// Two exchanges of one refresh token, the first parked by the harness
/// between the manager's check and the backend's atomic step, the second
/// completing meanwhile. The backend must see the token spent: the parked
/// one is a replay, and the family (with the winner's pair) ends revoked.
pub async fn racing_exchanges_end_with_the_family_revoked<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let pair = h
        .tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let digest = pair.refresh.secret.digest();
    let mut parked = h.tokens.backend().park_next_exchange();
    let mut first = {
        let tokens = h.tokens.clone();
        tokio::spawn(async move { tokens.refresh(&digest, None).await })
    };
    parked.reached_in(&mut first).await?;
    let winner = h.tokens.refresh(&digest, None).await.answer(m::EXCHANGE)?;
    parked.release();
    let loser = first
        .await
        .map_err(|e| Violation::new(m::EXCHANGE, "answers (never panics)", format!("{e}")))?;
    ensure!(
        matches!(
            loser,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ),
        m::EXCHANGE,
        "answers AlreadySpent for a refresh token spent after the manager's check (the parked \
         exchange is then a replay)",
        "{loser:?}"
    );
    for token in [&pair.access, &winner.access, &winner.refresh] {
        h.ensure_revoked(
            &token.secret.digest(),
            m::REVOKE_FAMILY,
            "a replay revokes every record of the family, the winner's pair included",
        )
        .await?;
    }
    let live: Vec<_> = h
        .tokens
        .list("u1")
        .await
        .answer(m::LIST)?
        .into_iter()
        .filter(|t| t.status == TokenStatus::Active)
        .map(|t| t.id)
        .collect();
    ensure!(
        live.is_empty(),
        m::REVOKE_FAMILY,
        "a replay leaves nothing of the family live",
        "live: {live:?}"
    );
    Ok(())
}

/// An exchange parked by the harness after the manager's check while the
/// family is revoked: when it reaches the backend, it must store nothing
/// live.
pub async fn exchange_racing_a_family_revocation_stores_nothing_live<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let pair = h
        .tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let digest = pair.refresh.secret.digest();
    let family = pair
        .refresh
        .record
        .family
        .ok_or_else(|| Violation::new("TokenManager::issue_pair", "a pair has a family", "None"))?
        .id;
    let mut parked = h.tokens.backend().park_next_exchange();
    let mut exchange = {
        let tokens = h.tokens.clone();
        tokio::spawn(async move { tokens.refresh(&digest, None).await })
    };
    parked.reached_in(&mut exchange).await?;
    let revoked = h
        .tokens
        .revoke_family(family)
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure_eq!(
        revoked,
        2,
        m::REVOKE_FAMILY,
        "revokes and returns every record of the family"
    );
    parked.release();
    let outcome = exchange
        .await
        .map_err(|e| Violation::new(m::EXCHANGE, "answers (never panics)", format!("{e}")))?;
    ensure!(
        matches!(
            outcome,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
        ),
        m::EXCHANGE,
        "answers NotLive for a refresh token revoked after the manager's check",
        "{outcome:?}"
    );
    let live: Vec<_> = h
        .tokens
        .list("u1")
        .await
        .answer(m::LIST)?
        .into_iter()
        .filter(|t| t.status == TokenStatus::Active)
        .map(|t| t.id)
        .collect();
    ensure!(
        live.is_empty(),
        m::EXCHANGE,
        "an exchange of a revoked refresh token stores nothing",
        "a revoked grant lives on: {live:?}"
    );
    Ok(())
}

/// Replays, an exchange of the live token and family revocations all at
/// once, in tasks of their own, without forcing an order: every call ends
/// as a grant answer (never a store error such as a deadlock), and the
/// family ends revoked, a pair won during the revocation included.
pub async fn replays_exchanges_and_revocations_at_once_leave_nothing_live<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    for round in 0..10 {
        let first = h
            .tokens
            .issue_pair("agent", "u1", None)
            .await
            .answer(m::INSERT)?;
        let spent_0 = first.refresh.secret.digest();
        let second = h.tokens.refresh(&spent_0, None).await.answer(m::EXCHANGE)?;
        let spent_1 = second.refresh.secret.digest();
        let third = h.tokens.refresh(&spent_1, None).await.answer(m::EXCHANGE)?;
        let live = third.refresh.secret.digest();
        let family = third.refresh.record.family.map(|f| f.id);
        let exchanges: Vec<_> = [spent_0, live, spent_1, spent_0]
            .into_iter()
            .map(|digest| {
                let tokens = h.tokens.clone();
                tokio::spawn(async move { tokens.refresh(&digest, None).await })
            })
            .collect();
        let revocations: Vec<_> = (0..2)
            .map(|_| {
                let tokens = h.tokens.clone();
                let family = family.unwrap_or(tower_token_auth::token::FamilyId::from_u64(0));
                tokio::spawn(async move { tokens.revoke_family(family).await })
            })
            .collect();
        let during = format!("round {round} of 10: four exchanges and two revocations at once");
        for task in exchanges {
            let answer = task.await.map_err(|e| {
                Violation::new(m::EXCHANGE, "answers (never panics)", format!("{e}"))
                    .during(&during)
            })?;
            match answer {
                Ok(_)
                | Err(GrantError::InvalidGrant(
                    InvalidGrantReason::Reused | InvalidGrantReason::Revoked,
                )) => {}
                Err(other) => {
                    return Err(Violation::new(
                        m::EXCHANGE,
                        "answers every exchange racing replays and revocations (no store error, \
                         no deadlock)",
                        format!("{other:?}"),
                    )
                    .during(&during))
                }
            }
        }
        for task in revocations {
            let answer = task.await.map_err(|e| {
                Violation::new(m::REVOKE_FAMILY, "answers (never panics)", format!("{e}"))
                    .during(&during)
            })?;
            answer
                .answer(m::REVOKE_FAMILY)
                .map_err(|v| v.during(&during))?;
        }
        let live: Vec<_> = h
            .tokens
            .list("u1")
            .await
            .answer(m::LIST)?
            .into_iter()
            .filter(|t| t.family == family && t.status == TokenStatus::Active)
            .map(|t| t.id)
            .collect();
        if !live.is_empty() {
            return Err(Violation::new(
                "TokenBackend::revoke_family with TokenBackend::exchange",
                "revoke_family and exchange of one family are serialised: a revoked family \
                 keeps no live token",
                format!("live: {live:?}"),
            )
            .during(&during));
        }
    }
    Ok(())
}

/// One grant rotated a thousand times costs a bounded number of records:
/// its two newest access tokens, its refresh token and the reuse window of
/// spent ones; its listing is a handful of rows.
pub async fn a_grant_stays_bounded_however_often_it_rotates<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let tokens = h.manager_with(|p| p.reuse_window(4));
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let mut current = pair.refresh;
    let mut spent = Vec::new();
    for _ in 0..1_000 {
        h.clock.advance(Duration::from_millis(1));
        let next = tokens
            .refresh(&current.secret.digest(), None)
            .await
            .answer(m::EXCHANGE)?;
        spent.push(current.secret.digest());
        current = next.refresh;
    }
    let stored = tokens.backend().list("u1").await.answer(m::LIST)?;
    ensure_eq!(
        stored.len(),
        2 + 1 + 4,
        m::EXCHANGE,
        "deletes what the new pair supersedes (Exchange::superseded): two access tokens, the \
         refresh token and four spent ones stay"
    );
    let listed = tokens.list("u1").await.answer(m::LIST)?;
    ensure_eq!(
        listed.len(),
        4,
        "TokenManager::list",
        "a grant lists its live tokens and its latest spent refresh token"
    );
    // Within the window, reuse is detected; older spent tokens are unknown.
    let recent = spent[spent.len() - 2];
    let ancient = spent[0];
    let old = tokens.refresh(&ancient, None).await;
    ensure!(
        matches!(
            old,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
        ),
        m::EXCHANGE,
        "deletes spent refresh tokens beyond Exchange::retain_spent",
        "{old:?}"
    );
    let replay = tokens.refresh(&recent, None).await;
    ensure!(
        matches!(
            replay,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ),
        m::EXCHANGE,
        "keeps the newest Exchange::retain_spent spent refresh tokens",
        "{replay:?}"
    );
    h.ensure_revoked(
        &current.secret.digest(),
        m::REVOKE_FAMILY,
        "a replay within the window revokes the family's live refresh token",
    )
    .await
}

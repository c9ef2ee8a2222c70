//! Last use, expiry and purging.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer as _, ServiceExt as _};
use tower_token_auth::manager::{GrantError, InvalidGrantReason, IssueRequest, TokenManager};
use tower_token_auth::store::TokenBackend;
use tower_token_auth::token::{Lifetimes, TokenId, TokenKind};
use tower_token_auth::TokenAuthLayer;

use crate::violation::{ensure, ensure_eq, method as m, Answer};
use crate::{start_time, Harness, Violation};

/// The latest use wins, whatever the order of batches; unknown ids are
/// skipped.
pub async fn record_use_keeps_the_latest_time<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    const LATEST: &str = "sets last_used_at to the given time unless the stored one is later \
                          (the latest wins, whatever the order of the batch)";
    let tokens = &h.tokens;
    let a = tokens
        .issue(IssueRequest::new(TokenKind::Access, "a", "u1"))
        .await
        .answer(m::INSERT)?;
    let b = tokens
        .issue(IssueRequest::new(TokenKind::Access, "b", "u1"))
        .await
        .answer(m::INSERT)?;
    let now = h.now();
    let earlier = now - Duration::from_secs(5);
    tokens.record_use(&[]).await.answer(m::RECORD_USE)?;
    tokens
        .record_use(&[
            (a.record.id, now),
            (a.record.id, earlier),
            (b.record.id, earlier),
            (TokenId::from_u64(99), now),
        ])
        .await
        .answer(m::RECORD_USE)?;
    let last_used = |id| async move {
        tokens
            .get(id)
            .await
            .answer(m::GET)
            .map(|r| r.and_then(|r| r.last_used_at))
    };
    ensure_eq!(
        [last_used(a.record.id).await?, last_used(b.record.id).await?],
        [Some(now), Some(earlier)],
        m::RECORD_USE,
        LATEST
    );
    tokens
        .record_use(&[(a.record.id, earlier), (b.record.id, now)])
        .await
        .answer(m::RECORD_USE)?;
    ensure_eq!(
        [last_used(a.record.id).await?, last_used(b.record.id).await?],
        [Some(now), Some(now)],
        m::RECORD_USE,
        LATEST
    );
    Ok(())
}

/// Valid while `now < expires_at`: through the middleware, by the
/// manager's clock, on both sides of the boundary.
pub async fn expiry_is_judged_at_the_boundary<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let lifetime = Duration::from_secs(60);
    let issued = h
        .tokens
        .issue(IssueRequest::new(TokenKind::Access, "short", "u1").lifetime(lifetime))
        .await
        .answer(m::INSERT)?;
    let stored = h
        .record(
            &issued.secret.digest(),
            "finds every record once its insert returned",
        )
        .await?;
    ensure_eq!(
        stored.expires_at,
        start_time() + lifetime,
        m::FIND,
        "returns expires_at as it was inserted"
    );
    let token = issued.secret.expose_secret();
    h.clock
        .set(start_time() + lifetime - Duration::from_micros(1));
    ensure_eq!(
        status(&h.tokens, token).await,
        StatusCode::OK,
        m::FIND,
        "a token is valid until its expires_at: the middleware lets it through a microsecond \
         before"
    );
    h.clock.set(start_time() + lifetime);
    ensure_eq!(
        status(&h.tokens, token).await,
        StatusCode::UNAUTHORIZED,
        m::FIND,
        "a token is expired at its expires_at: the middleware refuses it then"
    );
    Ok(())
}

/// The status of a request with `token` through a [`TokenAuthLayer`] over
/// `tokens`.
async fn status<B: TokenBackend>(tokens: &TokenManager<B>, token: &str) -> StatusCode {
    let ok = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
    });
    let service = TokenAuthLayer::new(tokens.clone()).layer(ok);
    let Ok(request) = Request::get("/v1/invoices")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
    else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match service.oneshot(request).await {
        Ok(response) => response.status(),
        Err(never) => match never {},
    }
}

/// Refresh tokens expire; a family stops rotating at its age cap even while
/// its refresh token is still valid ([`InvalidGrantReason::FamilyExpired`]).
pub async fn refresh_tokens_expire_and_families_age_out<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    const REFRESH: &str = "TokenManager::refresh";
    let tokens = &h.tokens;
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let expires_at = pair.refresh.record.expires_at;
    ensure_eq!(
        expires_at,
        start_time() + Duration::from_secs(30 * 86_400),
        "TokenManager::issue_pair",
        "a refresh token lives 30 days"
    );
    h.clock.set(expires_at);
    let late = tokens.refresh(&pair.refresh.secret.digest(), None).await;
    ensure!(
        matches!(
            late,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Expired))
        ),
        m::FIND,
        "returns expires_at as it was inserted (expired at the boundary)",
        "{late:?}"
    );
    h.clock.set(expires_at - Duration::from_secs(1));
    let mut current = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    let family_end = start_time() + Duration::from_secs(90 * 86_400);
    while h.now() + Duration::from_secs(29 * 86_400) < family_end {
        ensure!(
            current.refresh.record.expires_at <= family_end,
            REFRESH,
            "no token outlives its family's age cap",
            "expires at {:?}",
            current.refresh.record.expires_at
        );
        h.clock.advance(Duration::from_secs(29 * 86_400));
        current = tokens
            .refresh(&current.refresh.secret.digest(), None)
            .await
            .answer(m::EXCHANGE)?;
    }
    ensure_eq!(
        current.refresh.record.expires_at,
        family_end,
        REFRESH,
        "the last refresh token of a family expires at the family's age cap"
    );

    // The cap itself: a manager whose cap is shorter than the refresh
    // token's remaining life (a policy tightened after the grant began).
    let pair = tokens
        .issue_pair("agent", "u2", None)
        .await
        .answer(m::INSERT)?;
    let capped = h.manager_with(|p| p.family_max_age(Duration::from_secs(86_400)));
    h.clock.advance(Duration::from_secs(86_400));
    let stored = h
        .record(&pair.refresh.secret.digest(), "keeps every record")
        .await?;
    ensure!(
        !stored.is_expired_at(h.now()),
        m::FIND,
        "returns expires_at as it was inserted",
        "expired at {:?}",
        stored.expires_at
    );
    let aged = capped.refresh(&pair.refresh.secret.digest(), None).await;
    ensure!(
        matches!(
            aged,
            Err(GrantError::InvalidGrant(InvalidGrantReason::FamilyExpired))
        ),
        m::FIND,
        "returns the family's started_at as it was inserted",
        "{aged:?}"
    );
    let unspent = h
        .record(&pair.refresh.secret.digest(), "keeps every record")
        .await?;
    ensure!(
        unspent.spent_at.is_none(),
        REFRESH,
        "a refused exchange spends nothing",
        "spent"
    );
    Ok(())
}

/// Purge deletes records dead for longer than the retention, and nothing
/// else: live tokens, and spent refresh tokens until they expire, stay.
pub async fn purge_deletes_only_what_is_dead_past_retention<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let day = Duration::from_secs(86_400);
    let tokens = h.manager_with(|p| {
        p.retention(day).lifetimes(Lifetimes {
            access: day,
            ..Lifetimes::default()
        })
    });
    let live = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "live", "u1"))
        .await
        .answer(m::INSERT)?;
    let revoked = tokens
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "revoked",
            "u1",
        ))
        .await
        .answer(m::INSERT)?;
    let expired = tokens
        .issue(IssueRequest::new(TokenKind::Access, "expired", "u1").lifetime(day))
        .await
        .answer(m::INSERT)?;
    // A grant whose access tokens (a day) die long before its refresh
    // token (30 days).
    let pair = tokens
        .issue_pair("grant", "u1", None)
        .await
        .answer(m::INSERT)?;
    let rotated = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    tokens.revoke(revoked.record.id).await.answer(m::REVOKE)?;

    h.clock.advance(day);
    ensure_eq!(
        tokens.purge().await.answer(m::PURGE)?,
        0,
        m::PURGE,
        "deletes records revoked or expired before the cutoff, not at it"
    );
    h.clock.advance(day);
    ensure_eq!(
        tokens.purge().await.answer(m::PURGE)?,
        1,
        m::PURGE,
        "deletes the record revoked before the cutoff (the expired ones expired at it)"
    );
    h.clock.advance(Duration::from_secs(1));
    ensure_eq!(
        tokens.purge().await.answer(m::PURGE)?,
        3,
        m::PURGE,
        "deletes the records expired before the cutoff: a token and a grant's two access tokens"
    );
    for gone in [&revoked, &expired, &pair.access, &rotated.access] {
        let found = h.find(&gone.secret.digest()).await?;
        ensure!(
            found.is_none(),
            m::PURGE,
            "a purged record is gone",
            "{} still found",
            gone.record.id
        );
    }
    h.record(&live.secret.digest(), "purge keeps live records")
        .await
        .map_err(|v| Violation::new(m::PURGE, "keeps every live record", v.seen().to_owned()))?;
    h.record(&pair.refresh.secret.digest(), "")
        .await
        .map_err(|_| {
            Violation::new(
                m::PURGE,
                "keeps a spent refresh token until it expires (reuse detection needs it)",
                "it was deleted",
            )
        })?;
    let stored = tokens.list("u1").await.answer(m::LIST)?;
    ensure_eq!(
        stored.len(),
        3,
        m::PURGE,
        "deletes only dead records: the live token and the grant's refresh tokens stay"
    );
    // What is left of the grant is still one family: revoking it reaches
    // the live refresh token.
    let family = rotated.refresh.record.family.map(|f| f.id);
    let Some(family) = family else {
        return Err(Violation::new(
            "TokenManager::refresh",
            "a rotated pair has a family",
            "None",
        ));
    };
    let revoked = tokens
        .revoke_family(family)
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure!(
        revoked >= 1,
        m::REVOKE_FAMILY,
        "revokes what is left of a partly purged family",
        "nothing revoked"
    );
    h.ensure_revoked(
        &rotated.refresh.secret.digest(),
        m::REVOKE_FAMILY,
        "purging part of a grant leaves the rest of it revocable",
    )
    .await
}

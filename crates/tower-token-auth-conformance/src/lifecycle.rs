//! Issuing, listing, revoking, regenerating and changing scopes, through
//! the manager over the backend under test.

use std::time::Duration;

use tower_token_auth::audit::AuditEvent;
use tower_token_auth::bitflags::Flags as _;
use tower_token_auth::manager::{IssueRequest, TokenError};
use tower_token_auth::scope::ScopeSet;
use tower_token_auth::store::TokenBackend;
use tower_token_auth::token::{FamilyId, TokenDigest, TokenId, TokenKind, TokenStatus};

use crate::picks;
use crate::violation::{ensure, ensure_eq, method as m, Answer};
use crate::{start_time, Harness, Violation};

/// The manager's duty of auditing what it does (no backend method).
const AUDIT: &str = "TokenManager (audit)";

/// A token is issued, found by digest exactly as issued, listed, got and
/// revoked once; each step is audited. An id or a digest already stored is
/// refused, never overwritten.
pub async fn issue_find_list_get_and_revoke<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let tokens = &h.tokens;
    let issued = tokens
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "u1")
                .scopes(picks::all())
                .audience(["https://api.example.com/", "https://billing.example.com/"]),
        )
        .await
        .answer(m::INSERT)?;
    tokens
        .issue(IssueRequest::new(TokenKind::Access, "other", "u2"))
        .await
        .answer(m::INSERT)?;
    match &h.events.take()[..] {
        [AuditEvent::TokenCreated { id, owner, kind }, AuditEvent::TokenCreated { .. }] => {
            ensure_eq!(
                (*id, owner.as_str(), *kind),
                (issued.record.id, "u1", TokenKind::PersonalAccess),
                AUDIT,
                "a token_created event names the new token, its owner and kind"
            );
        }
        other => {
            return Err(Violation::new(
                AUDIT,
                "one token_created event per token issued",
                format!("{other:?}"),
            ))
        }
    }

    let digest = issued.secret.digest();
    let found = h
        .record(&digest, "finds every record once its insert returned")
        .await?;
    ensure_eq!(
        *found,
        *issued.record,
        m::FIND,
        "returns the record exactly as it was inserted"
    );
    ensure_eq!(
        found.audience.len(),
        2,
        m::FIND,
        "returns the record's whole audience as it was inserted"
    );
    ensure_eq!(
        found.created_at,
        start_time(),
        m::FIND,
        "returns the record's times as they were inserted"
    );
    let unknown = h.find(&TokenDigest::of("pr_pat_unknown")).await?;
    ensure!(
        unknown.is_none(),
        m::FIND,
        "answers None for a digest that was never stored",
        "{unknown:?}"
    );

    // An id or a digest already stored is an error, never an overwrite.
    let mut same_id = (*issued.record).clone().with_name("impostor");
    same_id.digest = TokenDigest::of("pr_pat_other");
    let mut same_digest = (*issued.record).clone().with_name("impostor");
    same_digest.id = TokenId::random().answer("TokenId::random")?;
    for (what, taken) in [("the same id", same_id), ("the same digest", same_digest)] {
        let answer = tokens.backend().insert(&[taken]).await;
        ensure!(
            answer.is_err(),
            m::INSERT,
            "refuses a record whose id or digest is already stored (an error, never an overwrite)",
            "Ok for a record with {what}"
        );
    }
    ensure_eq!(
        h.record(&digest, "keeps a record when a duplicate is refused")
            .await?
            .name(),
        "MCP Billing Agent",
        m::INSERT,
        "a refused insert changes nothing"
    );
    let impostor = h.find(&TokenDigest::of("pr_pat_other")).await?;
    ensure!(
        impostor.is_none(),
        m::INSERT,
        "a refused insert stores nothing",
        "the refused record is found: {impostor:?}"
    );

    let listed = tokens.list("u1").await.answer(m::LIST)?;
    ensure_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![issued.record.id],
        m::LIST,
        "lists every record of the owner, and only those"
    );
    ensure_eq!(
        (listed[0].hint.as_str(), listed[0].name.as_str()),
        (issued.secret.hint().as_str(), "MCP Billing Agent"),
        m::LIST,
        "lists each record whole, as it was inserted"
    );
    ensure_eq!(
        listed[0].status,
        TokenStatus::Active,
        m::LIST,
        "lists a live record as active"
    );
    let got = tokens.get(issued.record.id).await.answer(m::GET)?;
    ensure_eq!(
        got.as_ref(),
        Some(&listed[0]),
        m::GET,
        "returns the record of the id, whole"
    );
    let unknown = tokens
        .get(TokenId::from_u64(u64::MAX))
        .await
        .answer(m::GET)?;
    ensure!(
        unknown.is_none(),
        m::GET,
        "answers None for an unknown id",
        "{unknown:?}"
    );

    h.clock.advance(Duration::from_secs(7));
    let revoked = tokens.revoke(issued.record.id).await.answer(m::REVOKE)?;
    ensure!(
        revoked,
        m::REVOKE,
        "revokes a live token and returns it",
        "None"
    );
    let again = tokens.revoke(issued.record.id).await.answer(m::REVOKE)?;
    ensure!(
        !again,
        m::REVOKE,
        "answers None for a token that is already revoked",
        "Some"
    );
    let unknown = tokens
        .revoke(TokenId::from_u64(7))
        .await
        .answer(m::REVOKE)?;
    ensure!(
        !unknown,
        m::REVOKE,
        "answers None for an unknown id",
        "Some"
    );
    match &h.events.take()[..] {
        [AuditEvent::TokenRevoked { id, owner }] => ensure_eq!(
            (*id, owner.as_str()),
            (issued.record.id, "u1"),
            AUDIT,
            "a token_revoked event names the token and its owner"
        ),
        other => {
            return Err(Violation::new(
                AUDIT,
                "one token_revoked event per token revoked (none for a no-op)",
                format!("{other:?}"),
            ))
        }
    }
    ensure_eq!(
        h.record(&digest, "keeps a revoked record")
            .await?
            .revoked_at,
        Some(h.now()),
        m::REVOKE,
        "marks the record revoked at the given time, as the next find sees it"
    );
    let got = tokens
        .get(issued.record.id)
        .await
        .answer(m::GET)?
        .ok_or_else(|| Violation::new(m::GET, "returns a revoked record", "None"))?;
    ensure_eq!(
        (got.revoked_at, got.status),
        (Some(h.now()), TokenStatus::Revoked),
        m::GET,
        "returns the record at least as new as every write that returned before"
    );
    Ok(())
}

/// Listings are one owner's, oldest first (ties by id), dead tokens
/// included, each with its status.
pub async fn listings_are_oldest_first_per_owner_with_a_status<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let tokens = &h.tokens;
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let issued = tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, name, "owner"))
            .await
            .answer(m::INSERT)?;
        ids.push(issued.record.id);
        h.clock.advance(Duration::from_secs(1));
    }
    let short = tokens
        .issue(
            IssueRequest::new(TokenKind::Access, "short", "owner").lifetime(Duration::from_secs(1)),
        )
        .await
        .answer(m::INSERT)?;
    let other = tokens
        .issue(IssueRequest::new(
            TokenKind::Access,
            "same-instant",
            "owner",
        ))
        .await
        .answer(m::INSERT)?;
    let pair = tokens
        .issue_pair("grant", "owner", None)
        .await
        .answer(m::INSERT)?;
    // Four tokens created in the same instant: ordered by id.
    let mut same = [
        short.record.id,
        other.record.id,
        pair.access.record.id,
        pair.refresh.record.id,
    ];
    same.sort();
    ids.extend(same);
    tokens.revoke(ids[1]).await.answer(m::REVOKE)?;
    tokens
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "x",
            "someone-else",
        ))
        .await
        .answer(m::INSERT)?;
    h.clock.advance(Duration::from_secs(1));
    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    let mut next_ids = [next.access.record.id, next.refresh.record.id];
    next_ids.sort();
    ids.extend(next_ids);

    let listed = tokens.list("owner").await.answer(m::LIST)?;
    ensure_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids,
        m::LIST,
        "lists every record of the owner (dead ones and a new pair included) and only those, \
         with its created_at and id as stored"
    );
    let status = |id: TokenId| listed.iter().find(|t| t.id == id).map(|t| t.status);
    ensure_eq!(
        [
            status(ids[0]),
            status(ids[1]),
            status(short.record.id),
            status(pair.refresh.record.id),
            status(next.refresh.record.id),
        ],
        [
            Some(TokenStatus::Active),
            Some(TokenStatus::Revoked),
            Some(TokenStatus::Expired),
            Some(TokenStatus::Spent),
            Some(TokenStatus::Active),
        ],
        m::LIST,
        "lists each record as the last write left it (active, revoked, expired, spent, active)"
    );
    let nobody = tokens.list("nobody").await.answer(m::LIST)?;
    ensure!(
        nobody.is_empty(),
        m::LIST,
        "lists nothing for an owner without records",
        "{nobody:?}"
    );
    Ok(())
}

/// No scopes (or an empty set) means the set's default; invalid requests
/// are refused with nothing stored and nothing audited.
pub async fn default_scopes_and_refused_requests<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let default = B::Scopes::DEFAULT;
    let tokens = &h.tokens;
    let none = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "none", "u1"))
        .await
        .answer(m::INSERT)?;
    let empty = tokens
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "empty", "u1").scopes(B::Scopes::empty()),
        )
        .await
        .answer(m::INSERT)?;
    let pair = tokens
        .issue_pair("grant", "u1", None)
        .await
        .answer(m::INSERT)?;
    ensure_eq!(
        [
            none.record.scopes,
            empty.record.scopes,
            pair.access.record.scopes,
            pair.refresh.record.scopes
        ],
        [default; 4],
        "TokenManager::issue",
        "no scopes, or an empty set, means the scope set's DEFAULT"
    );
    let found = h
        .record(
            &none.secret.digest(),
            "finds every record once its insert returned",
        )
        .await?;
    ensure_eq!(
        found.scopes,
        default,
        m::FIND,
        "returns the scopes as they were inserted"
    );
    ensure_eq!(
        found.expires_at,
        start_time() + Duration::from_secs(180 * 86_400),
        m::FIND,
        "returns expires_at as it was inserted"
    );
    h.events.take();

    for refused in [
        IssueRequest::new(TokenKind::PersonalAccess, "  ", "u1"),
        IssueRequest::new(TokenKind::PersonalAccess, "x", ""),
        IssueRequest::new(TokenKind::Access, "x", "u1").lifetime(Duration::from_secs(16 * 86_400)),
    ] {
        let answer = tokens.issue(refused).await;
        ensure!(
            matches!(answer, Err(TokenError::InvalidInput(_))),
            "TokenManager::issue",
            "refuses a blank name, a blank owner and a lifetime beyond the kind's",
            "{answer:?}"
        );
    }
    let events = h.events.take_names();
    ensure!(
        events.is_empty(),
        AUDIT,
        "nothing issued, nothing audited",
        "{events:?}"
    );
    let listed = tokens.list("u1").await.answer(m::LIST)?;
    ensure_eq!(
        listed.len(),
        4,
        m::LIST,
        "lists what was stored, and refused requests stored nothing"
    );
    Ok(())
}

/// Revoking a family revokes each of its tokens and nothing else, once.
pub async fn revoke_family_revokes_every_token_of_it<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let tokens = &h.tokens;
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let other = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .answer(m::INSERT)?;
    let family = pair
        .refresh
        .record
        .family
        .ok_or_else(|| Violation::new("TokenManager::issue_pair", "a pair has a family", "None"))?
        .id;
    h.events.take();

    let revoked = tokens
        .revoke_family(family)
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure_eq!(
        revoked,
        2,
        m::REVOKE_FAMILY,
        "revokes every record of the family that is not revoked yet, and returns them"
    );
    match &h.events.take()[..] {
        [AuditEvent::FamilyRevoked {
            family: f,
            owner,
            tokens: n,
        }] => ensure_eq!(
            (*f, owner.as_str(), *n),
            (family, "u1", 2),
            AUDIT,
            "a family_revoked event names the family, its owner and how many were revoked"
        ),
        other => {
            return Err(Violation::new(
                AUDIT,
                "one family_revoked event per family revocation",
                format!("{other:?}"),
            ))
        }
    }
    let again = tokens
        .revoke_family(family)
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure_eq!(
        again,
        0,
        m::REVOKE_FAMILY,
        "returns only records it revoked now (none the second time)"
    );
    let unknown = tokens
        .revoke_family(FamilyId::from_u64(12345))
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure_eq!(
        unknown,
        0,
        m::REVOKE_FAMILY,
        "returns nothing for an unknown family"
    );
    let events = h.events.take_names();
    ensure!(
        events.is_empty(),
        AUDIT,
        "nothing revoked, nothing audited",
        "{events:?}"
    );
    for token in [&pair.access, &pair.refresh] {
        h.ensure_revoked(
            &token.secret.digest(),
            m::REVOKE_FAMILY,
            "every record of the family is revoked",
        )
        .await?;
    }
    for token in [&other.access, &other.refresh, &pat] {
        let record = h
            .record(&token.secret.digest(), "keeps every record")
            .await?;
        ensure!(
            !record.is_revoked(),
            m::REVOKE_FAMILY,
            "revokes the records of that family and of no other",
            "{} revoked",
            record.id
        );
    }
    Ok(())
}

/// A grant is one thing: revoking any of its tokens, by id or by digest,
/// revokes all of them.
pub async fn revoking_any_member_revokes_the_whole_grant<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    use tower_token_auth::manager::{GrantError, InvalidGrantReason};
    const WHOLE: &str = "a family revocation reaches every record of the family";
    let tokens = &h.tokens;
    // By id, the refresh token of a rotated grant: its access token dies too.
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    let revoked = tokens
        .revoke(next.refresh.record.id)
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure!(revoked, m::REVOKE_FAMILY, WHOLE, "nothing revoked");
    for token in [&next.access, &pair.access] {
        h.ensure_revoked(&token.secret.digest(), m::REVOKE_FAMILY, WHOLE)
            .await?;
    }
    // By id, the access token: the refresh token cannot be exchanged.
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    tokens
        .revoke(pair.access.record.id)
        .await
        .answer(m::REVOKE_FAMILY)?;
    h.ensure_revoked(&pair.refresh.secret.digest(), m::REVOKE_FAMILY, WHOLE)
        .await?;
    let refused = tokens.refresh(&pair.refresh.secret.digest(), None).await;
    ensure!(
        matches!(
            refused,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
        ),
        m::EXCHANGE,
        "a revoked refresh token is never exchanged",
        "{refused:?}"
    );
    // By digest, the access token.
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    let revoked = tokens
        .revoke_by_digest(&pair.access.secret.digest())
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure!(revoked, m::REVOKE_FAMILY, WHOLE, "nothing revoked");
    h.ensure_revoked(&pair.refresh.secret.digest(), m::REVOKE_FAMILY, WHOLE)
        .await
}

/// RFC 7009: a refresh token takes its family; idempotent; an unknown
/// token is no error.
pub async fn revoke_by_digest_follows_rfc_7009<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let tokens = &h.tokens;
    let pair = tokens
        .issue_pair("agent", "u1", None)
        .await
        .answer(m::INSERT)?;
    h.events.take();
    let revoked = tokens
        .revoke_by_digest(&pair.refresh.secret.digest())
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure!(
        revoked,
        m::REVOKE_FAMILY,
        "revoking a refresh token revokes its family",
        "nothing revoked"
    );
    ensure_eq!(
        h.events.take_names(),
        ["family_revoked"],
        AUDIT,
        "a family revocation is audited once"
    );
    h.ensure_revoked(
        &pair.access.secret.digest(),
        m::REVOKE_FAMILY,
        "revoking a refresh token revokes its family",
    )
    .await?;
    let again = tokens
        .revoke_by_digest(&pair.refresh.secret.digest())
        .await
        .answer(m::REVOKE_FAMILY)?;
    ensure!(
        !again,
        m::REVOKE_FAMILY,
        "returns nothing for a family already revoked",
        "records revoked again"
    );
    let unknown = tokens
        .revoke_by_digest(&TokenDigest::of("unknown"))
        .await
        .answer(m::FIND)?;
    ensure!(
        !unknown,
        m::FIND,
        "answers None for an unknown digest",
        "something revoked"
    );
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .answer(m::INSERT)?;
    h.events.take();
    let revoked = tokens
        .revoke_by_digest(&pat.secret.digest())
        .await
        .answer(m::REVOKE)?;
    ensure!(
        revoked,
        m::REVOKE,
        "revokes a live token and returns it",
        "None"
    );
    ensure_eq!(
        h.events.take_names(),
        ["token_revoked"],
        AUDIT,
        "a revocation is audited once"
    );
    Ok(())
}

/// Regeneration: a new secret, same name, owner and scopes, a fresh
/// lifetime; the old one revoked; refused for other kinds and revoked
/// tokens, revoking nothing then.
pub async fn regenerate_replaces_the_secret<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    const REGENERATE: &str = "TokenManager::regenerate";
    let scopes = picks::other_than_default::<B::Scopes>();
    let tokens = &h.tokens;
    let old = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1").scopes(scopes))
        .await
        .answer(m::INSERT)?;
    h.clock.advance(Duration::from_secs(60));
    h.events.take();
    let new = tokens
        .regenerate(old.record.id)
        .await
        .answer("TokenBackend::insert or TokenBackend::revoke (TokenManager::regenerate)")?
        .ok_or_else(|| Violation::new(m::GET, "returns a stored record by its id", "None"))?;
    match &h.events.take()[..] {
        [AuditEvent::TokenCreated { id, .. }, AuditEvent::TokenRegenerated {
            old: o,
            new: n,
            owner,
        }] => ensure_eq!(
            (*id, *o, *n, owner.as_str()),
            (new.record.id, old.record.id, new.record.id, "u1"),
            AUDIT,
            "a regeneration is audited as token_created and token_regenerated"
        ),
        other => {
            return Err(Violation::new(
                AUDIT,
                "a regeneration is audited as token_created and token_regenerated",
                format!("{other:?}"),
            ))
        }
    }
    ensure!(
        new.secret.expose_secret() != old.secret.expose_secret() && new.record.id != old.record.id,
        REGENERATE,
        "a regeneration mints a new secret and id",
        "the old ones"
    );
    ensure_eq!(
        (
            new.record.name(),
            new.record.owner(),
            new.record.scopes,
            new.record.created_at
        ),
        ("CI", "u1", scopes, h.now()),
        REGENERATE,
        "the new token keeps name, owner and scopes, with a fresh lifetime"
    );
    let stored = h
        .record(
            &new.secret.digest(),
            "finds every record once its insert returned",
        )
        .await?;
    ensure_eq!(
        *stored,
        *new.record,
        m::FIND,
        "returns the record exactly as it was inserted"
    );
    ensure_eq!(
        h.record(&old.secret.digest(), "keeps a revoked record")
            .await?
            .revoked_at,
        Some(h.now()),
        m::REVOKE,
        "marks the record revoked at the given time"
    );

    let again = tokens.regenerate(old.record.id).await;
    ensure!(
        matches!(again, Err(TokenError::Conflict(_))),
        m::GET,
        "returns the record as revoked after its revocation returned",
        "a revoked token regenerated: {again:?}"
    );
    let unknown = tokens.regenerate(TokenId::from_u64(1)).await;
    ensure!(
        matches!(unknown, Ok(None)),
        m::GET,
        "answers None for an unknown id",
        "{unknown:?}"
    );
    let access = tokens
        .issue(IssueRequest::new(TokenKind::Access, "at", "u1"))
        .await
        .answer(m::INSERT)?;
    let refused = tokens.regenerate(access.record.id).await;
    ensure!(
        matches!(refused, Err(TokenError::Conflict(_))),
        m::GET,
        "returns the record's kind as it was inserted",
        "an access token regenerated: {refused:?}"
    );
    let access = h
        .record(&access.secret.digest(), "keeps every record")
        .await?;
    ensure!(
        !access.is_revoked(),
        REGENERATE,
        "a refused regeneration revokes nothing",
        "the access token revoked"
    );
    let listed = tokens.list("u1").await.answer(m::LIST)?;
    ensure_eq!(
        listed.len(),
        3,
        m::LIST,
        "lists the old, the new and the access token, and nothing left behind"
    );
    Ok(())
}

/// Of concurrent regenerations of one token, one wins; the losers leave no
/// live token behind (the backend's `revoke` has one winner).
pub async fn concurrent_regenerations_have_one_winner<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let old = h
        .tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .answer(m::INSERT)?;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let tokens = h.tokens.clone();
            let id = old.record.id;
            tokio::spawn(async move { tokens.regenerate(id).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        let answer = task
            .await
            .map_err(|e| Violation::new(m::REVOKE, "answers (never panics)", format!("{e}")))?;
        answers.push(match answer {
            Ok(Some(_)) => "won",
            Err(TokenError::Conflict(_)) => "lost",
            other => {
                return Err(Violation::new(
                    m::REVOKE,
                    "answers a valid call without an error",
                    format!("{other:?}"),
                ))
            }
        });
    }
    ensure!(
        answers.iter().filter(|a| **a == "won").count() == 1,
        m::REVOKE,
        "of concurrent revocations of one id exactly one returns Some, so exactly one of four \
         concurrent regenerations wins",
        "{answers:?}"
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
    ensure_eq!(
        live.len(),
        1,
        m::REVOKE,
        "the losers' tokens are revoked: one live token, the winner's"
    );
    Ok(())
}

/// A personal access token's scopes change from the next lookup; other
/// kinds and dead tokens refuse; the change is audited with old and new.
pub async fn scope_changes_hold_from_the_next_lookup<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    const SET_SCOPES: &str = "TokenManager::set_scopes";
    let (wide, narrow) = (picks::all::<B::Scopes>(), B::Scopes::DEFAULT);
    let tokens = &h.tokens;
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "agent", "u1").scopes(wide))
        .await
        .answer(m::INSERT)?;
    h.events.take();
    let changed = tokens
        .set_scopes(pat.record.id, narrow)
        .await
        .answer(m::UPDATE_SCOPES)?
        .ok_or_else(|| {
            Violation::new(
                m::UPDATE_SCOPES,
                "updates a live record and returns it",
                "None",
            )
        })?;
    ensure_eq!(
        changed.scopes,
        narrow,
        m::UPDATE_SCOPES,
        "returns the record with its new scopes"
    );
    let found = h.record(&pat.secret.digest(), "keeps every record").await?;
    ensure_eq!(
        found.scopes,
        narrow,
        m::UPDATE_SCOPES,
        "the next lookup sees the new scopes"
    );
    match &h.events.take()[..] {
        [AuditEvent::ScopesChanged {
            id,
            owner,
            old,
            new,
        }] => ensure_eq!(
            (*id, owner.as_str(), old.as_str(), new.as_str()),
            (
                pat.record.id,
                "u1",
                wide.scope_string().as_str(),
                narrow.scope_string().as_str()
            ),
            AUDIT,
            "a scopes_changed event names the token, its owner, the old and the new scopes"
        ),
        other => {
            return Err(Violation::new(
                AUDIT,
                "one scopes_changed event per change",
                format!("{other:?}"),
            ))
        }
    }

    let empty = tokens.set_scopes(pat.record.id, B::Scopes::empty()).await;
    ensure!(
        matches!(empty, Err(TokenError::InvalidInput(_))),
        SET_SCOPES,
        "an empty set is refused",
        "{empty:?}"
    );
    let unknown = tokens.set_scopes(TokenId::from_u64(3), narrow).await;
    ensure!(
        matches!(unknown, Ok(None)),
        m::UPDATE_SCOPES,
        "answers None for an unknown id",
        "{unknown:?}"
    );
    let events = h.events.take_names();
    ensure!(
        events.is_empty(),
        AUDIT,
        "refused changes are not audited",
        "{events:?}"
    );
    let pair = tokens
        .issue_pair("grant", "u1", None)
        .await
        .answer(m::INSERT)?;
    let access = tokens.set_scopes(pair.access.record.id, wide).await;
    ensure!(
        matches!(access, Err(TokenError::Conflict(_))),
        SET_SCOPES,
        "an access token keeps the scopes of its grant",
        "{access:?}"
    );
    tokens.revoke(pat.record.id).await.answer(m::REVOKE)?;
    let revoked = tokens.set_scopes(pat.record.id, wide).await;
    ensure!(
        matches!(revoked, Err(TokenError::Conflict(_))),
        m::UPDATE_SCOPES,
        "changes only a live record: a revoked one is refused (None)",
        "{revoked:?}"
    );
    let short = tokens
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "short", "u1")
                .lifetime(Duration::from_secs(5)),
        )
        .await
        .answer(m::INSERT)?;
    h.clock.advance(Duration::from_secs(5));
    let expired = tokens.set_scopes(short.record.id, wide).await;
    ensure!(
        matches!(expired, Err(TokenError::Conflict(_))),
        m::UPDATE_SCOPES,
        "changes only a live record: one whose expires_at is not after now is refused (None)",
        "{expired:?}"
    );
    ensure_eq!(
        h.record(&short.secret.digest(), "keeps every record")
            .await?
            .scopes,
        B::Scopes::DEFAULT,
        m::UPDATE_SCOPES,
        "a refused change writes nothing"
    );
    Ok(())
}

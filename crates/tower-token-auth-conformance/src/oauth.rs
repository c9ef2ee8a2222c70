//! Authorization codes and client registrations: records of their own
//! kinds, stored with the same primitives as tokens.

use std::time::Duration;

use tower_token_auth::manager::{GrantError, InvalidGrantReason};
use tower_token_auth::oauth::{
    s256_challenge, ClientRegistration, CodeExchange, CodeRequest, OAuthClient, RegistrationError,
};
use tower_token_auth::scope::ScopeSet;
use tower_token_auth::store::TokenBackend;
use tower_token_auth::token::TokenDigest;

use crate::picks;
use crate::violation::{ensure, ensure_eq, method as m, Answer};
use crate::{Harness, Violation};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:8123/callback";
const EXCHANGE_CODE: &str = "TokenManager::exchange_code";
const REGISTER: &str = "TokenManager::register_client";

/// A registered client, and a code for `u1` with the default scopes for
/// the resource `https://api.example/`.
async fn client_and_code<B: TokenBackend>(
    h: &Harness<B>,
) -> Result<(OAuthClient<B::Scopes>, String), Violation> {
    let client = h
        .tokens
        .register_client(
            ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.1").name("MCP Billing Agent"),
        )
        .await
        .answer(m::INSERT)?;
    let request = CodeRequest::new(
        &client,
        REDIRECT,
        s256_challenge(VERIFIER),
        "u1",
        B::Scopes::DEFAULT,
    )
    .resources(vec!["https://api.example/".into()]);
    let code = h.tokens.issue_code(request).await.answer(m::INSERT)?;
    Ok((client, code.expose_secret().to_owned()))
}

/// A code is exchanged once, only with the client, redirect URI and
/// verifier it was issued for, for a pair of a new grant that carries its
/// scopes, audience and the client's name; codes and clients never show in
/// a user's listing and never authenticate.
pub async fn authorization_codes_are_single_use_and_bound<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let (client, code) = client_and_code(&h).await?;
    let other_verifier = "x".repeat(43);
    let other_client = h
        .tokens
        .register_client(ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.1"))
        .await
        .answer(m::INSERT)?;
    for (client_id, redirect, verifier) in [
        (client.client_id.as_str(), REDIRECT, other_verifier.as_str()),
        (other_client.client_id.as_str(), REDIRECT, VERIFIER),
        (
            client.client_id.as_str(),
            "http://127.0.0.1:8124/callback",
            VERIFIER,
        ),
    ] {
        let refused = h
            .tokens
            .exchange_code(&CodeExchange::new(&code, client_id, redirect, verifier))
            .await;
        ensure!(
            matches!(
                refused,
                Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
            ),
            m::FIND,
            "returns a code's record as it was stored (client, redirect URI, challenge)",
            "a mismatched exchange answered {refused:?}"
        );
    }
    let listed = h.tokens.list("u1").await.answer(m::LIST)?;
    ensure!(
        listed.is_empty(),
        "TokenManager::list",
        "codes are not listed",
        "{listed:?}"
    );

    let pair = h
        .tokens
        .exchange_code(&CodeExchange::new(
            &code,
            &client.client_id,
            REDIRECT,
            VERIFIER,
        ))
        .await
        .answer(m::EXCHANGE)?;
    for token in [&pair.access, &pair.refresh] {
        ensure_eq!(
            (
                token.record.scopes,
                token.record.audience.clone(),
                token.record.name(),
                token.record.owner(),
                token.record.client_id(),
            ),
            (
                B::Scopes::DEFAULT,
                vec!["https://api.example/".to_owned()],
                "MCP Billing Agent",
                "u1",
                Some(client.client_id.as_str()),
            ),
            EXCHANGE_CODE,
            "a code's pair carries its scopes, audience, client name, owner and client id"
        );
        let stored = h
            .record(
                &token.secret.digest(),
                "finds the pair an exchange stored once it returned",
            )
            .await?;
        ensure_eq!(
            (stored.id, stored.client_id()),
            (token.record.id, token.record.client_id()),
            m::EXCHANGE,
            "stores the new pair as given, its client id included"
        );
    }
    ensure_eq!(
        pair.access.record.family,
        pair.refresh.record.family,
        EXCHANGE_CODE,
        "a code's pair is one family"
    );
    let listed = h.tokens.list("u1").await.answer(m::LIST)?;
    ensure!(
        listed.len() == 2 && listed.iter().all(|t| t.kind.is_token()),
        m::LIST,
        "lists the grant's access and refresh tokens with their kinds",
        "{listed:?}"
    );
    // The grant's refresh token works like any other.
    let rotated = h
        .tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    ensure_eq!(
        rotated.access.record.audience,
        ["https://api.example/"],
        "TokenManager::refresh",
        "a rotation keeps the grant's audience"
    );
    for token in [&rotated.access, &rotated.refresh] {
        let stored = h
            .record(
                &token.secret.digest(),
                "finds the pair an exchange stored once it returned",
            )
            .await?;
        ensure_eq!(
            stored.client_id(),
            Some(client.client_id.as_str()),
            m::EXCHANGE,
            "stores the new pair as given: a rotation keeps the grant's client"
        );
    }
    // A client_id is public: it revokes nothing and is no token.
    let revoked = h
        .tokens
        .revoke_by_digest(&TokenDigest::of(&client.client_id))
        .await
        .answer(m::FIND)?;
    ensure!(
        !revoked,
        "TokenManager::revoke_by_digest",
        "a client_id revokes nothing",
        "something revoked"
    );
    let again = h.tokens.client(&client.client_id).await.answer(m::FIND)?;
    ensure_eq!(
        again.as_ref(),
        Some(&client),
        m::FIND,
        "returns a client registration as it was stored"
    );
    let events = h.events.take_names();
    for name in [
        "client_registered",
        "authorization_code_issued",
        "authorization_code_exchanged",
    ] {
        ensure!(
            events.contains(&name),
            "TokenManager (audit)",
            "registrations, codes and their exchanges are audited",
            "no {name} in {events:?}"
        );
    }
    Ok(())
}

/// RFC 6749 §4.1.2: a code presented again revokes every token issued from
/// it, refreshed ones included.
pub async fn a_reused_authorization_code_revokes_its_grant<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let (client, code) = client_and_code(&h).await?;
    let exchange = CodeExchange::new(&code, &client.client_id, REDIRECT, VERIFIER);
    let pair = h
        .tokens
        .exchange_code(&exchange)
        .await
        .answer(m::EXCHANGE)?;
    let rotated = h
        .tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .answer(m::EXCHANGE)?;
    let again = h.tokens.exchange_code(&exchange).await;
    ensure!(
        matches!(
            again,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ),
        m::FIND,
        "returns a spent code with its spent_at",
        "a replayed code answered {again:?}"
    );
    for token in [&pair.access, &rotated.access, &rotated.refresh] {
        h.ensure_revoked(
            &token.secret.digest(),
            m::REVOKE_FAMILY,
            "a replayed code revokes every record of its family",
        )
        .await?;
    }
    let events = h.events.take_names();
    ensure!(
        events.contains(&"family_revoked_on_reuse"),
        "TokenManager (audit)",
        "a replayed code is audited as family_revoked_on_reuse",
        "{events:?}"
    );
    Ok(())
}

/// Two exchanges of one code at once, the first parked by the harness
/// between the manager's check and the backend's atomic step: one wins,
/// and the grant ends revoked.
pub async fn racing_code_exchanges_end_with_the_grant_revoked<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let (client, code) = client_and_code(&h).await?;
    let mut parked = h.tokens.backend().park_next_exchange();
    let mut first = {
        let tokens = h.tokens.clone();
        let (code, client_id) = (code.clone(), client.client_id.clone());
        tokio::spawn(async move {
            tokens
                .exchange_code(&CodeExchange::new(&code, &client_id, REDIRECT, VERIFIER))
                .await
        })
    };
    parked.reached_in(&mut first).await?;
    let winner = h
        .tokens
        .exchange_code(&CodeExchange::new(
            &code,
            &client.client_id,
            REDIRECT,
            VERIFIER,
        ))
        .await
        .answer(m::EXCHANGE)?;
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
        "answers AlreadySpent for a code spent after the manager's check",
        "{loser:?}"
    );
    for token in [&winner.access, &winner.refresh] {
        h.ensure_revoked(
            &token.secret.digest(),
            m::REVOKE_FAMILY,
            "a replayed code revokes every record of its family, the winner's pair included",
        )
        .await?;
    }
    Ok(())
}

/// A code is good for 60 seconds: at the boundary it is expired, and a
/// code presented as a refresh token is never exchanged.
pub async fn authorization_codes_expire<B: TokenBackend>(h: Harness<B>) -> Result<(), Violation> {
    let (client, code) = client_and_code(&h).await?;
    let refused = h.tokens.refresh(&TokenDigest::of(&code), None).await;
    ensure!(
        matches!(
            refused,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
        ),
        m::FIND,
        "returns a code's record with its kind as stored",
        "a code exchanged as a refresh token: {refused:?}"
    );
    h.clock.advance(Duration::from_secs(60));
    let late = h
        .tokens
        .exchange_code(&CodeExchange::new(
            &code,
            &client.client_id,
            REDIRECT,
            VERIFIER,
        ))
        .await;
    ensure!(
        matches!(
            late,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Expired))
        ),
        m::FIND,
        "returns a code's expires_at as stored (valid while now < expires_at)",
        "{late:?}"
    );
    Ok(())
}

/// Registrations round-trip through the backend, are capped per source,
/// refuse unacceptable redirect URIs and end after their lifetime.
pub async fn client_registrations_are_stored_capped_and_expire<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let scopes = picks::one::<B::Scopes>();
    let tokens = h.manager_with(|p| p.clients_per_source(2));
    let register = |source: &str| {
        tokens.register_client(
            ClientRegistration::new(vec!["https://app.example/cb".into()], source).scopes(scopes),
        )
    };
    let first = register("10.0.0.1").await.answer(m::INSERT)?;
    ensure_eq!(
        (
            first.name.as_str(),
            first.scopes,
            first.redirect_uris.clone()
        ),
        (
            "app.example",
            scopes,
            vec!["https://app.example/cb".to_owned()]
        ),
        REGISTER,
        "a client is named after its redirect host and keeps its scopes and redirect URIs"
    );
    ensure!(
        first.accepts_redirect_uri("https://app.example/cb")
            && !first.accepts_redirect_uri("https://app.example/other"),
        "OAuthClient::accepts_redirect_uri",
        "accepts its own redirect URI, and no other",
        "{:?}",
        first.redirect_uris
    );
    register("10.0.0.1").await.answer(m::INSERT)?;
    let third = register("10.0.0.1").await;
    ensure!(
        matches!(third, Err(RegistrationError::TooMany)),
        m::LIST,
        "lists a source's registrations (the cap counts them)",
        "a third registration from one source: {third:?}"
    );
    register("10.0.0.2").await.answer(m::INSERT)?;
    for uris in [vec!["http://app.example/cb".to_owned()], Vec::new()] {
        let refused = tokens
            .register_client(ClientRegistration::new(uris, "10.0.0.3"))
            .await;
        ensure!(
            matches!(refused, Err(RegistrationError::InvalidRedirectUri(_))),
            REGISTER,
            "refuses a missing or non-https (non-loopback) redirect URI",
            "{refused:?}"
        );
    }
    let garbage = tokens.client("pr_cl_garbage").await.answer(m::FIND)?;
    ensure!(
        garbage.is_none(),
        m::FIND,
        "answers None for an unknown client",
        "{garbage:?}"
    );
    h.clock.advance(tokens.policy().get_lifetimes().client);
    let expired = tokens.client(&first.client_id).await.answer(m::FIND)?;
    ensure!(
        expired.is_none(),
        m::FIND,
        "returns a registration's expires_at as stored (it ends after its lifetime)",
        "{expired:?}"
    );
    register("10.0.0.1").await.map_err(|e| {
        Violation::new(
            m::LIST,
            "lists each registration with its expires_at: expired ones no longer count",
            format!("{e:?}"),
        )
    })?;
    Ok(())
}

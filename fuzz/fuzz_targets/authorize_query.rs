//! The authorization endpoint (`oauth::AuthorizationEndpoint`): its
//! `validate` on any query string, then `approve` and `deny` of what it
//! lets through, over a `TokenManager` on a `MemoryStore` holding the
//! fixture of `common` (one client, with the redirect URIs
//! `http://127.0.0.1:8123/cb`, `https://app.example/cb?x=1` and
//! `http://[::1]/native`).
//!
//! Input: byte 0 bits 0-6 are the set of scopes the user leaves ticked
//! (as `PayRequestScopes` bits), bit 7 set means the endpoint does not
//! vouch for the fixture client (`AuthorizationEndpoint::vouch_for`: a
//! first-party client, whose invalid requests are redirected back to it;
//! without it, as for any self-registered client, they are shown); the
//! rest is the query string (lossily as UTF-8).
//!
//! Properties, for any input:
//! - nothing panics, and every error is a documented variant: never
//!   `Store` (the memory store does not fail), never an undocumented one;
//! - a pending authorization or a `Redirect` only when the request names,
//!   once each, the client's `client_id` and one of its redirect URIs
//!   (equal to a registered one, or a loopback IP literal one on another
//!   port, RFC 8252 §7.3; a model written apart from the core), and a
//!   `Redirect` only for a client the endpoint vouches for; for that
//!   client, `Invalid` (shown, never followed) exactly when the request
//!   does not name them; for a client it does not vouch for, every error
//!   is `Invalid`;
//! - every URL returned (the `Redirect` error, `approve`, `deny`) is that
//!   redirect URI followed by `?` (`&` when it has a query) and a query
//!   whose first parameter is `error` (a documented code) or `code` (an
//!   authorization code of the manager's format), with `state` exactly as
//!   the request gave it (when at most 2048 bytes) and `iss` last; it has
//!   no fragment and is a valid `Location` header value;
//! - a pending authorization is for that client and redirect URI, with
//!   `response_type=code`, an S256 `code_challenge`, non-empty scopes
//!   that print back to the same set, and the request's `resource`s
//!   (repetitions folded, at most 16);
//! - `approve` with nothing of the asked scopes ticked is `deny`; `approve`
//!   fails only with `InvalidInput`, and only for a resource over 2048
//!   bytes; when the challenge is the fixture's (RFC 7636 appendix B), the
//!   code it issued is exchanged for tokens of the ticked scopes, the
//!   client and the resources.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run authorize_query
//! ```

#![no_main]

mod common;

use common::{block_on, ISSUER, REDIRECTS, S, TOKENS};
use http::header::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tower_token_auth::manager::TokenError;
use tower_token_auth::oauth::{AuthorizationEndpoint, AuthorizationError, CodeExchange};
use tower_token_auth::token::TokenKind;
use tower_token_auth::ScopeSet;

const REDIRECT_ERRORS: [&str; 4] = [
    "invalid_request",
    "unsupported_response_type",
    "invalid_scope",
    "invalid_target",
];

/// The single non-empty value of `name`: `Err` when repeated.
fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = pairs.iter().filter(|(k, _)| k == name);
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
}

/// Whether `requested` is one of the fixture client's redirect URIs:
/// equal to one, or, for a loopback IP literal one, the same on any port
/// from 1 to 65535 (or none).
fn registered(requested: &str) -> bool {
    if REDIRECTS.contains(&requested) {
        return true;
    }
    let Some(rest) = requested
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &requested[7..])
    else {
        return false;
    };
    [("127.0.0.1", "/cb"), ("[::1]", "/native")]
        .iter()
        .any(|(host, path)| {
            let Some(after) = rest.strip_prefix(host) else {
                return false;
            };
            let after = match after.strip_prefix(':') {
                Some(p) => {
                    let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
                    let port = &p[..end];
                    if !(1..=5).contains(&port.len())
                        || !(1..=65_535).contains(&port.parse::<u32>().expect("digits"))
                    {
                        return false;
                    }
                    &p[end..]
                }
                None => after,
            };
            after == *path
        })
}

/// Checks a URL the endpoint sends the user agent to, and returns its
/// added parameters.
fn check_redirect(
    url: &str,
    redirect_uri: &str,
    state: Option<&str>,
    first: &str,
    input: &str,
) -> Vec<(String, String)> {
    let rest = url
        .strip_prefix(redirect_uri)
        .unwrap_or_else(|| panic!("{url:?} is not under {redirect_uri:?} for {input:?}"));
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let query = rest
        .strip_prefix(separator)
        .unwrap_or_else(|| panic!("{url:?}: no {separator} after the redirect URI"));
    assert!(!url.contains('#'), "a fragment in {url:?}");
    assert!(
        HeaderValue::from_str(url).is_ok(),
        "not a header value: {url:?}"
    );
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        pairs.first().map(|(k, _)| k.as_str()),
        Some(first),
        "{url:?}"
    );
    assert_eq!(
        pairs.last().map(|(k, v)| (k.as_str(), v.as_str())),
        Some(("iss", ISSUER)),
        "{url:?}"
    );
    let states: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(states, state.into_iter().collect::<Vec<_>>(), "{url:?}");
    pairs
}

fuzz_target!(|data: &[u8]| {
    let control = data.first().copied().unwrap_or(0);
    let ticked = S::from_bits_truncate((control & 0x7f).into());
    let vouched = control & 0x80 == 0;
    let query = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let client_ok = single(&pairs, "client_id") == Ok(Some(TOKENS.client_id.as_str()));
    let redirect_uri = match single(&pairs, "redirect_uri") {
        Ok(Some(r)) if client_ok && registered(r) => Some(r),
        _ => None,
    };
    let state = single(&pairs, "state").ok().flatten();
    // The request's resources, repetitions folded, in their first order.
    let mut resources: Vec<&str> = Vec::new();
    for (_, r) in pairs
        .iter()
        .filter(|(k, v)| k == "resource" && !v.is_empty())
    {
        if !resources.contains(&r.as_str()) {
            resources.push(r);
        }
    }
    let echoed_state = state.filter(|s| s.len() <= 2048);

    let tokens = common::manager();
    let mut endpoint = AuthorizationEndpoint::new(tokens.clone(), ISSUER);
    if vouched {
        endpoint = endpoint.vouch_for(TOKENS.client_id.as_str());
    }
    let validated = block_on(endpoint.validate(&query));
    common::trace(format_args!("{validated:?}"));
    let pending = match validated {
        Err(AuthorizationError::Invalid(why)) => {
            assert!(redirect_uri.is_none() || !vouched, "{why} for {query:?}");
            return;
        }
        Err(AuthorizationError::Redirect(url)) => {
            assert!(vouched, "a redirect to {url:?} for an unvouched client");
            let redirect_uri =
                redirect_uri.unwrap_or_else(|| panic!("a redirect to {url:?} for {query:?}"));
            let added = check_redirect(&url, redirect_uri, echoed_state, "error", &query);
            assert!(REDIRECT_ERRORS.contains(&added[0].1.as_str()), "{url:?}");
            return;
        }
        Err(AuthorizationError::Store(error)) => panic!("{error} for {query:?}"),
        Err(other) => panic!("an undocumented error {other:?} for {query:?}"),
        Ok(pending) => pending,
    };
    let redirect_uri = redirect_uri.unwrap_or_else(|| panic!("{pending:?} pending for {query:?}"));
    assert_eq!(pending.client.client_id, TOKENS.client_id);
    assert_eq!(pending.redirect_uri, redirect_uri);
    assert_eq!(pending.state.as_deref(), state, "{query:?}");
    assert_eq!(echoed_state, state, "a state over 2048 bytes let through");
    assert_eq!(single(&pairs, "response_type"), Ok(Some("code")));
    assert_eq!(single(&pairs, "code_challenge_method"), Ok(Some("S256")));
    let challenge = single(&pairs, "code_challenge")
        .expect("single")
        .expect("a challenge");
    assert!(
        challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{challenge:?}"
    );
    assert!(!pending.scopes.is_empty());
    assert!(pending.client.scopes.contains(pending.scopes));
    assert_eq!(
        S::parse_scope(&pending.scope_names().join(" ")).ok(),
        Some(pending.scopes)
    );
    assert!(
        resources.len() <= 16,
        "{} resources let through",
        resources.len()
    );
    assert_eq!(pending.resources, resources, "{query:?}");
    for r in &resources {
        assert!(r.contains("://") && !r.contains('#'), "{r:?}");
    }

    let denied = endpoint.deny(&pending);
    let added = check_redirect(&denied, redirect_uri, state, "error", &query);
    assert_eq!(added[0].1, "access_denied");

    let granted = ticked & pending.scopes;
    let approved = block_on(endpoint.approve(&pending, common::OWNER, ticked));
    common::trace(format_args!("approve: {approved:?}"));
    match approved {
        Ok(url) if granted.is_empty() => assert_eq!(url, denied),
        Ok(url) => {
            common::note_additions(1);
            let added = check_redirect(&url, redirect_uri, state, "code", &query);
            let code = &added[0].1;
            let format = tokens.policy().get_format();
            assert_eq!(format.check(code), Ok(TokenKind::AuthorizationCode));
            if challenge == common::CHALLENGE {
                common::note_additions(2);
                let pair = block_on(tokens.exchange_code(&CodeExchange::new(
                    code,
                    &TOKENS.client_id,
                    redirect_uri,
                    common::VERIFIER,
                )))
                .unwrap_or_else(|e| panic!("the code of {query:?} is not exchanged: {e}"));
                assert_eq!(pair.access.record.scopes, granted);
                assert_eq!(pair.refresh.record.scopes, granted);
                assert_eq!(pair.access.record.audience, pending.resources);
                assert_eq!(
                    pair.refresh.record.client_id(),
                    Some(TOKENS.client_id.as_str())
                );
            }
        }
        Err(TokenError::InvalidInput(why)) => {
            assert!(
                resources.iter().any(|r| r.len() > 2048),
                "approve refused ({why}) for {query:?}"
            );
        }
        Err(error) => panic!("approve failed ({error}) for {query:?}"),
    }
});

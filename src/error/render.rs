//! The response a rejection becomes: [`Rejections`] renders an [`AuthError`]
//! as its RFC 6750 challenge and JSON body, from one table of the
//! rejections that do not depend on the route, rendered once per
//! `Rejections`.

use std::fmt;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};

use super::{AuthError, InvalidRequestReason, InvalidTokenReason};
use crate::error::StoreError;
use crate::json::escape_into;

type Replace = dyn Fn(&AuthError, Response<Bytes>) -> Response<Bytes> + Send + Sync;

/// Renders rejections: the realm and `resource_metadata` of the
/// `WWW-Authenticate` challenge, and an optional function that replaces the
/// default response.
///
/// Cloning is cheap (one reference count).
#[derive(Clone)]
pub struct Rejections {
    inner: Arc<ChallengeInner>,
}

struct ChallengeInner {
    /// `Bearer realm="…"[, resource_metadata="…"]`, escaped.
    head: String,
    /// `, resource_metadata="…"` when set, or empty.
    metadata: String,
    /// `, scope="…"` for the 401 challenges when set, or empty.
    scope_hint: String,
    realm: String,
    replace: Option<Arc<Replace>>,
    /// The rejections that do not depend on the route, rendered once at
    /// construction, by [`fixed_slot`].
    prepared: Box<[Prepared]>,
}

/// A rejection's challenge and body, rendered once and then shared by every
/// response for the same error (cloning either is a reference count).
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    challenge: Option<HeaderValue>,
    body: Bytes,
}

/// The one table of the rejections whose response does not depend on the
/// request or the route: one error of each such kind. A [`Rejections`]
/// renders each once, in this order, and [`fixed_slot`] finds an error's
/// place by its kind. The payloads are placeholders: no response shows a
/// store error's text or a retry delay in its body or challenge (the delay
/// goes into `Retry-After`, set per response).
static FIXED: LazyLock<[AuthError; 12]> = LazyLock::new(|| {
    [
        AuthError::MissingToken,
        AuthError::InvalidRequest(InvalidRequestReason::RepeatedCredentials),
        AuthError::InvalidRequest(InvalidRequestReason::TokenInUrl),
        AuthError::InvalidToken(InvalidTokenReason::Malformed),
        AuthError::InvalidToken(InvalidTokenReason::Unknown),
        AuthError::InvalidToken(InvalidTokenReason::Revoked),
        AuthError::InvalidToken(InvalidTokenReason::NotAnAccessCredential),
        AuthError::ExpiredToken,
        AuthError::StoreUnavailable(Arc::new(StoreError::Randomness)),
        AuthError::HttpsRequired,
        AuthError::TooManyRequests {
            retry_after: std::time::Duration::ZERO,
        },
        AuthError::InvalidToken(InvalidTokenReason::WrongAudience),
    ]
});

/// The table, for the tests that check every error.
#[cfg(test)]
pub(super) fn fixed_errors() -> &'static [AuthError] {
    &FIXED[..]
}

/// Whether `a` and `b` get the same response: the same kind, and the same
/// reason where the reason shows in it. Payloads do not count.
fn same_response(a: &AuthError, b: &AuthError) -> bool {
    match (a, b) {
        (AuthError::InvalidRequest(x), AuthError::InvalidRequest(y)) => x == y,
        (AuthError::InvalidToken(x), AuthError::InvalidToken(y)) => x == y,
        (AuthError::InsufficientScope { .. }, _) | (_, AuthError::InsufficientScope { .. }) => {
            false
        }
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// Where `error`'s prepared rejection sits in [`FIXED`], or `None` when its
/// response names the route's requirement.
fn fixed_slot(error: &AuthError) -> Option<usize> {
    FIXED.iter().position(|fixed| same_response(fixed, error))
}

impl ChallengeInner {
    fn header_value(&self, error: &AuthError) -> Option<HeaderValue> {
        if !error.has_challenge() {
            return None;
        }
        // Room for the longest code and description and a scope list.
        let mut value = String::with_capacity(self.head.len() + self.metadata.len() + 256);
        value.push_str(&self.head);
        if !matches!(error, AuthError::MissingToken) {
            value.push_str(", error=\"");
            value.push_str(error.error_code());
            value.push_str("\", error_description=\"");
            value.push_str(error.description());
            value.push('"');
        }
        if let AuthError::InsufficientScope { required } = error {
            value.push_str(", scope=\"");
            value.push_str(&quote(required));
            value.push('"');
        } else if error.status() == StatusCode::UNAUTHORIZED {
            value.push_str(&self.scope_hint);
        }
        value.push_str(&self.metadata);
        HeaderValue::from_str(&value).ok()
    }

    fn prepare(&self, error: &AuthError) -> Prepared {
        let mut body = String::with_capacity(256);
        body.push_str("{\"error\":\"");
        body.push_str(error.error_code());
        body.push_str("\",\"error_description\":\"");
        body.push_str(error.description());
        body.push_str("\",\"solution\":\"");
        body.push_str(error.solution());
        body.push('"');
        if let AuthError::InsufficientScope { required } = error {
            body.push_str(",\"scope\":\"");
            escape_into(&mut body, required);
            body.push('"');
        }
        body.push('}');
        Prepared {
            challenge: self.header_value(error),
            body: Bytes::from(body),
        }
    }
}

impl fmt::Debug for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejections")
            .field("realm", &self.inner.realm)
            .field("resource_metadata", &self.inner.metadata)
            .field("scope", &self.inner.scope_hint)
            .field("custom_response", &self.inner.replace.is_some())
            .finish()
    }
}

impl Default for Rejections {
    fn default() -> Self {
        Self::new("api")
    }
}

impl Rejections {
    /// A challenge for `realm`. Quotes and backslashes are escaped and
    /// control characters dropped, so any string is safe here.
    pub fn new(realm: &str) -> Self {
        Self::build(realm.to_owned(), String::new(), String::new(), None)
    }

    fn build(
        realm: String,
        metadata: String,
        scope_hint: String,
        replace: Option<Arc<Replace>>,
    ) -> Self {
        let head = format!("Bearer realm=\"{}\"", quote(&realm));
        let mut inner = ChallengeInner {
            head,
            metadata,
            scope_hint,
            realm,
            replace,
            prepared: Box::default(),
        };
        let prepared = FIXED.iter().map(|e| inner.prepare(e)).collect();
        inner.prepared = prepared;
        Self {
            inner: Arc::new(inner),
        }
    }

    fn rebuild(
        self,
        metadata: Option<String>,
        scope_hint: Option<String>,
        replace: Option<Arc<Replace>>,
    ) -> Self {
        let (realm, old_metadata, old_scope, old_replace) = match Arc::try_unwrap(self.inner) {
            Ok(inner) => (inner.realm, inner.metadata, inner.scope_hint, inner.replace),
            Err(shared) => (
                shared.realm.clone(),
                shared.metadata.clone(),
                shared.scope_hint.clone(),
                shared.replace.clone(),
            ),
        };
        Self::build(
            realm,
            metadata.unwrap_or(old_metadata),
            scope_hint.unwrap_or(old_scope),
            replace.or(old_replace),
        )
    }

    /// Adds the RFC 9728 `resource_metadata` attribute (the URL of the
    /// protected resource metadata document) to every challenge.
    #[must_use]
    pub fn resource_metadata(self, url: &str) -> Self {
        self.rebuild(
            Some(format!(", resource_metadata=\"{}\"", quote(url))),
            None,
            None,
        )
    }

    /// Names `scope` (an RFC 6749 §3.3 scope string) in every 401
    /// challenge (RFC 6750 §3): the scope a client should ask for when it
    /// has no token yet. An MCP client takes it from the challenge and
    /// requests it, instead of every scope the metadata lists. A 403
    /// `insufficient_scope` names the route's own requirement instead.
    #[must_use]
    pub fn scope(self, scope: &str) -> Self {
        self.rebuild(None, Some(format!(", scope=\"{}\"", quote(scope))), None)
    }

    /// Replaces the rejection response: `f` receives the error and the
    /// default response, and returns the response to send.
    #[must_use]
    pub fn on_rejection<F>(self, f: F) -> Self
    where
        F: Fn(&AuthError, Response<Bytes>) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.rebuild(None, None, Some(Arc::new(f)))
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The `WWW-Authenticate` value for `error`, or `None` for errors that
    /// have no challenge (503).
    pub fn header_value(&self, error: &AuthError) -> Option<HeaderValue> {
        self.inner.header_value(error)
    }

    /// The response for `error`: status, challenge, JSON body,
    /// `Cache-Control: no-store`, and the error in the extensions; or what
    /// the [`on_rejection`](Self::on_rejection) function makes of it.
    pub fn render(&self, error: &AuthError) -> Response<Bytes> {
        match fixed_slot(error).and_then(|i| self.inner.prepared.get(i)) {
            Some(prepared) => self.respond(error, prepared),
            None => self.respond(error, &self.prepare(error)),
        }
    }

    /// Renders `error`'s challenge and body, for [`respond`](Self::respond)
    /// to reuse on every response for the same error.
    pub(crate) fn prepare(&self, error: &AuthError) -> Prepared {
        self.inner.prepare(error)
    }

    /// The response for `error` from its prepared parts.
    pub(crate) fn respond(&self, error: &AuthError, prepared: &Prepared) -> Response<Bytes> {
        let mut response = Response::new(prepared.body.clone());
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = &prepared.challenge {
            headers.insert(WWW_AUTHENTICATE, challenge.clone());
        }
        if let AuthError::TooManyRequests { retry_after } = error {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response.extensions_mut().insert(error.clone());
        match &self.inner.replace {
            Some(replace) => replace(error, response),
            None => response,
        }
    }
}

/// Escapes a value for an RFC 9110 quoted-string; drops control characters.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::tests::every_error;

    #[test]
    fn prepared_rejections_match_a_fresh_rendering_of_every_error() {
        let plain = Rejections::new("billing");
        let with_metadata = Rejections::new("billing")
            .resource_metadata("https://api.example/.well-known/oauth-protected-resource");
        for challenge in [plain, with_metadata] {
            for error in every_error() {
                let fresh = challenge.prepare(&error);
                if let Some(slot) = fixed_slot(&error) {
                    let prepared = &challenge.inner.prepared[slot];
                    assert_eq!(prepared.challenge, fresh.challenge, "{error:?}");
                    assert_eq!(prepared.body, fresh.body, "{error:?}");
                }
                let rendered = challenge.render(&error);
                assert_eq!(
                    rendered.headers().get(WWW_AUTHENTICATE),
                    fresh.challenge.as_ref(),
                    "{error:?}"
                );
                assert_eq!(rendered.body(), &fresh.body, "{error:?}");
                assert_eq!(rendered.status(), error.status());
            }
        }
        // Every error of a fixed kind has its slot filled.
        assert_eq!(
            Rejections::default().inner.prepared.len(),
            fixed_errors().len()
        );
        for (i, error) in fixed_errors().iter().enumerate() {
            assert_eq!(fixed_slot(error), Some(i), "{error:?}");
        }
    }

    #[test]
    fn challenge_attributes_appear_once_and_realm_is_quoted() {
        let c = Rejections::new("a \"quoted\" realm\n")
            .resource_metadata("https://x.test/.well-known/oauth-protected-resource");
        let v = c
            .header_value(&AuthError::InsufficientScope {
                required: "billing.write".into(),
            })
            .unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with(r#"Bearer realm="a \"quoted\" realm""#), "{v}");
        for attr in [
            "realm=",
            "error=",
            "error_description=",
            "scope=",
            "resource_metadata=",
        ] {
            assert_eq!(v.matches(attr).count(), 1, "{attr} in {v}");
        }
        assert_eq!(
            c.header_value(&AuthError::MissingToken).unwrap(),
            r#"Bearer realm="a \"quoted\" realm", resource_metadata="https://x.test/.well-known/oauth-protected-resource""#
        );
    }

    #[test]
    fn the_scope_hint_is_named_in_401_challenges_only() {
        let c = Rejections::new("billing")
            .scope("billing.read")
            .resource_metadata("https://x.test/m");
        assert_eq!(
            c.header_value(&AuthError::MissingToken).unwrap(),
            r#"Bearer realm="billing", scope="billing.read", resource_metadata="https://x.test/m""#
        );
        for error in every_error() {
            let Some(value) = c.header_value(&error) else {
                continue;
            };
            let value = value.to_str().unwrap();
            let hinted = value.contains(r#"scope="billing.read""#);
            assert_eq!(
                hinted,
                error.status() == StatusCode::UNAUTHORIZED,
                "{error:?}: {value}"
            );
            assert!(value.matches("scope=").count() <= 1, "{value}");
            // The prepared responses carry the hint exactly as rendered now.
            let rendered = c.render(&error);
            assert_eq!(
                rendered.headers().get(http::header::WWW_AUTHENTICATE),
                Some(&c.header_value(&error).unwrap())
            );
        }
    }

    #[test]
    fn throttled_responses_say_when_to_retry() {
        let r = Rejections::default().render(&AuthError::TooManyRequests {
            retry_after: std::time::Duration::from_millis(1500),
        });
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
    }
}

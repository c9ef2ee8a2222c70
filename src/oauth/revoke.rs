//! The revocation endpoint (RFC 7009).

use std::fmt;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;

use super::form::{endpoint_service, no_store, read_token_form, store_error};
use crate::error::{BoxError, FailedAuthentication};
use crate::manager::TokenManager;
use crate::store::TokenBackend;
use crate::token::TokenDigest;

/// The revocation endpoint (RFC 7009).
///
/// `POST` with `token` and an optional `token_type_hint`. Answers 200 for
/// any token, known or not (§2.2); a token of a grant takes its family with
/// it. A token that is not well-formed for the manager's token format
/// (prefix, kind, length, checksum) is answered 200 without a store call.
/// A token the store does not hold, or a malformed one, is marked
/// [`FailedAuthentication`] (the answer stays 200): a `ThrottleLayer` in
/// front counts it, as it counts a bad bearer token. Revoking a known
/// token, even one already revoked, is no failure.
/// 400 `invalid_request` without a `token`; 503 when the store is down.
pub struct RevocationEndpoint<B> {
    tokens: TokenManager<B>,
}

impl<B> Clone for RevocationEndpoint<B> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
        }
    }
}

impl<B> fmt::Debug for RevocationEndpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationEndpoint").finish_non_exhaustive()
    }
}

impl<B: TokenBackend> RevocationEndpoint<B> {
    /// A revocation endpoint over `tokens`.
    pub fn new(tokens: TokenManager<B>) -> Self {
        Self { tokens }
    }

    async fn handle<Rb>(self, request: Request<Rb>) -> Response<Full<Bytes>>
    where
        Rb: Body + Send + 'static,
        Rb::Data: Send,
        Rb::Error: Into<BoxError>,
    {
        let form = match read_token_form(request).await {
            Ok(form) => form,
            Err(response) => return response,
        };
        let token = form.token();
        // Not one of this service's tokens: nothing to revoke, and no
        // reason to spend a store call on it (RFC 7009 §2.2: still 200).
        if self.tokens.policy().get_format().check(token).is_err() {
            return not_a_token();
        }
        match self.tokens.revoke_presented(&TokenDigest::of(token)).await {
            Ok(Some(_)) => no_store(Response::new(Full::default())),
            Ok(None) => not_a_token(),
            Err(error) => store_error(&error),
        }
    }
}

endpoint_service!(RevocationEndpoint);

/// The revocation of a token that is not one of the service's (malformed,
/// or well-formed and unknown): 200 as RFC 7009 §2.2 says, marked
/// [`FailedAuthentication`] so that a throttle in front bounds the lookups
/// a client can make with made-up tokens.
fn not_a_token() -> Response<Full<Bytes>> {
    let mut response = no_store(Response::new(Full::default()));
    response.extensions_mut().insert(FailedAuthentication);
    response
}

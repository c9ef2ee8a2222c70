//! The revocation endpoint (`oauth::RevocationEndpoint`, RFC 7009) as a
//! whole, over a `TokenManager` on a `MemoryStore` holding the fixture of
//! `common`.
//!
//! Input: byte 0 picks the method, the `Content-Type` and the framing
//! (see `common::Envelope`), byte 1 is unused, the rest is the form body.
//!
//! Properties, for any input:
//! - the service never panics and never answers 5xx;
//! - every answer is `Cache-Control: no-store`;
//! - a method other than `POST` is 405 with `Allow: POST`;
//! - otherwise 200 with an empty body (any token, known or not, RFC 7009
//!   §2.2) or 400 `invalid_request` (no `token`, a repeated parameter, a
//!   body that is not form-encoded or too large); 200 only for a form
//!   body;
//! - after a 200 for the fixture's live personal access token, that token
//!   is revoked.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run revocation_endpoint
//! ```

#![no_main]

mod common;

use common::{answer, block_on, Envelope, FORM_TYPES, MAX_FORM_BODY, TOKENS};
use http::header::ALLOW;
use http::Method;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tower_token_auth::oauth::RevocationEndpoint;
use tower_token_auth::token::Lookup;
use tower_token_auth::TokenStore;

fuzz_target!(|data: &[u8]| {
    let envelope = Envelope::parse(data, &FORM_TYPES);
    let tokens = common::manager();
    let request = envelope.request("/oauth/revoke", envelope.body, MAX_FORM_BODY);
    let response = block_on(RevocationEndpoint::new(tokens.clone()).oneshot(request))
        .unwrap_or_else(|e| match e {});
    let what = String::from_utf8_lossy(data);
    let answer = answer(response, &what);
    if envelope.method != Method::POST {
        assert_eq!(answer.status, 405, "{what:?}");
        assert_eq!(answer.header(&ALLOW), Some("POST"));
        return;
    }
    match answer.status.as_u16() {
        200 => {
            assert!(common::is_form(envelope.content_type), "{what:?}");
            assert!(envelope.framing < 3, "an oversize body was read");
            assert!(answer.body.is_empty(), "{:?}", answer.body);
            let presented = form_urlencoded::parse(envelope.body)
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned());
            if presented.as_deref() == Some(TOKENS.pat.as_str()) {
                let record = block_on(tokens.find(Lookup::of_token(&TOKENS.pat)))
                    .expect("memory store")
                    .expect("a revoked token is kept");
                assert!(record.is_revoked(), "revoked by {what:?}");
            }
        }
        400 => assert_eq!(answer.error(), Some("invalid_request"), "{what:?}"),
        status => panic!("{status} for {what:?}"),
    }
});

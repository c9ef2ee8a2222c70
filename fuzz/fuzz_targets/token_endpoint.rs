//! The token endpoint (`oauth::TokenEndpoint`) as a whole, over a
//! `TokenManager` on a `MemoryStore` holding the fixture of `common` (a
//! client, live and dead refresh tokens, a live code).
//!
//! Input: byte 0 picks the method, the `Content-Type` and the framing
//! (see `common::Envelope`), byte 1 is unused, the rest is the form body.
//!
//! Properties, for any input:
//! - the service never panics and never answers 5xx;
//! - every answer is `Cache-Control: no-store`, and a JSON answer is a
//!   JSON object;
//! - a method other than `POST` is 405 with `Allow: POST`;
//! - otherwise the answer is 200 or 400: 400 carries one of the documented
//!   `error` codes (`invalid_request`, `unsupported_grant_type`,
//!   `invalid_grant`, `invalid_scope`, `invalid_target`), and a body that
//!   is not form-encoded or is larger than 8 KiB is `invalid_request`;
//! - 200 only for a form body, and it carries an access token and a
//!   refresh token of the manager's format and kinds, `token_type`
//!   `Bearer`, an `expires_in` of at most 15 days, and a `scope` within
//!   the scopes of the fixture's grants.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run token_endpoint
//! ```

#![no_main]

mod common;

use common::{answer, block_on, Envelope, FORM_TYPES, MAX_FORM_BODY, S};
use http::header::ALLOW;
use http::Method;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tower_token_auth::oauth::TokenEndpoint;
use tower_token_auth::token::TokenKind;

const ERRORS: [&str; 5] = [
    "invalid_request",
    "unsupported_grant_type",
    "invalid_grant",
    "invalid_scope",
    "invalid_target",
];

fuzz_target!(|data: &[u8]| {
    let envelope = Envelope::parse(data, &FORM_TYPES);
    let tokens = common::manager();
    let request = envelope.request("/oauth/token", envelope.body, MAX_FORM_BODY);
    let response = block_on(TokenEndpoint::new(tokens.clone()).oneshot(request))
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
            let json = answer.json.as_ref().expect("a JSON answer");
            let format = tokens.policy().get_format();
            let token = |name: &str| {
                json[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} in {json}"))
            };
            assert_eq!(format.check(token("access_token")), Ok(TokenKind::Access));
            assert_eq!(format.check(token("refresh_token")), Ok(TokenKind::Refresh));
            assert_eq!(json["token_type"], "Bearer");
            let expires_in = json["expires_in"].as_u64().expect("expires_in");
            assert!(expires_in <= 15 * 86_400, "{expires_in}");
            let scope = common::scopes_of(&json["scope"]);
            assert!(!scope.is_empty());
            assert!(
                (common::grant_scopes() | S::BILLING_AGENT).contains(scope),
                "{scope:?} for {what:?}"
            );
        }
        400 => {
            let error = answer.error().expect("an error code");
            assert!(ERRORS.contains(&error), "{error} for {what:?}");
            if !common::is_form(envelope.content_type) || envelope.framing == 3 {
                assert_eq!(error, "invalid_request", "{what:?}");
            }
        }
        status => panic!("{status} for {what:?}"),
    }
});

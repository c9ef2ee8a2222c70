//! The introspection endpoint (`oauth::IntrospectionEndpoint`, RFC 7662)
//! as a whole, over a `TokenManager` on a `MemoryStore` holding the
//! fixture of `common`, with the caller credentials `gateway:s3cret`.
//!
//! Input: byte 0 picks the method, the `Content-Type` and the framing
//! (see `common::Envelope`); byte 1 the caller's `Authorization`: 0-1 the
//! valid Basic credentials, 2 the same with a lower-case scheme and extra
//! spaces, 3 none, 4 a wrong password, 5 the valid value twice, 6 the
//! valid credentials under `Bearer`, 7 whatever the body holds before its
//! first newline (the rest is then the body), 8-255 as `byte % 8`. The
//! rest is the form body.
//!
//! Properties, for any input:
//! - the service never panics and never answers 5xx;
//! - every answer is `Cache-Control: no-store`;
//! - a caller without the valid credentials (one `Authorization` value,
//!   scheme `Basic` in any case, base64 of exactly `gateway:s3cret`) gets
//!   401 `invalid_client` with `WWW-Authenticate`, and nothing about any
//!   token, whatever the method and body; a caller with them never does;
//! - for an authenticated caller: 405 for a method other than `POST`, 400
//!   `invalid_request` (no `token`, a repeated parameter, a body that is
//!   not form-encoded or too large), or 200 with exactly
//!   `{"active":false}`, or `active: true` with `scope`, `exp`, `iat`,
//!   `sub` and `token_type` `Bearer`, only for the fixture's live personal
//!   access and access tokens.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run introspection_endpoint
//! ```

#![no_main]

mod common;

use base64::Engine as _;
use common::{answer, block_on, Envelope, FORM_TYPES, MAX_FORM_BODY, TOKENS};
use http::header::{HeaderValue, ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use http::Method;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tower_token_auth::oauth::IntrospectionEndpoint;

const VALID: &str = "Basic Z2F0ZXdheTpzM2NyZXQ="; // gateway:s3cret

/// Whether `values` are the valid caller credentials, by the documented
/// rule.
fn authenticates(values: &[HeaderValue]) -> bool {
    let [value] = values else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let Some((scheme, rest)) = text.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("basic")
        && base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .is_ok_and(|decoded| {
                decoded
                    == format!(
                        "{}:{}",
                        common::INTROSPECTION_USER,
                        common::INTROSPECTION_PASSWORD
                    )
                    .as_bytes()
            })
}

fuzz_target!(|data: &[u8]| {
    let envelope = Envelope::parse(data, &FORM_TYPES);
    let mut body = envelope.body;
    let credentials: Vec<HeaderValue> = match envelope.arg % 8 {
        0 | 1 => vec![HeaderValue::from_static(VALID)],
        2 => vec![HeaderValue::from_static("basic   Z2F0ZXdheTpzM2NyZXQ=  ")],
        3 => vec![],
        4 => vec![HeaderValue::from_static("Basic Z2F0ZXdheTp3cm9uZw==")],
        5 => vec![
            HeaderValue::from_static(VALID),
            HeaderValue::from_static(VALID),
        ],
        6 => vec![HeaderValue::from_static("Bearer Z2F0ZXdheTpzM2NyZXQ=")],
        _ => {
            let end = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
            let value = HeaderValue::from_bytes(&body[..end]).ok();
            body = body.get(end + 1..).unwrap_or_default();
            value.into_iter().collect()
        }
    };
    let authenticated = authenticates(&credentials);
    let tokens = common::manager();
    let endpoint = IntrospectionEndpoint::new(
        tokens.clone(),
        common::INTROSPECTION_USER,
        common::INTROSPECTION_PASSWORD,
    );
    let mut request = envelope.request("/oauth/introspect", body, MAX_FORM_BODY);
    for value in credentials {
        request.headers_mut().append(AUTHORIZATION, value);
    }
    let response = block_on(endpoint.oneshot(request)).unwrap_or_else(|e| match e {});
    let what = String::from_utf8_lossy(data);
    let answer = answer(response, &what);
    if !authenticated {
        assert_eq!(answer.status, 401, "{what:?}");
        assert_eq!(answer.error(), Some("invalid_client"));
        assert!(answer.header(&WWW_AUTHENTICATE).is_some());
        assert!(!answer.body.windows(6).any(|w| w == b"active"), "{what:?}");
        return;
    }
    if envelope.method != Method::POST {
        assert_eq!(answer.status, 405, "{what:?}");
        assert_eq!(answer.header(&ALLOW), Some("POST"));
        return;
    }
    match answer.status.as_u16() {
        200 => {
            assert!(common::is_form(envelope.content_type), "{what:?}");
            assert!(envelope.framing < 3, "an oversize body was read");
            let json = answer.json.as_ref().expect("JSON");
            if answer.body.as_ref() == br#"{"active":false}"# {
                return;
            }
            assert_eq!(json["active"], true, "{json}");
            let token = form_urlencoded::parse(body)
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            assert!(
                token == TOKENS.pat || token == TOKENS.access,
                "{token:?} is active: {json}"
            );
            common::scopes_of(&json["scope"]);
            assert!(json["exp"].as_u64() > json["iat"].as_u64(), "{json}");
            assert_eq!(json["sub"], common::OWNER);
            assert_eq!(json["token_type"], "Bearer");
        }
        400 => assert_eq!(answer.error(), Some("invalid_request"), "{what:?}"),
        status => panic!("{status} for {what:?}"),
    }
});

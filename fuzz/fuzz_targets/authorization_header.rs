//! The `Authorization` field-value parser (RFC 6750 §2.1).
//!
//! Properties, for any bytes:
//! - `parse_authorization` never panics;
//! - it accepts a value exactly when the value is
//!   `bearer` (any case) `1*SP` `b64token`, as an independent model of the
//!   grammar says, and then returns the `b64token` as a suffix of the input;
//! - otherwise it says `OtherScheme` exactly when the value does not start
//!   with the `Bearer` auth-scheme, and `Malformed` when it does;
//! - an accepted token printed back as `Bearer <token>` parses to the same
//!   token, and a byte outside the grammar appended to an accepted value
//!   makes it malformed.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run authorization_header
//! ```

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_token_auth::auth::{parse_authorization, Authorization};
use tower_token_auth::token::TokenFormat;

/// What the grammar says a value is.
#[derive(Debug, PartialEq, Eq)]
enum Model<'a> {
    OtherScheme,
    Bearer(&'a [u8]),
    Malformed,
}

/// RFC 9110 §5.6.2 `tchar`, spelled out.
fn tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// RFC 6750 §2.1 `b64token` characters before the padding.
fn b64(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// The grammar as a state machine, written apart from the parser.
fn model(value: &[u8]) -> Model<'_> {
    const SCHEME: &[u8] = b"bearer";
    // The auth-scheme is `Bearer` when the value starts with it (any case)
    // and the next byte, if any, cannot continue a token.
    let is_bearer = value.len() >= SCHEME.len()
        && value
            .iter()
            .zip(SCHEME)
            .all(|(v, s)| v.to_ascii_lowercase() == *s)
        && value.get(SCHEME.len()).is_none_or(|b| !tchar(*b));
    if !is_bearer {
        return Model::OtherScheme;
    }
    #[derive(Clone, Copy)]
    enum State {
        Scheme,
        Spaces,
        Token,
        Padding,
    }
    let mut state = State::Scheme;
    let mut token_start = 0;
    for (i, &b) in value.iter().enumerate().skip(SCHEME.len()) {
        state = match (state, b) {
            (State::Scheme | State::Spaces, b' ') => State::Spaces,
            (State::Spaces, b) if b64(b) => {
                token_start = i;
                State::Token
            }
            (State::Token, b) if b64(b) => State::Token,
            (State::Token | State::Padding, b'=') => State::Padding,
            _ => return Model::Malformed,
        };
    }
    match state {
        State::Token | State::Padding => Model::Bearer(&value[token_start..]),
        State::Scheme | State::Spaces => Model::Malformed,
    }
}

fuzz_target!(|value: &[u8]| {
    let parsed = parse_authorization(value);
    let expected = model(value);
    match (parsed, &expected) {
        (Authorization::OtherScheme, Model::OtherScheme)
        | (Authorization::Malformed, Model::Malformed) => {}
        (Authorization::Bearer(token), Model::Bearer(model_token)) => {
            assert_eq!(token.as_bytes(), *model_token, "token of {value:?}");
            // A borrowed suffix of the input, never a copy or a rewrite.
            let suffix = &value[value.len() - token.len()..];
            assert_eq!(token.as_ptr(), suffix.as_ptr(), "token borrows the input");
            assert!(!token.is_empty() && !token.starts_with('='));
            // Printed back, it parses to the same token.
            for printed in [
                format!("Bearer {token}"),
                format!("bearer {token}"),
                format!("BEARER   {token}"),
            ] {
                assert_eq!(
                    parse_authorization(printed.as_bytes()),
                    Authorization::Bearer(token),
                    "{printed:?}"
                );
            }
            // Anything outside the grammar after it makes the value malformed.
            for extra in [b' ', b'\t', b',', b'"', 0, 0x80] {
                let mut longer = value.to_vec();
                longer.push(extra);
                assert_eq!(
                    parse_authorization(&longer),
                    Authorization::Malformed,
                    "{longer:?}"
                );
            }
            // The next step of the middleware takes any accepted token.
            let _ = TokenFormat::default().check(token);
        }
        (parsed, expected) => {
            panic!("{value:?}: parser says {parsed:?}, the grammar says {expected:?}")
        }
    }
});

//! The `Authorization` header grammar of RFC 6750 §2.1.

use http::header::{Entry, AUTHORIZATION};
use http::{HeaderMap, Uri};

use crate::error::{AuthError, InvalidRequestReason, InvalidTokenReason};

/// What an `Authorization` field value holds, by RFC 6750 §2.1:
///
/// ```text
/// credentials = "Bearer" 1*SP b64token
/// b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
/// ```
///
/// The scheme is case-insensitive.
///
/// ```
/// use tower_token_auth::auth::{parse_authorization, Authorization};
///
/// assert_eq!(parse_authorization(b"bEaReR  abc=="), Authorization::Bearer("abc=="));
/// assert_eq!(parse_authorization(b"Basic dXNlcjpwYXNz"), Authorization::OtherScheme);
/// assert_eq!(parse_authorization(b"Bearer\tabc"), Authorization::Malformed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization<'a> {
    /// An empty value, or a scheme other than Bearer.
    OtherScheme,
    /// The Bearer scheme with a well-formed `b64token`.
    Bearer(&'a str),
    /// The Bearer scheme without a well-formed `b64token` after `1*SP`.
    Malformed,
}

/// Parses one `Authorization` field value. Never panics, never allocates.
#[inline]
pub fn parse_authorization(value: &[u8]) -> Authorization<'_> {
    let scheme_end = value
        .iter()
        .position(|b| !is_tchar(*b))
        .unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return Authorization::OtherScheme;
    }
    let rest = &value[scheme_end..];
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    if spaces == 0 {
        return Authorization::Malformed;
    }
    let token = &rest[spaces..];
    // b64token = 1*( b64 characters ) *"=": without its trailing `=`s, the
    // token must be one or more b64 characters. The check is a fold rather
    // than a search for the first bad byte: no branch per byte.
    let padding = token.iter().rev().take_while(|b| **b == b'=').count();
    let chars = &token[..token.len() - padding];
    let invalid = chars
        .iter()
        .fold(false, |acc, b| acc | !is_b64token_char(*b));
    if chars.is_empty() || invalid {
        return Authorization::Malformed;
    }
    // Every byte checked above is ASCII.
    match std::str::from_utf8(token) {
        Ok(token) => Authorization::Bearer(token),
        Err(_) => Authorization::Malformed,
    }
}

/// Whether each byte is a `tchar` of RFC 9110 §5.6.2 (the characters of
/// an auth-scheme): one table load per byte of the scheme instead of a
/// search through the punctuation list.
static TCHARS: [bool; 256] = tchars();

const fn tchars() -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
}

#[inline]
fn is_tchar(b: u8) -> bool {
    TCHARS[usize::from(b)]
}

/// Whether `b` is a character of `b64token` before its `=` padding (RFC
/// 6750 §2.1). Comparisons rather than a table load, so that the compiler
/// checks many bytes of a token per instruction.
#[inline]
fn is_b64token_char(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether the URI query has an `access_token` parameter (RFC 6750 §2.3),
/// which this crate never accepts.
#[inline]
pub(crate) fn query_has_token(uri: &Uri) -> bool {
    // Names are compared decoded, so `access%5Ftoken` is caught too. The
    // parser borrows when nothing is escaped.
    uri.query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "access_token")
    })
}

/// The bearer token of a request, `Ok(None)` when it carries no bearer
/// credentials, or the rejection. `in_url` is whether the URI carries an
/// `access_token` parameter ([`query_has_token`]).
///
/// Every `Authorization` value is marked sensitive on the way, so that
/// whatever logs headers further in (a trace layer, a handler) does not
/// print the credential: one lookup of the field for both jobs.
#[inline]
pub(crate) fn bearer_token(
    headers: &mut HeaderMap,
    in_url: bool,
) -> Result<Option<&str>, AuthError> {
    let first = match headers.entry(AUTHORIZATION) {
        Entry::Occupied(mut values) => {
            let mut count = 0usize;
            for value in values.iter_mut() {
                value.set_sensitive(true);
                count += 1;
            }
            if count > 1 {
                return Err(AuthError::InvalidRequest(
                    InvalidRequestReason::RepeatedCredentials,
                ));
            }
            Some(&*values.into_mut())
        }
        Entry::Vacant(_) => None,
    };
    match first.map(|v| parse_authorization(v.as_bytes())) {
        None | Some(Authorization::OtherScheme) if in_url => {
            Err(AuthError::InvalidRequest(InvalidRequestReason::TokenInUrl))
        }
        None | Some(Authorization::OtherScheme) => Ok(None),
        Some(_) if in_url => Err(AuthError::InvalidRequest(
            InvalidRequestReason::RepeatedCredentials,
        )),
        Some(Authorization::Malformed) => {
            Err(AuthError::InvalidToken(InvalidTokenReason::Malformed))
        }
        Some(Authorization::Bearer(token)) => Ok(Some(token)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_classes_follow_the_rfc_character_lists() {
        for b in 0..=u8::MAX {
            let alnum = b.is_ascii_alphanumeric();
            assert_eq!(
                is_tchar(b),
                alnum || b"!#$%&'*+-.^_`|~".contains(&b),
                "tchar {b:#04x}"
            );
            assert_eq!(
                is_b64token_char(b),
                alnum || b"-._~+/".contains(&b),
                "b64token {b:#04x}"
            );
        }
    }

    #[test]
    fn scheme_is_case_insensitive_and_needs_spaces() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR abc",
            "Bearer    abc",
        ] {
            assert_eq!(
                parse_authorization(v.as_bytes()),
                Authorization::Bearer("abc"),
                "{v}"
            );
        }
        for v in [
            "Bearer\tabc",
            "Bearer",
            "Bearer ",
            "Bearer  ",
            "Bearer abc ",
            "Bearer  abc\t",
        ] {
            assert_eq!(
                parse_authorization(v.as_bytes()),
                Authorization::Malformed,
                "{v:?}"
            );
        }
    }

    #[test]
    fn other_schemes_and_empty_values_are_not_bearer() {
        for v in [
            "",
            " Bearer abc",
            "Basic dXNlcjpwYXNz",
            "Bearerabc",
            "Token abc",
            "Bear abc",
            "Digest x=y",
        ] {
            assert_eq!(
                parse_authorization(v.as_bytes()),
                Authorization::OtherScheme,
                "{v:?}"
            );
        }
    }

    #[test]
    fn b64token_grammar() {
        assert_eq!(
            parse_authorization(b"Bearer a-._~+/Z9"),
            Authorization::Bearer("a-._~+/Z9")
        );
        assert_eq!(
            parse_authorization(b"Bearer abc=="),
            Authorization::Bearer("abc==")
        );
        for v in [
            &b"Bearer ==="[..],
            b"Bearer ab=c",
            b"Bearer a b",
            b"Bearer a,b",
            b"Bearer \"abc\"",
            b"Bearer abc\xc3\xa9",
            b"Bearer \xff\xfe",
            b"Bearer a\x00b",
        ] {
            assert_eq!(parse_authorization(v), Authorization::Malformed, "{v:?}");
        }
    }

    #[test]
    fn url_tokens_are_detected_by_parameter_name() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(query_has_token(&uri("/x?access_token=abc")));
        assert!(query_has_token(&uri("/x?a=1&access_token")));
        assert!(!query_has_token(&uri("/x?my_access_token=abc")));
        assert!(query_has_token(&uri("/x?access%5Ftoken=abc")));
        assert!(query_has_token(&uri("/x?a=1;b&access_token=")));
        assert!(!query_has_token(&uri("/x")));
    }

    proptest! {
        #[test]
        fn parser_never_panics(value in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_authorization(&value);
        }

        #[test]
        fn accepted_tokens_are_b64tokens(value in "(?i:bearer) {1,3}[A-Za-z0-9._~+/=-]{0,40}") {
            if let Authorization::Bearer(t) = parse_authorization(value.as_bytes()) {
                prop_assert!(!t.is_empty());
                prop_assert!(!t.starts_with('='));
                prop_assert!(value.ends_with(t));
            }
        }
    }

    fn authorization(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn bearer_token_reads_one_field_and_marks_every_value_sensitive() {
        let mut headers = authorization(&["Bearer abc"]);
        assert!(matches!(bearer_token(&mut headers, false), Ok(Some("abc"))));
        assert!(headers.get(AUTHORIZATION).unwrap().is_sensitive());

        let mut headers = authorization(&["Bearer abc", "Bearer def"]);
        assert!(matches!(
            bearer_token(&mut headers, false),
            Err(AuthError::InvalidRequest(
                InvalidRequestReason::RepeatedCredentials
            ))
        ));
        assert!(headers
            .get_all(AUTHORIZATION)
            .iter()
            .all(|v| v.is_sensitive()));

        assert!(matches!(
            bearer_token(&mut HeaderMap::new(), false),
            Ok(None)
        ));
        let mut basic = authorization(&["Basic dXNlcjpwYXNz"]);
        assert!(matches!(bearer_token(&mut basic, false), Ok(None)));
        assert!(matches!(
            bearer_token(&mut authorization(&["Bearer a b"]), false),
            Err(AuthError::InvalidToken(InvalidTokenReason::Malformed))
        ));
    }

    #[test]
    fn bearer_token_refuses_a_token_in_the_url() {
        assert!(matches!(
            bearer_token(&mut HeaderMap::new(), true),
            Err(AuthError::InvalidRequest(InvalidRequestReason::TokenInUrl))
        ));
        assert!(matches!(
            bearer_token(&mut authorization(&["Basic dXNlcjpwYXNz"]), true),
            Err(AuthError::InvalidRequest(InvalidRequestReason::TokenInUrl))
        ));
        assert!(matches!(
            bearer_token(&mut authorization(&["Bearer abc"]), true),
            Err(AuthError::InvalidRequest(
                InvalidRequestReason::RepeatedCredentials
            ))
        ));
    }
}

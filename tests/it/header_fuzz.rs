//! Arbitrary `Authorization` values through the whole stack: never a
//! panic, never a 200, and with a healthy store never a 5xx.

use std::sync::OnceLock;

use http::{HeaderValue, StatusCode};
use proptest::prelude::*;
use tokio::runtime::Runtime;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::manager::IssuedToken;
use tower_token_auth::token::TokenKind;
use tower_token_auth::PayRequestScopes as S;

use crate::support::*;

/// One stack for every case: a store holding tokens of every kind, and a
/// route requiring `billing.read`.
struct Stack {
    runtime: Runtime,
    fixture: Fixture,
    tokens: Vec<IssuedToken<S>>,
}

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let fixture = Fixture::new();
        let tokens = runtime.block_on(async {
            let mut tokens = Vec::new();
            for kind in TokenKind::ALL.into_iter().filter(|k| k.is_token()) {
                tokens.push(fixture.issue(kind, S::all()).await);
            }
            tokens
        });
        Stack {
            runtime,
            fixture,
            tokens,
        }
    })
}

/// Sends one request with `Authorization: value`; returns the status and
/// how many requests reached the route.
fn send(value: HeaderValue) -> (StatusCode, usize) {
    let stack = stack();
    let auth = stack.fixture.layer();
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_READ))
        .service(inner.clone());
    let response = stack
        .runtime
        .block_on(service.oneshot(with_authorization(value)))
        .unwrap();
    (response.status(), inner.calls())
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        // Not a value an HTTP stack can hand to the middleware.
        return Ok(());
    };
    let (status, calls) = send(value);
    prop_assert_ne!(
        status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(bytes)
    );
    prop_assert!(
        !status.is_server_error(),
        "{status} for {:?}",
        String::from_utf8_lossy(bytes)
    );
    prop_assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
        "{status} for {:?}",
        String::from_utf8_lossy(bytes)
    );
    prop_assert_eq!(calls, 0);
    Ok(())
}

/// Bytes that are mostly valid in a header value, with some that are not.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            8 => 0x20u8..0x7f,
            2 => 0x80u8..=0xff,
            1 => Just(b'\t'),
            1 => any::<u8>(),
        ],
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_authorization_bytes_never_pass(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check(&bytes)?;
    }

    #[test]
    fn arbitrary_header_values_never_pass(bytes in header_bytes()) {
        check(&bytes)?;
    }

    #[test]
    fn arbitrary_bearer_credentials_never_pass(
        scheme in prop_oneof![Just("Bearer "), Just("bearer  "), Just("BEARER\t"), Just("Bearer")],
        bytes in header_bytes(),
    ) {
        check(&[scheme.as_bytes(), &bytes].concat())?;
    }

    #[test]
    fn b64tokens_that_are_not_issued_never_pass(
        token in "(pr_(pat|at|rt)_)?[A-Za-z0-9._~+/-]{0,60}={0,3}",
    ) {
        check(format!("Bearer {token}").as_bytes())?;
    }

    #[test]
    fn corrupted_real_tokens_never_pass(
        which in 0usize..3,
        position in any::<prop::sample::Index>(),
        byte in 0x21u8..0x7f,
    ) {
        let token = stack().tokens[which].secret.expose_secret().as_bytes().to_vec();
        let at = position.index(token.len());
        prop_assume!(token[at] != byte);
        let mut corrupted = token;
        corrupted[at] = byte;
        check(&[b"Bearer ".as_slice(), &corrupted].concat())?;
    }
}

#[test]
fn the_stack_under_fuzzing_accepts_its_real_tokens() {
    // Guards the properties above against a stack that rejects everything.
    let stack = stack();
    let access = &stack.tokens[1];
    assert_eq!(access.record.kind, TokenKind::Access);
    let value =
        HeaderValue::from_str(&format!("Bearer {}", access.secret.expose_secret())).unwrap();
    assert_eq!(send(value), (StatusCode::OK, 1));
}

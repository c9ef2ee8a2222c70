//! What the example's tests share: one HTTP request on a socket
//! ([`socket`]), a PostgreSQL server ([`pg`]), the test binary's log
//! ([`logs`], [`test_span`]) and the check that a text shows no token
//! ([`assert_redacted`]).

use std::sync::{Arc, Mutex, OnceLock};

use tower_token_auth::token::TokenSecret;

/// One HTTP/1.1 request on a socket of its own.
pub mod socket;

/// PostgreSQL for the tests: a real server (`DATABASE_URL`, or a throwaway
/// cluster), the SQL backends' test helper, shared as it is.
#[cfg(feature = "postgres")]
#[allow(dead_code)] // not every helper is used here
#[path = "../../../../../crates/tower-token-auth-sqlx/tests/it/pg.rs"]
pub mod pg;

// ---- redaction ----

/// The strings that must never appear for a token: the plaintext, its
/// random part, and the hex of its digest (whole, and its first 8 bytes).
pub fn forbidden(secret: &TokenSecret) -> Vec<String> {
    let token = secret.expose_secret();
    let random = &token[token.rfind('_').unwrap() + 1..];
    let hex: String = secret
        .digest()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex.len(), 64);
    vec![
        token.to_owned(),
        random.to_owned(),
        random[..12].to_owned(),
        hex.clone(),
        hex[..16].to_owned(),
        hex.to_uppercase(),
    ]
}

/// Fails when `text` shows any of [`forbidden`]'s strings of `secrets`.
pub fn assert_redacted(label: &str, text: &str, secrets: &[&TokenSecret]) {
    for secret in secrets {
        for needle in forbidden(secret) {
            assert!(!text.contains(&needle), "{label} shows {needle:?}:\n{text}");
        }
    }
}

// ---- the log ----

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything logged so far, by every test (a test's own lines name
    /// its [`test_span`]).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log of this test binary: every event and span (with its fields) at
/// TRACE, of every test from the first call on.
///
/// The subscriber is the process-wide default, installed once: a
/// thread-local one (`set_default`) can miss events whose callsite another
/// test thread reached first, because `tracing` caches callsite interest
/// globally.
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
}

/// The span a test runs its logging part in (with
/// `tracing::Instrument::instrument`): every line logged inside it names
/// `test`.
pub fn test_span(test: &'static str) -> tracing::Span {
    tracing::info_span!("it", test = %test)
}

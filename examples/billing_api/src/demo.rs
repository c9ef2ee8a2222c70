//! Demo credentials: one token per situation worth trying, and the
//! dashboard login, written to a file the service's user can read.
//!
//! The file is a JSON array with one object per credential:
//!
//! ```json
//! [
//!   { "label": "default", "kind": "personal_access", "scopes": "billing.read", "token": "pr_pat_…" },
//!   { "label": "billing.agent", "kind": "personal_access", "scopes": "billing.agent", "token": "pr_pat_…" },
//!   { "label": "dashboard", "username": "demo", "password": "…" }
//! ]
//! ```
//!
//! Labels: `default` (created without scopes, so it holds `billing.read`),
//! one per scope name, `expired` and `revoked` (`billing.read` personal
//! access tokens that no longer work), `access` (an access token with
//! `billing.read`), `refresh` (a refresh token, which is not an API
//! credential), `wrong-audience` (a `billing.read` personal access token
//! issued for the resource `https://other.example/`, refused here),
//! `dashboard` (the dashboard login: HTTP Basic on the JSON API, the form on
//! the web page) and `introspection` (the HTTP Basic login of callers of
//! `/oauth/introspect`).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_token_auth::manager::IssueRequest;
use tower_token_auth::token::TokenRecord;
use tower_token_auth::token::{TokenKind, TokenSecret};
use tower_token_auth::{PayRequestScopes as S, ScopeSet};

use super::AppState;

/// Any error while creating or writing the demo credentials.
pub type DemoError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The owner of every demo token.
pub const DEMO_OWNER: &str = "demo-user";

/// The resource the `wrong-audience` token is issued for.
pub const WRONG_AUDIENCE: &str = "https://other.example/";

/// The dashboard login: a stand-in for the host application's own user
/// login, checked with HTTP Basic. The password is random per process.
pub struct DashboardLogin {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl DashboardLogin {
    /// User `demo` with a random 128-bit password (32 hex digits).
    pub fn generate() -> Result<Self, DemoError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| format!("random number generator failed: {e}"))?;
        let password = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            username: "demo".to_owned(),
            password,
        })
    }

    /// Whether `presented` (the decoded HTTP Basic credentials,
    /// `user:password`) is this login, in time that does not depend on
    /// either side: both are hashed to a SHA-256 digest, and the two 32-byte
    /// digests are compared in constant time, so neither where they differ
    /// nor their lengths show. An empty password admits nobody.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = format!("{}:{}", self.username, self.password);
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let expected: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
        bool::from(presented.ct_eq(&expected)) && !self.password.is_empty()
    }
}

impl fmt::Debug for DashboardLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardLogin")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// One entry of the demo file. It holds plaintext secrets, so it has no
/// `Debug`: it is only ever serialized into the private file.
#[derive(Serialize)]
#[serde(untagged)]
pub enum DemoCredential {
    /// A token.
    Token {
        /// What the token is for (`default`, `billing.read`, `expired`, …).
        label: String,
        /// `personal_access`, `access` or `refresh`.
        kind: &'static str,
        /// The scope string it holds.
        scopes: String,
        /// The token itself.
        token: String,
    },
    /// A login: the dashboard's or the introspection callers'.
    Login {
        /// `dashboard` or `introspection`.
        label: &'static str,
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl DemoCredential {
    fn token(label: &str, secret: &TokenSecret, record: &TokenRecord<S>) -> Self {
        Self::Token {
            label: label.to_owned(),
            kind: record.kind.as_str(),
            scopes: record.scopes.scope_string(),
            token: secret.expose_secret().to_owned(),
        }
    }
}

/// Issues every demo token through the state's tokens and returns them with the
/// dashboard login, in the documented order.
pub async fn issue(state: &AppState) -> Result<Vec<DemoCredential>, DemoError> {
    let tokens = &state.tokens;
    let request = |kind, label: &str| IssueRequest::new(kind, format!("demo: {label}"), DEMO_OWNER);
    let mut credentials = Vec::new();

    // No scopes at creation: the manager gives the default set, billing.read.
    let issued = tokens
        .issue(request(TokenKind::PersonalAccess, "default"))
        .await?;
    credentials.push(DemoCredential::token(
        "default",
        &issued.secret,
        &issued.record,
    ));

    for (name, scopes) in S::SCOPES {
        let issued = tokens
            .issue(request(TokenKind::PersonalAccess, name).scopes(*scopes))
            .await?;
        credentials.push(DemoCredential::token(name, &issued.secret, &issued.record));
    }

    // Expired: issued through the manager like any other token, with a
    // lifetime of one millisecond, then left to run out. This works the same
    // on every backend (memory or PostgreSQL).
    let issued = tokens
        .issue(
            request(TokenKind::PersonalAccess, "expired")
                .scopes(S::BILLING_READ)
                .lifetime(Duration::from_millis(1)),
        )
        .await?;
    credentials.push(DemoCredential::token(
        "expired",
        &issued.secret,
        &issued.record,
    ));
    let left = issued
        .record
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(2)).await;

    // Revoked: a normal token, revoked through the management API.
    let issued = tokens
        .issue(request(TokenKind::PersonalAccess, "revoked").scopes(S::BILLING_READ))
        .await?;
    tokens.revoke(issued.record.id).await?;
    credentials.push(DemoCredential::token(
        "revoked",
        &issued.secret,
        &issued.record,
    ));

    // Access and refresh: one pair of one family, as a token endpoint
    // grants them, so the refresh token can later be exchanged.
    let pair = tokens
        .issue_pair("demo: access", DEMO_OWNER, Some(S::BILLING_READ))
        .await?;
    credentials.push(DemoCredential::token(
        "access",
        &pair.access.secret,
        &pair.access.record,
    ));
    credentials.push(DemoCredential::token(
        "refresh",
        &pair.refresh.secret,
        &pair.refresh.record,
    ));

    // Issued for another resource server: this one refuses it (401).
    let issued = tokens
        .issue(
            request(TokenKind::PersonalAccess, "wrong-audience")
                .scopes(S::BILLING_READ)
                .audience([WRONG_AUDIENCE]),
        )
        .await?;
    credentials.push(DemoCredential::token(
        "wrong-audience",
        &issued.secret,
        &issued.record,
    ));

    credentials.push(DemoCredential::Login {
        label: "dashboard",
        username: state.dashboard.username.clone(),
        password: state.dashboard.password.clone(),
    });
    credentials.push(DemoCredential::Login {
        label: "introspection",
        username: state.introspection.username.clone(),
        password: state.introspection.password.clone(),
    });
    Ok(credentials)
}

/// Writes the credentials to `path` as a JSON array, readable by the owner
/// only (mode 0600 on Unix).
///
/// The JSON goes to a temporary file in the same directory first, which is
/// then renamed over `path`: a reader sees either no file or the whole one.
pub fn write_file(path: &Path, credentials: &[DemoCredential]) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(credentials)?;
    json.push(b'\n');
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = create_private(&temp)
        .and_then(|mut file| {
            file.write_all(&json)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Creates a new file that only its owner can read; fails if it exists (so
/// a symlink planted at the temporary name is not followed).
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23, row 5: the HTTP Basic login is compared as two SHA-256
    /// digests, and is still exactly right for equal, different, longer,
    /// shorter and empty credentials.
    #[test]
    fn the_basic_login_matches_its_own_credentials_only() {
        let login = DashboardLogin {
            username: "demo".to_owned(),
            password: "0123456789abcdef".to_owned(),
        };
        assert!(login.matches(b"demo:0123456789abcdef"));
        for wrong in [
            &b"demo:0123456789abcdeF"[..],
            b"demo:0123456789abcdef0",
            b"demo:0123456789abcdef:",
            b"demo:0123456789abcde",
            b"demo:",
            b"demo",
            b"demo0123456789abcdef",
            b"Demo:0123456789abcdef",
            b":0123456789abcdef",
            b"",
            &[0xff; 21],
        ] {
            assert!(
                !login.matches(wrong),
                "{:?}",
                String::from_utf8_lossy(wrong)
            );
        }
        let open = DashboardLogin {
            username: "demo".to_owned(),
            password: String::new(),
        };
        assert!(!open.matches(b"demo:"), "an empty password admits nobody");
    }
}

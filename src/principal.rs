//! The authenticated caller.

use std::sync::Arc;
use std::time::SystemTime;

use crate::scope::ScopeSet;
use crate::token::TokenKind;
use crate::token::{TokenId, TokenRecord};

/// Who made the request: the token the middleware accepted.
///
/// [`TokenAuth`](crate::auth::TokenAuth) puts one in the request's
/// extensions; handlers read it from there (or, with the `axum` feature,
/// take it as an extractor). Cloning is cheap: the record is shared.
#[derive(Debug, Clone)]
pub struct Principal<S> {
    record: Arc<TokenRecord<S>>,
}

impl<S: ScopeSet> Principal<S> {
    /// The principal of an accepted token record.
    pub fn new(record: Arc<TokenRecord<S>>) -> Self {
        Self { record }
    }

    /// The token's public id.
    pub fn token_id(&self) -> TokenId {
        self.record.id
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The token's owner.
    pub fn owner(&self) -> &str {
        &self.record.owner
    }

    /// The token's kind.
    pub fn kind(&self) -> TokenKind {
        self.record.kind
    }

    /// Every scope the token holds, implied ones included.
    pub fn scopes(&self) -> S {
        self.record.scopes
    }

    /// Whether the token holds all of `scopes`.
    pub fn has(&self, scopes: S) -> bool {
        self.record.scopes.contains(scopes)
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.record.expires_at
    }

    /// The whole stored record (without its plaintext, which no store has).
    pub fn record(&self) -> &Arc<TokenRecord<S>> {
        &self.record
    }
}

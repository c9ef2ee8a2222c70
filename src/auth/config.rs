//! The settings and shared state of one [`TokenAuthLayer`](super::TokenAuthLayer)
//! and its services: the bottom of the `auth` module, which the layer, the
//! service and the future all read.

use std::sync::Arc;

use crate::audit::Audit;
use crate::error::Rejections;
use crate::manager::UsageTracker;
use crate::token::{Clock, TokenFormat, TokenRecord};

/// Settings shared by every clone of the layer and its services.
#[derive(Debug, Clone)]
pub(crate) struct AuthConfig {
    /// `None` for opaque tokens of another issuer: no offline check.
    pub(crate) format: Option<TokenFormat>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) optional: bool,
    /// This server's resource identifiers (RFC 8707); empty: no audience
    /// check.
    pub(crate) resources: Vec<String>,
    /// Whether a token with no recorded audience passes the check.
    pub(crate) accept_unbound: bool,
    pub(crate) challenge: Rejections,
    pub(crate) audit: Audit,
    pub(crate) usage: Option<UsageTracker>,
}

impl AuthConfig {
    /// Whether `record`'s audience lets it be used here.
    pub(crate) fn audience_admits<S>(&self, record: &TokenRecord<S>) -> bool {
        self.resources.is_empty()
            || record.is_for_any(&self.resources)
            || (self.accept_unbound && record.audience.is_empty())
    }
}

/// What every clone of one [`TokenAuth`] shares.
#[derive(Clone)]
pub(crate) struct Parts<St> {
    pub(crate) store: St,
    pub(crate) config: Arc<AuthConfig>,
}

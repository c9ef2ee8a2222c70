use std::sync::Arc;

use crate::error::AuthError;

use super::ScopeSet;

/// What a route requires of a token's scopes: all scopes of one set, or all
/// scopes of any one of several sets.
///
/// The requirement also carries the `scope` attribute of its
/// `insufficient_scope` challenge, computed once when it is built.
///
/// ```
/// use tower_token_auth::scope::{PayRequestScopes as S, Requirement};
///
/// let write = Requirement::all(S::BILLING_WRITE);
/// assert!(write.is_satisfied_by(S::BILLING_AGENT));
/// assert!(!write.is_satisfied_by(S::BILLING_READ));
///
/// let either = Requirement::any_of([S::BILLING_READ, S::CUSTOMERS_READ]);
/// assert!(either.is_satisfied_by(S::CUSTOMERS_READ));
/// assert_eq!(either.scope_attribute(), "billing.read customers.read");
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Requirement<S> {
    alternatives: Arc<[S]>,
    attribute: Arc<str>,
}

impl<S> Clone for Requirement<S> {
    fn clone(&self) -> Self {
        Self {
            alternatives: Arc::clone(&self.alternatives),
            attribute: Arc::clone(&self.attribute),
        }
    }
}

impl<S: ScopeSet> Requirement<S> {
    /// Requires every scope in `scopes`.
    pub fn all(scopes: S) -> Self {
        Self::any_of([scopes])
    }

    /// Requires every scope of at least one of the given sets.
    ///
    /// An empty list of alternatives is never satisfied.
    pub fn any_of(alternatives: impl IntoIterator<Item = S>) -> Self {
        let alternatives: Arc<[S]> = alternatives.into_iter().collect();
        // RFC 6750 §3 has one `scope` attribute; for alternatives it lists
        // each alternative's scopes, so every scope that could satisfy the
        // route is named (an alternative implied by another still shows).
        let mut names: Vec<&str> = Vec::new();
        for alternative in alternatives.iter() {
            let own = alternative.scope_string();
            for name in own.split(' ').filter(|n| !n.is_empty()) {
                if let Some(known) = S::SCOPES.iter().find(|(n, _)| *n == name) {
                    if !names.contains(&known.0) {
                        names.push(known.0);
                    }
                }
            }
        }
        let attribute = names.join(" ").into();
        Self {
            alternatives,
            attribute,
        }
    }

    /// Whether a token holding `held` meets the requirement.
    pub fn is_satisfied_by(&self, held: S) -> bool {
        self.alternatives.iter().any(|need| held.contains(*need))
    }

    /// The `scope` attribute of the `insufficient_scope` challenge.
    pub fn scope_attribute(&self) -> &str {
        &self.attribute
    }

    pub(crate) fn attribute_arc(&self) -> Arc<str> {
        Arc::clone(&self.attribute)
    }

    /// The error of a principal that does not meet this requirement.
    pub(crate) fn denial(&self) -> AuthError {
        AuthError::InsufficientScope {
            required: self.attribute_arc(),
        }
    }
}

impl<S: ScopeSet> From<S> for Requirement<S> {
    fn from(scopes: S) -> Self {
        Self::all(scopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;

    #[test]
    fn all_requires_every_scope() {
        let r = Requirement::all(S::BILLING_READ | S::CUSTOMERS_READ);
        assert!(!r.is_satisfied_by(S::BILLING_READ));
        assert!(r.is_satisfied_by(S::BILLING_AGENT | S::CUSTOMERS_READ));
        assert_eq!(r.scope_attribute(), "billing.read customers.read");
    }

    #[test]
    fn any_of_accepts_one_alternative() {
        let r = Requirement::any_of([S::PRODUCTS_WRITE, S::BILLING_AGENT]);
        assert!(r.is_satisfied_by(S::BILLING_AGENT));
        assert!(r.is_satisfied_by(S::PRODUCTS_WRITE));
        assert!(!r.is_satisfied_by(S::BILLING_READ | S::BILLING_WRITE));
    }

    #[test]
    fn empty_alternatives_are_never_satisfied() {
        let r = Requirement::<S>::any_of([]);
        assert!(!r.is_satisfied_by(S::all()));
    }
}

use std::sync::Arc;

use super::ScopeSet;

/// What a route requires of a token's scopes: all scopes of one set, or all
/// scopes of any one of several sets.
///
/// The requirement also carries the `scope` attribute of its
/// `insufficient_scope` challenge, computed once when it is built.
///
/// ```
/// use tower_token_auth::scope::{PayRequestScopes as S, Requirement, ScopeSet};
///
/// let write = Requirement::all(S::BILLING_WRITE);
/// assert!(write.is_satisfied_by(S::BILLING_AGENT));
/// assert!(!write.is_satisfied_by(S::BILLING_READ));
///
/// let either = Requirement::any_of([S::BILLING_READ, S::CUSTOMERS_READ]);
/// assert!(either.is_satisfied_by(S::CUSTOMERS_READ));
/// assert_eq!(either.scope_attribute(), "billing.read customers.read");
///
/// // A requirement of no scopes would admit every token: refused. Use the
/// // `try_` constructors for scopes read from configuration.
/// let typo = S::parse_scope("")?; // parses to nothing
/// assert!(Requirement::try_all(typo).is_err());
/// # Ok::<(), tower_token_auth::scope::ScopeError>(())
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

/// A [`Requirement`] of no scopes, which every token would meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a scope requirement must name at least one scope: an empty one would admit every token")]
pub struct EmptyRequirement;

impl<S: ScopeSet> Requirement<S> {
    /// Requires every scope in `scopes`.
    ///
    /// # Panics
    ///
    /// When `scopes` is empty: such a requirement would admit every token.
    /// Use [`try_all`](Self::try_all) for scopes that come from
    /// configuration.
    pub fn all(scopes: S) -> Self {
        Self::any_of([scopes])
    }

    /// Requires every scope in `scopes`; an error when it is empty (which
    /// would admit every token), e.g. a scope string from configuration
    /// that parsed to nothing.
    pub fn try_all(scopes: S) -> Result<Self, EmptyRequirement> {
        Self::try_any_of([scopes])
    }

    /// Requires every scope of at least one of the given sets.
    ///
    /// An empty list of alternatives is never satisfied.
    ///
    /// # Panics
    ///
    /// When one of the alternatives is empty: it would admit every token.
    /// Use [`try_any_of`](Self::try_any_of) for scopes that come from
    /// configuration.
    pub fn any_of(alternatives: impl IntoIterator<Item = S>) -> Self {
        match Self::try_any_of(alternatives) {
            Ok(requirement) => requirement,
            Err(error) => panic!("{error}"),
        }
    }

    /// Requires every scope of at least one of the given sets; an error
    /// when one of them is empty (it would admit every token).
    ///
    /// An empty list of alternatives is never satisfied.
    pub fn try_any_of(alternatives: impl IntoIterator<Item = S>) -> Result<Self, EmptyRequirement> {
        let alternatives: Arc<[S]> = alternatives.into_iter().collect();
        if alternatives
            .iter()
            .any(|alternative| alternative.is_empty())
        {
            return Err(EmptyRequirement);
        }
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
        Ok(Self {
            alternatives,
            attribute,
        })
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
}

/// [`Requirement::all`], so a scope set can be passed where a requirement
/// is expected.
///
/// # Panics
///
/// When `scopes` is empty (see [`Requirement::all`]).
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

    /// A requirement of no scopes is met by every token: a route guarded
    /// by a scope string that parsed to nothing (a typo in configuration)
    /// would be open to any valid token. It is refused when it is built.
    #[test]
    #[should_panic(expected = "admit every token")]
    fn all_of_no_scopes_is_refused() {
        let from_config = S::parse_scope("").unwrap();
        let _ = Requirement::all(from_config);
    }

    #[test]
    #[should_panic(expected = "admit every token")]
    fn any_of_with_an_empty_alternative_is_refused() {
        let _ = Requirement::any_of([S::BILLING_WRITE, S::empty()]);
    }

    #[test]
    fn the_try_constructors_report_an_empty_requirement() {
        assert_eq!(Requirement::try_all(S::empty()), Err(EmptyRequirement));
        assert_eq!(
            Requirement::try_any_of([S::empty(), S::BILLING_READ]),
            Err(EmptyRequirement)
        );
        assert_eq!(
            Requirement::try_all(S::BILLING_READ),
            Ok(Requirement::all(S::BILLING_READ))
        );
        // No alternatives at all is never satisfied: closed, not open.
        assert!(Requirement::<S>::try_any_of([]).is_ok());
    }
}

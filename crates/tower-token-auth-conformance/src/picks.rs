//! The scope sets the behaviours use, picked from any [`ScopeSet`].
//!
//! The kit runs with the scope set of the backend under test, whatever its
//! names and implications: it takes the set's default, all of it, and
//! single scopes from [`ScopeSet::SCOPES`].

use tower_token_auth::scope::ScopeSet;

/// Every scope of the set.
pub(crate) fn all<S: ScopeSet>() -> S {
    S::all()
}

/// A set other than the default, when the set has one: all of it, or
/// else the first scope that is not the default.
pub(crate) fn other_than_default<S: ScopeSet>() -> S {
    if S::all() != S::DEFAULT {
        return S::all();
    }
    S::SCOPES
        .iter()
        .map(|(_, flags)| *flags)
        .find(|flags| !flags.is_empty() && *flags != S::DEFAULT)
        .unwrap_or(S::DEFAULT)
}

/// One scope of the set (its first non-empty one).
pub(crate) fn one<S: ScopeSet>() -> S {
    S::SCOPES
        .iter()
        .map(|(_, flags)| *flags)
        .find(|flags| !flags.is_empty())
        .unwrap_or(S::DEFAULT)
}

/// For the narrowing rule of a refresh: a grant's scopes, a non-empty set
/// strictly inside them, and a single scope outside them. `None` for a set
/// too small to have all three (one or two scopes without that shape).
pub(crate) fn narrowing<S: ScopeSet>() -> Option<Narrowing<S>> {
    let scopes = || S::SCOPES.iter().map(|(_, flags)| *flags);
    for outside in scopes().filter(|f| !f.is_empty()) {
        let grant = S::all().difference(outside);
        if grant.is_empty() || grant.contains(outside) {
            continue;
        }
        if let Some(inside) = scopes().find(|f| !f.is_empty() && grant.contains(*f) && *f != grant)
        {
            return Some(Narrowing {
                grant,
                inside,
                outside,
            });
        }
    }
    None
}

/// See [`narrowing`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Narrowing<S> {
    pub(crate) grant: S,
    pub(crate) inside: S,
    pub(crate) outside: S,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_token_auth::PayRequestScopes as S;

    #[test]
    fn picks_of_the_pay_request_set() {
        assert_eq!(all::<S>(), S::all());
        assert_eq!(other_than_default::<S>(), S::all());
        assert_eq!(one::<S>(), S::BILLING_READ);
        let n = narrowing::<S>().expect("seven scopes narrow");
        assert!(n.grant.contains(n.inside) && n.grant != n.inside);
        assert!(!n.grant.contains(n.outside));
    }
}

//! Scope sets: which permissions a token carries, and what a route requires.
//!
//! A scope set is a [`bitflags`] type that also implements [`ScopeSet`], which
//! gives each flag its wire name (RFC 6749 §3.3) and names the default set a
//! token receives when it is created without scopes. Implication is part of
//! the set: a composite flag such as [`PayRequestScopes::BILLING_AGENT`]
//! includes the bits of every scope it implies, so holding it satisfies a
//! requirement of `billing.read`.
//!
//! Implication goes only where the set says it does. In the PayRequest set,
//! `billing.write` does **not** imply `billing.read`, and a token holding both
//! `billing.read` and `billing.write` does not hold `billing.agent`.
//!
//! ```
//! use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
//!
//! let agent = PayRequestScopes::parse_scope("billing.agent")?;
//! assert!(agent.contains(PayRequestScopes::BILLING_READ | PayRequestScopes::BILLING_WRITE));
//!
//! let rw = PayRequestScopes::parse_scope("billing.write billing.read")?;
//! assert!(!rw.contains(PayRequestScopes::BILLING_AGENT));
//! assert_eq!(rw.scope_string(), "billing.read billing.write");
//!
//! // Unknown names are an error, never silently dropped.
//! let err = PayRequestScopes::parse_scope("billing.read billing.delete").unwrap_err();
//! assert_eq!(err.to_string(), "unknown scope `billing.delete`");
//! # Ok::<(), tower_token_auth::scope::ScopeError>(())
//! ```
//!
//! # Defining your own scope set
//!
//! Every layer in this crate is generic over the scope set, so a service can
//! bring its own names, bits and implications in a few lines:
//!
//! ```
//! use tower_token_auth::bitflags::bitflags;
//! use tower_token_auth::scope::ScopeSet;
//!
//! bitflags! {
//!     #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
//!     pub struct ShopScopes: u64 {
//!         const ORDERS_READ = 1 << 0;
//!         const ORDERS_WRITE = 1 << 1;
//!         // `orders.admin` implies read and write.
//!         const ORDERS_ADMIN = 1 << 2 | Self::ORDERS_READ.bits() | Self::ORDERS_WRITE.bits();
//!     }
//! }
//!
//! impl ScopeSet for ShopScopes {
//!     const SCOPES: &'static [(&'static str, Self)] = &[
//!         ("orders.read", Self::ORDERS_READ),
//!         ("orders.write", Self::ORDERS_WRITE),
//!         ("orders.admin", Self::ORDERS_ADMIN),
//!     ];
//!     const DEFAULT: Self = Self::ORDERS_READ;
//! }
//!
//! let admin = ShopScopes::parse_scope("orders.admin").unwrap();
//! assert!(admin.contains(ShopScopes::ORDERS_WRITE));
//! assert_eq!(admin.scope_names().collect::<Vec<_>>(), ["orders.read", "orders.write", "orders.admin"]);
//! ```

mod requirement;

pub use requirement::{EmptyRequirement, Requirement};

use std::fmt::Debug;

bitflags::bitflags! {
    /// The PayRequest scope set, the crate's default.
    ///
    /// `billing.agent` includes `billing.read` and `billing.write`; no other
    /// scope implies another. Tokens created without scopes receive
    /// `billing.read`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PayRequestScopes: u64 {
        /// `billing.read`: read invoices, subscriptions, transactions.
        const BILLING_READ = 1 << 0;
        /// `billing.write`: create and modify invoices and subscriptions.
        const BILLING_WRITE = 1 << 1;
        /// `billing.agent`: full AI billing agent access; includes
        /// `billing.read` and `billing.write`.
        const BILLING_AGENT = 1 << 2 | Self::BILLING_READ.bits() | Self::BILLING_WRITE.bits();
        /// `customers.read`: read customer information.
        const CUSTOMERS_READ = 1 << 3;
        /// `customers.write`: create and modify customers.
        const CUSTOMERS_WRITE = 1 << 4;
        /// `products.read`: read the product catalog.
        const PRODUCTS_READ = 1 << 5;
        /// `products.write`: create and modify products.
        const PRODUCTS_WRITE = 1 << 6;
    }
}

impl ScopeSet for PayRequestScopes {
    const SCOPES: &'static [(&'static str, Self)] = &[
        ("billing.read", Self::BILLING_READ),
        ("billing.write", Self::BILLING_WRITE),
        ("billing.agent", Self::BILLING_AGENT),
        ("customers.read", Self::CUSTOMERS_READ),
        ("customers.write", Self::CUSTOMERS_WRITE),
        ("products.read", Self::PRODUCTS_READ),
        ("products.write", Self::PRODUCTS_WRITE),
    ];
    const DEFAULT: Self = Self::BILLING_READ;
}

/// The longest scope name echoed back in a [`ScopeError`].
const MAX_ECHOED_NAME: usize = 64;

/// Why a scope string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// A well-formed name that the scope set does not define.
    #[error("unknown scope `{0}`")]
    Unknown(String),
    /// A name with characters RFC 6749 §3.3 does not allow in a scope token
    /// (the string shows the offending name, escaped and shortened).
    #[error("invalid scope token `{0}`")]
    Invalid(String),
}

/// A set of scopes: a [`bitflags`] type whose flags have wire names.
///
/// Implement it for your own `bitflags!` type to use every layer of this
/// crate with your own scopes (see the [module docs](self)). Composite flags
/// express implication: a flag whose bits include another's implies it.
pub trait ScopeSet:
    bitflags::Flags<Bits = u64> + Copy + Eq + Debug + Send + Sync + 'static
{
    /// Every scope of the set as `(wire name, flags)`, in display order.
    ///
    /// Names are case-sensitive and must be RFC 6749 §3.3 scope tokens
    /// (printable ASCII without space, `"` or `\`).
    const SCOPES: &'static [(&'static str, Self)];

    /// The scopes a token receives when it is created without any.
    const DEFAULT: Self;

    /// Parses a space-separated scope string (RFC 6749 §3.3).
    ///
    /// Order does not matter, repeated names are allowed, and runs of spaces
    /// are tolerated. The empty string parses to the empty set. A name the
    /// set does not define is an error naming it.
    fn parse_scope(input: &str) -> Result<Self, ScopeError> {
        let mut set = Self::empty();
        for name in input.split(' ').filter(|n| !n.is_empty()) {
            if !is_scope_token(name) {
                return Err(ScopeError::Invalid(echo(name)));
            }
            match Self::SCOPES.iter().find(|(n, _)| *n == name) {
                Some((_, flags)) => set.insert(*flags),
                None => return Err(ScopeError::Unknown(echo(name))),
            }
        }
        Ok(set)
    }

    /// Parses a scope string for a new token: empty means [`Self::DEFAULT`].
    fn parse_scope_or_default(input: Option<&str>) -> Result<Self, ScopeError> {
        let set = Self::parse_scope(input.unwrap_or(""))?;
        Ok(if set.is_empty() { Self::DEFAULT } else { set })
    }

    /// Every scope the set holds, implied ones included, in
    /// [`SCOPES`](Self::SCOPES) order.
    fn scope_names(self) -> impl Iterator<Item = &'static str> {
        Self::SCOPES
            .iter()
            .filter(move |(_, flags)| self.contains(*flags))
            .map(|(name, _)| *name)
    }

    /// The shortest scope string that parses back to this set: a name is left
    /// out when a larger held scope implies it (`billing.agent` rather than
    /// `billing.read billing.write billing.agent`).
    fn scope_string(self) -> String {
        let mut out = String::new();
        for (name, flags) in Self::SCOPES {
            if !self.contains(*flags) {
                continue;
            }
            let implied = Self::SCOPES.iter().any(|(other, bigger)| {
                other != name
                    && self.contains(*bigger)
                    && bigger.contains(*flags)
                    && bigger.bits() != flags.bits()
            });
            if !implied {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(name);
            }
        }
        out
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// A bounded, escaped copy of client input for an error message.
fn echo(name: &str) -> String {
    name.chars()
        .take(MAX_ECHOED_NAME)
        .flat_map(char::escape_default)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn agent_implies_read_and_write() {
        let agent = PayRequestScopes::parse_scope("billing.agent").unwrap();
        assert!(agent.contains(PayRequestScopes::BILLING_READ));
        assert!(agent.contains(PayRequestScopes::BILLING_WRITE));
        assert!(!agent.contains(PayRequestScopes::CUSTOMERS_READ));
    }

    #[test]
    fn write_does_not_imply_read() {
        let write = PayRequestScopes::parse_scope("billing.write").unwrap();
        assert!(!write.contains(PayRequestScopes::BILLING_READ));
        let products = PayRequestScopes::parse_scope("products.write").unwrap();
        assert!(!products.contains(PayRequestScopes::PRODUCTS_READ));
    }

    #[test]
    fn read_and_write_together_are_not_agent() {
        let rw = PayRequestScopes::parse_scope("billing.read billing.write").unwrap();
        assert!(!rw.contains(PayRequestScopes::BILLING_AGENT));
    }

    #[test]
    fn empty_scope_string_means_default_at_creation() {
        assert_eq!(
            PayRequestScopes::parse_scope_or_default(None).unwrap(),
            PayRequestScopes::BILLING_READ
        );
        assert_eq!(
            PayRequestScopes::parse_scope_or_default(Some("  ")).unwrap(),
            PayRequestScopes::BILLING_READ
        );
        assert_eq!(
            PayRequestScopes::parse_scope("").unwrap(),
            PayRequestScopes::empty()
        );
    }

    #[test]
    fn unknown_and_invalid_names_are_errors_that_name_them() {
        assert_eq!(
            PayRequestScopes::parse_scope("billing.read Billing.Read"),
            Err(ScopeError::Unknown("Billing.Read".into()))
        );
        assert_eq!(
            PayRequestScopes::parse_scope("billing.read\"x"),
            Err(ScopeError::Invalid("billing.read\\\"x".into()))
        );
        let long = "x".repeat(1000);
        match PayRequestScopes::parse_scope(&long) {
            Err(ScopeError::Unknown(n)) => assert_eq!(n.len(), MAX_ECHOED_NAME),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scope_string_is_minimal_and_names_are_expanded() {
        let agent = PayRequestScopes::BILLING_AGENT | PayRequestScopes::PRODUCTS_READ;
        assert_eq!(agent.scope_string(), "billing.agent products.read");
        assert_eq!(
            agent.scope_names().collect::<Vec<_>>(),
            [
                "billing.read",
                "billing.write",
                "billing.agent",
                "products.read"
            ]
        );
    }

    fn any_scope_set() -> impl Strategy<Value = PayRequestScopes> {
        proptest::collection::vec(0..PayRequestScopes::SCOPES.len(), 0..8).prop_map(|idx| {
            idx.into_iter().fold(PayRequestScopes::empty(), |acc, i| {
                acc | PayRequestScopes::SCOPES[i].1
            })
        })
    }

    proptest! {
        #[test]
        fn scope_strings_round_trip(set in any_scope_set()) {
            prop_assert_eq!(PayRequestScopes::parse_scope(&set.scope_string()).unwrap(), set);
            let expanded = set.scope_names().collect::<Vec<_>>().join(" ");
            prop_assert_eq!(PayRequestScopes::parse_scope(&expanded).unwrap(), set);
        }

        #[test]
        fn scope_parser_never_panics(input in ".{0,200}") {
            let _ = PayRequestScopes::parse_scope(&input);
        }

        #[test]
        fn scope_order_does_not_matter(mut idx in proptest::collection::vec(0..7usize, 1..8)) {
            let names: Vec<_> = idx.iter().map(|i| PayRequestScopes::SCOPES[*i].0).collect();
            let a = PayRequestScopes::parse_scope(&names.join(" ")).unwrap();
            idx.reverse();
            let names: Vec<_> = idx.iter().map(|i| PayRequestScopes::SCOPES[*i].0).collect();
            prop_assert_eq!(PayRequestScopes::parse_scope(&names.join(" ")).unwrap(), a);
        }
    }
}

//! What a behaviour reports when a backend breaks a guarantee.

use std::borrow::Cow;
use std::fmt;

/// A guarantee of the storage trait that the backend under test broke:
/// which method, which guarantee, what the kit saw, and under which forced
/// interleaving of two calls, when there was one.
///
/// Its `Display` is the message a failed test shows:
///
/// ```text
/// TokenBackend::exchange: of two concurrent exchanges of one refresh token exactly one
/// must be Exchanged and the other AlreadySpent; got [Exchanged, Exchanged] (schedule:
/// second call started after 1 poll of the first, then alternating polls)
/// ```
///
/// Every behaviour of the kit returns `Result<(), Violation>`;
/// [`conformance_tests!`](crate::conformance_tests) turns an `Err` into a
/// failed test with this message, and a test of one's own can inspect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    method: Cow<'static, str>,
    guarantee: Cow<'static, str>,
    seen: String,
    schedule: Option<String>,
}

impl Violation {
    /// `method` (e.g. `TokenBackend::exchange`) broke `guarantee`: the kit
    /// saw `seen`.
    pub fn new(
        method: impl Into<Cow<'static, str>>,
        guarantee: impl Into<Cow<'static, str>>,
        seen: impl Into<String>,
    ) -> Self {
        Self {
            method: method.into(),
            guarantee: guarantee.into(),
            seen: seen.into(),
            schedule: None,
        }
    }

    /// The same violation, seen under `schedule` (the forced interleaving,
    /// or the stress round, that showed it).
    #[must_use]
    pub fn during(mut self, schedule: impl fmt::Display) -> Self {
        self.schedule = Some(schedule.to_string());
        self
    }

    /// The method that broke its guarantee, e.g. `TokenBackend::exchange`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The guarantee it broke, in the words of the trait's documentation.
    pub fn guarantee(&self) -> &str {
        &self.guarantee
    }

    /// What the kit saw instead.
    pub fn seen(&self) -> &str {
        &self.seen
    }

    /// The interleaving of two calls under which it was seen, if any.
    pub fn schedule(&self) -> Option<&str> {
        self.schedule.as_deref()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; got {}", self.method, self.guarantee, self.seen)?;
        if let Some(schedule) = &self.schedule {
            write!(f, " (schedule: {schedule})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// The names the kit's messages give the methods under test.
pub(crate) mod method {
    pub(crate) const FIND: &str = "TokenStore::find";
    pub(crate) const INSERT: &str = "TokenBackend::insert";
    pub(crate) const GET: &str = "TokenBackend::get";
    pub(crate) const LIST: &str = "TokenBackend::list";
    pub(crate) const UPDATE_SCOPES: &str = "TokenBackend::update_scopes";
    pub(crate) const REVOKE: &str = "TokenBackend::revoke";
    pub(crate) const REVOKE_FAMILY: &str = "TokenBackend::revoke_family";
    pub(crate) const EXCHANGE: &str = "TokenBackend::exchange";
    pub(crate) const RECORD_USE: &str = "TokenBackend::record_use";
    pub(crate) const PURGE: &str = "TokenBackend::purge";
}

/// Turns a store's answer into the behaviour's: an error is a violation of
/// `method`'s first duty, to answer a valid call.
pub(crate) trait Answer<T> {
    /// `Ok` as is; an `Err` is a violation of `method`.
    fn answer(self, method: &'static str) -> Result<T, Violation>;
}

impl<T, E: fmt::Debug> Answer<T> for Result<T, E> {
    fn answer(self, method: &'static str) -> Result<T, Violation> {
        self.map_err(|error| {
            Violation::new(
                method,
                "answers a valid call without an error",
                format!("Err({error:?})"),
            )
        })
    }
}

/// Returns a [`Violation`] of `$method` and `$guarantee` unless `$cond`
/// holds; the rest is the `format!` of what was seen.
macro_rules! ensure {
    ($cond:expr, $method:expr, $guarantee:expr, $($seen:tt)+) => {
        if !$cond {
            return Err($crate::Violation::new($method, $guarantee, format!($($seen)+)));
        }
    };
}

/// [`ensure!`] for an equality: what was seen is the left side and what
/// was expected.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $method:expr, $guarantee:expr $(,)?) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err($crate::Violation::new(
                        $method,
                        $guarantee,
                        format!("{left:?}, expected {right:?}"),
                    ));
                }
            }
        }
    };
}

pub(crate) use {ensure, ensure_eq};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_method_guarantee_what_was_seen_and_the_schedule() {
        let v = Violation::new(
            method::EXCHANGE,
            "exactly one wins",
            "[Exchanged, Exchanged]",
        );
        assert_eq!(
            v.to_string(),
            "TokenBackend::exchange: exactly one wins; got [Exchanged, Exchanged]"
        );
        assert_eq!(v.schedule(), None);
        let v = v.during("second call started after 1 poll of the first");
        assert_eq!(
            v.to_string(),
            "TokenBackend::exchange: exactly one wins; got [Exchanged, Exchanged] \
             (schedule: second call started after 1 poll of the first)"
        );
        assert_eq!(
            (v.method(), v.guarantee(), v.seen()),
            (
                "TokenBackend::exchange",
                "exactly one wins",
                "[Exchanged, Exchanged]"
            )
        );
    }

    #[test]
    fn a_store_error_names_the_method() {
        let answer: Result<(), &str> = Err("connection refused");
        let v = answer.answer(method::INSERT).unwrap_err();
        assert_eq!(
            v.to_string(),
            "TokenBackend::insert: answers a valid call without an error; \
             got Err(\"connection refused\")"
        );
    }
}

//! State that every clone of a service shares.

use std::ops::Deref;
use std::sync::Arc;

/// A service's shared state: behind a reference count, or, once its layer
/// was leaked (`leak`), behind a `'static` reference. A router clones the
/// service for every request; cloning a counted one writes the count, a
/// cache line every core then takes from the others, while cloning a
/// leaked one writes nothing.
pub(crate) enum SharedRef<T: 'static> {
    Counted(Arc<T>),
    Leaked(&'static T),
}

impl<T: 'static> SharedRef<T> {
    /// `value` behind a reference count.
    pub(crate) fn new(value: T) -> Self {
        Self::Counted(Arc::new(value))
    }

    /// Whether this is a leaked `'static` reference.
    #[cfg(test)]
    pub(crate) fn is_leaked(&self) -> bool {
        matches!(self, Self::Leaked(_))
    }
}

impl<T: Clone + 'static> SharedRef<T> {
    /// The value, to change before it is shared: a leaked value is copied
    /// into a counted one first (the leaked one stays as it was).
    pub(crate) fn make_mut(&mut self) -> &mut T {
        if let Self::Leaked(value) = self {
            *self = Self::new((*value).clone());
        }
        match self {
            Self::Counted(value) => Arc::make_mut(value),
            Self::Leaked(_) => unreachable!("made counted above"),
        }
    }

    /// The value moved to memory that is never freed.
    pub(crate) fn leak(self) -> Self {
        match self {
            Self::Counted(value) => Self::Leaked(Box::leak(Box::new(Arc::unwrap_or_clone(value)))),
            leaked @ Self::Leaked(_) => leaked,
        }
    }
}

impl<T: 'static> Clone for SharedRef<T> {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Self::Counted(value) => Self::Counted(Arc::clone(value)),
            Self::Leaked(value) => Self::Leaked(value),
        }
    }
}

impl<T: 'static> Deref for SharedRef<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            Self::Counted(value) => value,
            Self::Leaked(value) => value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaked_value_is_shared_without_a_count_and_copied_before_a_change() {
        let counted = SharedRef::new(vec![1]);
        let clone = counted.clone();
        let SharedRef::Counted(arc) = &counted else {
            panic!("new is counted")
        };
        assert_eq!(Arc::strong_count(arc), 2);
        drop(clone);

        let leaked = counted.leak();
        assert!(leaked.is_leaked());
        let copy = leaked.clone();
        assert!(copy.is_leaked());
        assert!(std::ptr::eq(&*leaked, &*copy), "one value, no copy");

        let mut changed = copy.clone();
        changed.make_mut().push(2);
        assert!(!changed.is_leaked());
        assert_eq!(
            (leaked.as_slice(), changed.as_slice()),
            (&[1][..], &[1, 2][..])
        );
    }
}

//! The scope-string parser, `ScopeSet::parse_scope` (RFC 6749 §3.3).
//!
//! Properties, for any input and two scope sets (the PayRequest set, and a
//! set with a chain of implications and an alias):
//! - `parse_scope` never panics;
//! - it accepts exactly the strings an independent model accepts (names of
//!   the set separated by spaces) and yields the union of their flags;
//!   otherwise it names the first bad name's problem (`Invalid` for
//!   characters outside `scope-token`, else `Unknown`);
//! - an error message is printable ASCII and bounded, whatever the input;
//! - print/parse round-trips: `scope_string` and the expanded
//!   `scope_names` both parse back to the same set, and printing is
//!   canonical.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run scope_string
//! ```

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_token_auth::bitflags::bitflags;
use tower_token_auth::scope::{PayRequestScopes, ScopeError, ScopeSet};

bitflags! {
    /// Scopes with a chain (`admin` ⊃ `write` ⊃ `read`) and an alias.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct ChainScopes: u64 {
        const READ = 1 << 0;
        const WRITE = 1 << 1 | Self::READ.bits();
        const ADMIN = 1 << 2 | Self::WRITE.bits();
        const AUDIT = 1 << 3;
        const SUPPORT = Self::AUDIT.bits() | Self::READ.bits();
    }
}

impl ScopeSet for ChainScopes {
    const SCOPES: &'static [(&'static str, Self)] = &[
        ("docs:read", Self::READ),
        ("docs:write", Self::WRITE),
        ("docs:admin", Self::ADMIN),
        ("audit", Self::AUDIT),
        ("support", Self::SUPPORT),
        // An alias: the same flags under another name.
        ("docs.read", Self::READ),
    ];
    const DEFAULT: Self = Self::READ;
}

/// The longest message an error may have: 64 echoed characters, each
/// escaped to at most 10 bytes (`\u{10ffff}`), plus the fixed text.
const MAX_MESSAGE: usize = 64 * 10 + 32;

#[derive(Debug, PartialEq, Eq)]
enum Model<S> {
    Ok(S),
    Invalid,
    Unknown,
}

fn model<S: ScopeSet>(input: &str) -> Model<S> {
    let mut set = S::empty();
    for name in input.split(' ').filter(|n| !n.is_empty()) {
        let token_chars = name
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E));
        if !token_chars {
            return Model::Invalid;
        }
        match S::SCOPES.iter().find(|(n, _)| *n == name) {
            Some((_, flags)) => set.insert(*flags),
            None => return Model::Unknown,
        }
    }
    Model::Ok(set)
}

fn check<S: ScopeSet>(input: &str) {
    let parsed = S::parse_scope(input);
    let expected = model::<S>(input);
    match (&parsed, &expected) {
        (Ok(set), Model::Ok(model_set)) => {
            assert_eq!(set, model_set, "{input:?}");
            let printed = set.scope_string();
            let reparsed = S::parse_scope(&printed).expect("printed scopes parse");
            assert_eq!(reparsed, *set, "{input:?} printed as {printed:?}");
            assert_eq!(reparsed.scope_string(), printed, "printing is canonical");
            let expanded = set.scope_names().collect::<Vec<_>>().join(" ");
            assert_eq!(S::parse_scope(&expanded).expect("names parse"), *set);
            for (name, flags) in S::SCOPES {
                assert_eq!(
                    set.scope_names().any(|n| n == *name),
                    set.contains(*flags),
                    "{name} listed exactly when held"
                );
            }
            let or_default = S::parse_scope_or_default(Some(input)).expect("parsed once");
            let want = if set.is_empty() { S::DEFAULT } else { *set };
            assert_eq!(or_default, want);
        }
        (Err(error @ ScopeError::Invalid(_)), Model::Invalid)
        | (Err(error @ ScopeError::Unknown(_)), Model::Unknown) => {
            let message = error.to_string();
            assert!(message.len() <= MAX_MESSAGE, "{} bytes", message.len());
            assert!(
                message.bytes().all(|b| (0x20..0x7F).contains(&b)),
                "printable ASCII only: {message:?}"
            );
        }
        _ => panic!("{input:?}: parser says {parsed:?}, the model says {expected:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    check::<PayRequestScopes>(&input);
    check::<ChainScopes>(&input);
});

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A token's plaintext. Returned once, at creation; never stored.
///
/// `Debug` prints `TokenSecret("[redacted]")`; there is no `Display`. The
/// memory is zeroed when the value is dropped.
///
/// Compare secrets with [`ConstantTimeEq::ct_eq`], which compares every
/// byte without an early exit (only the length may show in the time it
/// takes):
///
/// ```
/// use subtle::ConstantTimeEq;
/// use tower_token_auth::token::TokenSecret;
///
/// let a = TokenSecret::new("pr_pat_example".into());
/// let b = TokenSecret::new("pr_pat_example".into());
/// assert!(bool::from(a.ct_eq(&b)));
/// ```
///
/// There is no `==`, so that no comparison can stop at the first differing
/// byte and tell an attacker how much of a guess is right:
///
/// ```compile_fail,E0369
/// use tower_token_auth::token::TokenSecret;
///
/// let a = TokenSecret::new("pr_pat_example".into());
/// let b = TokenSecret::new("pr_pat_example".into());
/// let _ = a == b;
/// ```
#[derive(Clone)]
pub struct TokenSecret(Zeroizing<String>);

impl ConstantTimeEq for TokenSecret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl TokenSecret {
    /// Wraps a plaintext token.
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }

    /// The plaintext. Show it to its owner once; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest, the only form of the token a store keeps.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }

    /// A short display hint: the prefix up to the last `_` and the last four
    /// characters, e.g. `pr_pat_…x9Qz`.
    pub fn hint(&self) -> String {
        hint_of(&self.0)
    }

    /// What a [`TokenStore::find`](crate::store::TokenStore::find) is
    /// asked about this token: its digest, and the token itself.
    pub fn lookup(&self) -> Lookup<'_> {
        Lookup::of_token(&self.0)
    }
}

/// What a [`TokenStore`](crate::store::TokenStore) is asked to find: a
/// token's SHA-256 digest, and the token itself when a request presented
/// it.
///
/// A store that holds tokens reads only [`digest`](Self::digest). The
/// plaintext is there for a lookup that must ask another server about the
/// token itself (RFC 7662 introspection); the middleware always passes it,
/// the [`TokenManager`](crate::manager::TokenManager) looks up its own
/// backend by digest alone. `Debug` shows neither.
///
/// ```
/// use tower_token_auth::token::{Lookup, TokenDigest};
///
/// let presented = Lookup::of_token("pr_pat_example");
/// assert_eq!(presented.digest(), TokenDigest::of("pr_pat_example"));
/// assert_eq!(presented.token(), Some("pr_pat_example"));
/// assert_eq!(format!("{presented:?}"), "Lookup(\"[redacted]\")");
///
/// let by_digest = Lookup::from(TokenDigest::of("pr_pat_example"));
/// assert_eq!(by_digest.digest(), presented.digest());
/// assert_eq!(by_digest.token(), None);
/// ```
#[derive(Clone, Copy)]
pub struct Lookup<'a> {
    token: Option<&'a str>,
    digest: TokenDigest,
}

impl<'a> Lookup<'a> {
    /// A presented token and its digest.
    #[inline]
    pub fn of_token(token: &'a str) -> Self {
        Self {
            token: Some(token),
            digest: TokenDigest::of(token),
        }
    }

    /// A lookup by digest alone.
    #[inline]
    pub const fn of_digest(digest: TokenDigest) -> Self {
        Self {
            token: None,
            digest,
        }
    }

    /// The digest: the key a store looks the token up by.
    #[inline]
    pub const fn digest(&self) -> TokenDigest {
        self.digest
    }

    /// The plaintext, when a request presented it, for a lookup that asks
    /// another server about it. Never log it.
    pub const fn token(&self) -> Option<&'a str> {
        self.token
    }
}

impl From<TokenDigest> for Lookup<'_> {
    fn from(digest: TokenDigest) -> Self {
        Self::of_digest(digest)
    }
}

impl From<&TokenDigest> for Lookup<'_> {
    fn from(digest: &TokenDigest) -> Self {
        Self::of_digest(*digest)
    }
}

impl fmt::Debug for Lookup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Lookup").field(&"[redacted]").finish()
    }
}

/// The hint of a token string: its prefix and last four characters.
pub(crate) fn hint_of(token: &str) -> String {
    let prefix_end = token.rfind('_').map_or(0, |i| i + 1);
    let tail_start = token
        .char_indices()
        .rev()
        .nth(3)
        .map_or(0, |(i, _)| i)
        .max(prefix_end);
    format!("{}…{}", &token[..prefix_end], &token[tail_start..])
}

/// The plaintext is zeroed when the secret is dropped (`Zeroizing`).
impl zeroize::ZeroizeOnDrop for TokenSecret {}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokenSecret").field(&"[redacted]").finish()
    }
}

/// The SHA-256 digest of a token: the key a store looks tokens up by.
///
/// Equality is constant-time ([`subtle`]).
#[derive(Clone, Copy)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of a token string.
    #[inline]
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Wraps raw digest bytes (e.g. read from a database).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl TokenDigest {
    /// The digest as four machine words, for the comparison.
    #[inline]
    fn words(&self) -> [u64; 4] {
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(self.0.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *word = u64::from_ne_bytes(bytes);
        }
        words
    }
}

impl ConstantTimeEq for TokenDigest {
    /// Compares all 32 bytes without an early exit: the four `u64` words'
    /// differences are OR-ed together (no branch) and the result is
    /// compared with zero by `subtle`, one optimization barrier instead of
    /// one per byte.
    #[inline]
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        let (a, b) = (self.words(), other.words());
        let difference = (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]);
        difference.ct_eq(&0)
    }
}

impl PartialEq for TokenDigest {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for TokenDigest {}

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already uniformly distributed: eight bytes are plenty
        // for a hash map, and cheaper to feed than thirty-two.
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(head));
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not the token, but there is no need to print it whole.
        write!(
            f,
            "TokenDigest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = TokenSecret::new("pr_pat_abcdefghijklmnopqrstuvwxyz0123456789".into());
        let dbg = format!("{s:?} {s:#?}");
        assert!(!dbg.contains("abcdefghij"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn hint_shows_prefix_and_last_four() {
        let s = TokenSecret::new("pr_pat_abcdefghijklmnopqrstuvwxyz0123456789".into());
        assert_eq!(s.hint(), "pr_pat_…6789");
        assert_eq!(hint_of("abc"), "…abc");
        assert_eq!(hint_of("x_ab"), "x_…ab");
    }

    #[test]
    fn digest_is_sha256_and_debug_is_short() {
        let d = TokenDigest::of("abc");
        assert_eq!(
            d.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts with ba7816bf"
        );
        assert_eq!(format!("{d:?}"), "TokenDigest(ba7816bf…)");
        assert_eq!(d, TokenDigest::from_bytes(*d.as_bytes()));
        assert_ne!(d, TokenDigest::of("abd"));
    }

    #[test]
    fn digests_differing_in_any_one_byte_are_unequal() {
        let d = TokenDigest::of("abc");
        for i in 0..32 {
            for flip in [0x01, 0x80] {
                let mut bytes = *d.as_bytes();
                bytes[i] ^= flip;
                let other = TokenDigest::from_bytes(bytes);
                assert!(
                    !bool::from(d.ct_eq(&other)),
                    "byte {i} flipped by {flip:#x}"
                );
                assert_ne!(d, other);
            }
        }
        assert!(bool::from(d.ct_eq(&TokenDigest::from_bytes(*d.as_bytes()))));
    }

    /// Differences in several words must not cancel out: the same bit
    /// flipped in two of the four words, or in all four, still tells the
    /// digests apart (an XOR of the words' differences would not).
    #[test]
    fn digests_differing_alike_in_several_words_are_unequal() {
        let d = TokenDigest::of("abc");
        for first in 0..4 {
            for second in first + 1..4 {
                let mut bytes = *d.as_bytes();
                bytes[first * 8] ^= 0x01;
                bytes[second * 8] ^= 0x01;
                let other = TokenDigest::from_bytes(bytes);
                assert!(!bool::from(d.ct_eq(&other)), "words {first} and {second}");
            }
        }
        let mut bytes = *d.as_bytes();
        for word in 0..4 {
            bytes[word * 8 + 7] ^= 0x40;
        }
        assert!(!bool::from(d.ct_eq(&TokenDigest::from_bytes(bytes))));
    }

    /// The comparison of secrets (there is no `==`, see the type's docs)
    /// tells apart secrets differing in their first byte, their last, or
    /// their length.
    #[test]
    fn secrets_compare_every_byte() {
        let a = TokenSecret::new("pr_pat_abcdefghijklmnopqrstuvwxyz0123456789".into());
        let last = TokenSecret::new("pr_pat_abcdefghijklmnopqrstuvwxyz0123456788".into());
        let first = TokenSecret::new("Pr_pat_abcdefghijklmnopqrstuvwxyz0123456789".into());
        let shorter = TokenSecret::new("pr_pat_abcdefghijklmnopqrstuvwxyz012345678".into());
        for other in [&last, &first, &shorter] {
            assert!(!bool::from(a.ct_eq(other)));
        }
        assert!(bool::from(a.ct_eq(&a.clone())));
    }
}

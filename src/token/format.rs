use std::sync::Arc;

use super::{TokenKind, TokenSecret};

/// Random base62 characters per token: 30 × log2(62) ≈ 178.6 bits.
const RANDOM_LEN: usize = 30;
/// Base62 characters of the CRC32 checksum (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The longest service name a [`TokenFormat`] takes.
const MAX_SERVICE_LEN: usize = 16;

/// Why a string is not a well-formed token of a [`TokenFormat`]: what
/// [`TokenFormat::check`] answers, the client's mistake.
///
/// These errors never contain the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedToken {
    /// The token does not start with this format's service prefix.
    #[error("token does not start with the expected prefix")]
    WrongPrefix,
    /// The prefix names no known token kind.
    #[error("token prefix names no known token kind")]
    UnknownKind,
    /// The part after the prefix has the wrong length.
    #[error("token has the wrong length")]
    WrongLength,
    /// The part after the prefix is not base62.
    #[error("token contains a character outside base62")]
    InvalidCharacter,
    /// The checksum does not match: a typo or a made-up token.
    #[error("token checksum does not match")]
    ChecksumMismatch,
}

/// The service name given to [`TokenFormat::new`] is not 1 to 16
/// lower-case ASCII letters or digits: the configuration's mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("service prefix must be 1 to 16 lower-case ASCII letters or digits")]
pub struct InvalidServiceName;

/// The operating system's random number generator failed, so no token was
/// generated: the machine's problem, not the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomnessError;

/// The token format of one service: `<service>_<kind tag>_<random><checksum>`.
///
/// The default service name is `pr`, giving `pr_pat_…`, `pr_at_…` and
/// `pr_rt_…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    service: Arc<str>,
}

impl Default for TokenFormat {
    fn default() -> Self {
        Self {
            service: Arc::from("pr"),
        }
    }
}

impl TokenFormat {
    /// A format with the given service name (1 to 16 of `a-z0-9`).
    pub fn new(service: &str) -> Result<Self, InvalidServiceName> {
        let ok = (1..=MAX_SERVICE_LEN).contains(&service.len())
            && service
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(InvalidServiceName);
        }
        Ok(Self {
            service: Arc::from(service),
        })
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The prefix of tokens of `kind`, e.g. `pr_pat_`.
    pub fn prefix(&self, kind: TokenKind) -> String {
        format!("{}_{}_", self.service, kind.tag())
    }

    /// Generates a new token of `kind` from the operating system's CSPRNG.
    pub fn generate(&self, kind: TokenKind) -> Result<TokenSecret, RandomnessError> {
        let prefix = self.prefix(kind);
        let mut token = String::with_capacity(prefix.len() + RANDOM_LEN + CHECKSUM_LEN);
        token.push_str(&prefix);
        let mut filled = 0;
        let mut bytes = [0u8; 64];
        while filled < RANDOM_LEN {
            getrandom::fill(&mut bytes).map_err(|_| RandomnessError)?;
            // Rejection sampling keeps every base62 character equally likely.
            for b in bytes.iter().filter(|b| **b < 248) {
                if filled == RANDOM_LEN {
                    break;
                }
                token.push(char::from(ALPHABET[usize::from(*b % 62)]));
                filled += 1;
            }
        }
        bytes.fill(0);
        let checksum = crc32fast::hash(token.as_bytes());
        push_base62(&mut token, checksum);
        Ok(TokenSecret::new(token))
    }

    /// Checks a token offline: prefix, kind, length, alphabet and checksum.
    ///
    /// Runs in time linear in the input and allocates nothing.
    #[inline]
    pub fn check(&self, token: &str) -> Result<TokenKind, MalformedToken> {
        let rest = token
            .strip_prefix(&*self.service)
            .and_then(|r| r.strip_prefix('_'))
            .ok_or(MalformedToken::WrongPrefix)?;
        let (tag, body) = rest.split_once('_').ok_or(MalformedToken::UnknownKind)?;
        let kind = TokenKind::from_tag(tag).ok_or(MalformedToken::UnknownKind)?;
        if body.len() != RANDOM_LEN + CHECKSUM_LEN {
            return Err(MalformedToken::WrongLength);
        }
        // Branch-free (random base62 characters would defeat the branch
        // predictor of a per-byte test), and comparisons rather than table
        // loads, so that the compiler checks many bytes per instruction.
        let invalid = body.bytes().fold(false, |acc, b| acc | !is_base62_digit(b));
        if invalid {
            return Err(MalformedToken::InvalidCharacter);
        }
        let (signed, checksum) = token.split_at(token.len() - CHECKSUM_LEN);
        if decode_base62(checksum) != Some(u64::from(crc32fast::hash(signed.as_bytes()))) {
            return Err(MalformedToken::ChecksumMismatch);
        }
        Ok(kind)
    }
}

fn push_base62(out: &mut String, value: u32) {
    let mut digits = [b'0'; CHECKSUM_LEN];
    let mut v = value;
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    out.extend(digits.iter().map(|d| char::from(*d)));
}

/// Whether `b` is a digit of [`ALPHABET`] (an ASCII letter or digit),
/// without a branch or a table load.
#[inline]
fn is_base62_digit(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit
}

/// The value of each base62 digit of [`ALPHABET`], or [`NOT_A_DIGIT`].
static DIGITS: [u8; 256] = digit_values();

/// The bit that marks a byte of [`DIGITS`] as not a base62 digit.
const NOT_A_DIGIT: u8 = 0x80;

const fn digit_values() -> [u8; 256] {
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}

#[inline]
fn decode_base62(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |acc, b| {
        let d = DIGITS[usize::from(b)];
        (d & NOT_A_DIGIT == 0).then(|| acc * 62 + u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn digit_table_is_the_base62_alphabet() {
        for b in 0..=u8::MAX {
            let expected = ALPHABET.iter().position(|a| *a == b);
            let d = DIGITS[usize::from(b)];
            match expected {
                Some(i) => assert_eq!(usize::from(d), i, "{:?}", char::from(b)),
                None => assert_ne!(d & NOT_A_DIGIT, 0, "{b:#04x} is not a digit"),
            }
            assert_eq!(expected.is_some(), b.is_ascii_alphanumeric());
            assert_eq!(expected.is_some(), is_base62_digit(b), "{b:#04x}");
        }
        assert_eq!(decode_base62("10"), Some(62));
        assert_eq!(decode_base62("zz"), Some(61 * 62 + 61));
        assert_eq!(decode_base62("1-"), None);
    }

    #[test]
    fn generated_tokens_pass_the_check_for_every_kind() {
        let f = TokenFormat::default();
        for kind in TokenKind::ALL {
            let t = f.generate(kind).unwrap();
            let s = t.expose_secret();
            assert!(s.starts_with(&f.prefix(kind)));
            assert_eq!(s.len(), f.prefix(kind).len() + 36);
            assert_eq!(f.check(s), Ok(kind));
        }
    }

    #[test]
    fn generated_tokens_differ() {
        let f = TokenFormat::default();
        let a = f.generate(TokenKind::Access).unwrap();
        let b = f.generate(TokenKind::Access).unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn check_names_what_is_wrong() {
        let f = TokenFormat::default();
        let t = f.generate(TokenKind::PersonalAccess).unwrap();
        let s = t.expose_secret();
        assert_eq!(
            f.check(&s.replacen("pr_", "xx_", 1)),
            Err(MalformedToken::WrongPrefix)
        );
        assert_eq!(
            f.check(&s.replacen("_pat_", "_pot_", 1)),
            Err(MalformedToken::UnknownKind)
        );
        assert_eq!(f.check(&s[..s.len() - 1]), Err(MalformedToken::WrongLength));
        let mut bad = s.to_owned();
        bad.replace_range(12..13, "-");
        assert_eq!(f.check(&bad), Err(MalformedToken::InvalidCharacter));
        // Changing the kind tag invalidates the checksum, which covers the prefix.
        let as_access = s.replacen("_pat_", "_at_", 1);
        assert_eq!(f.check(&as_access), Err(MalformedToken::ChecksumMismatch));
        assert_eq!(f.check(""), Err(MalformedToken::WrongPrefix));
    }

    #[test]
    fn service_names_are_validated() {
        assert!(TokenFormat::new("acme").is_ok());
        assert_eq!(TokenFormat::new(""), Err(InvalidServiceName));
        assert_eq!(TokenFormat::new("Acme"), Err(InvalidServiceName));
        assert_eq!(TokenFormat::new("a_b"), Err(InvalidServiceName));
        let other = TokenFormat::new("acme").unwrap();
        let t = TokenFormat::default().generate(TokenKind::Access).unwrap();
        assert_eq!(
            other.check(t.expose_secret()),
            Err(MalformedToken::WrongPrefix)
        );
    }

    #[test]
    fn checksum_round_trips_through_base62() {
        for v in [0u32, 1, 61, 62, u32::MAX] {
            let mut s = String::new();
            push_base62(&mut s, v);
            assert_eq!(s.len(), CHECKSUM_LEN);
            assert_eq!(decode_base62(&s), Some(u64::from(v)));
        }
    }

    proptest! {
        #[test]
        fn check_never_panics(input in ".{0,120}") {
            let _ = TokenFormat::default().check(&input);
        }

        #[test]
        fn any_single_character_change_is_caught(pos in 7usize..43, c in proptest::sample::select(ALPHABET.to_vec())) {
            let f = TokenFormat::default();
            let t = f.generate(TokenKind::PersonalAccess).unwrap();
            let s = t.expose_secret();
            prop_assume!(s.as_bytes()[pos] != c);
            let mut changed = s.as_bytes().to_vec();
            changed[pos] = c;
            let changed = String::from_utf8(changed).unwrap();
            prop_assert!(f.check(&changed).is_err());
        }
    }
}

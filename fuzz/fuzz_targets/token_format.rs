//! The offline token check, `TokenFormat::check`.
//!
//! Properties, for any input:
//! - `check` never panics;
//! - it accepts a string exactly when an independent model accepts it:
//!   `<service>_<pat|at|rt>_` + 36 base62 characters whose last 6 are the
//!   base62 CRC-32 of everything before them; and it reports the kind the
//!   prefix names;
//! - a token built from the input bytes by the model (print) is accepted
//!   with its kind (parse), and changing any one of its characters to
//!   another base62 character makes it rejected.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run token_format
//! ```

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_token_auth::token::{TokenFormat, TokenKind};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;

/// CRC-32 (IEEE 802.3, reflected, as zlib), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Six base62 digits, most significant first.
fn base62(mut value: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for d in out.iter_mut().rev() {
        *d = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

fn kind_of(tag: &[u8]) -> Option<TokenKind> {
    match tag {
        b"pat" => Some(TokenKind::PersonalAccess),
        b"at" => Some(TokenKind::Access),
        b"rt" => Some(TokenKind::Refresh),
        _ => None,
    }
}

/// What a token of `service` must look like, written apart from the crate.
fn model(service: &str, token: &[u8]) -> Option<TokenKind> {
    let rest = token.strip_prefix(service.as_bytes())?.strip_prefix(b"_")?;
    let underscore = rest.iter().position(|b| *b == b'_')?;
    let kind = kind_of(&rest[..underscore])?;
    let body = &rest[underscore + 1..];
    if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let (signed, checksum) = token.split_at(token.len() - CHECKSUM_LEN);
    (base62(crc32(signed)) == checksum).then_some(kind)
}

/// A well-formed token of `service` whose kind and random part come from
/// `seed`.
fn print(service: &str, seed: &[u8]) -> (TokenKind, String) {
    let kind = TokenKind::ALL[usize::from(seed.first().copied().unwrap_or(0)) % 3];
    let mut token = format!("{service}_{}_", kind.tag());
    for i in 0..RANDOM_LEN {
        let b = seed.get(i + 1).copied().unwrap_or(i as u8);
        token.push(char::from(ALPHABET[usize::from(b) % 62]));
    }
    let checksum = base62(crc32(token.as_bytes()));
    token.push_str(std::str::from_utf8(&checksum).expect("ASCII"));
    (kind, token)
}

fuzz_target!(|data: &[u8]| {
    let formats = [
        TokenFormat::default(),
        TokenFormat::new("acme").expect("a valid service name"),
    ];
    let input = String::from_utf8_lossy(data);
    for format in &formats {
        let checked = format.check(&input).ok();
        assert_eq!(
            checked,
            model(format.service(), input.as_bytes()),
            "{input:?} under `{}`",
            format.service()
        );
        if let Some(kind) = checked {
            assert!(input.starts_with(&format.prefix(kind)));
        }

        let (kind, token) = print(format.service(), data);
        assert_eq!(format.check(&token), Ok(kind), "{token}");
        // Every single-character substitution is caught (CRC-32 detects all
        // single-byte errors; the checksum digits are a bijection).
        let pos = data.get(31).map_or(0, |b| usize::from(*b)) % token.len();
        let replacement = ALPHABET[usize::from(data.get(32).copied().unwrap_or(7)) % 62];
        let mut changed = token.clone().into_bytes();
        if changed[pos] != replacement && changed[pos].is_ascii_alphanumeric() {
            changed[pos] = replacement;
            let changed = String::from_utf8(changed).expect("ASCII");
            assert!(format.check(&changed).is_err(), "{token} -> {changed}");
        }
    }
});

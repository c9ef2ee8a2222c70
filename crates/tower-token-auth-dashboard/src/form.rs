//! What the dashboard's forms send: `application/x-www-form-urlencoded`
//! fields (a field may repeat, as checkboxes of one name do), the CSRF
//! token among them, and where to go after the login.

use subtle::ConstantTimeEq;

/// The fields of a posted form, in order.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses a form body. Never fails: malformed percent-escapes decode
    /// lossily, and a missing field is for the handler to refuse.
    pub(crate) fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The name of the hidden field that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// A new CSRF token: 256 bits from the OS, as 64 hex digits.
pub(crate) fn new_csrf_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the form carries `expected` as its CSRF token, compared in
/// constant time.
pub(crate) fn csrf_matches(fields: &Fields, expected: &str) -> bool {
    fields
        .one(CSRF_FIELD)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// The longest return path the login accepts.
const MAX_NEXT: usize = 2048;

/// `next` when it is a path of this site to return to after the login:
/// it starts with one `/` (not `//` or `/\`, which browsers read as another
/// host), holds printable ASCII only (no `\`, no control characters or
/// spaces that could split or bend a header), and is not too long.
/// Anything else is refused, so the login never redirects off the site.
pub(crate) fn same_site_path(next: &str) -> Option<&str> {
    let mut bytes = next.bytes();
    let well_formed = next.len() <= MAX_NEXT
        && bytes.next() == Some(b'/')
        && !matches!(bytes.next(), Some(b'/' | b'\\'))
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    well_formed.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_return_paths() {
        for good in [
            "/",
            "/dashboard/settings/api-tokens",
            "/oauth/authorize?client_id=abc&state=x%20y",
        ] {
            assert_eq!(same_site_path(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "dashboard",
            "//evil.example/",
            "/\\evil.example/",
            "https://evil.example/",
            "/a b",
            "/a\r\nSet-Cookie: x=y",
            "/a\\b",
            "/é",
            &"/a".repeat(MAX_NEXT),
        ] {
            assert_eq!(same_site_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn repeated_fields_are_all_kept_and_csrf_is_compared() {
        let fields = Fields::parse(b"scope=billing.read&name=A+b&scope=billing.agent&csrf=ab");
        assert_eq!(fields.one("name"), Some("A b"));
        assert_eq!(
            fields.all("scope").collect::<Vec<_>>(),
            ["billing.read", "billing.agent"]
        );
        assert!(csrf_matches(&fields, "ab"));
        assert!(!csrf_matches(&fields, "abc"));
        assert!(!csrf_matches(&Fields::parse(b"name=x"), "ab"));
        assert_eq!(new_csrf_token().unwrap().len(), 64);
    }
}

//! The registration endpoint (`oauth::RegistrationEndpoint`, RFC 7591;
//! feature `registration`) as a whole, over a `TokenManager` on a
//! `MemoryStore` that lives as long as the process, with the default cap
//! of live registrations per source.
//!
//! Input: byte 0 picks the method, the `Content-Type` and the framing
//! (see `common::Envelope`; the table is of JSON types here); byte 1 the
//! peer address in the request's extensions (`peer::PeerAddr`): `b % 4`
//! is 0 for the IPv4 address 198.51.100.`b / 4`, 1 for an address of the
//! IPv6 network 2001:db8:0:`b / 4`::/64 (the rest of the address from the
//! body's length), 2 for the IPv4-mapped IPv6 form of the same IPv4
//! address as 0, 3 for no peer address. That is 129 sources, so the store
//! holds at most 1290 clients however long the fuzzer runs. The rest is
//! the JSON body.
//!
//! Properties, for any input:
//! - the service never panics and never answers 5xx;
//! - every answer is `Cache-Control: no-store`;
//! - a method other than `POST` is 405;
//! - otherwise 201, 400 (`invalid_redirect_uri` or
//!   `invalid_client_metadata`; always for a body that is not
//!   `application/json`, not a JSON object, or larger than 16 KiB) or 429
//!   (`invalid_client_metadata`), and the 429 exactly when the source
//!   already holds the cap: an IPv4 address and its IPv4-mapped form are
//!   one source, an IPv6 /64 is one source;
//! - a 201 carries a `client_id` of the client kind that the manager then
//!   finds, with the redirect URIs of the request (each `https`, or
//!   `http` on a loopback host; absolute, no fragment, no user
//!   information, host characters only, a port from 1 to 65535), the
//!   trimmed `client_name` when one was given, `token_endpoint_auth_method`
//!   `none`, and the scopes asked for (every scope when none).
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run registration_endpoint
//! ```

#![no_main]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{LazyLock, Mutex};

use common::{answer, block_on, Envelope, Manager, MAX_JSON_BODY, S};
use http::header::ALLOW;
use http::Method;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;
use tower_token_auth::manager::{TokenManager, DEFAULT_CLIENTS_PER_SOURCE};
use tower_token_auth::oauth::RegistrationEndpoint;
use tower_token_auth::peer::PeerAddr;
use tower_token_auth::token::TokenKind;
use tower_token_auth::ScopeSet;

const JSON_TYPES: [Option<&str>; 8] = [
    Some("application/json"),
    Some("application/json"),
    Some("application/json"),
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some(" Application/JSON "),
    None,
    Some("application/x-www-form-urlencoded"),
];

static REGISTRY: LazyLock<Manager> = LazyLock::new(|| TokenManager::new(common::Store::default()));

/// The live registrations of each source, as the model counts them.
static COUNTS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// The peer address the input picks, and the source it counts against.
fn peer(arg: u8, body_len: usize) -> (Option<IpAddr>, String) {
    let n = arg / 4;
    match arg % 4 {
        0 => (
            Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n))),
            format!("v4 {n}"),
        ),
        1 => {
            let low = body_len as u16;
            (
                Some(IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    u16::from(n),
                    low,
                    0,
                    0,
                    1,
                ))),
                format!("v6 {n}"),
            )
        }
        2 => (
            Some(IpAddr::V6(Ipv4Addr::new(198, 51, 100, n).to_ipv6_mapped())),
            format!("v4 {n}"),
        ),
        _ => (None, "unknown".to_owned()),
    }
}

/// A redirect URI a public client may register, by the documented rules
/// (written apart from the core's check).
fn acceptable_redirect(uri: &str) -> bool {
    if uri.len() > 2048 || !uri.bytes().all(|b| b.is_ascii_graphic()) || uri.contains('#') {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return false;
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return false;
        };
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (&authority[..inside.len() + 2], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return false;
        }
        (host, port)
    };
    if let Some(port) = port {
        if port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || !(1..=65_535).contains(&port.parse::<u32>().unwrap_or(0))
        {
            return false;
        }
    }
    match scheme {
        "https" => true,
        "http" => matches!(host, "127.0.0.1" | "[::1]" | "localhost"),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let envelope = Envelope::parse(data, &JSON_TYPES);
    let (ip, source) = peer(envelope.arg, envelope.body.len());
    let mut request = envelope.request("/oauth/register", envelope.body, MAX_JSON_BODY);
    if let Some(ip) = ip {
        request
            .extensions_mut()
            .insert(PeerAddr(SocketAddr::new(ip, 40_000)));
    }
    let tokens = REGISTRY.clone();
    let response = block_on(RegistrationEndpoint::new(tokens.clone()).oneshot(request))
        .unwrap_or_else(|e| match e {});
    let what = String::from_utf8_lossy(data);
    let answer = answer(response, &what);
    if envelope.method != Method::POST {
        assert_eq!(answer.status, 405, "{what:?}");
        assert_eq!(answer.header(&ALLOW), Some("POST"));
        return;
    }
    let sent = serde_json::from_slice::<Value>(envelope.body)
        .ok()
        .filter(Value::is_object);
    let well_formed = is_json(envelope.content_type) && envelope.framing < 3 && sent.is_some();
    let mut counts = COUNTS.lock().expect("no earlier panic");
    let held = counts
        .get_or_insert_with(HashMap::new)
        .entry(source)
        .or_default();
    match answer.status.as_u16() {
        201 => {
            assert!(well_formed, "{what:?}");
            assert!(*held < DEFAULT_CLIENTS_PER_SOURCE, "over the cap: {what:?}");
            *held += 1;
            let sent = sent.expect("an object");
            let json = answer.json.as_ref().expect("JSON");
            let client_id = json["client_id"].as_str().expect("client_id");
            assert_eq!(
                tokens.policy().get_format().check(client_id),
                Ok(TokenKind::Client)
            );
            let client = block_on(tokens.client(client_id))
                .expect("memory store")
                .expect("a registered client is found");
            assert_eq!(json["redirect_uris"], sent["redirect_uris"], "{what:?}");
            assert_eq!(
                serde_json::to_value(&client.redirect_uris).expect("strings"),
                sent["redirect_uris"]
            );
            for uri in &client.redirect_uris {
                assert!(acceptable_redirect(uri), "registered {uri:?}");
            }
            if let Some(name) = sent["client_name"].as_str() {
                assert_eq!(json["client_name"], name.trim(), "{what:?}");
            }
            assert_eq!(json["token_endpoint_auth_method"], "none");
            let scopes = common::scopes_of(&json["scope"]);
            assert_eq!(scopes, client.scopes);
            let asked = sent["scope"]
                .as_str()
                .map(|s| S::parse_scope(s).expect("a 201 for a known scope"))
                .filter(|s| !s.is_empty())
                .unwrap_or(S::all());
            assert_eq!(scopes, asked, "{what:?}");
        }
        400 => {
            let error = answer.error().expect("an error code");
            assert!(
                matches!(error, "invalid_redirect_uri" | "invalid_client_metadata"),
                "{error} for {what:?}"
            );
        }
        429 => {
            assert!(well_formed, "{what:?}");
            assert_eq!(answer.error(), Some("invalid_client_metadata"));
            assert_eq!(
                *held, DEFAULT_CLIENTS_PER_SOURCE,
                "429 below the cap: {what:?}"
            );
        }
        status => panic!("{status} for {what:?}"),
    }
    if !well_formed {
        assert_eq!(answer.status, 400, "{what:?}");
    }
});

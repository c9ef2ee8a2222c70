use std::marker::PhantomData;

use crate::json::escape_into;
use crate::scope::ScopeSet;

/// An RFC 9728 protected resource metadata document, served at
/// `/.well-known/oauth-protected-resource`.
///
/// MCP clients read it to find the authorization server and the scopes of
/// the API. Point the Bearer challenges at it with
/// [`Challenge::resource_metadata`](crate::Challenge::resource_metadata).
///
/// ```
/// use tower_token_auth::PayRequestScopes;
/// use tower_token_auth::oauth::ProtectedResourceMetadata;
///
/// let json = ProtectedResourceMetadata::<PayRequestScopes>::new("https://api.example.com")
///     .authorization_server("https://auth.example.com")
///     .to_json();
/// let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
/// assert_eq!(doc["resource"], "https://api.example.com");
/// assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));
/// assert_eq!(doc["scopes_supported"][2], "billing.agent");
/// ```
#[derive(Debug, Clone)]
pub struct ProtectedResourceMetadata<S> {
    resource: String,
    authorization_servers: Vec<String>,
    resource_name: Option<String>,
    _scopes: PhantomData<fn() -> S>,
}

impl<S: ScopeSet> ProtectedResourceMetadata<S> {
    /// Metadata for the resource identified by `resource` (its URL).
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            resource_name: None,
            _scopes: PhantomData,
        }
    }

    /// Adds an authorization server that issues tokens for the resource.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Sets a human-readable name.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The JSON document: `resource`, `authorization_servers`,
    /// `scopes_supported` (every name of the scope set),
    /// `bearer_methods_supported` (`["header"]`: never the URL or the body)
    /// and `resource_name` when set.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"resource\":\"");
        escape_into(&mut out, &self.resource);
        out.push_str("\",\"authorization_servers\":");
        push_array(
            &mut out,
            self.authorization_servers.iter().map(String::as_str),
        );
        out.push_str(",\"scopes_supported\":");
        push_array(&mut out, S::SCOPES.iter().map(|(name, _)| *name));
        out.push_str(",\"bearer_methods_supported\":[\"header\"]");
        if let Some(name) = &self.resource_name {
            out.push_str(",\"resource_name\":\"");
            escape_into(&mut out, name);
            out.push('"');
        }
        out.push('}');
        out
    }
}

fn push_array<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        escape_into(out, item);
        out.push('"');
    }
    out.push(']');
}

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::json::escape_into;
use crate::scope::ScopeSet;

/// An RFC 9728 protected resource metadata document, served at
/// `/.well-known/oauth-protected-resource`.
///
/// MCP clients read it to find the authorization server and the scopes of
/// the API. Point the Bearer challenges at it with
/// [`Rejections::resource_metadata`](crate::Rejections::resource_metadata).
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
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Sets a human-readable name.
    #[must_use]
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

    /// A tower service that serves the document (see [`MetadataDocument`]).
    pub fn into_service(self) -> MetadataDocument {
        MetadataDocument::new(self.to_json())
    }
}

/// An RFC 8414 authorization server metadata document, served at
/// `/.well-known/oauth-authorization-server` (with the issuer's path, if it
/// has one, after that: RFC 8414 §3.1).
///
/// MCP clients read it after the protected resource metadata, to find the
/// endpoints of the authorization server that the resource names. Only the
/// endpoints set are listed.
///
/// ```
/// use tower_token_auth::PayRequestScopes;
/// use tower_token_auth::oauth::AuthorizationServerMetadata;
///
/// let json = AuthorizationServerMetadata::<PayRequestScopes>::new("https://auth.example.com")
///     .token_endpoint("https://auth.example.com/oauth/token")
///     .revocation_endpoint("https://auth.example.com/oauth/revoke")
///     .introspection_endpoint("https://auth.example.com/oauth/introspect")
///     .to_json();
/// let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
/// assert_eq!(doc["issuer"], "https://auth.example.com");
/// assert_eq!(doc["grant_types_supported"], serde_json::json!(["refresh_token"]));
/// assert_eq!(doc["token_endpoint_auth_methods_supported"], serde_json::json!(["none"]));
/// assert_eq!(
///     doc["introspection_endpoint_auth_methods_supported"],
///     serde_json::json!(["client_secret_basic"])
/// );
/// assert_eq!(doc["scopes_supported"][0], "billing.read");
/// ```
#[derive(Debug, Clone)]
pub struct AuthorizationServerMetadata<S> {
    issuer: String,
    endpoints: Vec<(&'static str, String)>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    code_challenge_methods: Vec<String>,
    iss_parameter: bool,
    _scopes: PhantomData<fn() -> S>,
}

impl<S: ScopeSet> AuthorizationServerMetadata<S> {
    /// Metadata of the authorization server whose issuer identifier is
    /// `issuer` (an https URL with no query or fragment, RFC 8414 §2).
    /// Its only grant type is `refresh_token` until others are added.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            endpoints: Vec::new(),
            grant_types: vec!["refresh_token".into()],
            response_types: Vec::new(),
            code_challenge_methods: Vec::new(),
            iss_parameter: false,
            _scopes: PhantomData,
        }
    }

    fn endpoint(mut self, name: &'static str, url: impl Into<String>) -> Self {
        self.endpoints.retain(|(n, _)| *n != name);
        self.endpoints.push((name, url.into()));
        self
    }

    /// Sets `token_endpoint` (RFC 6749 §3.2). Public clients: the endpoint
    /// authentication method is `none`.
    #[must_use]
    pub fn token_endpoint(self, url: impl Into<String>) -> Self {
        self.endpoint("token_endpoint", url)
    }

    /// Sets `revocation_endpoint` (RFC 7009), authentication method `none`.
    #[must_use]
    pub fn revocation_endpoint(self, url: impl Into<String>) -> Self {
        self.endpoint("revocation_endpoint", url)
    }

    /// Sets `introspection_endpoint` (RFC 7662), whose callers authenticate
    /// with HTTP Basic (`client_secret_basic`).
    #[must_use]
    pub fn introspection_endpoint(self, url: impl Into<String>) -> Self {
        self.endpoint("introspection_endpoint", url)
    }

    /// Sets `authorization_endpoint` (RFC 6749 §3.1): adds the `code`
    /// response type, the `authorization_code` grant, PKCE `S256` and the
    /// RFC 9207 `iss` parameter to the document.
    #[must_use]
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        if !self.grant_types.iter().any(|g| g == "authorization_code") {
            self.grant_types.insert(0, "authorization_code".into());
        }
        self.response_types = vec!["code".into()];
        self.code_challenge_methods = vec!["S256".into()];
        self.iss_parameter = true;
        self.endpoint("authorization_endpoint", url)
    }

    /// Sets `registration_endpoint` (RFC 7591 dynamic client registration).
    #[must_use]
    pub fn registration_endpoint(self, url: impl Into<String>) -> Self {
        self.endpoint("registration_endpoint", url)
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"issuer\":\"");
        escape_into(&mut out, &self.issuer);
        out.push('"');
        for (name, url) in &self.endpoints {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":\"");
            escape_into(&mut out, url);
            out.push('"');
        }
        let mut field = |name: &str, items: &[&str]| {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            push_array(&mut out, items.iter().copied());
        };
        let scopes: Vec<&str> = S::SCOPES.iter().map(|(name, _)| *name).collect();
        field("scopes_supported", &scopes);
        field("response_types_supported", &strings(&self.response_types));
        field("grant_types_supported", &strings(&self.grant_types));
        field("token_endpoint_auth_methods_supported", &["none"]);
        if self.has("revocation_endpoint") {
            field("revocation_endpoint_auth_methods_supported", &["none"]);
        }
        if self.has("introspection_endpoint") {
            field(
                "introspection_endpoint_auth_methods_supported",
                &["client_secret_basic"],
            );
        }
        if !self.code_challenge_methods.is_empty() {
            field(
                "code_challenge_methods_supported",
                &strings(&self.code_challenge_methods),
            );
        }
        if self.iss_parameter {
            out.push_str(",\"authorization_response_iss_parameter_supported\":true");
        }
        out.push('}');
        out
    }

    fn has(&self, name: &str) -> bool {
        self.endpoints.iter().any(|(n, _)| *n == name)
    }

    /// A tower service that serves the document (see [`MetadataDocument`]).
    pub fn into_service(self) -> MetadataDocument {
        MetadataDocument::new(self.to_json())
    }
}

/// A tower service that answers `GET` (and `HEAD`) with a metadata
/// document: `200`, `application/json`, cacheable for an hour. Other
/// methods get `405` with `Allow: GET, HEAD`.
///
/// Built by [`ProtectedResourceMetadata::into_service`] and
/// [`AuthorizationServerMetadata::into_service`]; mount it with axum's
/// `Router::route_service`.
#[derive(Debug, Clone)]
pub struct MetadataDocument {
    body: Bytes,
}

impl MetadataDocument {
    /// A service that serves `json` as it is.
    pub fn new(json: String) -> Self {
        Self {
            body: Bytes::from(json),
        }
    }
}

impl<B> Service<Request<B>> for MetadataDocument {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut response = Response::new(Full::new(self.body.clone()));
        let headers = response.headers_mut();
        if request.method() == Method::GET || request.method() == Method::HEAD {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
        } else {
            *response.body_mut() = Full::default();
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        ready(Ok(response))
    }
}

fn strings(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;
    use crate::scope::PayRequestScopes as S;

    const ISSUER: &str = "https://auth.example.com";

    fn document(metadata: &AuthorizationServerMetadata<S>) -> Value {
        serde_json::from_str(&metadata.to_json()).unwrap()
    }

    /// RFC 8414 §2: `issuer`, `authorization_endpoint` (for a server with
    /// a grant that uses it), `token_endpoint` and `response_types_supported`
    /// are required.
    #[test]
    fn rfc_8414_2_the_required_fields_are_present() {
        let metadata = AuthorizationServerMetadata::<S>::new(ISSUER)
            .authorization_endpoint(format!("{ISSUER}/oauth/authorize"))
            .token_endpoint(format!("{ISSUER}/oauth/token"));
        let doc = document(&metadata);
        assert_eq!(doc["issuer"], ISSUER, "the issuer identifier, as given");
        assert_eq!(
            doc["authorization_endpoint"],
            format!("{ISSUER}/oauth/authorize")
        );
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}/oauth/token"));
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(
            doc["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    }

    /// RFC 8414 §2: an omitted `grant_types_supported` means
    /// `["authorization_code", "implicit"]`; a server without an
    /// authorization endpoint must say it supports neither.
    #[test]
    fn rfc_8414_2_a_server_without_authorization_endpoint_lists_its_grants() {
        let doc = document(
            &AuthorizationServerMetadata::<S>::new(ISSUER)
                .token_endpoint(format!("{ISSUER}/oauth/token")),
        );
        assert_eq!(doc["grant_types_supported"], json!(["refresh_token"]));
        assert!(doc.get("authorization_endpoint").is_none(), "{doc}");
        assert!(
            doc.get("code_challenge_methods_supported").is_none(),
            "{doc}"
        );
    }

    /// RFC 8414 §3.2: the document is the body of a 200 answer to `GET`,
    /// as `application/json`.
    #[tokio::test]
    async fn rfc_8414_3_2_the_document_is_served_to_get_as_json() {
        let metadata = AuthorizationServerMetadata::<S>::new(ISSUER)
            .token_endpoint(format!("{ISSUER}/oauth/token"));
        let expected = document(&metadata);
        let service = metadata.into_service();
        let request = |method: Method| {
            Request::builder()
                .method(method)
                .uri("/.well-known/oauth-authorization-server")
                .body(Full::<Bytes>::default())
                .unwrap()
        };
        let response = service.clone().oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, expected);

        let response = service.oneshot(request(Method::POST)).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
    }
}

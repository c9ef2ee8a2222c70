//! What every OAuth endpoint of the crate shares: reading a form body
//! within bounds, the method and content-type checks, the RFC 6749 §5.2
//! error answers, and the tower `Service` impl of an endpoint.

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};

use crate::error::{BoxError, StoreError};
use crate::json::escape_into;

/// The largest form body the endpoints read.
pub(super) const MAX_BODY: usize = 8 * 1024;

/// The tower `Service` of an endpoint with an
/// `async fn handle(self, Request<B>) -> Response<Full<Bytes>>`: ready at
/// once, never failing.
macro_rules! endpoint_service {
    ($endpoint:ident) => {
        impl<Bk, B> tower_service::Service<http::Request<B>> for $endpoint<Bk>
        where
            Bk: crate::store::TokenBackend,
            B: http_body::Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<crate::error::BoxError>,
        {
            type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
            type Error = std::convert::Infallible;
            type Future = futures_util::future::BoxFuture<
                'static,
                Result<Self::Response, std::convert::Infallible>,
            >;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: http::Request<B>) -> Self::Future {
                let this = self.clone();
                Box::pin(async move { Ok(this.handle(request).await) })
            }
        }
    };
}

pub(super) use endpoint_service;

/// A decoded form body.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    /// Decodes `application/x-www-form-urlencoded` bytes (a body or a
    /// query string).
    pub(super) fn parse(bytes: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The single value of `name`; a repeated parameter is an error
    /// (RFC 6749 §3.2: parameters must not be included more than once).
    pub(super) fn one(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Repeated);
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// Every non-empty value of `name`, for parameters that may repeat.
    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The `token` of a form with exactly one `token` and at most one
/// `token_type_hint`: the body of revocation (RFC 7009 §2.1) and
/// introspection (RFC 7662 §2.1).
pub(super) struct TokenForm(String);

impl TokenForm {
    /// The `token` parameter.
    pub(super) fn token(&self) -> &str {
        &self.0
    }
}

/// Reads a [`TokenForm`], or the 400 `invalid_request` answer.
pub(super) async fn read_token_form<B>(
    request: Request<B>,
) -> Result<TokenForm, Response<Full<Bytes>>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let form = read_form(request).await?;
    if let Err(repeated) = form.one("token_type_hint") {
        return Err(repeated.response());
    }
    match form.one("token") {
        Ok(Some(token)) => Ok(TokenForm(token.to_owned())),
        Ok(None) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required.",
        )),
        Err(repeated) => Err(repeated.response()),
    }
}

/// A form parameter given more than once.
pub(super) struct Repeated;

impl Repeated {
    pub(super) fn response(self) -> Response<Full<Bytes>> {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "A parameter is repeated.",
        )
    }
}

/// The 405 answer, with `Allow: POST`, for a request that is no `POST`.
pub(super) fn unless_post<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if request.method() == Method::POST {
        return None;
    }
    let mut response = oauth_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "Use POST.",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    Some(response)
}

/// Whether the request's media type (parameters aside) is `media_type`.
pub(super) fn has_content_type<B>(request: &Request<B>, media_type: &str) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

pub(super) async fn read_form<B>(request: Request<B>) -> Result<Form, Response<Full<Bytes>>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if let Some(response) = unless_post(&request) {
        return Err(response);
    }
    if !has_content_type(&request, "application/x-www-form-urlencoded") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The body is too large or could not be read.",
            )
        })?
        .to_bytes();
    Ok(Form::parse(&body))
}

pub(super) fn store_error(error: &StoreError) -> Response<Full<Bytes>> {
    match error {
        StoreError::Unavailable(_) => {
            tracing::error!(target: "tower_token_auth::oauth", %error, "token store unavailable");
            let mut response = oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The token store is temporarily unavailable.",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        _ => {
            tracing::error!(target: "tower_token_auth::oauth", %error, "token store failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The request could not be completed.",
            )
        }
    }
}

/// An RFC 6749 §5.2 error response.
pub(super) fn oauth_error(
    status: StatusCode,
    code: &str,
    description: &str,
) -> Response<Full<Bytes>> {
    let mut body = String::with_capacity(128);
    body.push_str("{\"error\":\"");
    escape_into(&mut body, code);
    body.push_str("\",\"error_description\":\"");
    escape_into(&mut body, description);
    body.push_str("\"}");
    json_response(status, body)
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    no_store(response)
}

pub(super) fn no_store(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

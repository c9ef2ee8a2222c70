//! Scopes end to end: implication through `RequireScopeLayer`, `any_of`
//! requirements, the wire form, and a service's own scope set.

use http::StatusCode;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::bitflags::bitflags;
use tower_token_auth::manager::{IssueRequest, TokenManager};
use tower_token_auth::scope::ScopeError;
use tower_token_auth::token::TokenKind;
use tower_token_auth::{
    AuthError, MemoryStore, PayRequestScopes as S, RequireScopeLayer, Requirement, ScopeSet,
    TokenAuthLayer,
};

use crate::support::*;

/// Sends `token` to a route requiring `requirement`; returns the status and,
/// for a 403, the `scope` the challenge names.
async fn route<Sc: ScopeSet>(
    fixture: &Fixture<Sc>,
    requirement: impl Into<Requirement<Sc>>,
    token: &str,
) -> (StatusCode, Option<String>) {
    let auth = fixture.layer();
    let inner = Inner::<Sc>::new();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(requirement))
        .service(inner.clone());
    let response = service.oneshot(bearer(token)).await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(inner.calls(), 1);
        assert_eq!(body_bytes(response.into_body()).await, INNER_BODY);
        return (status, None);
    }
    assert_eq!(
        inner.calls(),
        0,
        "a rejected request never reaches the route"
    );
    let rejection = rejection(response).await;
    let scope = rejection.body["scope"].as_str().map(str::to_owned);
    if status == StatusCode::FORBIDDEN {
        let challenge = insufficient_scope_challenge(scope.as_deref().unwrap());
        assert_rejection(&rejection, insufficient(&challenge));
    }
    (status, scope)
}

#[tokio::test]
async fn billing_agent_passes_billing_read_and_billing_write_routes() {
    let fixture = Fixture::new();
    let agent = fixture.pat(S::parse_scope("billing.agent").unwrap()).await;
    let token = agent.secret.expose_secret();
    for requirement in [S::BILLING_READ, S::BILLING_WRITE, S::BILLING_AGENT] {
        assert_eq!(
            route(&fixture, requirement, token).await,
            (StatusCode::OK, None),
            "{requirement:?}"
        );
    }
    assert_eq!(
        route(&fixture, S::BILLING_READ | S::BILLING_WRITE, token).await,
        (StatusCode::OK, None)
    );
}

#[tokio::test]
async fn billing_agent_does_not_pass_other_families() {
    let fixture = Fixture::new();
    let agent = fixture.pat(S::BILLING_AGENT).await;
    assert_eq!(
        route(&fixture, S::CUSTOMERS_READ, agent.secret.expose_secret()).await,
        (StatusCode::FORBIDDEN, Some("customers.read".to_owned()))
    );
}

#[tokio::test]
async fn billing_write_does_not_pass_a_billing_read_route() {
    let fixture = Fixture::new();
    let writer = fixture.pat(S::BILLING_WRITE).await;
    let token = writer.secret.expose_secret();
    assert_eq!(
        route(&fixture, S::BILLING_READ, token).await,
        (StatusCode::FORBIDDEN, Some("billing.read".to_owned()))
    );
    assert_eq!(
        route(&fixture, S::BILLING_WRITE, token).await,
        (StatusCode::OK, None)
    );
}

#[tokio::test]
async fn products_write_does_not_pass_a_products_read_route() {
    let fixture = Fixture::new();
    let writer = fixture.pat(S::PRODUCTS_WRITE).await;
    assert_eq!(
        route(&fixture, S::PRODUCTS_READ, writer.secret.expose_secret()).await,
        (StatusCode::FORBIDDEN, Some("products.read".to_owned()))
    );
}

#[tokio::test]
async fn billing_read_and_write_together_do_not_pass_a_billing_agent_route() {
    let fixture = Fixture::new();
    let both = fixture
        .pat(S::parse_scope("billing.write billing.read").unwrap())
        .await;
    let token = both.secret.expose_secret();
    assert_eq!(
        route(&fixture, S::BILLING_AGENT, token).await,
        (StatusCode::FORBIDDEN, Some("billing.agent".to_owned()))
    );
    assert_eq!(
        route(&fixture, S::BILLING_READ, token).await,
        (StatusCode::OK, None)
    );
    assert_eq!(
        route(&fixture, S::BILLING_WRITE, token).await,
        (StatusCode::OK, None)
    );
}

#[tokio::test]
async fn any_of_passes_a_token_holding_one_alternative() {
    let fixture = Fixture::new();
    let customers = fixture.pat(S::CUSTOMERS_READ).await;
    let agent = fixture.pat(S::BILLING_AGENT).await;
    let products = fixture.pat(S::PRODUCTS_READ).await;
    let requirement = || Requirement::any_of([S::BILLING_READ, S::CUSTOMERS_READ]);

    assert_eq!(
        route(&fixture, requirement(), customers.secret.expose_secret()).await,
        (StatusCode::OK, None)
    );
    assert_eq!(
        route(&fixture, requirement(), agent.secret.expose_secret()).await,
        (StatusCode::OK, None),
        "billing.agent implies the billing.read alternative"
    );
    assert_eq!(
        route(&fixture, requirement(), products.secret.expose_secret()).await,
        (
            StatusCode::FORBIDDEN,
            Some("billing.read customers.read".to_owned())
        ),
        "the scope attribute lists every alternative"
    );
}

#[tokio::test]
async fn any_of_alternatives_each_need_all_their_scopes() {
    let fixture = Fixture::new();
    let half = fixture.pat(S::PRODUCTS_WRITE).await;
    let whole = fixture.pat(S::PRODUCTS_WRITE | S::PRODUCTS_READ).await;
    let requirement =
        || Requirement::any_of([S::BILLING_AGENT, S::PRODUCTS_READ | S::PRODUCTS_WRITE]);
    assert_eq!(
        route(&fixture, requirement(), half.secret.expose_secret())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        route(&fixture, requirement(), whole.secret.expose_secret())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn all_of_several_scopes_needs_every_one() {
    let fixture = Fixture::new();
    let one = fixture.pat(S::BILLING_READ).await;
    let both = fixture.pat(S::BILLING_AGENT | S::CUSTOMERS_READ).await;
    let requirement = S::BILLING_READ | S::CUSTOMERS_READ;
    assert_eq!(
        route(&fixture, requirement, one.secret.expose_secret()).await,
        (
            StatusCode::FORBIDDEN,
            Some("billing.read customers.read".to_owned())
        )
    );
    assert_eq!(
        route(&fixture, requirement, both.secret.expose_secret()).await,
        (StatusCode::OK, None)
    );
}

#[tokio::test]
async fn token_created_without_scopes_holds_billing_read_only() {
    let fixture = Fixture::new();
    let default = fixture
        .tokens
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "default",
            "user-1",
        ))
        .await
        .unwrap();
    assert_eq!(default.record.scopes, S::BILLING_READ);
    let token = default.secret.expose_secret();
    assert_eq!(
        route(&fixture, S::BILLING_READ, token).await,
        (StatusCode::OK, None)
    );
    assert_eq!(
        route(&fixture, S::BILLING_WRITE, token).await,
        (StatusCode::FORBIDDEN, Some("billing.write".to_owned()))
    );
}

#[tokio::test]
async fn scope_layer_without_authentication_in_front_answers_401() {
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(RequireScopeLayer::new(S::BILLING_READ))
        .service(inner.clone());
    let response = service.oneshot(request("/v1/invoices")).await.unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, MISSING);
    assert_eq!(inner.calls(), 0);
}

#[test]
fn scope_strings_are_space_separated_case_sensitive_and_order_free() {
    assert_eq!(
        S::parse_scope("customers.read billing.agent").unwrap(),
        S::parse_scope("billing.agent  customers.read").unwrap()
    );
    assert_eq!(
        S::parse_scope("billing.read billing.write").unwrap(),
        S::BILLING_READ | S::BILLING_WRITE
    );
    assert_eq!(
        S::parse_scope("Billing.Read"),
        Err(ScopeError::Unknown("Billing.Read".to_owned()))
    );
    assert_eq!(
        S::parse_scope("billing.read billing.delete"),
        Err(ScopeError::Unknown("billing.delete".to_owned())),
        "unknown names are an error, never dropped"
    );
    assert!(matches!(
        S::parse_scope("billing.read,billing.write"),
        Err(ScopeError::Unknown(_))
    ));
    assert_eq!(
        (S::BILLING_AGENT | S::CUSTOMERS_WRITE).scope_string(),
        "billing.agent customers.write"
    );
    assert_eq!(
        S::BILLING_AGENT.scope_names().collect::<Vec<_>>(),
        ["billing.read", "billing.write", "billing.agent"]
    );
    assert_eq!(
        S::SCOPES.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        [
            "billing.read",
            "billing.write",
            "billing.agent",
            "customers.read",
            "customers.write",
            "products.read",
            "products.write",
        ]
    );
}

// ---- a service's own scope set ----

bitflags! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct ShopScopes: u64 {
        const ORDERS_READ = 1 << 0;
        const ORDERS_WRITE = 1 << 1;
        const ORDERS_ADMIN = 1 << 2 | Self::ORDERS_READ.bits() | Self::ORDERS_WRITE.bits();
        const STOCK_READ = 1 << 3;
    }
}

impl ScopeSet for ShopScopes {
    const SCOPES: &'static [(&'static str, Self)] = &[
        ("orders:read", Self::ORDERS_READ),
        ("orders:write", Self::ORDERS_WRITE),
        ("orders:admin", Self::ORDERS_ADMIN),
        ("stock:read", Self::STOCK_READ),
    ];
    const DEFAULT: Self = Self::STOCK_READ;
}

#[tokio::test]
async fn a_custom_scope_set_works_end_to_end() {
    let fixture = Fixture::<ShopScopes>::with_scopes();
    let admin = fixture
        .pat(ShopScopes::parse_scope("orders:admin").unwrap())
        .await;
    let reader = fixture
        .pat(ShopScopes::parse_scope("orders:read").unwrap())
        .await;
    let default = fixture
        .tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "default", "u"))
        .await
        .unwrap();
    assert_eq!(default.record.scopes, ShopScopes::STOCK_READ);

    for requirement in [
        ShopScopes::ORDERS_READ,
        ShopScopes::ORDERS_WRITE,
        ShopScopes::ORDERS_ADMIN,
    ] {
        assert_eq!(
            route(&fixture, requirement, admin.secret.expose_secret()).await,
            (StatusCode::OK, None),
            "admin implies {requirement:?}"
        );
    }
    assert_eq!(
        route(
            &fixture,
            ShopScopes::ORDERS_READ,
            reader.secret.expose_secret()
        )
        .await,
        (StatusCode::OK, None)
    );
    assert_eq!(
        route(
            &fixture,
            ShopScopes::ORDERS_WRITE,
            reader.secret.expose_secret()
        )
        .await,
        (StatusCode::FORBIDDEN, Some("orders:write".to_owned()))
    );
    assert_eq!(
        route(
            &fixture,
            ShopScopes::ORDERS_READ | ShopScopes::ORDERS_WRITE,
            reader.secret.expose_secret()
        )
        .await,
        (
            StatusCode::FORBIDDEN,
            Some("orders:read orders:write".to_owned())
        )
    );
    assert_eq!(
        route(
            &fixture,
            ShopScopes::STOCK_READ,
            admin.secret.expose_secret()
        )
        .await,
        (StatusCode::FORBIDDEN, Some("stock:read".to_owned()))
    );
    assert_eq!(
        route(
            &fixture,
            ShopScopes::ORDERS_READ,
            default.secret.expose_secret()
        )
        .await,
        (StatusCode::FORBIDDEN, Some("orders:read".to_owned()))
    );
}

#[tokio::test]
async fn a_custom_scope_set_puts_its_own_principal_type_in_the_request() {
    let tokens = TokenManager::new(MemoryStore::<ShopScopes>::default());
    let issued = tokens
        .issue(
            IssueRequest::new(TokenKind::Access, "shop sync", "shop-1")
                .scopes(ShopScopes::ORDERS_ADMIN),
        )
        .await
        .unwrap();
    let inner = Inner::<ShopScopes>::new();
    let auth = TokenAuthLayer::new(tokens);
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(ShopScopes::ORDERS_WRITE))
        .service(inner.clone());
    let response = service
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = inner.seen();
    let principal = seen[0].as_ref().expect("a Principal<ShopScopes>");
    assert_eq!(principal.scopes(), ShopScopes::ORDERS_ADMIN);
    assert_eq!(
        principal.scopes().scope_names().collect::<Vec<_>>(),
        ["orders:read", "orders:write", "orders:admin"]
    );
}

#[test]
fn a_custom_scope_set_parses_only_its_own_names() {
    assert_eq!(
        ShopScopes::parse_scope("stock:read orders:admin").unwrap(),
        ShopScopes::STOCK_READ | ShopScopes::ORDERS_ADMIN
    );
    assert_eq!(
        ShopScopes::parse_scope("billing.read"),
        Err(ScopeError::Unknown("billing.read".to_owned()))
    );
    assert_eq!(
        (ShopScopes::ORDERS_ADMIN | ShopScopes::ORDERS_READ).scope_string(),
        "orders:admin"
    );
    let both = ShopScopes::ORDERS_READ | ShopScopes::ORDERS_WRITE;
    assert!(!both.contains(ShopScopes::ORDERS_ADMIN));
}

#[tokio::test]
async fn insufficient_scope_error_is_typed_for_outer_layers() {
    let fixture = Fixture::new();
    let reader = fixture.pat(S::BILLING_READ).await;
    let auth = fixture.layer();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(Requirement::any_of([S::BILLING_WRITE, S::PRODUCTS_WRITE])))
        .service(Inner::<S>::new());
    let response = service
        .oneshot(bearer(reader.secret.expose_secret()))
        .await
        .unwrap();
    match response.extensions().get::<AuthError>() {
        Some(AuthError::InsufficientScope { required }) => {
            assert_eq!(&**required, "billing.write products.write");
        }
        other => panic!("expected InsufficientScope, got {other:?}"),
    }
}

#[tokio::test]
async fn scope_layer_uses_its_own_challenge_when_built_directly() {
    let fixture = Fixture::new();
    let reader = fixture.pat(S::BILLING_READ).await;
    let service = ServiceBuilder::new()
        .layer(fixture.layer())
        .layer(
            RequireScopeLayer::new(S::BILLING_WRITE)
                .rejections(tower_token_auth::Rejections::new("billing")),
        )
        .service(Inner::<S>::new());
    let response = service
        .oneshot(bearer(reader.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="billing", error="insufficient_scope", error_description="The access token does not have the scope this request requires.", scope="billing.write""#
    );
}

#[test]
fn issuing_never_drops_unknown_names_silently() {
    // The wire form of a creation request goes through parse_scope_or_default.
    assert_eq!(S::parse_scope_or_default(None).unwrap(), S::BILLING_READ);
    assert_eq!(
        S::parse_scope_or_default(Some("")).unwrap(),
        S::BILLING_READ
    );
    assert_eq!(
        S::parse_scope_or_default(Some("products.read")).unwrap(),
        S::PRODUCTS_READ
    );
    assert!(S::parse_scope_or_default(Some("products.read products.delete")).is_err());
}

#[tokio::test]
async fn any_of_scope_attribute_names_every_scope_that_could_satisfy_the_route() {
    // Requirement docs: for alternatives the attribute "names the union,
    // which lists every scope that could satisfy the route". Here
    // `billing.write` alone satisfies the route, so the 403 must name it.
    let fixture = Fixture::new();
    let reader = fixture.pat(S::BILLING_READ).await;
    let writer = fixture.pat(S::BILLING_WRITE).await;
    let requirement = || Requirement::any_of([S::BILLING_WRITE, S::BILLING_AGENT]);
    assert_eq!(
        route(&fixture, requirement(), writer.secret.expose_secret()).await,
        (StatusCode::OK, None)
    );
    let (status, scope) = route(&fixture, requirement(), reader.secret.expose_secret()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let scope = scope.unwrap();
    let names: Vec<&str> = scope.split(' ').collect();
    assert!(names.contains(&"billing.write"), "scope=\"{scope}\"");
    assert!(names.contains(&"billing.agent"), "scope=\"{scope}\"");
}

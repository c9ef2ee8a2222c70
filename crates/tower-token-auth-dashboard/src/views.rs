//! The dashboard's HTML, as maud templates: checked by the compiler, every
//! interpolated value escaped, no inline script or style (the CSP allows
//! none).
//!
//! The words and ids a user (and a browser test) goes by are part of the
//! crate's documented behaviour: `Username`, `Password`, `Log in`, `Log out`, `Name`, one
//! checkbox per scope, `Create`, `#new-token`, `Edit`, `Save`,
//! `Regenerate`, `Delete`, `Confirm`, `Cancel`.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup, DOCTYPE};
use tower_token_auth::oauth::PendingAuthorization;
use tower_token_auth::token::{TokenId, TokenInfo, TokenKind, TokenStatus};
use tower_token_auth::{PayRequestScopes as S, ScopeSet};

use crate::form::CSRF_FIELD;
use crate::tokens::NewToken;
use crate::{AUTHORIZE_PATH, LOGIN_PATH, TOKENS_PATH};

/// Each scope's description, from the PayRequest API's documentation.
const SCOPE_DESCRIPTIONS: &[(&str, &str)] = &[
    ("billing.read", "Read invoices, subscriptions, transactions"),
    (
        "billing.write",
        "Create and modify invoices and subscriptions",
    ),
    (
        "billing.agent",
        "Full AI billing agent access; includes billing.read and billing.write",
    ),
    ("customers.read", "Read customer information"),
    ("customers.write", "Create and modify customers"),
    ("products.read", "Read product catalog"),
    ("products.write", "Create and modify products"),
];

/// A token expiring sooner than this is flagged on its row.
const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The words of the frame of every page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Brand<'a> {
    /// The product, in every title and the header.
    pub(crate) product: &'a str,
    /// What follows the product in the header.
    pub(crate) subtitle: &'a str,
}

/// The frame of every page; `logout` is the session's CSRF token, for the
/// `Log out` button of a logged-in page.
fn layout(brand: Brand<'_>, title: &str, logout: Option<&str>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · " (brand.product) " dashboard" }
                link rel="stylesheet" href="/dashboard/static/dashboard.css";
                script src="/dashboard/static/dashboard.js" defer {}
            }
            body {
                header.top {
                    p.brand { (brand.product) " " span.muted { (brand.subtitle) } }
                    @if let Some(csrf) = logout {
                        form.logout method="post" action="/dashboard/logout" {
                            (csrf_field(csrf))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (main) }
            }
        }
    }
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(csrf); }
}

// ---- login ----

/// What the login form shows.
pub(crate) struct LoginForm<'a> {
    /// The form's CSRF token.
    pub(crate) csrf: &'a str,
    /// Where to go after the login (a path of this site).
    pub(crate) next: &'a str,
    /// The user name to fill in again after a failed login.
    pub(crate) username: &'a str,
    /// Whether the last try failed.
    pub(crate) failed: bool,
    /// A line of help under the form.
    pub(crate) note: Option<&'a str>,
}

/// `GET /dashboard/login`.
pub(crate) fn login(brand: Brand<'_>, form: &LoginForm<'_>) -> Markup {
    layout(
        brand,
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            @if form.failed {
                p.error role="alert" { "Wrong username or password. Try again." }
            }
            form.login method="post" action=(LOGIN_PATH) {
                (csrf_field(form.csrf))
                input type="hidden" name="next" value=(form.next);
                p {
                    label for="username" { "Username" }
                    input #username type="text" name="username" value=(form.username)
                        autocomplete="username" required autofocus[!form.failed];
                }
                p {
                    label for="password" { "Password" }
                    input #password type="password" name="password"
                        autocomplete="current-password" required autofocus[form.failed];
                }
                p { button.primary type="submit" { "Log in" } }
            }
            @if let Some(note) = form.note {
                p.muted { (note) }
            }
        },
    )
}

// ---- the token page ----

/// What the token page shows.
pub(crate) struct TokensPage<'a> {
    /// The session's CSRF token, for every form.
    pub(crate) csrf: &'a str,
    /// The time the rows' expiry warnings are judged at.
    pub(crate) now: SystemTime,
    /// The list.
    pub(crate) rows: &'a [Row],
    /// A token just made, shown this once.
    pub(crate) new_token: Option<&'a NewToken>,
    /// What the last action did.
    pub(crate) notice: Option<&'a str>,
    /// Why the create form was refused.
    pub(crate) error: Option<&'a str>,
    /// The create form's name, shown again after an error.
    pub(crate) name: &'a str,
    /// The create form's scopes, checked again after an error.
    pub(crate) checked: S,
}

/// `GET /dashboard/settings/api-tokens`.
pub(crate) fn tokens(brand: Brand<'_>, page: &TokensPage<'_>) -> Markup {
    layout(
        brand,
        "API Tokens",
        Some(page.csrf),
        html! {
            p.breadcrumb { "Settings → API Tokens" }
            h1 { "API Tokens" }
            p.muted {
                "Tokens let programs call the billing API as you. Send one as "
                code { "Authorization: Bearer …" }
                " with every request. Give each integration its own token with only the scopes it needs."
            }
            @if let Some(notice) = page.notice {
                p.notice role="status" { (notice) }
            }
            @if let Some(new_token) = page.new_token {
                (shown_once(new_token))
            }
            section aria-labelledby="create-heading" {
                h2 #create-heading { "Create a token" }
                @if let Some(error) = page.error {
                    p.error role="alert" { (error) }
                }
                form.create method="post" action=(TOKENS_PATH) {
                    (csrf_field(page.csrf))
                    p {
                        label for="name" { "Name" }
                        input #name type="text" name="name" value=(page.name) required
                            maxlength="200" placeholder="MCP Billing Agent" autocomplete="off";
                    }
                    (scope_fieldset(page.checked, "If you check no scope, the token gets billing.read."))
                    p { button.primary type="submit" { "Create" } }
                }
            }
            section aria-labelledby="list-heading" {
                h2 #list-heading { "Your tokens" }
                @if page.rows.is_empty() {
                    p { "No tokens yet." }
                } @else {
                    (table(page))
                }
            }
        },
    )
}

/// The new token, with its copy button and the warning.
fn shown_once(new_token: &NewToken) -> Markup {
    html! {
        section.new-token aria-labelledby="new-token-heading" {
            h2 #new-token-heading { "Your new token “" (new_token.name) "”" }
            p.warning role="alert" {
                strong { "Copy it now: you will not see it again." }
                " Store it like a password, e.g. in your secret manager."
            }
            p.token {
                code #new-token { (new_token.token) }
                " "
                // Shown by the script, which makes it work.
                button type="button" data-copy="new-token" hidden { "Copy" }
            }
        }
    }
}

/// One checkbox per scope, `checked` ones checked.
fn scope_fieldset(checked: S, hint: &str) -> Markup {
    html! {
        fieldset.scopes {
            legend { "Scopes" }
            p.muted { (hint) }
            ul {
                @for (name, _) in S::SCOPES {
                    (scope_item(name, is_named(checked, name)))
                }
            }
        }
    }
}

/// One scope's checkbox (its `value` the scope's name), labelled with the
/// name and its description.
fn scope_item(name: &str, checked: bool) -> Markup {
    html! {
        li {
            label {
                input type="checkbox" name="scope" value=(name) checked[checked];
                " "
                code { (name) }
                " — "
                (description(name))
            }
        }
    }
}

/// Whether `name` is one of the names `set`'s minimal scope string uses:
/// `billing.agent` is checked, not the `billing.read` it implies.
fn is_named(set: S, name: &str) -> bool {
    set.scope_string().split(' ').any(|n| n == name)
}

fn description(name: &str) -> &'static str {
    SCOPE_DESCRIPTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, d)| d)
}

fn table(page: &TokensPage<'_>) -> Markup {
    html! {
        table.tokens {
            thead {
                tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Hint" }
                    th scope="col" { "Scopes" }
                    th scope="col" { "Status" }
                    th scope="col" { "Created" }
                    th scope="col" { "Expires" }
                    th scope="col" { "Last used" }
                    th scope="col" { "Actions" }
                }
            }
            tbody {
                @for row in page.rows {
                    (table_row(page, row))
                }
            }
        }
    }
}

fn table_row(page: &TokensPage<'_>, row: &Row) -> Markup {
    let active = row.status == TokenStatus::Active;
    let editable = active && row.kind == RowKind::PersonalAccess;
    let base = format!("{TOKENS_PATH}/{}", row.action_id);
    let dialog = format!("delete-{}", row.action_id);
    let expires_soon = active && row.expires_within(page.now, EXPIRY_WARNING);
    html! {
        tr data-status=(row.status.as_str()) {
            th scope="row" {
                span.name { (row.name) }
                br;
                small.muted { (row.kind.label()) }
            }
            td {
                @for (i, hint) in row.hints.iter().enumerate() {
                    @if i > 0 { br; }
                    code { (hint) }
                }
            }
            td { code { (row.scopes.scope_string()) } }
            td {
                span class={ "status " (row.status.as_str()) } { (row.status.as_str()) }
                @if let Some(hint) = row.spent_hint() {
                    br;
                    small.muted title="Exchanged for a new one: presenting it again revokes the grant." {
                        "refresh token " code { (hint) } " "
                        span class="status spent" { "spent" }
                    }
                }
            }
            td { (when(row.created_at)) }
            td {
                (when(row.expires_at))
                @if expires_soon {
                    br;
                    strong.warning { "⚠ Expires " (in_days(page.now, row.expires_at)) }
                }
            }
            td {
                @match row.last_used_at {
                    Some(at) => (when(at)),
                    None => span.muted { "never" },
                }
            }
            td {
                @if active {
                    div.buttons {
                        @if editable {
                            form method="get" action={ (base) "/edit" } {
                                button type="submit" { "Edit" }
                            }
                            form method="post" action={ (base) "/regenerate" } {
                                (csrf_field(page.csrf))
                                button type="submit" title="A new token replaces this one, which stops working at once." { "Regenerate" }
                            }
                        }
                        form method="get" action={ (base) "/delete" } {
                            button.danger type="submit" data-dialog=(dialog) { "Delete" }
                        }
                    }
                    dialog id=(dialog) aria-labelledby={ (dialog) "-heading" } {
                        (delete_question(page.csrf, &dialog, &row.name, &base, false))
                    }
                } @else {
                    span.muted { "—" }
                }
            }
        }
    }
}

/// The question of the delete confirmation: `Confirm` deletes, `Cancel`
/// closes the dialog (in the page's dialog) or goes back to the list (on
/// the confirmation page of a browser without JavaScript).
fn delete_question(csrf: &str, id: &str, name: &str, base: &str, own_page: bool) -> Markup {
    html! {
        h2 id={ (id) "-heading" } { "Delete “" (name) "”?" }
        p { "Programs that use it are refused from the next request on. This cannot be undone." }
        div.buttons {
            form method="post" action={ (base) "/delete" } {
                (csrf_field(csrf))
                button.danger type="submit" { "Confirm" }
            }
            @if own_page {
                form method="get" action=(TOKENS_PATH) {
                    button type="submit" { "Cancel" }
                }
            } @else {
                form method="dialog" {
                    button type="submit" { "Cancel" }
                }
            }
        }
    }
}

/// `GET …/{id}/delete`: the confirmation for a browser without JavaScript.
pub(crate) fn confirm_delete(brand: Brand<'_>, csrf: &str, info: &TokenInfo<S>) -> Markup {
    let base = format!("{TOKENS_PATH}/{}", info.id);
    let dialog = format!("delete-{}", info.id);
    layout(
        brand,
        "Delete a token",
        Some(csrf),
        html! {
            p.breadcrumb { a href=(TOKENS_PATH) { "Settings → API Tokens" } }
            dialog id=(dialog) open aria-labelledby={ (dialog) "-heading" } {
                (delete_question(csrf, &dialog, &info.name, &base, true))
            }
        },
    )
}

/// `GET …/{id}/edit`: the scopes of one token.
pub(crate) fn edit(
    brand: Brand<'_>,
    csrf: &str,
    info: &TokenInfo<S>,
    checked: S,
    error: Option<&str>,
) -> Markup {
    layout(
        brand,
        "Edit a token",
        Some(csrf),
        html! {
            p.breadcrumb { a href=(TOKENS_PATH) { "Settings → API Tokens" } }
            h1 { "Edit “" (info.name) "”" }
            p.muted {
                "Token " code { (info.hint) } ". The new scopes hold from its next request on; the token itself does not change."
            }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action={ (TOKENS_PATH) "/" (info.id) "/edit" } {
                (csrf_field(csrf))
                (scope_fieldset(checked, "Check at least one scope."))
                div.buttons {
                    button.primary type="submit" { "Save" }
                    a href=(TOKENS_PATH) { "Cancel" }
                }
            }
        },
    )
}

// ---- rows ----

/// What a row of the list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    PersonalAccess,
    /// An OAuth grant: an access and a refresh token and their rotations.
    Grant,
    /// An access or refresh token of no grant.
    Other(TokenKind),
}

impl RowKind {
    fn label(self) -> &'static str {
        match self {
            Self::PersonalAccess => "Personal access token",
            Self::Grant => "OAuth grant (access and refresh token)",
            Self::Other(TokenKind::Access) => "Access token",
            Self::Other(TokenKind::Refresh) => "Refresh token",
            Self::Other(_) => "Token",
        }
    }
}

/// One row of the list: a token, or a grant summed up.
pub(crate) struct Row {
    /// The token the row's buttons act on: for a grant, its newest active
    /// token (deleting any token of a grant deletes the grant).
    pub(crate) action_id: TokenId,
    pub(crate) name: String,
    pub(crate) kind: RowKind,
    /// Prefix and last four characters of each token shown.
    pub(crate) hints: Vec<String>,
    pub(crate) scopes: S,
    pub(crate) status: TokenStatus,
    pub(crate) created_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) last_used_at: Option<SystemTime>,
    /// A grant's members: (id, status, created, hint).
    members: Vec<(TokenId, TokenStatus, SystemTime, String)>,
}

impl Row {
    /// The row of one token.
    pub(crate) fn of(info: &TokenInfo<S>) -> Self {
        Self {
            action_id: info.id,
            name: info.name.clone(),
            kind: match info.kind {
                TokenKind::PersonalAccess => RowKind::PersonalAccess,
                other => RowKind::Other(other),
            },
            hints: vec![info.hint.clone()],
            scopes: info.scopes,
            status: info.status,
            created_at: info.created_at,
            expires_at: info.expires_at,
            last_used_at: info.last_used_at,
            members: Vec::new(),
        }
    }

    /// The row of a grant, from its first token.
    pub(crate) fn grant(info: &TokenInfo<S>) -> Self {
        let mut row = Self::of(info);
        row.kind = RowKind::Grant;
        row.members = vec![(info.id, info.status, info.created_at, info.hint.clone())];
        row
    }

    /// Adds another token of the grant: the grant is active while any of
    /// its tokens is, else revoked if any is, else expired if any is, else
    /// spent (only spent refresh tokens left); it began with its first,
    /// lasts until its last expires, and shows the hints of its active
    /// tokens.
    pub(crate) fn add_to_grant(&mut self, info: &TokenInfo<S>) {
        self.members
            .push((info.id, info.status, info.created_at, info.hint.clone()));
        self.scopes |= info.scopes;
        self.created_at = self.created_at.min(info.created_at);
        self.expires_at = self.expires_at.max(info.expires_at);
        self.last_used_at = self.last_used_at.max(info.last_used_at);
        self.status = [
            TokenStatus::Active,
            TokenStatus::Revoked,
            TokenStatus::Expired,
            TokenStatus::Spent,
        ]
        .into_iter()
        .find(|wanted| self.members.iter().any(|m| m.1 == *wanted))
        .unwrap_or(self.status);
        let active: Vec<_> = self
            .members
            .iter()
            .filter(|m| m.1 == TokenStatus::Active)
            .collect();
        if let Some(newest) = active.iter().max_by_key(|m| m.2) {
            self.action_id = newest.0;
        }
        self.hints = if active.is_empty() {
            self.members.iter().map(|m| m.3.clone()).collect()
        } else {
            active.iter().map(|m| m.3.clone()).collect()
        };
    }

    /// The hint of the grant's spent refresh token (the listing keeps the
    /// latest one of a grant), unless the grant itself shows `spent`.
    fn spent_hint(&self) -> Option<&str> {
        if self.status == TokenStatus::Spent {
            return None;
        }
        self.members
            .iter()
            .filter(|m| m.1 == TokenStatus::Spent)
            .max_by_key(|m| m.2)
            .map(|m| m.3.as_str())
    }

    fn expires_within(&self, now: SystemTime, window: Duration) -> bool {
        self.expires_at
            .duration_since(now)
            .is_ok_and(|left| left < window)
    }
}

/// A time as the page shows it (`2026-05-01 14:03 UTC`), machine-readable
/// in `datetime`.
fn when(time: SystemTime) -> Markup {
    let full = rfc3339(time);
    let shown = match (full.get(..10), full.get(11..16)) {
        (Some(date), Some(clock)) => format!("{date} {clock} UTC"),
        _ => full.clone(),
    };
    html! { time datetime=(full) { (shown) } }
}

/// RFC 3339 in UTC, to the second.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// "in 3 days", "in less than a day".
fn in_days(now: SystemTime, at: SystemTime) -> String {
    let days = at.duration_since(now).unwrap_or_default().as_secs() / 86_400;
    match days {
        0 => "in less than a day".to_owned(),
        1 => "in 1 day".to_owned(),
        n => format!("in {n} days"),
    }
}

// ---- consent ----

/// What the consent page says besides the request.
pub(crate) struct Consent<'a> {
    /// The session's CSRF token.
    pub(crate) csrf: &'a str,
    /// The authorization request's query, carried by the form.
    pub(crate) query: &'a str,
    /// The access token's lifetime, in words ("15 days").
    pub(crate) access_lifetime: &'a str,
    /// The refresh token's lifetime, in words.
    pub(crate) refresh_lifetime: &'a str,
}

/// The consent page of an OAuth client's authorization request: who asks,
/// where the answer goes, one checked box per requested scope, `Allow` and
/// `Deny`. The form carries the request's query (checked again on POST).
pub(crate) fn consent(
    brand: Brand<'_>,
    page: &Consent<'_>,
    pending: &PendingAuthorization<S>,
) -> Markup {
    let client = &pending.client;
    let csrf = page.csrf;
    layout(
        brand,
        "Authorize an application",
        Some(csrf),
        html! {
            h1 { "Authorize " (client.name) }
            p {
                strong id="client-name" { (client.name) }
                " asks for access to your " (brand.product) " account. It will get an access token ("
                (page.access_lifetime) ") and a refresh token (" (page.refresh_lifetime)
                ") with the scopes you allow."
            }
            dl.client {
                dt { "Client ID" }
                dd { code id="client-id" { (client.client_id) } }
                dt { "Returns to" }
                dd { code id="redirect-uri" { (pending.redirect_uri) } }
                @if !pending.resources.is_empty() {
                    dt { "For" }
                    dd { @for r in &pending.resources { code { (r) } " " } }
                }
            }
            p.muted { "The name is what the application says it is. Allow only applications you started yourself." }
            form id="consent" method="post" action=(AUTHORIZE_PATH) {
                (csrf_field(csrf))
                input type="hidden" name="request" value=(page.query);
                fieldset.scopes {
                    legend { "Requested scopes" }
                    p.muted { "Untick any scope you do not want to grant." }
                    ul {
                        @for name in pending.scope_names() {
                            (scope_item(name, true))
                        }
                    }
                }
                p.actions {
                    button type="submit" name="decision" value="allow" { "Allow" }
                    " "
                    button type="submit" name="decision" value="deny" { "Deny" }
                }
            }
            p.muted { "You can revoke this access at any time on " a href=(TOKENS_PATH) { "Settings → API Tokens" } "." }
        },
    )
}

// ---- problems ----

/// What went wrong with a request, as a page that says so, with its status
/// and a way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// 403: a state-changing request without the session's CSRF token.
    CsrfRefused,
    /// 400 (or the body's status): a form that cannot be read.
    BadForm(StatusCode),
    /// 404: a token that is unknown or not the user's.
    NotFound,
    /// 409: a token that does not allow this action.
    Conflict(&'static str),
    /// 503: the token store cannot be reached.
    Unavailable,
    /// 500: the token store failed.
    ServerError,
    /// 500: the session store failed.
    SessionFailed,
    /// 500: the random number generator failed.
    RandomnessFailed,
    /// 400: an authorization request that names an unknown client or a
    /// redirect URI it did not register: shown, never redirected.
    BadAuthorization(&'static str),
}

/// A problem as a response: its status, and the problem itself for
/// [`render_problems`](crate::render_problems) to write the page of, in the
/// dashboard's frame.
impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.status(), Extension(self)).into_response()
    }
}

impl Problem {
    /// The status of the problem's page.
    fn status(self) -> StatusCode {
        match self {
            Self::CsrfRefused => StatusCode::FORBIDDEN,
            Self::BadForm(status) => status,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerError | Self::SessionFailed | Self::RandomnessFailed => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::BadAuthorization(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The page that says what went wrong, with a way back.
    pub(crate) fn page(self, brand: Brand<'_>) -> Markup {
        let (title, message) = match self {
            Self::CsrfRefused => (
                "Request refused",
                "This form was not sent from this page of your session (its security token is \
                 missing or out of date). Reload the page and try again.",
            ),
            Self::BadForm(_) => ("Bad request", "The form could not be read."),
            Self::NotFound => ("No such token", "There is no such token among yours."),
            Self::Conflict(message) => ("Not possible for this token", message),
            Self::Unavailable => (
                "Temporarily unavailable",
                "The token store cannot be reached. Try again in a moment.",
            ),
            Self::ServerError => (
                "Something went wrong",
                "The request could not be completed.",
            ),
            Self::SessionFailed => (
                "Something went wrong",
                "Your session could not be read or saved. Log in again.",
            ),
            Self::RandomnessFailed => (
                "Something went wrong",
                "A security token could not be generated. Try again.",
            ),
            Self::BadAuthorization(message) => ("Authorization request refused", message),
        };
        layout(
            brand,
            title,
            None,
            html! {
                h1 { (title) }
                p.error role="alert" { (message) }
                p { a href=(TOKENS_PATH) { "Back to Settings → API Tokens" } }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_has_its_documented_description() {
        for (name, _) in S::SCOPES {
            assert!(!description(name).is_empty(), "{name}");
        }
        assert!(description("billing.agent").contains("includes billing.read and billing.write"));
    }

    #[test]
    fn times_and_days_read_well() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            when(t).into_string(),
            r#"<time datetime="2023-11-14T22:13:20Z">2023-11-14 22:13 UTC</time>"#
        );
        let day = Duration::from_secs(86_400);
        assert_eq!(in_days(t, t + day / 2), "in less than a day");
        assert_eq!(in_days(t, t + day * 3 + day / 2), "in 3 days");
    }
}

// connect.mjs: the official MCP TypeScript SDK (@modelcontextprotocol/sdk,
// its `auth()` of client/auth.js) connects to the billing_api example by
// itself, through OAuth, the way an MCP client does:
//
//  1. it probes the resource (GET /v1/invoices, 401) and reads the Bearer
//     challenge with the SDK's own `extractWWWAuthenticateParams`,
//  2. `auth()` finds the authorization server (RFC 9728 protected resource
//     metadata, RFC 8414 server metadata), registers a client (RFC 7591)
//     and builds the authorization URL with PKCE (RFC 7636) and the
//     resource indicator (RFC 8707): "REDIRECT",
//  3. this script plays the user with fetch: the dashboard login form (its
//     CSRF field and cookie), the consent page, "Allow", and reads `code`,
//     `state` and `iss` (RFC 9207) from the 303 to the redirect URI
//     (nothing listens there),
//  4. `auth()` with the code exchanges it at the token endpoint:
//     "AUTHORIZED"; the access token lists invoices (200) and is refused
//     the customers (403, insufficient scope),
//  5. `auth()` again, as the SDK's transports do after a 401, refreshes
//     with the refresh token (no new redirect); the new access token
//     works, and the old refresh token, presented again, is refused
//     (invalid_grant: it is spent),
//  6. a second authorization whose code is exchanged with a wrong PKCE
//     verifier is refused (invalid_grant), and a third one with the right
//     verifier is not: PKCE is enforced.
//
// Usage: node connect.mjs BASE_URL USERNAME PASSWORD
//   (or MCP_BASE_URL, MCP_USERNAME, MCP_PASSWORD in the environment)
//
// It prints one JSON line on stdout: every step, with its statuses, and
// `"ok": true`. On any failure it prints the same line with `"ok": false`
// and `"error"`, says what failed on stderr and exits with status 1.
// tests/it/mcp_client.rs runs it against the example on a real socket.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  auth,
  exchangeAuthorization,
  extractWWWAuthenticateParams,
  refreshAuthorization,
  startAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { OAuthError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

const [base, username, password] = [
  process.argv[2] ?? process.env.MCP_BASE_URL,
  process.argv[3] ?? process.env.MCP_USERNAME,
  process.argv[4] ?? process.env.MCP_PASSWORD,
];
const CLIENT_NAME = 'MCP Billing Agent';
const SCOPE = 'billing.read';
// Nothing listens there: the code is read from the 303's Location.
const REDIRECT_URI = 'http://127.0.0.1:53682/callback';

const report = { ok: false, sdk: null, steps: {}, sdk_requests: [] };

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

// ---- the SDK's view of HTTP: every request it makes, logged ----

const sdkFetch = async (url, init) => {
  const response = await fetch(url, init);
  report.sdk_requests.push(`${init?.method ?? 'GET'} ${new URL(url).pathname} ${response.status}`);
  return response;
};

// ---- an in-memory OAuthClientProvider ----

class MemoryProvider {
  constructor() {
    this.client = undefined;
    this.savedTokens = undefined;
    this.verifier = undefined;
    this.discovery = undefined;
    this.authorizationUrls = [];
    this.states = [];
    this.invalidated = [];
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadata() {
    return {
      client_name: CLIENT_NAME,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: SCOPE,
    };
  }
  state() {
    const state = randomBytes(16).toString('hex');
    this.states.push(state);
    return state;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.savedTokens;
  }
  saveTokens(tokens) {
    this.savedTokens = tokens;
  }
  redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    check(this.verifier, 'the SDK asked for a code verifier it never saved');
    return this.verifier;
  }
  invalidateCredentials(scope) {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.savedTokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }
  saveDiscoveryState(state) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
}

// ---- the user: fetch with a cookie jar, by hand ----

const jar = new Map(); // name -> { value, path }

function remember(response) {
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = '/';
    let expired = false;
    for (const attribute of attributes) {
      const [key, val = ''] = attribute.split('=');
      if (key.toLowerCase() === 'path') path = val;
      if (key.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
    }
    if (expired) jar.delete(name);
    else jar.set(name, { value, path });
  }
}

function cookiesFor(url) {
  const path = new URL(url).pathname;
  return [...jar]
    // RFC 6265 §5.1.4 path-match.
    .filter(([, c]) => c.path === '/' || path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
    .map(([name, c]) => `${name}=${c.value}`)
    .join('; ');
}

async function browse(url, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  const cookie = cookiesFor(url);
  if (cookie) headers.cookie = cookie;
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  remember(response);
  return response;
}

/** GETs `url` and follows same-origin redirects; returns the last response and its URL. */
async function follow(url, trail) {
  let current = new URL(url);
  for (let hop = 0; hop < 10; hop++) {
    const response = await browse(current);
    trail.push(`GET ${current.pathname} ${response.status}`);
    if (response.status < 300 || response.status >= 400) return { response, url: current };
    const next = new URL(response.headers.get('location'), current);
    check(next.origin === new URL(base).origin, `redirected off the service to ${next}`);
    current = next;
  }
  throw new Failure(`more than 10 redirects from ${url}`);
}

const ENTITIES = { amp: '&', quot: '"', lt: '<', gt: '>', '#39': "'", '#x27': "'", apos: "'" };
const unescape = (s) => s.replace(/&(amp|quot|lt|gt|#39|#x27|apos);/g, (_, e) => ENTITIES[e]);

/** The `<input>`s of the form whose opening tag matches `opening`. */
function formInputs(html, opening) {
  const start = html.search(opening);
  check(start >= 0, `no form matching ${opening} in the page: ${html.slice(0, 300)}`);
  const end = html.indexOf('</form>', start);
  const form = html.slice(start, end);
  return [...form.matchAll(/<input\b([^>]*)>/g)].map(([, attributes]) => {
    const input = {};
    for (const [, name, value] of attributes.matchAll(/([\w-]+)(?:="([^"]*)")?/g)) {
      input[name] = value === undefined ? true : unescape(value);
    }
    return input;
  });
}

function field(inputs, name) {
  const input = inputs.find((i) => i.name === name);
  check(input, `no field ${name} in the form`);
  return input.value;
}

/**
 * Plays the user from the authorization URL to the 303 to the redirect
 * URI: login (when there is no session yet), consent, Allow. Returns the
 * redirect's parameters and what happened.
 */
async function playUser(authorizationUrl, step) {
  const trail = [];
  step.trail = trail;
  let { response, url } = await follow(authorizationUrl, trail);
  let html = await response.text();
  check(response.status === 200, `the authorization URL led to ${response.status} at ${url}: ${html.slice(0, 300)}`);
  if (url.pathname === '/dashboard/login') {
    const inputs = formInputs(html, /<form[^>]*action="\/dashboard\/login"/);
    const form = new URLSearchParams({
      csrf: field(inputs, 'csrf'),
      next: field(inputs, 'next'),
      username,
      password,
    });
    const login = await browse(new URL('/dashboard/login', base), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    trail.push(`POST /dashboard/login ${login.status}`);
    check(login.status === 303, `the login answered ${login.status}: ${(await login.text()).slice(0, 300)}`);
    ({ response, url } = await follow(new URL(login.headers.get('location'), base), trail));
    html = await response.text();
    check(response.status === 200, `after the login, ${response.status} at ${url}: ${html.slice(0, 300)}`);
    step.logged_in = true;
  }
  check(url.pathname === '/oauth/authorize', `expected the consent page, got ${url}`);
  const inputs = formInputs(html, /<form[^>]*id="consent"/);
  const scopes = inputs.filter((i) => i.type === 'checkbox' && i.name === 'scope' && i.checked).map((i) => i.value);
  step.consent_scopes = scopes;
  const clientName = /<strong id="client-name">([^<]*)<\/strong>/.exec(html)?.[1];
  step.consent_client_name = clientName && unescape(clientName);
  const form = new URLSearchParams({ csrf: field(inputs, 'csrf'), request: field(inputs, 'request') });
  for (const scope of scopes) form.append('scope', scope);
  form.append('decision', 'allow');
  const decided = await browse(new URL('/oauth/authorize', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  trail.push(`POST /oauth/authorize ${decided.status}`);
  check(decided.status === 303, `Allow answered ${decided.status}: ${(await decided.text()).slice(0, 300)}`);
  const location = new URL(decided.headers.get('location'));
  check(
    `${location.origin}${location.pathname}` === REDIRECT_URI,
    `Allow redirected to ${location}, not to the redirect URI ${REDIRECT_URI}`,
  );
  const error = location.searchParams.get('error');
  check(!error, `the authorization endpoint answered error=${error} (${location.searchParams.get('error_description')})`);
  return {
    code: location.searchParams.get('code'),
    state: location.searchParams.get('state'),
    iss: location.searchParams.get('iss'),
  };
}

async function api(path, token) {
  const response = await fetch(new URL(path, base), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  await response.body?.cancel();
  return response;
}

/** What an OAuth call threw, or null when it did not throw. */
async function oauthError(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return error instanceof OAuthError ? error.errorCode : `${error.name}: ${error.message}`;
  }
}

async function main() {
  check(base && username && password, 'usage: node connect.mjs BASE_URL USERNAME PASSWORD');
  // The SDK's package.json is not among its exports: read from node_modules.
  const sdkPackage = new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url);
  report.sdk = JSON.parse(readFileSync(sdkPackage, 'utf8')).version;
  const serverUrl = new URL('/v1/invoices', base).href;
  const provider = new MemoryProvider();
  const steps = report.steps;

  // 1. The resource without a token: the challenge, as the SDK's transport reads it.
  const probe = await api('/v1/invoices');
  const challenge = extractWWWAuthenticateParams(probe);
  steps.probe = {
    status: probe.status,
    www_authenticate: probe.headers.get('www-authenticate'),
    resource_metadata: challenge.resourceMetadataUrl?.href ?? null,
    scope: challenge.scope ?? null,
  };
  check(probe.status === 401, `GET /v1/invoices without a token answered ${probe.status}, not 401`);
  check(challenge.resourceMetadataUrl, `the 401's WWW-Authenticate names no resource_metadata: ${steps.probe.www_authenticate}`);
  // The scope: the challenge's when it names one (the SDK's first choice),
  // else the one this client wants. Without it the SDK would ask for every
  // name of the metadata's scopes_supported.
  const scope = challenge.scope ?? SCOPE;
  const options = { serverUrl, resourceMetadataUrl: challenge.resourceMetadataUrl, scope, fetchFn: sdkFetch };

  // 2. Discovery, registration, the authorization URL.
  const first = await auth(provider, options);
  const authorizationUrl = provider.authorizationUrls.at(-1);
  steps.start = {
    result: first,
    client_id: provider.client?.client_id ?? null,
    authorization_url: authorizationUrl?.href ?? null,
    requests: [...report.sdk_requests],
  };
  check(first === 'REDIRECT', `the first auth() returned ${first}, not REDIRECT`);
  check(provider.client?.client_id, 'auth() registered no client');
  check(authorizationUrl, 'auth() returned REDIRECT without calling redirectToAuthorization');
  const issuer = provider.discovery?.authorizationServerMetadata?.issuer;
  steps.start.issuer = issuer ?? null;
  // What the SDK asks for when neither the challenge nor the caller names a scope (SEP-835).
  steps.start.scopes_supported = provider.discovery?.resourceMetadata?.scopes_supported ?? null;
  steps.start.resource = authorizationUrl.searchParams.get('resource');
  steps.start.code_challenge_method = authorizationUrl.searchParams.get('code_challenge_method');

  // 3. The user logs in and allows.
  steps.consent = {};
  const redirect = await playUser(authorizationUrl, steps.consent);
  Object.assign(steps.consent, { state_matches: redirect.state === provider.states.at(-1), iss: redirect.iss });
  check(redirect.code, 'the redirect carries no code');
  check(steps.consent.state_matches, `the redirect's state ${redirect.state} is not the SDK's ${provider.states.at(-1)}`);
  check(redirect.iss === issuer, `the redirect's iss ${redirect.iss} is not the metadata's issuer ${issuer}`);
  check(steps.consent.consent_client_name === CLIENT_NAME, `the consent page names ${steps.consent.consent_client_name}`);

  // 4. The code for tokens.
  const before = report.sdk_requests.length;
  const second = await auth(provider, { ...options, authorizationCode: redirect.code });
  const tokens = provider.tokens();
  steps.exchange = {
    result: second,
    token_type: tokens?.token_type ?? null,
    scope: tokens?.scope ?? null,
    has_refresh_token: Boolean(tokens?.refresh_token),
    requests: report.sdk_requests.slice(before),
  };
  check(second === 'AUTHORIZED', `auth() with the code returned ${second}, not AUTHORIZED`);
  check(tokens?.access_token && tokens.refresh_token, 'the token response lacks an access or a refresh token');
  const invoices = await api('/v1/invoices', tokens.access_token);
  const customers = await api('/v1/customers', tokens.access_token);
  // The 403's challenge, as the SDK's transport reads it to step up the scope.
  const stepUp = extractWWWAuthenticateParams(customers);
  steps.api = {
    invoices: invoices.status,
    customers: customers.status,
    customers_www_authenticate: customers.headers.get('www-authenticate'),
    customers_error: stepUp.error ?? null,
    customers_scope: stepUp.scope ?? null,
  };
  check(invoices.status === 200, `GET /v1/invoices with the access token answered ${invoices.status}`);
  check(customers.status === 403, `GET /v1/customers with a billing.read token answered ${customers.status}, not 403`);

  // 5. Refresh, the SDK's way: auth() again with tokens that hold a refresh token.
  const old = tokens;
  const redirectsBefore = provider.authorizationUrls.length;
  const refreshStart = report.sdk_requests.length;
  const third = await auth(provider, options);
  const fresh = provider.tokens();
  steps.refresh = {
    result: third,
    redirected: provider.authorizationUrls.length > redirectsBefore,
    new_access_token: fresh?.access_token !== old.access_token,
    new_refresh_token: fresh?.refresh_token !== old.refresh_token,
    requests: report.sdk_requests.slice(refreshStart),
  };
  check(third === 'AUTHORIZED', `auth() with a refresh token returned ${third}, not AUTHORIZED`);
  check(!steps.refresh.redirected, 'auth() with a refresh token sent the user to authorize again');
  check(steps.refresh.requests.some((r) => r.startsWith('POST /oauth/token 200')), 'auth() refreshed without the token endpoint');
  check(steps.refresh.new_access_token, 'the refresh returned the same access token');
  steps.refresh.invoices = (await api('/v1/invoices', fresh.access_token)).status;
  check(steps.refresh.invoices === 200, `GET /v1/invoices with the refreshed token answered ${steps.refresh.invoices}`);
  // The old refresh token is spent: presented again, it is refused.
  const metadata = provider.discovery.authorizationServerMetadata;
  const resource = steps.start.resource ?? undefined;
  steps.refresh.replay = await oauthError(
    refreshAuthorization(issuer, {
      metadata,
      clientInformation: provider.client,
      refreshToken: old.refresh_token,
      resource,
      fetchFn: sdkFetch,
    }),
  );
  check(steps.refresh.replay === 'invalid_grant', `the spent refresh token, again, gave ${steps.refresh.replay}, not invalid_grant`);
  // Its reuse revokes the family (RFC 9700 §4.14.2): the new token is refused.
  steps.refresh.invoices_after_replay = (await api('/v1/invoices', fresh.access_token)).status;

  // 6. PKCE: a code exchanged with another verifier is refused.
  const pkce = {};
  steps.pkce = pkce;
  const started = await startAuthorization(issuer, {
    metadata,
    clientInformation: provider.client,
    redirectUrl: REDIRECT_URI,
    scope,
    state: 'pkce-check',
    resource,
  });
  const again = await playUser(started.authorizationUrl, pkce);
  check(again.code && again.state === 'pkce-check', 'the second authorization returned no code');
  let code = again.code;
  const exchange = (codeVerifier) =>
    exchangeAuthorization(issuer, {
      metadata,
      clientInformation: provider.client,
      authorizationCode: code,
      codeVerifier,
      redirectUri: REDIRECT_URI,
      resource,
      fetchFn: sdkFetch,
    });
  pkce.wrong_verifier = await oauthError(exchange(randomBytes(32).toString('base64url')));
  check(pkce.wrong_verifier === 'invalid_grant', `a wrong PKCE verifier gave ${pkce.wrong_verifier}, not invalid_grant`);
  // The same way with the right verifier works: the refusal was the verifier's.
  const control = await startAuthorization(issuer, {
    metadata,
    clientInformation: provider.client,
    redirectUrl: REDIRECT_URI,
    scope,
    state: 'pkce-control',
    resource,
  });
  pkce.control = {};
  const controlled = await playUser(control.authorizationUrl, pkce.control);
  check(controlled.code && controlled.state === 'pkce-control', 'the third authorization returned no code');
  code = controlled.code;
  const right = await exchange(control.codeVerifier).then(
    (t) => Boolean(t.access_token),
    (e) => `${e.name}: ${e.message}`,
  );
  pkce.right_verifier = right;
  check(right === true, `the right PKCE verifier was refused: ${right}`);

  report.invalidated = provider.invalidated;
  report.ok = true;
}

try {
  await main();
  console.log(JSON.stringify(report));
} catch (error) {
  report.error = error instanceof Failure ? error.message : `${error?.name}: ${error?.message}\n${error?.stack}`;
  console.log(JSON.stringify(report));
  console.error(`connect.mjs failed: ${report.error}`);
  process.exit(1);
}

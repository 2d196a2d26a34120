// "Sign in" with the OpenID Connect provider: the authorization code flow with PKCE (RFC 7636)
// as a public client (--oidc-ui-client-id), redirecting back to /ui/. The verifier and state
// live in sessionStorage only for the round trip; the ID token the provider returns is the
// bearer token, as for the CLI.

const PENDING_KEY = "discovery.oidc.pending";

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function discover(oidc) {
  const issuer = oidc.issuer.replace(/\/+$/, "");
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`the provider's discovery document answered ${response.status}`);
  return response.json();
}

function redirectUri() {
  return `${location.origin}${location.pathname}`;
}

export async function beginOidcSignIn(oidc) {
  const provider = await discover(oidc);
  const verifier = randomString();
  const state = randomString();
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, redirect: redirectUri() }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scope || "openid",
    state,
    nonce: randomString(),
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`${provider.authorization_endpoint}?${params}`);
}

// On the way back from the provider (?code=...&state=...): exchanges the code and returns the
// token, or null when this load is no such return.
export async function finishOidcSignIn(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  sessionStorage.removeItem(PENDING_KEY);
  history.replaceState(null, "", `${location.pathname}${location.hash}`);
  if (params.has("error")) {
    throw new Error(`the provider refused: ${params.get("error_description") || params.get("error")}`);
  }
  if (!oidc || !pending || params.get("state") !== pending.state) {
    throw new Error("the sign-in answer does not belong to this tab; sign in again");
  }
  const provider = await discover(oidc);
  const response = await fetch(provider.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: pending.redirect,
      client_id: oidc.clientId,
      code_verifier: pending.verifier,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`the provider did not issue a token: ${body.error_description || body.error || response.status}`);
  }
  const token = body.id_token || body.access_token;
  if (!token) throw new Error("the provider's answer holds no token");
  return token;
}

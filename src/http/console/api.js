// The gateway's /rest API, as any client calls it: same-origin fetch, no cookie
// (credentials: 'omit'), an explicit Authorization header. The credentials live in this
// module's variable only: nothing in a cookie, localStorage, sessionStorage or a URL. Signing
// out, a reload or 15 minutes without use forget them.

export const IDLE_MS = 15 * 60 * 1000;

const state = { authorization: null, apiKey: '', account: null, timer: null, onForget: null };

function base64(text) {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Keeps the credentials: an account and password (Basic), or a token (Bearer). */
export function signIn({ account, password, token, apiKey }) {
  if (token) {
    state.authorization = `Bearer ${token}`;
    state.account = null;
  } else {
    state.authorization = `Basic ${base64(`${account}:${password}`)}`;
    state.account = account;
  }
  state.apiKey = apiKey || '';
  touch();
}

/** The signed-in account, or null when signed in with a token. */
export function account() {
  return state.account;
}

export function signedIn() {
  return state.authorization !== null;
}

/** Forgets everything; `why` goes to the listener set with onForget. */
export function forget(why) {
  // The listener runs while the credentials are still here (to cancel an open command).
  if (why && state.onForget) state.onForget(why);
  state.authorization = null;
  state.apiKey = '';
  state.account = null;
  clearTimeout(state.timer);
  state.timer = null;
}

export function onForget(listener) {
  state.onForget = listener;
}

/** Restarts the idle clock (any use of the page counts). */
export function touch() {
  if (!signedIn()) return;
  clearTimeout(state.timer);
  state.timer = setTimeout(() => forget('idle'), IDLE_MS);
}

function path(jid, keep) {
  const encoded = encodeURIComponent(jid).replace(/%40/g, '@');
  return `/rest/adhoc/${encoded}${keep ? '?keep=1' : ''}`;
}

/**
 * One request. Answers {ok: true, data} or {ok: false, status, error: {condition, text,
 * field}, retryAfter}. `keepalive` lets a cancel outlive the page.
 */
async function call(method, url, body, keepalive = false) {
  if (!signedIn()) return { ok: false, status: 0, error: { condition: 'signed-out', text: 'You are signed out.' } };
  touch();
  const headers = { Accept: 'application/json', Authorization: state.authorization };
  if (state.apiKey) headers['X-API-Key'] = state.apiKey;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
      keepalive,
    });
  } catch {
    return { ok: false, status: 0, error: { condition: 'network', text: 'The gateway could not be reached.' } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) return { ok: true, status: response.status, data };
  const error = (data && data.error) || { condition: 'http', text: response.statusText || `HTTP ${response.status}` };
  return { ok: false, status: response.status, error, retryAfter: response.headers.get('Retry-After') };
}

/** The commands `jid` offers: [{jid, node, name}]. */
export async function list(jid) {
  const answer = await call('GET', path(jid, false));
  if (answer.ok) answer.items = (answer.data && answer.data.items) || [];
  return answer;
}

/** Starts a command, kept open across its stages. */
export async function start(jid, node) {
  return command(await call('POST', path(jid, true), { command: { node } }));
}

/** The next step of a kept command: `action` (or the stage's default) with `fields`. */
export async function step(jid, sessionid, action, fields) {
  const body = { sessionid };
  if (action) body.action = action;
  if (fields) body.fields = fields;
  return command(await call('POST', path(jid, false), { command: body }));
}

/** Runs a command at once with `fields` (a form the server did not keep open). */
export async function run(jid, node, fields) {
  return command(await call('POST', path(jid, false), { command: { node, fields } }));
}

/** Cancels a kept command; the answer does not matter, and it may outlive the page. */
export function cancel(jid, sessionid) {
  return call('POST', path(jid, false), { command: { sessionid, action: 'cancel' } }, true);
}

function command(answer) {
  if (answer.ok) answer.command = (answer.data && answer.data.command) || { fields: [] };
  return answer;
}

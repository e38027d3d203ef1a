// Every request the page makes to its node goes through this module: reads, writes, signing
// in, and the live state over server-sent events. What to do when the node refuses a request
// (401, 403) is decided here and only here. The page never holds a token: it signs in on the
// node's /signin, which sets an HttpOnly session cookie, and its requests carry that cookie.

// How long the page waits for any event before it takes the stream for dead: every node
// writes its heartbeat every 30 s, which changes the state and so sends an event.
const SILENCE_LIMIT_MS = 45_000;
// Reconnecting after a failure: first after this, doubling up to RETRY_MAX_MS.
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5_000;

/// An answer other than 2xx, with the node's sentence about it.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/// The user declined to give a token.
export class Cancelled extends Error {}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const text = await response.text();
    try {
      message = JSON.parse(text).error ?? message;
    } catch {
      if (text) message = text;
    }
  } catch {
    // The body could not be read; the status says enough.
  }
  return new ApiError(response.status, message);
}

/// Sends the browser to the sign-in page, to come back here after.
function toSignIn() {
  const here = location.pathname + location.search;
  location.assign(`/signin?next=${encodeURIComponent(here)}`);
}

/// GET `path` as JSON. A 401 (not signed in, from another machine, or a session that ended)
/// goes to the sign-in page.
export async function getJSON(path, {signal} = {}) {
  const response = await fetch(path, {signal, cache: 'no-store', headers: {Accept: 'application/json'}});
  if (response.status === 401) {
    toSignIn();
    throw await failure(response);
  }
  if (!response.ok) throw await failure(response);
  return response.json();
}

/// Asks the person for the write token with the page's dialog; null when cancelled.
function askForToken(reason) {
  const dialog = document.getElementById('token-dialog');
  const form = dialog.querySelector('form');
  document.getElementById('token-reason').textContent = reason;
  form.reset();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const token = form.elements.token.value.trim();
      resolve(dialog.returnValue === 'ok' && token ? token : null);
    }, {once: true});
    dialog.returnValue = '';
    dialog.showModal();
  });
}

/// Signs in with `token` on the node's sign-in page, as its form would; the role the new
/// session has, or an ApiError saying why not (a wrong token, too many tries).
async function signIn(token) {
  const form = new URLSearchParams({token, next: '/api/session'});
  const response = await fetch('/signin', {
    method: 'POST',
    cache: 'no-store',
    headers: {Accept: 'application/json'},
    body: form,
  });
  if (response.status === 401) throw new ApiError(401, 'The node refused that token. Check it and try again.');
  if (response.status === 429) {
    const wait = response.headers.get('Retry-After') ?? '60';
    throw new ApiError(429, `Too many wrong tokens: try again in ${wait} s.`);
  }
  if (!response.ok) throw await failure(response);
  return (await response.json()).role;
}

/// The role this page has on its node now: `viewer` or `writer` (`GET /api/session`).
async function currentRole() {
  return (await getJSON('/api/session')).role;
}

/// Asks the person for the write token and signs in with it until the session is a writer's;
/// throws `Cancelled` if the person gives none.
export async function becomeWriter(reason) {
  for (;;) {
    const token = await askForToken(reason);
    if (!token) throw new Cancelled('no write token given');
    try {
      if (await signIn(token) === 'writer') return;
      reason = 'That token only lets you look. Changing the office needs the write token.';
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      reason = error.message;
    }
  }
}

/// A write (`method` on `path` with the JSON `body`); the parsed JSON answer, or null for an
/// empty one. Unless the page is signed in as a writer, it first asks the person for the write
/// token and signs in with it (so the node never has to refuse the write); throws `Cancelled`
/// if none is given. A session that ended meanwhile (401, or 403 for a viewer) asks again.
export async function write(method, path, body) {
  if (await currentRole() !== 'writer') {
    await becomeWriter('Changing the office needs this node’s write token.');
  }
  for (;;) {
    const response = await fetch(path, {
      method,
      cache: 'no-store',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(body),
    });
    if (response.status !== 401 && response.status !== 403) {
      if (!response.ok) throw await failure(response);
      const text = await response.text();
      return text ? JSON.parse(text) : null;
    }
    const refusal = await failure(response);
    if (response.status === 403 && !refusal.message.includes('write token')) throw refusal;
    await becomeWriter('The node asks for the write token again.');
  }
}

/// Asks the bot (`POST /api/ask`). Anyone who may look may ask; only what would change the
/// office needs the write token, and the bot says so in its answer.
export async function ask(body) {
  const response = await fetch('/api/ask', {
    method: 'POST',
    cache: 'no-store',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/// Follows the office state live: `onState(state)` for each `state` event, and
/// `onLink({live, since})` whenever the stream comes up or goes down (`since`: when the last
/// event arrived). Reconnects by itself, with backoff, after the node restarts or the network
/// drops, and also when the stream falls silent for longer than a heartbeat allows.
export function followState(onState, onLink) {
  let source = null;
  let retryMs = RETRY_FIRST_MS;
  let lastEventAt = 0;
  let live = false;
  let watchdog = null;
  let retryTimer = null;

  const setLive = (value) => {
    if (value === live) return;
    live = value;
    onLink({live, since: lastEventAt});
  };

  const scheduleReconnect = () => {
    if (source) source.close();
    source = null;
    setLive(false);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  };

  const connect = () => {
    source = new EventSource('/api/events');
    source.addEventListener('state', (event) => {
      lastEventAt = Date.now();
      retryMs = RETRY_FIRST_MS;
      let state;
      try {
        state = JSON.parse(event.data);
      } catch (error) {
        console.warn('officemesh: a state event that is not JSON', error);
        return;
      }
      setLive(true);
      onState(state);
    });
    // The browser would retry by itself after most failures, but not after every one (an
    // answer that is not an event stream closes the source for good), and not with our
    // backoff: take over in every case.
    source.onerror = scheduleReconnect;
  };

  watchdog = setInterval(() => {
    if (live && Date.now() - lastEventAt > SILENCE_LIMIT_MS) scheduleReconnect();
  }, 1000);
  onLink({live: false, since: 0});
  connect();
  return () => {
    clearInterval(watchdog);
    clearTimeout(retryTimer);
    if (source) source.close();
  };
}

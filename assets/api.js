// Every request the page makes to its node goes through this module: reads, writes with the
// node's write token, and the live state over server-sent events. What to do when the node
// refuses a request (401) is decided here and only here.

const TOKEN_KEY = 'officemesh.write-token';

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

/// GET `path` as JSON.
export async function getJSON(path, {signal} = {}) {
  const response = await fetch(path, {signal, cache: 'no-store', headers: {Accept: 'application/json'}});
  if (!response.ok) throw await failure(response);
  return response.json();
}

function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (a private window): the token lasts as long as the page.
  }
  sessionToken = token;
}

let sessionToken = null;

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

/// A write (`method` on `path` with the JSON `body`) with the write token; the parsed JSON
/// answer, or null for an empty one. Without a token, or with one the node refuses, it asks
/// for the token and tries again; throws `Cancelled` if the person gives none.
export async function write(method, path, body) {
  let token = sessionToken ?? storedToken();
  let reason = 'Changing the office needs this node’s write token.';
  for (;;) {
    if (!token) {
      token = await askForToken(reason);
      if (!token) throw new Cancelled('no write token given');
    }
    const response = await fetch(path, {
      method,
      cache: 'no-store',
      headers: {'Content-Type': 'application/json', Authorization: `Bearer ${token}`},
      body: JSON.stringify(body),
    });
    if (response.status === 401) {
      storeToken(null);
      token = null;
      reason = 'The node refused that token. Check it and try again.';
      continue;
    }
    if (!response.ok) throw await failure(response);
    storeToken(token);
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
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

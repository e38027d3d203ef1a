// The dashboard: renders the office state the node streams (`/api/events`) into room cards,
// who's in, alerts and nodes; charts from `/api/history`; the chat box and target forms write
// through the API. Everything that talks to the node is in api.js.

import {ApiError, Cancelled, ask, becomeWriter, followState, getJSON, write} from './api.js';
import {Chart, RANGES} from './charts.js';

const wall = new URLSearchParams(location.search).has('wall');
document.documentElement.classList.toggle('wall', wall);

/// The canonical unit of every quantity (`docs/api.md`), for the target form.
const UNITS = {temperature: '°C', humidity: '%', sound: 'dB', co2: 'ppm', light: 'lx', pressure: 'hPa'};
/// A reading older than this is stale (the node's own rule, `STALE_READING_MS`).
const STALE_S = 600;
/// A node's heartbeat comes every 30 s: within 40 s it is up, missed once it is late, and
/// past 90 s (`NODE_UP_MS`, when the bot stops counting it) it is gone.
const UP_S = 40;
const LATE_S = 90;
const CLEARED_SHOWN = 20;
const PEERS_EVERY_MS = 5_000;
/// The charts are fetched again this often, so that what was folded in live is replaced
/// by the node's own buckets.
const HISTORY_REFRESH_MS = 5 * 60_000;
const NAME_KEY = 'officemesh.name';

let state = null;
let receivedAt = 0;
let live = false;
let lastEventAt = 0;
let rangeName = '24h';
let peers = [];
let firstRender = null;
const rooms = new Map();
let roomCounter = 0;

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  element.append(...children.flat().filter((child) => child != null && child !== false));
  return element;
}

/// Replaces `container`'s children only when `signature` changed, so that a focused button
/// is not swapped under the person's keyboard on every event.
function renderInto(container, signature, build) {
  if (container.dataset.signature === signature) return;
  container.dataset.signature = signature;
  container.replaceChildren(...build());
}

function formatValue(value, unit) {
  const digits = Math.abs(value) >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${unit}`;
}

function ago(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/// An age that keeps counting between events: `ageS` as the node said it when the state
/// arrived. `kind` says what else it updates (a reading turns stale, a node late).
function age(ageS, kind = 'plain') {
  const element = h('span', {class: 'age', 'data-seen': String(receivedAt - ageS * 1000), 'data-kind': kind});
  updateAge(element, Date.now());
  return element;
}

function nodeStatus(seconds) {
  if (seconds <= UP_S) return 'up';
  if (seconds <= LATE_S) return 'late';
  return 'gone';
}

function updateAge(element, now) {
  const seconds = (now - Number(element.dataset.seen)) / 1000;
  const kind = element.dataset.kind;
  if (kind === 'node') {
    const status = nodeStatus(seconds);
    element.textContent = `${status}, ${ago(seconds)}`;
    element.closest('tr')?.setAttribute('data-status', status);
  } else if (kind === 'reading') {
    element.textContent = ago(seconds);
    const stale = seconds > STALE_S;
    const row = element.closest('tr');
    if (row) {
      row.classList.toggle('stale', stale);
      row.querySelector('.stale-mark').textContent = stale ? ' (stale)' : '';
    }
  } else {
    element.textContent = ago(seconds);
  }
}

function nodeName(id) {
  const node = state?.nodes.find((one) => one.id === id);
  return node ? node.name : `${id.slice(0, 8)}…${id.slice(-4)}`;
}

function speaker() {
  const input = document.querySelector('#ask-form [name=speaker]');
  return input.value.trim() || 'someone';
}

// Room cards.

function roomEntry(name) {
  let entry = rooms.get(name);
  if (entry) return entry;
  const id = `room-${++roomCounter}`;
  entry = {
    name,
    alerts: h('ul', {class: 'alerts'}),
    readings: h('div', {class: 'readings'}),
    targets: h('div', {class: 'targets'}),
    charts: h('div', {class: 'charts'}),
    chartsByQuantity: new Map(),
    historyKey: '',
    historyLoad: 0,
    loaded: null,
  };
  entry.form = targetForm(entry);
  entry.card = h('article', {class: 'room', 'data-room': name, 'aria-labelledby': id},
    h('h3', {id}, name), entry.alerts, entry.readings, entry.targets, entry.form, entry.charts);
  rooms.set(name, entry);
  return entry;
}

function targetForm(entry) {
  const select = h('select', {name: 'quantity'},
    Object.keys(UNITS).map((quantity) => h('option', {value: quantity}, quantity)));
  const unit = h('span', {class: 'unit'}, UNITS.temperature);
  const input = h('input', {type: 'number', name: 'value', step: 'any', required: true, inputmode: 'decimal', size: 6});
  const output = h('output', {class: 'muted', 'aria-live': 'polite'});
  select.addEventListener('change', () => {
    unit.textContent = UNITS[select.value];
  });
  const form = h('form', {class: 'set-target controls'},
    h('label', {}, 'Set the ', select), ' ',
    h('label', {}, 'target to ', input), unit, ' ',
    h('button', {type: 'submit'}, 'Set'), ' ', output);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = Number(input.value);
    output.textContent = 'Setting…';
    try {
      await setTarget(entry.name, select.value, value);
      output.textContent = `Set to ${formatValue(value, UNITS[select.value])}.`;
      input.value = '';
    } catch (error) {
      output.textContent = error instanceof Cancelled ? 'Not set: no write token.' : `Not set: ${error.message}`;
    }
  });
  return form;
}

function setTarget(room, quantity, value) {
  const path = `/api/targets/${encodeURIComponent(room)}/${encodeURIComponent(quantity)}`;
  return write('PUT', path, {value, set_by: speaker()});
}

function renderReadings(entry, room) {
  const signature = JSON.stringify(room.readings.map((r) => [r.node, r.sensor, r.quantity, r.value, r.measured_at_ms]));
  renderInto(entry.readings, signature, () => {
    if (!room.readings.length) return [h('p', {class: 'muted'}, 'No readings.')];
    const sensorsNamed = new Map();
    for (const reading of room.readings) {
      sensorsNamed.set(reading.sensor, (sensorsNamed.get(reading.sensor) ?? 0) + 1);
    }
    const rows = room.readings.map((reading) => {
      const sensor = sensorsNamed.get(reading.sensor) > 1 ? `${reading.sensor} (${nodeName(reading.node)})` : reading.sensor;
      return h('tr', {class: reading.stale ? 'stale' : null},
        h('th', {scope: 'row'}, reading.quantity),
        h('td', {class: 'value'}, formatValue(reading.value, reading.unit), h('span', {class: 'stale-mark'})),
        h('td', {class: 'sensor'}, sensor),
        h('td', {}, age(reading.age_s, 'reading')));
    });
    return [h('table', {},
      h('caption', {class: 'visually-hidden'}, `Readings in ${room.name}`),
      h('thead', {class: 'visually-hidden'}, h('tr', {},
        h('th', {scope: 'col'}, 'Quantity'), h('th', {scope: 'col'}, 'Value'),
        h('th', {scope: 'col'}, 'Sensor'), h('th', {scope: 'col'}, 'Measured'))),
      h('tbody', {}, rows))];
  });
}

function keepButton(room, quantity, value, unit) {
  return h('button', {type: 'button', class: 'controls keep', 'data-value': String(value),
    onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        await setTarget(room, quantity, value);
      } catch (error) {
        if (!(error instanceof Cancelled)) button.title = error.message;
      } finally {
        button.disabled = false;
      }
    }}, `Keep ${formatValue(value, unit)}`);
}

function renderTargets(entry, room) {
  const signature = JSON.stringify(room.targets);
  renderInto(entry.targets, signature, () => {
    if (!room.targets.length) return [];
    const items = room.targets.map((target) => {
      const conflict = target.concurrent.length > 0;
      const values = [{value: target.value, set_by: target.set_by, chosen: true}, ...target.concurrent];
      return h('li', {class: conflict ? 'conflict' : null},
        h('span', {class: 'quantity'}, `${target.quantity} target`), ' ',
        values.map((one) => h('span', {class: one.chosen ? 'target chosen' : 'target'},
          h('strong', {}, formatValue(one.value, target.unit)),
          h('span', {class: 'muted'}, ` by ${one.set_by}`),
          conflict && one.chosen ? h('span', {class: 'visually-hidden'}, ' (acted on)') : null,
          conflict ? keepButton(room.name, target.quantity, one.value, target.unit) : null)),
        conflict ? h('p', {class: 'note'}, 'Set at the same time on different nodes; the first one is acted on until someone keeps one.') : null);
    });
    return [h('ul', {class: 'target-list', 'aria-label': `Targets in ${room.name}`}, items)];
  });
}

function renderRoomAlerts(entry, alerts) {
  entry.card.classList.toggle('alerting', alerts.length > 0);
  renderInto(entry.alerts, JSON.stringify(alerts.map((a) => [a.node, a.id, a.message])), () =>
    alerts.map((alert) => h('li', {class: 'alert'}, alert.message)));
}

function renderRooms() {
  const list = document.getElementById('room-list');
  document.getElementById('no-rooms').hidden = state.rooms.length > 0;
  const names = new Set(state.rooms.map((room) => room.name));
  for (const [name, entry] of rooms) {
    if (!names.has(name)) {
      for (const chart of entry.chartsByQuantity.values()) chart.destroy();
      entry.card.remove();
      rooms.delete(name);
    }
  }
  const active = state.alerts.filter((alert) => alert.cleared_at_ms == null);
  let previous = null;
  for (const room of state.rooms) {
    const entry = roomEntry(room.name);
    renderReadings(entry, room);
    renderTargets(entry, room);
    renderRoomAlerts(entry, active.filter((alert) => alert.room === room.name));
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== entry.card) list.insertBefore(entry.card, expected);
    previous = entry.card;
    if (!wall) updateCharts(entry, room);
  }
  if (wall) fitWall();
}

// Charts.

function historyKey(room) {
  return JSON.stringify([...new Set(room.readings.map((r) => `${r.quantity}/${r.node}/${r.sensor}`))].sort());
}

/// Loads the room's history when its sensors changed, else folds the new readings in.
function updateCharts(entry, room) {
  const key = historyKey(room);
  if (key !== entry.historyKey) {
    entry.historyKey = key;
    entry.loaded = loadHistory(entry, room);
    return;
  }
  for (const reading of room.readings) {
    entry.chartsByQuantity.get(reading.quantity)?.addReading(reading.node, reading.sensor, reading.measured_at_ms, reading.value);
  }
}

async function loadHistory(entry, room) {
  const load = ++entry.historyLoad;
  const quantities = [...new Set(room.readings.map((reading) => reading.quantity))].sort();
  placeCharts(entry, room, quantities);
  const query = `/api/history?room=${encodeURIComponent(room.name)}&from=${RANGES[rangeName]}`;
  let answer;
  try {
    answer = await getJSON(query);
  } catch (error) {
    if (load !== entry.historyLoad) return;
    for (const chart of entry.chartsByQuantity.values()) chart.destroy();
    entry.chartsByQuantity.clear();
    entry.charts.replaceChildren(h('p', {class: 'muted'}, `No chart: ${error.message}`));
    return;
  }
  if (load !== entry.historyLoad) return;
  await inNextFrame(entry, (width) => {
    if (load === entry.historyLoad) drawHistory(entry, room, quantities, answer, width);
  });
}

// Charts are drawn in batches, in animation frames: every place is read first, then every
// chart made, so that the page is laid out once a frame rather than once a chart. The rooms
// on screen are drawn first; the others follow, a few rooms a frame, so the screen is
// complete early and the page stays responsive while the rest is drawn.
const OFF_SCREEN_ROOMS_PER_FRAME = 8;
let frameJobs = [];

function inNextFrame(entry, job) {
  return new Promise((resolve) => {
    if (!frameJobs.length) requestAnimationFrame(runFrameJobs);
    frameJobs.push({entry, job, resolve});
  });
}

function runFrameJobs() {
  const jobs = frameJobs.map((one) => ({...one, rect: one.entry.charts.getBoundingClientRect()}));
  const onScreen = jobs.filter(({rect}) => rect.top < innerHeight && rect.bottom >= 0);
  const now = onScreen.length ? onScreen : jobs.slice(0, OFF_SCREEN_ROOMS_PER_FRAME);
  frameJobs = jobs.filter((one) => !now.includes(one));
  if (frameJobs.length) requestAnimationFrame(runFrameJobs);
  for (const {job, resolve, rect} of now) {
    job(rect.width);
    resolve();
  }
}

function onScreen(entry) {
  const rect = entry.card.getBoundingClientRect();
  return rect.top < innerHeight && rect.bottom >= 0;
}

/// Makes room for the room's charts at once, each the size it will have, so the page does not
/// move when they are drawn and the rooms on screen are known before any is.
function placeCharts(entry, room, quantities) {
  entry.charts.querySelector(':scope > p')?.remove();
  for (const [quantity, chart] of entry.chartsByQuantity) {
    if (!quantities.includes(quantity)) {
      chart.destroy();
      chart.figure.remove();
      entry.chartsByQuantity.delete(quantity);
    }
  }
  for (const quantity of quantities) {
    let chart = entry.chartsByQuantity.get(quantity);
    if (!chart) {
      const figure = h('figure', {class: 'chart', 'data-quantity': quantity},
        h('figcaption', {}, `${quantity} (${UNITS[quantity] ?? ''}), last ${rangeName.replace(/(\d+)/, '$1 ')}`),
        h('div', {class: 'plot'}));
      entry.charts.append(figure);
      chart = new Chart(figure, {room: room.name, quantity, unit: UNITS[quantity] ?? '', rangeName, nodeNames: nodeName});
      entry.chartsByQuantity.set(quantity, chart);
    }
    chart.rangeName = rangeName;
    chart.figure.querySelector('figcaption').textContent =
      `${quantity} (${UNITS[quantity] ?? ''}), last ${rangeName.replace(/(\d+)/, '$1 ')}`;
  }
}

function drawHistory(entry, room, quantities, answer, width) {
  for (const quantity of quantities) {
    const chart = entry.chartsByQuantity.get(quantity);
    const series = answer.series.filter((one) => one.quantity === quantity);
    if (!chart) continue;
    chart.show(answer, series, width);
    // Which range the chart now draws, for whoever inspects the page (and the tests).
    chart.figure.dataset.range = chart.rangeName;
  }
  // The latest readings: those the history holds are marked, the others (newer than the
  // node's last hand-over to its history, or arrived meanwhile) are folded in.
  const now = state.rooms.find((one) => one.name === room.name) ?? room;
  for (const reading of now.readings) {
    const chart = entry.chartsByQuantity.get(reading.quantity);
    if (!chart) continue;
    if (chart.holds(reading.node, reading.sensor, reading.measured_at_ms)) {
      chart.markSeen(reading.node, reading.sensor, reading.measured_at_ms);
    } else {
      chart.addReading(reading.node, reading.sensor, reading.measured_at_ms, reading.value);
    }
  }
}

function reloadAllHistory() {
  if (!state || wall) return;
  for (const room of state.rooms) {
    const entry = rooms.get(room.name);
    if (entry) entry.loaded = loadHistory(entry, room);
  }
}

// The other sections.

function joinNaturally(items) {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/// Who is in, in the bot's words (`docs/bot.md`).
function whoIsIn() {
  const people = state.people.filter((person) => person.present).map((person) => person.name);
  const unknown = state.devices.filter((device) => device.present && device.people.length === 0).length;
  const devices = unknown === 1 ? '1 unknown device' : `${unknown} unknown devices`;
  if (!people.length) return unknown ? `Well, I don't see anyone I know, but I see ${devices}` : "Well, I don't see anyone here";
  return unknown ? `Well, I see ${joinNaturally(people)}, and ${devices}` : `Well, I see ${joinNaturally(people)}`;
}

function renderAlerts() {
  const active = state.alerts.filter((alert) => alert.cleared_at_ms == null);
  const cleared = state.alerts.filter((alert) => alert.cleared_at_ms != null).slice(0, CLEARED_SHOWN);
  const now = Date.now();
  const item = (alert, sinceMs, label) => h('li', {},
    h('strong', {}, alert.room), ': ', alert.message, ' ',
    h('span', {class: 'muted'}, label, ' ', h('span', {class: 'age', 'data-seen': String(sinceMs)}, ago((now - sinceMs) / 1000))));
  // Alert times are the raising node's clock; ages are taken against this node's, which the
  // state's own ages use too.
  const skewMs = receivedAt - serverNowMs();
  renderInto(document.getElementById('alerts-active'), JSON.stringify(active), () =>
    active.length ? active.map((alert) => item(alert, alert.raised_at_ms + skewMs, 'raised'))
      : [h('li', {class: 'muted'}, 'No active alert.')]);
  renderInto(document.getElementById('alerts-cleared'), JSON.stringify(cleared), () =>
    cleared.length ? cleared.map((alert) => item(alert, alert.cleared_at_ms + skewMs, 'cleared'))
      : [h('li', {class: 'muted'}, 'None.')]);
}

/// The node's clock when the state was made, from any age it gave.
function serverNowMs() {
  const node = state.nodes.find((one) => one.id === state.node) ?? state.nodes[0];
  return node ? node.heartbeat_ms + node.age_s * 1000 : receivedAt;
}

function renderNodes() {
  const rows = state.nodes.map((node) => {
    const self = node.id === state.node;
    return h('tr', {class: self ? 'self' : null, 'aria-current': self ? 'true' : null},
      h('th', {scope: 'row', title: node.id}, node.name, self ? h('span', {class: 'badge'}, ' this node') : null),
      h('td', {}, node.room),
      h('td', {}, node.version),
      h('td', {}, age(node.age_s, 'node')));
  });
  renderInto(document.getElementById('node-rows'),
    JSON.stringify([state.node, state.nodes.map((n) => [n.id, n.name, n.room, n.version, n.heartbeat_ms])]), () => rows);
  renderPeers();
}

function renderPeers() {
  const names = state ? state.nodes.map((node) => [node.id, node.name]) : [];
  renderInto(document.getElementById('peer-rows'), JSON.stringify([peers, names]), () =>
    peers.length ? peers.map((peer) => h('tr', {},
      h('th', {scope: 'row', title: peer.id}, nodeName(peer.id)),
      h('td', {class: 'address'}, peer.addresses.join(' ')),
      h('td', {}, peer.rtt_ms == null ? 'not measured yet' : `${peer.rtt_ms.toFixed(1)} ms`)))
      : [h('tr', {}, h('td', {colspan: '3', class: 'muted'}, 'No peer connected.'))]);
}

async function pollPeers() {
  try {
    peers = await getJSON('/api/peers');
    if (state) renderPeers();
  } catch {
    // The live banner already says when the node cannot be reached.
  }
}

function render() {
  const self = state.nodes.find((node) => node.id === state.node);
  if (self) {
    document.getElementById('node-name').textContent = `· ${self.name}, ${self.room}`;
    document.title = `officemesh · ${self.name}`;
  }
  renderRooms();
  document.getElementById('who').textContent = whoIsIn();
  renderAlerts();
  renderNodes();
}

// Live or not.

function renderLink() {
  const banner = document.getElementById('live');
  document.body.classList.toggle('not-live', !live);
  if (live) {
    banner.dataset.live = 'yes';
    banner.textContent = 'Live';
  } else if (!lastEventAt) {
    banner.dataset.live = 'connecting';
    banner.textContent = 'Connecting to the node…';
  } else {
    banner.dataset.live = 'no';
    banner.textContent = `Not live: reconnecting to the node. Last update ${ago((Date.now() - lastEventAt) / 1000)}.`;
  }
}

function tick() {
  const now = Date.now();
  for (const element of document.querySelectorAll('.age[data-seen]')) updateAge(element, now);
  if (!live) renderLink();
}

// Wall mode: every room on one screen.

function fitWall() {
  const count = Math.max(rooms.size, 1);
  const list = document.getElementById('room-list');
  const width = list.clientWidth || innerWidth;
  const height = innerHeight - list.getBoundingClientRect().top;
  let best = {columns: 1, size: 0};
  for (let columns = 1; columns <= count; columns++) {
    const rowsNeeded = Math.ceil(count / columns);
    // Cards read best a little wider than tall.
    const size = Math.min(width / columns / 1.3, height / rowsNeeded);
    if (size > best.size) best = {columns, size};
  }
  list.style.setProperty('--columns', best.columns);
  list.style.setProperty('--rows', Math.ceil(count / best.columns));
}

// Start.

function startChat() {
  const form = document.getElementById('ask-form');
  const log = document.getElementById('chat-log');
  const name = form.elements.speaker;
  try {
    name.value = localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    // No storage: the name is asked each visit.
  }
  name.addEventListener('change', () => {
    try {
      localStorage.setItem(NAME_KEY, name.value.trim());
    } catch {
      // Kept for this page only.
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = form.elements.text.value.trim();
    if (!text) return;
    log.append(h('li', {class: 'said'}, h('span', {class: 'who'}, speaker()), text));
    form.elements.text.value = '';
    let answer;
    try {
      let reply = await ask({text, speaker: speaker()});
      if (reply.needs_write_token) {
        // "i am ..." and "forget me" change the office: sign in as a writer, then say it again.
        await becomeWriter('The bot can do that with this node’s write token.');
        reply = await ask({text, speaker: speaker()});
      }
      answer = h('li', {class: 'reply'}, h('span', {class: 'who'}, 'office'), reply.reply);
    } catch (error) {
      const message = error instanceof Cancelled ? 'Not sent: no write token.'
        : error instanceof ApiError ? `The node said: ${error.message}` : `Not sent: ${error.message}`;
      answer = h('li', {class: 'error'}, message);
    }
    log.append(answer);
    answer.scrollIntoView({block: 'nearest'});
  });
}

function startRange() {
  const form = document.getElementById('range');
  form.addEventListener('change', () => {
    rangeName = form.elements.range.value;
    reloadAllHistory();
  });
}

async function whenFirstRendered() {
  // The first screen: the cards in view and their charts; then everything.
  const visible = [...rooms.values()].filter(onScreen);
  await Promise.all(visible.map((entry) => entry.loaded));
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  performance.mark('officemesh-first-screen');
  await Promise.all([...rooms.values()].map((entry) => entry.loaded));
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  performance.mark('officemesh-rendered');
  document.documentElement.dataset.rendered = 'true';
}

function start() {
  startChat();
  startRange();
  followState((next) => {
    state = next;
    receivedAt = Date.now();
    lastEventAt = receivedAt;
    render();
    if (!firstRender) {
      performance.mark('officemesh-first-state');
      firstRender = whenFirstRendered();
    }
  }, (link) => {
    const back = link.live && !live && lastEventAt > 0;
    live = link.live;
    renderLink();
    // Back after an outage: the node's history has the readings the page missed.
    if (back) reloadAllHistory();
  });
  if (!wall) {
    pollPeers();
    setInterval(pollPeers, PEERS_EVERY_MS);
    setInterval(reloadAllHistory, HISTORY_REFRESH_MS);
    // Resized in the next frame, not inside the observer, so that a chart's new size never
    // re-enters the observation it came from.
    // Only a change of width matters: the list grows taller with every chart drawn.
    let resizing = false;
    let listWidth = 0;
    new ResizeObserver((changes) => {
      const width = changes[changes.length - 1].contentRect.width;
      if (resizing || width === listWidth) return;
      listWidth = width;
      resizing = true;
      requestAnimationFrame(() => {
        resizing = false;
        const charts = [...rooms.values()].flatMap((entry) => [...entry.chartsByQuantity.values()]);
        const widths = charts.map((chart) => chart.figure.clientWidth);
        charts.forEach((chart, index) => chart.resize(widths[index]));
      });
    }).observe(document.getElementById('room-list'));
  } else {
    addEventListener('resize', fitWall);
  }
  setInterval(tick, 1000);
}

// uPlot is a classic script loaded with `defer`, which runs before module scripts.
start();

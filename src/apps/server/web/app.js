// tinyemo's web page: images in (drop, choose, paste), each image's emotion
// scores as bars, the top label, the request's latency, and — when the server
// has a reasoning model — the explanation streaming in. Talks to the same
// API as any client (/v1/models, /v1/classify, /v1/reason); no external files.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem('tinyemo-key') || '',
  modelLabels: [],
  canReason: false,
  files: [],  // every image shown, to classify again when the labels change
};

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.key) h.Authorization = 'Bearer ' + state.key;
  return h;
}

function setStatus(text) { $('status').textContent = text; }

function showPageError(text) {
  const p = $('page-error');
  p.textContent = text || '';
  p.hidden = !text;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (e) { /* not JSON */ }
  return 'HTTP ' + response.status;
}

function needKey() {
  $('key-form').hidden = false;
  setStatus('This server needs an API key.');
  $('api-key').focus();
}

async function loadModels() {
  let response;
  try {
    response = await fetch('/v1/models', { headers: headers() });
  } catch (e) {
    setStatus('Cannot reach the server; retrying…');
    setTimeout(loadModels, 2000);
    return;
  }
  if (response.status === 401) return needKey();
  if (response.status === 503) {
    setStatus('The models are loading…');
    setTimeout(loadModels, 1000);
    return;
  }
  if (!response.ok) return setStatus(await errorMessage(response));
  const models = await response.json();
  const projector = models.data.find((m) => m.kind === 'projector');
  const clip = models.data.find((m) => m.kind === 'clip');
  state.modelLabels = projector ? projector.labels : [];
  state.canReason = !!(models.capabilities && models.capabilities.reason);
  $('open-vocab').hidden = !(models.capabilities && models.capabilities.open_vocabulary);
  if (!$('labels').value) $('labels').value = state.modelLabels.join(', ');
  $('key-form').hidden = !state.key;
  setStatus('Ready: ' + (clip ? clip.id : 'CLIP') + ' → ' + (projector ? projector.id : 'projector') +
            (state.canReason ? ' + reasoning' : '') + '.');
}

function currentLabels() {
  const labels = $('labels').value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const same = labels.length === state.modelLabels.length && labels.every((l, i) => l === state.modelLabels[i]);
  return same ? null : labels;
}

// One card per image, filled in when its answer comes.
function makeCard(file) {
  const li = document.createElement('li');
  li.className = 'result pending';
  const figure = document.createElement('figure');
  if (file.type.startsWith('image/')) {
    const img = document.createElement('img');
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
    figure.appendChild(img);
  }
  const caption = document.createElement('figcaption');
  caption.textContent = file.name;
  figure.appendChild(caption);
  li.appendChild(figure);
  const body = document.createElement('div');
  body.className = 'body';
  body.innerHTML =
      '<p class="top"><span class="top-label">…</span> <span class="latency"></span></p>' +
      '<ul class="bars" aria-label="Scores"></ul>' +
      '<p class="error" role="alert" hidden></p>' +
      '<p class="explanation" aria-live="polite" hidden></p>';
  li.appendChild(body);
  $('results').prepend(li);
  return li;
}

function showError(card, text) {
  card.classList.remove('pending');
  card.classList.add('failed');
  card.querySelector('.top-label').textContent = 'No result';
  const p = card.querySelector('.error');
  p.textContent = text;
  p.hidden = false;
}

function showResult(card, result, latencyMs) {
  card.classList.remove('pending', 'failed');
  card.querySelector('.error').hidden = true;
  card.querySelector('.top-label').textContent = result.predicted;
  card.querySelector('.latency').textContent = Math.round(latencyMs) + ' ms';
  const bars = card.querySelector('.bars');
  bars.textContent = '';
  const entries = Object.entries(result.scores).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of entries) {
    const pct = Math.round(p * 1000) / 10;
    const row = document.createElement('li');
    row.className = 'bar-row' + (label === result.predicted ? ' best' : '');
    const name = document.createElement('span');
    name.className = 'bar-label';
    name.textContent = label;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('role', 'meter');
    bar.setAttribute('aria-label', label);
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-valuenow', String(pct));
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.width = pct + '%';
    bar.appendChild(fill);
    const value = document.createElement('span');
    value.className = 'bar-value';
    value.textContent = pct.toFixed(1) + '%';
    row.append(name, bar, value);
    bars.appendChild(row);
  }
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// The explanation, as server-sent events from /v1/reason.
async function reason(card, file, labels) {
  const out = card.querySelector('.explanation');
  out.hidden = false;
  out.textContent = '';
  const body = { image: await readAsDataUrl(file), stream: true };
  if (labels) body.labels = labels;
  const response = await fetch('/v1/reason', {
    method: 'POST', headers: headers({ 'Content-Type': 'application/json' }), body: JSON.stringify(body),
  });
  if (!response.ok) {
    out.textContent = await errorMessage(response);
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let end;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const data = JSON.parse(event.slice(6));
      if (data.error) out.textContent += ' [' + data.error.message + ']';
      if (data.delta) out.textContent += data.delta;
    }
  }
}

async function classify(entries) {
  if (entries.length === 0) return;
  const labels = currentLabels();
  const form = new FormData();
  for (const { file } of entries) form.append('images', file, file.name);
  if (labels) form.append('labels', JSON.stringify(labels));
  const started = performance.now();
  let response;
  try {
    response = await fetch('/v1/classify', { method: 'POST', headers: headers(), body: form });
  } catch (e) {
    for (const { card } of entries) showError(card, 'The server did not answer: ' + e.message);
    return;
  }
  const latency = performance.now() - started;
  if (response.status === 401) {
    for (const { card } of entries) showError(card, 'This server needs an API key.');
    return needKey();
  }
  if (!response.ok) {
    const message = await errorMessage(response);
    for (const { card } of entries) showError(card, message);
    return;
  }
  const answer = await response.json();
  answer.results.forEach((result, i) => {
    const { card, file } = entries[i];
    if (result.error) return showError(card, result.error);
    showResult(card, result, latency);
    if (state.canReason) reason(card, file, labels).catch((e) => showError(card, e.message));
  });
}

function addFiles(fileList) {
  const entries = Array.from(fileList).map((file) => ({ file, card: makeCard(file) }));
  state.files.push(...entries);
  showPageError('');
  classify(entries);
}

function setUp() {
  const drop = $('drop');
  const input = $('files');
  drop.addEventListener('click', () => input.click());
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      input.click();
    }
  });
  input.addEventListener('change', () => {
    addFiles(input.files);
    input.value = '';
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    addFiles(e.dataTransfer.files);
  });
  document.addEventListener('paste', (e) => {
    const files = Array.from(e.clipboardData ? e.clipboardData.files : []);
    if (files.length > 0) addFiles(files);
  });
  $('labels-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const again = state.files;
    for (const entry of again) {
      entry.card.classList.add('pending');
      entry.card.querySelector('.explanation').hidden = true;
    }
    classify(again);
  });
  $('reset-labels').addEventListener('click', () => {
    $('labels').value = state.modelLabels.join(', ');
  });
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.key = $('api-key').value.trim();
    sessionStorage.setItem('tinyemo-key', state.key);
    loadModels();
  });
  loadModels();
}

setUp();

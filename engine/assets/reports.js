// The reports page: GET /v1/agent/report* for a signed-in supervisor (the inbox's session
// cookie), else /v1/report* with the operator token typed in (kept in sessionStorage only).
// Everything the server sends is put in the page as text (textContent), never as markup;
// the chart comes back as an SVG the server drew and is shown as an image (data: URL).
'use strict';

const state = { token: sessionStorage.getItem('smsflow-token'), base: '/v1/report' };

function $(id) { return document.getElementById(id); }

async function call(path) {
  const headers = { Accept: 'application/json' };
  if (state.base === '/v1/report') headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { credentials: 'same-origin', headers });
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

function query() {
  const params = new URLSearchParams();
  for (const name of ['flow', 'campaign', 'since', 'until']) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  if ($('sequential').checked) params.set('sequential', 'true');
  return params.toString();
}

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
}

function fill(table, rows) {
  const body = $(table).tBodies[0];
  body.replaceChildren();
  for (const values of rows) {
    const row = document.createElement('tr');
    values.forEach(([text, className]) => cell(row, text, className));
    body.appendChild(row);
  }
}

const percent = (rate) => (rate === null || rate === undefined ? '–' : `${(rate * 100).toFixed(1)}%`);
const seconds = (s) => (s === null || s === undefined ? '–' : s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`);

function render(report) {
  const funnel = Object.entries(report.funnel).filter(([, v]) => typeof v === 'number');
  const revenue = Object.entries(report.funnel.revenue || {}).map(([c, v]) => [`revenue (${c})`, v.toFixed(2)]);
  fill('funnel', [...funnel.map(([k, v]) => [k, v.toLocaleString('en-US')]), ...revenue].map(([k, v]) => [[k], [String(v), 'n']]));
  // Revenue per text or conversation is money, the rest are shares.
  const shown = (name, value) => (name.startsWith('revenue') ? (value === null ? '–' : value.toFixed(2)) : percent(value));
  fill('rates', Object.entries(report.rates).map(([name, rate]) => [[name.replaceAll('_', ' ')], [shown(name, rate), 'n'], [report.definitions[name] || '', 'def']]));
  $('windows').textContent = `Attribution: last click within ${report.windows.click}, else last delivery within ${report.windows.delivery}.`;
  fill('variants', report.variants.map((v) => [[v.name], [String(v.assigned), 'n'], [String(v.delivered), 'n'], [String(v.replied), 'n'], [String(v.clicked), 'n'], [String(v.converted), 'n'], [v.revenue.toFixed(2), 'n']]));
  const verdict = $('verdict');
  if (report.variants.filter((v) => v.name !== 'holdout').length >= 2) {
    verdict.textContent = `Verdict: ${report.verdict.status.replaceAll('_', ' ')}: ${report.verdict.reason}`;
    verdict.className = `verdict ${report.verdict.status}`;
  } else {
    verdict.textContent = 'No A/B verdict: fewer than two variants in this range.';
    verdict.className = 'verdict';
  }
  fill('timing', Object.entries(report.timing).map(([name, t]) => [[name.replaceAll('_', ' ')], [seconds(t.median_s), 'n'], [seconds(t.p90_s), 'n'], [String(t.count), 'n']]));
}

async function show() {
  $('error').textContent = '';
  const q = query();
  try {
    const report = await (await call(`${state.base}?${q}`)).json();
    render(report);
    const svg = await (await call(`${state.base}.svg?${q}`)).text();
    $('chart').src = `data:image/svg+xml;base64,${btoa(unescape(encodeURIComponent(svg)))}`;
    const csv = await (await call(`${state.base}.csv?${q}`)).text();
    $('csv').href = `data:text/csv;charset=utf-8,${encodeURIComponent(csv)}`;
  } catch (error) {
    if (error.status === 401) return signin('The token or session is not valid.');
    $('error').textContent = error.message;
  }
}

function signin(message) {
  $('app').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
}

async function start() {
  try {
    const me = await (await fetch('/v1/agent/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } })).json();
    if (me && me.role === 'supervisor') {
      state.base = '/v1/agent/report';
      $('who').textContent = `signed in as ${me.name}`;
    }
  } catch (_) { /* not signed in */ }
  if (state.base === '/v1/report' && !state.token) return signin();
  if (state.base === '/v1/report') $('who').textContent = 'with the operator token';
  $('signin').hidden = true;
  $('app').hidden = false;
  await show();
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.token = $('token').value;
  sessionStorage.setItem('smsflow-token', state.token);
  start();
});
$('filters').addEventListener('submit', (event) => { event.preventDefault(); show(); });
start();

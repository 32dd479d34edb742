// The reports page in headless Chromium: a supervisor signed in at the inbox sees the funnel,
// the rates with their definitions, the variants and the verdict, and the chart; an agent who
// is not a supervisor is refused; the operator's token works without a session.
//
// Needs a running smsflow with measured traffic, and:
//   BASE_URL           e.g. http://127.0.0.1:8080
//   SUPERVISOR_SECRET  a supervisor's sign-in secret
//   AGENT_SECRET       a plain agent's
//   API_TOKEN          the operator token
//   SCREENSHOTS        a folder for reports.png
//   CHROMIUM           the browser (default /usr/bin/chromium)
// Prints a line per step and exits 0 only when every step passed.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const need = (name) => {
  const value = process.env[name];
  if (!value) { console.error(`reports.mjs: ${name} is not set`); process.exit(2); }
  return value;
};
const BASE = need('BASE_URL').replace(/\/+$/, '');
const SCREENSHOTS = need('SCREENSHOTS');
mkdirSync(SCREENSHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = 0;
async function step(name, run) {
  try { await run(); console.log(`ok ${name}`); } catch (error) { failed += 1; console.log(`FAILED ${name}: ${error.message}`); }
}
function assert(condition, message) { if (!condition) throw new Error(message); }

async function signedIn(secret) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1500 } });
  const page = await context.newPage();
  await page.goto(`${BASE}/inbox`);
  const status = await page.evaluate(async (s) => (await fetch('/v1/agent/session', {
    method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ secret: s }),
  })).status, secret);
  assert(status === 200 || status === 201, `sign-in answered ${status}`);
  await page.goto(`${BASE}/reports`);
  return page;
}

await step('a supervisor sees the funnel, the rates, the variants, the verdict and the chart', async () => {
  const page = await signedIn(need('SUPERVISOR_SECRET'));
  await page.fill('#since', '2026-03-01');
  await page.fill('#until', '2026-03-05');
  await page.click('#filters button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#funnel tbody tr') && document.getElementById('chart').naturalWidth > 0, null, { timeout: 15000 });
  const funnel = await page.textContent('#funnel');
  assert(funnel.includes('delivered') && funnel.includes('clicked'), `funnel: ${funnel}`);
  const rates = await page.textContent('#rates');
  assert(rates.includes('contacts reached'), `the definitions are shown: ${rates}`);
  const verdict = await page.textContent('#verdict');
  assert(verdict.startsWith('Verdict:'), `verdict: ${verdict}`);
  const variants = await page.$$eval('#variants tbody tr', (rows) => rows.map((r) => r.cells[0].textContent));
  assert(variants.includes('A') && variants.includes('B'), `variants: ${variants}`);
  const csv = await page.getAttribute('#csv', 'href');
  assert(csv.startsWith('data:text/csv') && decodeURIComponent(csv).includes('variant,A,'), 'the CSV download');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'reports.png'), fullPage: true });
  await page.context().close();
});

await step('an agent who is not a supervisor is refused', async () => {
  const page = await signedIn(need('AGENT_SECRET'));
  const status = await page.evaluate(async () => (await fetch('/v1/agent/report', { credentials: 'same-origin' })).status);
  assert(status === 403, `the server answered ${status}`);
  await page.waitForFunction(() => document.getElementById('signin') && !document.getElementById('signin').hidden, null, { timeout: 15000 });
  await page.context().close();
});

await step('the operator token works without a session', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${BASE}/reports`);
  await page.waitForSelector('#token-form', { state: 'visible' });
  await page.fill('#token', 'wrong');
  await page.click('#token-form button');
  await page.waitForFunction(() => document.getElementById('signin-error').textContent.includes('not valid'), null, { timeout: 15000 });
  await page.fill('#token', need('API_TOKEN'));
  await page.click('#token-form button');
  await page.waitForFunction(() => document.querySelector('#funnel tbody tr'), null, { timeout: 15000 });
  await context.close();
});

await browser.close();
console.log(`browser: ${3 - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

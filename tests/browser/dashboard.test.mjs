// Dashboard test in Debian's headless Chromium (playwright-core drives /usr/bin/chromium).
//
// Default: starts the fixture daemon (`--fixture PATH`, the real HttpServer over a hand-built
// compound whose spaces the test changes through the fixture's stdin).
// Against a real daemon fed by the simulator instead:
//   HGJ_DASHBOARD_URL=http://127.0.0.1:8080  base URL of the running gateway
//   HGJ_DASHBOARD_TOKEN=...                  operator token, when the gateway has tokens
//   HGJ_CHANGE_SPACE_CMD='mosquitto_pub -p 1883 -q 1 -t compound/parking/{id}/state
//       -m "{\"occupied\":{occupied},\"ts\":{ts}}"'  shell command that changes one space
// Checks: the free counts shown equal the API's; a space changing state shows within 2 s without
// a reload; acking an alert from the page changes its state in the API. Screenshots go to
// tests/browser/artifacts/.
import { spawn, execSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = join(here, 'artifacts');
mkdirSync(artifacts, { recursive: true });
const deadline = setTimeout(() => {
  console.error('FAIL: the browser test did not finish within 110 s');
  process.exit(1);
}, 110_000);

const args = process.argv.slice(2);
const fixturePath = args[args.indexOf('--fixture') + 1];
const external = process.env.HGJ_DASHBOARD_URL;
// The occupancy debounce of the gateway under test: a space is counted this long after its
// sensor changed (the page shows the sensor's value meanwhile).
const debounceMs = Number(process.env.HGJ_DEBOUNCE_MS || 0);
// Acks need the operator token even on loopback: the fixture gets one when none is given.
const token = process.env.HGJ_DASHBOARD_TOKEN || (external ? '' : 'operator-token-browser-main-0123');

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}${detail ? ': ' + detail : ''}`);
  }
}

// --- the daemon under test ---------------------------------------------------------------------

let fixture = null;
let fixtureLines = null;
async function startFixture(extraArgs) {
  if (!fixturePath || args.indexOf('--fixture') < 0) throw new Error('missing --fixture PATH');
  if (fixture) {
    fixture.stdin.end('quit\n');
    await new Promise((resolve) => fixture.once('exit', resolve));
  }
  fixture = spawn(fixturePath, extraArgs || [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: fixture.stdout });
  const queue = [];
  const waiters = [];
  rl.on('line', (l) => (waiters.length ? waiters.shift()(l) : queue.push(l)));
  fixtureLines = () => new Promise((resolve) => (queue.length ? resolve(queue.shift()) : waiters.push(resolve)));
  const first = await fixtureLines();
  const m = /^PORT (\d+)$/.exec(first);
  if (!m) throw new Error('fixture said: ' + first);
  return `http://127.0.0.1:${m[1]}`;
}

async function fixtureCommand(line) {
  fixture.stdin.write(line + '\n');
  return fixtureLines();
}

async function changeSpace(id, occupied) {
  if (!external) {
    const r = await fixtureCommand(`space ${id} ${occupied ? 'occupied' : 'free'}`);
    if (r !== 'ok') throw new Error('fixture: ' + r);
    return;
  }
  const tmpl = process.env.HGJ_CHANGE_SPACE_CMD;
  if (!tmpl) throw new Error('HGJ_CHANGE_SPACE_CMD is required with HGJ_DASHBOARD_URL');
  execSync(tmpl.replaceAll('{id}', id).replaceAll('{occupied}', String(occupied))
    .replaceAll('{ts}', String(Date.now())), { stdio: 'inherit', timeout: 10_000 });
}

async function getJson(base, path, bearer) {
  const t = bearer !== undefined ? bearer : token;
  const res = await fetch(base + path, { headers: t ? { Authorization: 'Bearer ' + t } : {} });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

// When the daemon counts a change only after its debounce (its own clock), the time from the
// change to the page is the debounce, the daemon's tick and the page's stream added up, and a
// bound on that sum flaked on a loaded CI box (7,086 ms against 7,000). So the page is held to
// what it owns: it shows what the API says within 2 s of the API saying it. These two resolve
// with the time their condition first held, or null after `ms`.
async function apiWhen(base, path, pred, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred(await getJson(base, path))) return Date.now();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}

async function pageWhen(page, fn, arg, ms) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
    return Date.now();
  } catch (e) {
    return null;
  }
}

// --- the test ----------------------------------------------------------------------------------

async function shownCounts(page) {
  return page.evaluate(() => {
    const out = { total: Number(document.getElementById('total-free').textContent), levels: {}, zones: {} };
    for (const l of document.querySelectorAll('.level')) {
      out.levels[l.dataset.level] = Number(l.querySelector('.level-counts [data-count="free"]').textContent);
    }
    for (const z of document.querySelectorAll('.zone')) {
      out.zones[z.dataset.zone] = Number(z.querySelector('.zone-counts [data-count="free"]').textContent);
    }
    return out;
  });
}

function apiCounts(p) {
  const out = { total: p.free, levels: {}, zones: {} };
  for (const l of p.levels) {
    out.levels[l.level] = l.free;
    for (const z of l.zones) out.zones[`${l.level}-${z.zone}`] = z.free;
  }
  return out;
}

async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'hgj-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    locale: 'zh-CN',
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// With tokens: the page asks for the viewer token, refuses an ack with it, accepts the
// operator's.
async function tokenScenario() {
  const viewer = 'viewer-token-browser-0123';
  const operator = 'operator-token-browser-0123';
  const base = await startFixture(['--viewer-token', viewer, '--operator-token', operator]);
  const { context, close } = await launch();
  try {
    const page = context.pages()[0] || (await context.newPage());
    await page.goto(base + '/');
    await page.waitForSelector('#token-dialog[open]', { timeout: 10_000 });
    check('with tokens the page asks for one', true);
    await page.fill('#token-input', viewer);
    await page.click('#token-dialog button[type=submit]');
    await page.waitForFunction(() => document.getElementById('conn').classList.contains('conn-live'),
      null, { timeout: 10_000 });
    const api0 = await getJson(base, '/api/v1/parking', viewer);
    await page.waitForFunction((n) => document.getElementById('total-free').textContent === String(n),
      api0.free, { timeout: 5000 }).catch(() => {});
    check('with the viewer token the counts equal the API', Number(await page.textContent('#total-free')) === api0.free);
    const active = await getJson(base, '/api/v1/alerts?state=active', viewer);
    const id = active[0].id;
    await page.click(`[data-alert-id="${id}"] button.ack`);
    await page.fill('#ack-by', '值班员');
    await page.click('#ack-submit');
    await page.waitForFunction(() => document.getElementById('ack-error').textContent !== '', null, { timeout: 5000 });
    check('an ack with the viewer token is refused on the page',
      (await getJson(base, '/api/v1/alerts?state=active', viewer)).some((a) => a.id === id));
    await page.fill('#ack-token', operator);
    await page.click('#ack-submit');
    await page.waitForFunction(() => !document.getElementById('ack-dialog').open, null, { timeout: 5000 }).catch(() => {});
    const acked = await getJson(base, '/api/v1/alerts?state=acked', viewer);
    check('the operator token acks the alert', acked.some((a) => a.id === id && a.acked_by === '值班员'));
    check('the operator token is kept for the session',
      (await page.evaluate(() => sessionStorage.getItem('hgj_operator_token'))) === operator);
    await page.screenshot({ path: join(artifacts, 'dashboard-tokens.png') });

    // The history page asks the same way (auth.js): a tab without a token gets the dialog, in the
    // language the pages were left in, and the page's requests are retried with the typed token.
    await page.evaluate(() => { sessionStorage.clear(); localStorage.setItem('hgj_lang', 'en'); });
    await page.goto(base + '/history.html');
    await page.waitForSelector('#token-dialog[open]', { timeout: 10_000 });
    check('the history page asks for a token, in English after the switch',
      (await page.textContent('#token-dialog h3')) === 'Access token required');
    const parking = page.waitForResponse((r) => r.url().endsWith('/api/v1/parking') && r.status() === 200,
      { timeout: 10_000 });
    await page.fill('#token-input', viewer);
    await page.click('#token-dialog button[type=submit]');
    check('the history page retries its requests with the typed token',
      await parking.then(() => true, () => false));
    check('the typed token is kept for the tab',
      (await page.evaluate(() => sessionStorage.getItem('hgj_token'))) === viewer);
    await page.evaluate(() => localStorage.removeItem('hgj_lang'));
  } finally {
    await close();
  }
}

async function main() {
  const base = external || (await startFixture(['--operator-token', token]));
  const { context, close } = await launch();
  try {
    const page = context.pages()[0] || (await context.newPage());
    const consoleErrors = [];
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    if (token) {
      await page.addInitScript((t) => {
        sessionStorage.setItem('hgj_token', t);
        sessionStorage.setItem('hgj_operator_token', t);
      }, token);
    }
    await page.goto(base + '/');
    await page.waitForFunction(() => document.querySelectorAll('.space').length > 0 &&
      document.getElementById('total-free').textContent !== '–', null, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('conn').classList.contains('conn-live'),
      null, { timeout: 10_000 });
    check('the page is in Chinese by default', (await page.textContent('h1')) === '小区看板');

    // 1. Free counts shown equal the API's (total, each level, each zone).
    const api0 = await getJson(base, '/api/v1/parking');
    const shown0 = await shownCounts(page);
    check('free counts shown equal /api/v1/parking', JSON.stringify(shown0) === JSON.stringify(apiCounts(api0)),
      `shown ${JSON.stringify(shown0)} api ${JSON.stringify(apiCounts(api0))}`);
    const spaces = await getJson(base, '/api/v1/parking/spaces');
    const cells = await page.$$eval('.space', (n) => n.map((e) => [e.dataset.space, e.dataset.state]));
    const apiStates = new Map(spaces.spaces.map((s) => [s.id, s.state]));
    check('every space is drawn with the API state', cells.length === spaces.spaces.length &&
      cells.every(([id, st]) => apiStates.get(id) === st), `${cells.length} cells, ${spaces.spaces.length} spaces`);
    // The header names the compound (site.name), the card and levels are titled from the config,
    // and the free count of each space category equals the API's.
    check('the header shows site.name, not the site id',
      (await page.textContent('#site-name')) === api0.site_name && api0.site_name !== api0.site,
      `header ${await page.textContent('#site-name')} api ${api0.site_name}`);
    check('the parking card title comes from the config', (await page.textContent('#parking-title')) === api0.title);
    const levelTitles = await page.$$eval('.level h3', (n) => n.map((e) => e.textContent));
    check('levels are titled with their configured names',
      api0.levels.every((l) => levelTitles.some((t) => t.includes(l.name))), JSON.stringify(levelTitles));
    const shownCats = await page.$$eval('.category', (n) => n.map((e) =>
      [e.dataset.category, Number(e.querySelector('[data-count="free"]').textContent)]));
    const apiCats = (api0.categories || []).map((c) => [c.category, c.free]);
    check('free counts per space category equal the API', apiCats.length > 0 &&
      JSON.stringify(shownCats) === JSON.stringify(apiCats), `shown ${JSON.stringify(shownCats)} api ${JSON.stringify(apiCats)}`);
    await page.waitForSelector('#health-types .tile', { timeout: 10_000 });
    const typeNames = await page.$$eval('#health-types .tile .id', (n) => n.map((e) => [e.parentNode.dataset.type, e.textContent]));
    check('every device type in the health panel is translated',
      typeNames.length > 0 && typeNames.every(([type, name]) => name !== type), JSON.stringify(typeNames));
    // The configuration versions (docs/remote-config.md): what runs, and a rollback button only
    // when a pushed version runs.
    const cfg = await getJson(base, '/api/v1/config/versions');
    await page.waitForFunction(() => document.getElementById('config-active').textContent !== '',
      null, { timeout: 10_000 });
    const rollbackShown = await page.$eval('#config-rollback', (b) => !b.classList.contains('hidden'));
    check('the configuration panel shows what runs, with a rollback button only for a pushed version',
      rollbackShown === (cfg.active !== 0) &&
      (await page.textContent('#config-active')).includes(cfg.active ? `#${cfg.active}` : '本机配置文件'),
      `active ${cfg.active}, button ${rollbackShown}, text ${await page.textContent('#config-active')}`);
    await page.screenshot({ path: join(artifacts, 'dashboard-desktop.png'), fullPage: true });

    // 2. A space changes state: the page shows the sensor's new value within 2 s, and the
    // counted state once the gateway's debounce has passed, without a reload.
    const target = spaces.spaces.find((s) => s.state === 'free' && !s.linked);
    await page.evaluate(() => { window.__noReload = 'still here'; });
    const t0 = Date.now();
    await changeSpace(target.id, true);
    let within = true;
    try {
      await page.waitForFunction((id) => {
        const c = document.querySelector(`.space[data-space="${id}"]`);
        return c && (c.dataset.sensor === 'occupied' || c.dataset.state === 'occupied');
      }, target.id, { timeout: 2000, polling: 50 });
    } catch (e) {
      within = false;
    }
    const took = Date.now() - t0;
    check(`space ${target.id}: the page shows its sensor's change within 2 s (${took} ms)`, within && took <= 2000);
    const [apiCounted, pageCounted] = await Promise.all([
      apiWhen(base, '/api/v1/parking/spaces',
        (j) => j.spaces.some((x) => x.id === target.id && x.state === 'occupied'), debounceMs + 15_000),
      pageWhen(page, (id) => {
        const c = document.querySelector(`.space[data-space="${id}"]`);
        return c && c.dataset.state === 'occupied';
      }, target.id, debounceMs + 15_000),
    ]);
    // Load only delays the count, so "not before the debounce" holds on any box (20 ms: the
    // daemon's clock and ours round differently).
    check(`space ${target.id} is counted occupied by the API no sooner than the debounce ` +
      `(${debounceMs} ms; ${apiCounted === null ? 'never' : apiCounted - t0 + ' ms'})`,
      apiCounted !== null && apiCounted - t0 >= debounceMs - 20);
    check(`space ${target.id} is counted occupied on the page within 2 s of the API ` +
      `(${pageCounted === null || apiCounted === null ? 'never' : pageCounted - apiCounted + ' ms'})`,
      apiCounted !== null && pageCounted !== null && pageCounted - apiCounted <= 2000);
    check('the page was not reloaded', (await page.evaluate(() => window.__noReload)) === 'still here');
    await page.waitForFunction((n) => Number(document.getElementById('total-free').textContent) === n,
      api0.free - 1, { timeout: 5000 }).catch(() => {});
    const api1 = await getJson(base, '/api/v1/parking');
    const shown1 = await shownCounts(page);
    check('free counts follow the change and equal the API again',
      JSON.stringify(shown1) === JSON.stringify(apiCounts(api1)) && api1.free === api0.free - 1,
      `shown ${shown1.total} api ${api1.free} before ${api0.free}`);
    await page.screenshot({ path: join(artifacts, 'dashboard-after-space-change.png'), fullPage: true });

    // 2b. A visitor space changes: the visitor chip follows, and equals the API. (The example
    // compound's visitor spaces report through ChirpStack, which HGJ_CHANGE_SPACE_CMD does not
    // play; the daemon-level check of this is tests/integration/sim/categories_e2e_test.cpp.)
    if (!external) {
      const visitorFree = async () => Number(await page.textContent('.category[data-category="visitor"] [data-count="free"]'));
      const before = await visitorFree();
      const vs = (await getJson(base, '/api/v1/parking/spaces?category=visitor')).spaces.find((x) => x.state === 'free');
      await changeSpace(vs.id, true);
      const visitorIn = (j) => j.categories.find((c) => c.category === 'visitor');
      const [apiAt, pageAt] = await Promise.all([
        apiWhen(base, '/api/v1/parking', (j) => visitorIn(j).free === before - 1, debounceMs + 15_000),
        pageWhen(page, (n) => Number(document.querySelector(
          '.category[data-category="visitor"] [data-count="free"]').textContent) === n,
        before - 1, debounceMs + 15_000),
      ]);
      const apiV = visitorIn(await getJson(base, '/api/v1/parking'));
      check(`a visitor space (${vs.id}) taken: the visitor free count drops on the page within 2 s ` +
        'of the API, and equals it',
        apiAt !== null && pageAt !== null && pageAt - apiAt <= 2000 && apiV.free === before - 1 &&
        (await visitorFree()) === apiV.free,
        `before ${before} api ${apiV.free}, page ${pageAt === null || apiAt === null ? 'never' : pageAt - apiAt + ' ms'} after the API`);
    }

    // 3. Ack an alert from the page; the API shows it acked.
    const active = await getJson(base, '/api/v1/alerts?state=active');
    check('there is an active alert to acknowledge', active.length > 0);
    if (active.length > 0) {
      const id = active[0].id;
      await page.click(`[data-alert-id="${id}"] button.ack`);
      await page.fill('#ack-by', '测试员');
      await page.fill('#ack-note', '浏览器测试');
      await page.screenshot({ path: join(artifacts, 'dashboard-ack-dialog.png') });
      await page.click('#ack-submit');
      await page.waitForFunction((aid) => !document.querySelector(`[data-alert-id="${aid}"][data-state="active"]`),
        id, { timeout: 5000 }).catch(() => {});
      const acked = await getJson(base, '/api/v1/alerts?state=acked');
      const row = acked.find((a) => a.id === id);
      check(`alert ${id} acknowledged from the page is acked in the API`, !!row && row.acked_by === '测试员',
        JSON.stringify(row));
      check('the acked alert left the active list on the page',
        (await page.$(`[data-alert-id="${id}"][data-state="active"]`)) === null);
    }

    // 4. English switch and a phone-sized screen.
    await page.click('#lang');
    check('the English switch translates the page', (await page.textContent('h1')) === 'Compound dashboard');
    await page.screenshot({ path: join(artifacts, 'dashboard-english.png'), fullPage: true });
    await page.click('#lang');
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check('no horizontal scrolling on a phone-sized screen', overflow <= 1, `overflow ${overflow}px`);
    await page.screenshot({ path: join(artifacts, 'dashboard-phone.png') });
    await page.locator('#alerts').screenshot({ path: join(artifacts, 'dashboard-phone-alerts.png') });
    check('no script errors in the page', consoleErrors.length === 0, consoleErrors.join(' | '));
  } finally {
    await close();
  }
  if (!external) {
    await tokenScenario();
  }
}

try {
  await main();
} catch (e) {
  failed++;
  console.log('not ok - ' + (e && e.stack ? e.stack : e));
}
if (fixture) {
  fixture.stdin.write('quit\n');
  fixture.stdin.end();
}
clearTimeout(deadline);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;

// The dashboard's history page (history.html) in Debian's headless Chromium, against the real
// daemon of run_daemon.sh, whose history was rebuilt from a seeded week of readings ending
// HGJ_HISTORY_DAY (seed_history.py, `hgj-gateway history rebuild`).
//   HGJ_DASHBOARD_URL=http://127.0.0.1:8080  base URL of the running gateway
//   HGJ_DASHBOARD_TOKEN=...                  a token, when the gateway has tokens
//   HGJ_HISTORY_DAY=2026-12-05               the seeded local day to chart
// Checks, reading what is plotted from the charts' data (window.hgjHistory), never from pixels:
// the charts for the chosen day are drawn, B2's plotted peak equals the API's figure for the
// day and every plotted hour equals the API's, the categories, energy and alert charts equal
// the API; the CSV downloads hold what is shown; the week view; a phone-sized screen.
// Screenshots go to tests/browser/artifacts/ (history-desktop.png and history-phone.png are
// the images of docs/api.md).
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = join(here, 'artifacts');
mkdirSync(artifacts, { recursive: true });
const deadline = setTimeout(() => {
  console.error('FAIL: the history browser test did not finish within 90 s');
  process.exit(1);
}, 90_000);

const base = process.env.HGJ_DASHBOARD_URL;
const token = process.env.HGJ_DASHBOARD_TOKEN || '';
const day = process.env.HGJ_HISTORY_DAY;

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

async function getJson(path) {
  const res = await fetch(base + path, { headers: token ? { Authorization: 'Bearer ' + token } : {} });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
function parseDay(d) {
  const [y, m, dd] = d.split('-').map(Number);
  return Date.UTC(y, m - 1, dd);
}
function addDays(d, n) { return new Date(parseDay(d) + n * DAY).toISOString().slice(0, 10); }
function mondayOf(d) { return addDays(d, -((new Date(parseDay(d)).getUTCDay() + 6) % 7)); }

// RFC 4180 as the page writes it: CRLF lines, fields quoted only when needed (none here are).
function parseCsv(text) {
  const lines = text.replace(/^\ufeff/, '').split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const header = lines.shift().split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v])));
}

// The plotted series `key` of chart `name`: [x (Unix ms), y] pairs, nulls kept.
async function plotted(page, name, key) {
  return page.evaluate(([n, k, off]) => {
    const c = window.hgjHistory.charts[n];
    const i = c.keys.indexOf(k);
    if (i < 0) return null;
    return c.plot.data[0].map((x, j) => [x * 1000 - off, c.plot.data[i + 1][j]]);
  }, [name, key, (await page.evaluate(() => window.hgjHistory.offsetMin)) * 60_000]);
}

async function download(page, id) {
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 10_000 }), page.click('#' + id)]);
  const path = join(artifacts, dl.suggestedFilename());
  await dl.saveAs(path);
  return { name: dl.suggestedFilename(), text: readFileSync(path, 'utf8') };
}

async function main() {
  if (!base || !day) throw new Error('HGJ_DASHBOARD_URL and HGJ_HISTORY_DAY are required (run_daemon.sh sets them)');
  const profile = mkdtempSync(join(tmpdir(), 'hgj-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    locale: 'zh-CN',
    acceptDownloads: true,
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const consoleErrors = [];
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    if (token) await page.addInitScript((t) => sessionStorage.setItem('hgj_token', t), token);

    // From the live dashboard's navigation to the history page, then a chosen day.
    await page.goto(base + '/');
    await page.click('#nav-history');
    await page.waitForFunction(() => document.body.dataset.loaded, null, { timeout: 15_000 });
    check('the live dashboard links to the history page', page.url().endsWith('/history.html'));
    await page.fill('#h-day', day);
    await page.dispatchEvent('#h-day', 'change');
    await page.waitForFunction((d) => document.body.dataset.loaded === `${d}/day/peak_occupied`, day,
      { timeout: 15_000 });
    const scopes = await getJson('/api/v1/history/scopes');
    const offset = scopes.utc_offset_minutes * 60_000;
    const from = parseDay(day) - offset;
    const to = from + DAY;

    // 1. The four charts are drawn for that day (uPlot canvases with data).
    const drawn = await page.evaluate(() => ['levels', 'categories', 'energy', 'alerts'].map((n) => {
      const c = window.hgjHistory.charts[n];
      return [n, !!c && !!document.querySelector(`#chart-${n} canvas`) && c.plot.data.length > 1];
    }));
    check('the history page draws the four charts for the chosen day', drawn.every(([, ok]) => ok),
      JSON.stringify(drawn));
    const levelKeys = await page.evaluate(() => window.hgjHistory.charts.levels.keys);
    check('occupancy is charted per configured level', ['level:B1', 'level:B2', 'level:G'].every((k) =>
      levelKeys.includes(k)), JSON.stringify(levelKeys));

    // 2. B2: the plotted peak equals the API's figure for the day, and every hour equals the API's.
    const b2 = await plotted(page, 'levels', 'level:B2');
    const apiDay = await getJson(`/api/v1/history/occupancy?scope=level:B2&step=1d&from=${from}&to=${to}`);
    const apiHours = await getJson(`/api/v1/history/occupancy?scope=level:B2&step=1h&from=${from}&to=${to}`);
    const plottedPeak = Math.max(...b2.filter(([, v]) => v !== null).map(([, v]) => v));
    check(`the plotted peak of B2 on ${day} equals the API's (${apiDay.rows[0] && apiDay.rows[0].peak_occupied})`,
      apiDay.rows.length === 1 && apiDay.rows[0].peak_occupied > 0 && plottedPeak === apiDay.rows[0].peak_occupied,
      `plotted ${plottedPeak}, api ${JSON.stringify(apiDay.rows)}`);
    const byHour = new Map(apiHours.rows.map((r) => [Date.parse(r.at), r.peak_occupied]));
    check('every plotted hour of B2 is the API\'s hourly peak (24 points, the missing ones empty)',
      b2.length === 24 && apiHours.rows.length >= 20 &&
      b2.every(([x, v]) => (byHour.has(x) ? byHour.get(x) === v : v === null)),
      `${b2.length} points, ${apiHours.rows.length} api rows`);

    // 3. The visitor category, the energy per day and the alerts per week equal the API.
    const visitor = await plotted(page, 'categories', 'category:visitor');
    const apiVisitor = await getJson(`/api/v1/history/occupancy?scope=category:visitor&step=1h&from=${from}&to=${to}`);
    const vByHour = new Map(apiVisitor.rows.map((r) => [Date.parse(r.at), r.peak_occupied]));
    check('the visitor category is plotted as the API gives it', visitor !== null && apiVisitor.rows.length > 0 &&
      visitor.every(([x, v]) => (vByHour.has(x) ? vByHour.get(x) === v : v === null)));
    const energy = await plotted(page, 'energy', 'energy_kwh_pile');
    const apiEnergy = await getJson(`/api/v1/history/energy?by=pile&from=${addDays(day, -6)}&to=${day}`);
    const perDay = new Map();
    for (const r of apiEnergy.rows) perDay.set(r.day, (perDay.get(r.day) || 0) + r.value);
    const energyOk = energy.length === 7 && energy.every(([x, v]) => {
      const d = new Date(x + offset).toISOString().slice(0, 10);
      return Math.abs((perDay.get(d) || 0) - (v || 0)) < 0.001;
    });
    check('the piles\' energy per day is plotted as the sum of the API\'s rows (7 days)',
      energyOk && (perDay.get(day) || 0) > 0, JSON.stringify(energy));
    const alerts = await plotted(page, 'alerts', 'alerts');
    const lastMonday = mondayOf(day);
    const apiAlerts = await getJson(`/api/v1/history/alerts?by=kind&step=1w&from=${addDays(lastMonday, -49)}&to=${addDays(lastMonday, 6)}`);
    const perWeek = new Map();
    for (const r of apiAlerts.rows) perWeek.set(r.week, (perWeek.get(r.week) || 0) + r.value);
    // The week holding today may still grow while the simulator runs: compare the others.
    const thisWeek = mondayOf(new Date(Date.now() + offset).toISOString().slice(0, 10));
    const compared = alerts.filter(([x]) => new Date(x + offset).toISOString().slice(0, 10) !== thisWeek);
    check('alerts per week are plotted as the API gives them (8 weeks)', alerts.length === 8 &&
      compared.length >= 7 && compared.some(([, v]) => v > 0) &&
      compared.every(([x, v]) => (perWeek.get(new Date(x + offset).toISOString().slice(0, 10)) || 0) === v),
      `${JSON.stringify(alerts)} api ${JSON.stringify([...perWeek])}`);
    await page.screenshot({ path: join(artifacts, 'history-desktop.png'), fullPage: true });

    // 4. CSV export: the levels' file holds the figures shown; the energy file the bars.
    const csv = await download(page, 'csv-levels');
    const rows = parseCsv(csv.text);
    const b2Rows = rows.filter((r) => r.scope === 'level:B2');
    check(`the occupancy CSV downloads (${csv.name}) with its header`,
      csv.text.replace(/^\ufeff/, '').startsWith('time,scope,total,mean_occupied,peak_occupied,min_free,minutes_full\r\n') &&
      csv.name.endsWith('.csv'), csv.text.slice(0, 120));
    check('the CSV holds B2\'s hours as the API gives them, its peak the day\'s',
      b2Rows.length === apiHours.rows.length && Math.max(...b2Rows.map((r) => Number(r.peak_occupied))) === apiDay.rows[0].peak_occupied &&
      b2Rows.every((r, i) => Number(r.peak_occupied) === apiHours.rows[i].peak_occupied &&
        Math.abs(Number(r.mean_occupied) - apiHours.rows[i].mean_occupied) < 1e-9) &&
      b2Rows[0].time.startsWith(day + 'T00:00'), JSON.stringify(b2Rows.slice(0, 2)));
    const ecsv = parseCsv((await download(page, 'csv-energy')).text);
    check('the energy CSV holds the plotted days', ecsv.length === 7 && ecsv[6].day === day &&
      Math.abs(Number(ecsv[6].piles_kwh) - perDay.get(day)) < 0.001, JSON.stringify(ecsv.slice(-1)));

    // 5. The week: 7 x 24 hours, B2's plotted peak the API's for the hours already past.
    await page.selectOption('#h-range', 'week');
    await page.waitForFunction((d) => document.body.dataset.loaded === `${d}/week/peak_occupied`, day,
      { timeout: 15_000 });
    const week = await plotted(page, 'levels', 'level:B2');
    const wFrom = parseDay(lastMonday) - offset;
    const apiWeek = await getJson(`/api/v1/history/occupancy?scope=level:B2&step=1h&from=${wFrom}&to=${wFrom + 7 * DAY}`);
    const wByHour = new Map(apiWeek.rows.map((r) => [Date.parse(r.at), r.peak_occupied]));
    const todayStart = parseDay(new Date(Date.now() + offset).toISOString().slice(0, 10)) - offset;
    check('the week view plots B2 for 168 hours as the API gives them', week.length === 168 &&
      week.filter(([x]) => x < todayStart).every(([x, v]) => (wByHour.has(x) ? wByHour.get(x) === v : v === null)),
      `${week.length} points`);

    // 6. A phone-sized screen: no horizontal scrolling, charts as wide as the screen allows.
    await page.selectOption('#h-range', 'day');
    await page.waitForFunction((d) => document.body.dataset.loaded === `${d}/day/peak_occupied`, day,
      { timeout: 15_000 });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => {
      const c = window.hgjHistory.charts.levels;
      return c.plot.width <= document.getElementById('chart-levels').clientWidth && c.plot.width < 390;
    }, null, { timeout: 5000 }).catch(() => {});
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const widths = await page.evaluate(() => Object.values(window.hgjHistory.charts).map((c) => c.plot.width));
    check('no horizontal scrolling on a phone-sized screen, every chart fits', overflow <= 1 &&
      widths.every((w) => w < 390), `overflow ${overflow}px, widths ${widths}`);
    await page.screenshot({ path: join(artifacts, 'history-phone.png'), fullPage: true });

    await page.click('#lang');
    await page.waitForFunction(() => document.body.dataset.loaded && document.documentElement.lang === 'en', null,
      { timeout: 15_000 });
    check('the English switch translates the history page', (await page.textContent('h1')) === 'History');
    await page.click('#lang');
    check('no script errors in the history page', consoleErrors.length === 0, consoleErrors.join(' | '));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  failed++;
  console.log('not ok - ' + (e && e.stack ? e.stack : e));
}
clearTimeout(deadline);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;

// hgj-gateway dashboard, history page: charts of the rollups (GET /api/v1/history/...) drawn
// with uPlot (uplot.min.js beside this file, vendored from npm: gateway/api/vendor/). Plain
// JavaScript, no build step. Days are the compound's local days (history.utc_offset, given by
// /api/v1/history/scopes), whatever the browser's time zone.
'use strict';

const I18N = {
  zh: {
    h_title: '历史统计', h_live: '实时看板', h_day: '日期', h_range: '范围',
    h_range_day: '当天（每小时）', h_range_week: '所在周（每小时）', h_metric: '指标',
    h_peak: '最多占用', h_mean: '平均占用', h_levels: '各层车位占用（每小时）',
    h_categories: '各类车位占用（每小时）', h_energy: '每日用电量（kWh）',
    h_alerts: '每周告警数（近 8 周）', h_csv: '下载 CSV', h_empty: '所选时间没有数据',
    h_loading: '加载中…',
    h_error: '加载失败', h_piles: '充电桩', h_sheds: '电动车棚', h_alert_count: '告警',
    h_spaces: '车位', h_unavailable: '历史数据暂不可用',
  },
  en: {
    h_title: 'History', h_live: 'Live dashboard', h_day: 'Day', h_range: 'Range',
    h_range_day: 'That day (hourly)', h_range_week: 'Its week (hourly)', h_metric: 'Figure',
    h_peak: 'Peak occupied', h_mean: 'Mean occupied', h_levels: 'Occupancy per level (hourly)',
    h_categories: 'Occupancy per space category (hourly)', h_energy: 'Energy per day (kWh)',
    h_alerts: 'Alerts per week (last 8 weeks)', h_csv: 'Download CSV',
    h_empty: 'No data for this time', h_loading: 'Loading…', h_error: 'Failed to load', h_piles: 'EV piles',
    h_sheds: 'E-bike sheds', h_alert_count: 'Alerts', h_spaces: 'spaces',
    h_unavailable: 'History unavailable',
  },
};

const COLORS = ['#2f6fd6', '#d0463b', '#2e9d5b', '#e49b0f', '#7b4fc9', '#00838f', '#8d6e63', '#c2185b'];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// Tests (tests/browser/history.test.mjs) read what is plotted from here, not from pixels:
// charts[name] = {plot (the uPlot), keys (the series' scopes or names), csv (the download's text)}.
const H = {
  lang: localStorage.getItem('hgj_lang') || 'zh',
  offsetMin: 480,
  parking: null,
  scopes: [],
  charts: {},
  loads: 0,
};
window.hgjHistory = H;

function t(key) {
  return (I18N[H.lang] && I18N[H.lang][key]) || I18N.zh[key] || key;
}

// --- API access: auth.js (the same tokens as the live dashboard: sessionStorage of this tab) --

const api = (path) => window.hgjAuth.api(path);

// --- The compound's local days -----------------------------------------------------------------

function offsetMs() { return H.offsetMin * 60_000; }
function parseDay(day) {
  const [y, m, d] = day.split('-').map(Number);
  return Date.UTC(y, m - 1, d);
}
function addDays(day, n) { return new Date(parseDay(day) + n * DAY).toISOString().slice(0, 10); }
// Unix ms of the local midnight that begins `day`.
function dayStart(day) { return parseDay(day) - offsetMs(); }
function today() { return new Date(Date.now() + offsetMs()).toISOString().slice(0, 10); }
function mondayOf(day) { return addDays(day, -((new Date(parseDay(day)).getUTCDay() + 6) % 7)); }
// "2026-12-05T14:00+08:00": a time in the compound's zone, for the CSV.
function localTime(ms) {
  const s = new Date(ms + offsetMs()).toISOString().slice(0, 16);
  const o = Math.abs(H.offsetMin);
  const z = (H.offsetMin < 0 ? '-' : '+') + String(Math.floor(o / 60)).padStart(2, '0') + ':' +
    String(o % 60).padStart(2, '0');
  return s + z;
}
// uPlot's x values: seconds, shifted so that its UTC calendar is the compound's local one.
function xOf(ms) { return (ms + offsetMs()) / 1000; }

// --- Charts ------------------------------------------------------------------------------------

function chartHeight() { return window.innerWidth < 600 ? 220 : 280; }
function narrow() { return window.innerWidth < 600; }

function two(n) { return String(n).padStart(2, '0'); }
// "12-05" of an x value (its UTC fields are the compound's local ones).
function monthDay(x) {
  const d = new Date(x * 1000);
  return `${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`;
}
// The hour axis: 24-hour labels, the date at midnight; ticks every 3 h (6 h on a phone) for a
// day, every day (12 h on a wide screen) for a week.
function hourAxis(from, to, range) {
  return {
    space: 30,
    splits: () => {
      // Asked again on every redraw: a phone turned sideways gets the denser ticks.
      const step = (range === 'week' ? (narrow() ? 24 : 12) : (narrow() ? 6 : 3)) * 3600;
      const out = [];
      for (let x = xOf(from); x < xOf(to); x += step) out.push(x);
      return out;
    },
    values: (u, splits) => splits.map((x) => {
      const h = new Date(x * 1000).getUTCHours();
      return h === 0 ? monthDay(x) : `${two(h)}:00`;
    }),
  };
}
// An axis with a tick and a "MM-DD" label at each of `xs` (days or weeks of a bar chart).
function dayAxis(xs) {
  // On a phone every other label, so that "11-30" and "12-01" do not run into each other.
  return { space: 30, splits: () => xs,
    values: (u, splits) => splits.map((x, i) => (narrow() && splits.length > 5 && i % 2 ? '' : monthDay(x))) };
}

function draw(name, opts, data, extra) {
  const box = document.getElementById('chart-' + name);
  const old = H.charts[name];
  if (old) old.plot.destroy();
  const plot = new uPlot(Object.assign({
    width: Math.max(200, box.clientWidth),
    height: chartHeight(),
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
    cursor: { drag: { x: false, y: false } },
  }, opts), data, box);
  H.charts[name] = Object.assign({ plot }, extra);
  const empty = data.slice(1).every((s) => s.every((v) => v === null || v === undefined));
  box.closest('.chart-card').classList.toggle('no-data', empty);
  setCsv(name, extra.csv, extra.file);
}

function setCsv(name, text, file) {
  const a = document.getElementById('csv-' + name);
  if (a.href.startsWith('blob:')) URL.revokeObjectURL(a.href);
  // A byte-order mark so that spreadsheet programs read the Chinese names as UTF-8.
  a.href = URL.createObjectURL(new Blob(['\ufeff' + text], { type: 'text/csv;charset=utf-8' }));
  a.download = file;
}

function csvField(v) {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s;
}
function csvText(header, rows) {
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

function series(label, i, extra) {
  return Object.assign({ label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false,
    value: (u, v) => (v === null || v === undefined ? '–' : Number(v).toFixed(v % 1 ? 1 : 0)) }, extra);
}

function scopeLabel(scope) {
  const [kind, id] = [scope.slice(0, scope.indexOf(':')), scope.slice(scope.indexOf(':') + 1)];
  const p = H.parking || {};
  if (kind === 'level') {
    const l = (p.levels || []).find((x) => x.level === id);
    return l && l.name && l.name !== id && H.lang === 'zh' ? `${l.name} (${id})` : id;
  }
  const c = (p.categories || []).find((x) => x.category === id);
  return c && H.lang === 'zh' ? c.name : id;
}

// Occupancy per hour of every level (or category) over [from, to).
async function occupancyChart(name, kind, from, to, metric, range) {
  const fromConfig = kind === 'level'
    ? ((H.parking && H.parking.levels) || []).map((l) => 'level:' + l.level)
    : ((H.parking && H.parking.categories) || []).map((c) => 'category:' + c.category);
  const scopes = [...new Set([...fromConfig, ...H.scopes.filter((s) => s.startsWith(kind + ':'))])];
  const answers = await Promise.all(scopes.map((s) => api('/api/v1/history/occupancy?scope=' +
    encodeURIComponent(s) + `&step=1h&from=${from}&to=${to}`)));
  const hours = [];
  for (let h = from; h < to; h += HOUR) hours.push(h);
  const byScope = answers.map((a) => new Map(a.rows.map((r) => [Date.parse(r.at), r])));
  const data = [hours.map(xOf), ...byScope.map((m) => hours.map((h) => (m.has(h) ? m.get(h)[metric] : null)))];
  const csvRows = [];
  scopes.forEach((s, i) => {
    for (const h of hours) {
      const r = byScope[i].get(h);
      if (r) csvRows.push([localTime(h), s, r.total, r.mean_occupied, r.peak_occupied, r.min_free, r.minutes_full]);
    }
  });
  draw(name, {
    series: [{ label: H.lang === 'zh' ? '时间' : 'Time' },
      ...scopes.map((s, i) => series(scopeLabel(s), i, { points: { show: range === 'day' } }))],
    scales: { x: { time: true, range: [xOf(from), xOf(to - HOUR)] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [hourAxis(from, to, range), { label: t('h_spaces'), size: 56 }],
  }, data, {
    keys: scopes,
    csv: csvText(['time', 'scope', 'total', 'mean_occupied', 'peak_occupied', 'min_free', 'minutes_full'], csvRows),
    file: `hgj-occupancy-${kind}-${range}-${localTime(from).slice(0, 10)}.csv`,
  });
}

function bars(i, align, size) {
  return { fill: COLORS[i] + 'cc', stroke: COLORS[i], width: 1,
    paths: uPlot.paths.bars({ size: [size, 48], align }), points: { show: false } };
}

// Energy per day of the piles and of the sheds over the days [first, last].
async function energyChart(first, last) {
  const q = `&step=1d&from=${first}&to=${last}`;
  const [piles, sheds] = await Promise.all([
    api('/api/v1/history/energy?by=pile' + q), api('/api/v1/history/energy?by=shed' + q)]);
  const days = [];
  for (let d = first; d <= last; d = addDays(d, 1)) days.push(d);
  const sum = (rows) => {
    const m = new Map();
    for (const r of rows) m.set(r.day, (m.get(r.day) || 0) + r.value);
    return days.map((d) => (m.has(d) ? Math.round(m.get(d) * 1000) / 1000 : null));
  };
  const p = sum(piles.rows);
  const s = sum(sheds.rows);
  const half = 43_200;
  draw('energy', {
    series: [{ label: H.lang === 'zh' ? '日期' : 'Day' },
      series(t('h_piles'), 0, bars(0, -1, 0.4)), series(t('h_sheds'), 2, bars(2, 1, 0.4))],
    scales: { x: { time: true, range: [xOf(dayStart(first)) - half, xOf(dayStart(last)) + half] },
      y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [dayAxis(days.map((d) => xOf(dayStart(d)))), { label: 'kWh', size: 56 }],
  }, [days.map((d) => xOf(dayStart(d))), p, s], {
    keys: ['energy_kwh_pile', 'energy_kwh_shed'],
    csv: csvText(['day', 'piles_kwh', 'sheds_kwh'], days.map((d, i) => [d, p[i] ?? 0, s[i] ?? 0])),
    file: `hgj-energy-${first}-${last}.csv`,
  });
}

// Alerts raised per week (all kinds) for the 8 weeks ending with the week of `day`.
async function alertsChart(day) {
  const lastMonday = mondayOf(day);
  const first = addDays(lastMonday, -49);
  const a = await api(`/api/v1/history/alerts?by=kind&step=1w&from=${first}&to=${addDays(lastMonday, 6)}`);
  const weeks = [];
  for (let w = first; w <= lastMonday; w = addDays(w, 7)) weeks.push(w);
  const m = new Map();
  for (const r of a.rows) m.set(r.week, (m.get(r.week) || 0) + r.value);
  const counts = weeks.map((w) => m.get(w) || 0);
  draw('alerts', {
    series: [{ label: H.lang === 'zh' ? '周' : 'Week' }, series(t('h_alert_count'), 1, bars(1, 0, 0.6))],
    scales: { x: { time: true, range: [xOf(dayStart(first)) - 302_400, xOf(dayStart(lastMonday)) + 302_400] },
      y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [dayAxis(weeks.map((w) => xOf(dayStart(w)))), { size: 40 }],
  }, [weeks.map((w) => xOf(dayStart(w))), counts], {
    keys: ['alerts'],
    csv: csvText(['week', 'alerts'], weeks.map((w, i) => [w, counts[i]])),
    file: `hgj-alerts-weekly-${first}-${lastMonday}.csv`,
  });
}

// --- The page ----------------------------------------------------------------------------------

function choice() {
  const p = new URLSearchParams(location.hash.slice(1));
  const day = /^\d{4}-\d{2}-\d{2}$/.test(p.get('day') || '') ? p.get('day') : today();
  const range = p.get('range') === 'week' ? 'week' : 'day';
  const metric = p.get('metric') === 'mean_occupied' ? 'mean_occupied' : 'peak_occupied';
  return { day, range, metric };
}

async function load() {
  const c = choice();
  document.getElementById('h-day').value = c.day;
  document.getElementById('h-range').value = c.range;
  document.getElementById('h-metric').value = c.metric;
  const status = document.getElementById('h-status');
  status.textContent = t('h_loading');
  document.body.dataset.loaded = '';
  try {
    const [scopes, parking] = await Promise.all([api('/api/v1/history/scopes'), api('/api/v1/parking')]);
    H.offsetMin = scopes.utc_offset_minutes ?? H.offsetMin;
    H.scopes = scopes.scopes;
    H.parking = parking;
    document.getElementById('site-name').textContent = parking.site_name || parking.site || '';
    document.title = (parking.site_name ? parking.site_name + ' · ' : '') + t('h_title');
    const first = c.range === 'week' ? mondayOf(c.day) : c.day;
    const from = dayStart(first);
    const to = from + (c.range === 'week' ? 7 : 1) * DAY;
    await Promise.all([
      occupancyChart('levels', 'level', from, to, c.metric, c.range),
      occupancyChart('categories', 'category', from, to, c.metric, c.range),
      energyChart(c.range === 'week' ? first : addDays(c.day, -6), c.range === 'week' ? addDays(first, 6) : c.day),
      alertsChart(c.day),
    ]);
    status.textContent = '';
    H.loads++;
    // What tests wait on: the choice the charts now show.
    document.body.dataset.loaded = `${c.day}/${c.range}/${c.metric}`;
  } catch (e) {
    status.textContent = t('h_error') + ': ' + (e && e.message ? e.message : e);
    console.warn('history:', e);
  }
}

function applyLang() {
  document.documentElement.lang = H.lang === 'zh' ? 'zh-CN' : 'en';
  document.getElementById('lang').textContent = H.lang === 'zh' ? 'EN' : '中文';
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
}

function setChoice() {
  const p = new URLSearchParams({
    day: document.getElementById('h-day').value || today(),
    range: document.getElementById('h-range').value,
    metric: document.getElementById('h-metric').value,
  });
  location.hash = p.toString();
}

function resize() {
  for (const [name, c] of Object.entries(H.charts)) {
    const box = document.getElementById('chart-' + name);
    c.plot.setSize({ width: Math.max(200, box.clientWidth), height: chartHeight() });
  }
}

// The chart cards, in page order: each a title, its CSV link, the chart, and a "no data" note.
const CHARTS = [['levels', 'h_levels'], ['categories', 'h_categories'], ['energy', 'h_energy'],
  ['alerts', 'h_alerts']];

function buildCards() {
  const node = (tag, props, ...children) => {
    const e = Object.assign(document.createElement(tag), props);
    e.append(...children);
    return e;
  };
  const i18n = (e, key) => { e.dataset.i18n = key; return e; };
  document.querySelector('main.history').append(...CHARTS.map(([name, title]) =>
    node('section', { className: 'card chart-card', id: 'card-' + name },
      node('div', { className: 'chart-head' }, i18n(node('h2'), title),
        i18n(node('a', { className: 'csv', id: 'csv-' + name, href: '#' }), 'h_csv')),
      node('div', { className: 'chart', id: 'chart-' + name }),
      i18n(node('p', { className: 'empty' }), 'h_empty'))));
}

function start() {
  buildCards();
  applyLang();
  document.getElementById('lang').addEventListener('click', () => {
    H.lang = H.lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('hgj_lang', H.lang);
    applyLang();
    load();
  });
  for (const id of ['h-day', 'h-range', 'h-metric']) {
    document.getElementById(id).addEventListener('change', setChoice);
  }
  document.getElementById('history-form').addEventListener('submit', (e) => e.preventDefault());
  window.addEventListener('hashchange', load);
  let pending = null;
  new ResizeObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(resize);
  }).observe(document.querySelector('main'));
  load();
}

document.addEventListener('DOMContentLoaded', start);

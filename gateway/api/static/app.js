// hgj-gateway dashboard: plain JavaScript, no build step. Reads the JSON API, follows
// /api/v1/events (server-sent events) for live changes, never reloads the page.
'use strict';

const I18N = {
  zh: {
    title: '小区看板', nav_parking: '车位', nav_ev: '充电桩', nav_ebike: '电动车棚',
    nav_alerts: '告警', nav_health: '设备', nav_history: '历史统计', parking: '车位', free: '空闲', occupied: '占用',
    unknown: '未知', total: '总数', ev_space: '充电车位', ev: '新能源充电桩',
    ebike: '电动自行车充电棚', alerts: '告警', show_acked: '显示已确认', no_alerts: '当前没有告警', alerts_unavailable: '告警暂不可用（数据库未就绪）',
    health: '设备健康', offline_devices: '离线设备', ack_title: '确认告警', ack_by: '处理人',
    ack_note: '备注', operator_token: '操作员令牌（确认告警、开关端口需要）', cancel: '取消', ack: '确认',
    conn_live: '实时', conn_connecting: '连接中',
    conn_lost: '重连中', updated: '更新于', level: '层', zone: '区', charging: '充电中',
    idle: '空闲', faulted: '故障', offline: '离线', blocked: '被占', power: '功率',
    sheds: '车棚', ports: '端口', in_use: '使用中', cut: '已断电', max_temp: '最高温度',
    smoke: '烟雾报警', acked: '已确认', active: '未确认', cleared: '已解除', ago_s: '秒前',
    ago_m: '分钟前', ago_h: '小时前', ago_d: '天前', by: '确认人', critical: '严重',
    warning: '警告', info: '提示', online: '在线', none_offline: '全部在线',
    err_token: '令牌无效或无操作权限', err_failed: '操作失败', space_blocked: '车位被占用但未充电',
    parking_sensor: '车位传感器', ev_pile: '充电桩', ebike_shed: '车棚控制器', ebike_port: '充电端口',
    co_sensor: '一氧化碳传感器', meter: '电表', display: '引导屏', fan: '排风机', more: '另有',
    sensor_says: '传感器', confirming: '确认中', categories: '分类', device_type: '设备',
    config: '配置版本', config_local: '本机配置文件', config_active: '当前运行', config_trial: '试运行中',
    config_rollback: '回滚到上一个正常配置', config_rollback_title: '回滚配置', config_none: '没有平台下发的配置',
  },
  en: {
    title: 'Compound dashboard', nav_parking: 'Parking', nav_ev: 'EV piles', nav_ebike: 'E-bike sheds',
    nav_alerts: 'Alerts', nav_health: 'Devices', nav_history: 'History', parking: 'Parking', free: 'Free',
    occupied: 'Occupied', unknown: 'Unknown', total: 'Total', ev_space: 'EV space',
    ev: 'EV charging piles', ebike: 'E-bike charging sheds', alerts: 'Alerts',
    show_acked: 'Show acknowledged', no_alerts: 'No alerts',
    alerts_unavailable: 'Alerts unavailable (database not ready)', health: 'Device health',
    offline_devices: 'Offline devices', ack_title: 'Acknowledge alert', ack_by: 'Your name',
    ack_note: 'Note', operator_token: 'Operator token (needed to acknowledge alerts and switch ports)',
    cancel: 'Cancel', ack: 'Ack',
    conn_live: 'Live', conn_connecting: 'Connecting', conn_lost: 'Reconnecting',
    updated: 'Updated', level: 'Level', zone: 'Zone', charging: 'Charging', idle: 'Idle',
    faulted: 'Faulted', offline: 'Offline', blocked: 'Blocked', power: 'Power', sheds: 'Sheds',
    ports: 'Ports', in_use: 'In use', cut: 'Cut', max_temp: 'Max temp', smoke: 'SMOKE',
    acked: 'Acknowledged', active: 'Active', cleared: 'Cleared', ago_s: 's ago', ago_m: 'min ago',
    ago_h: 'h ago', ago_d: 'd ago', by: 'by', critical: 'Critical', warning: 'Warning',
    info: 'Info', online: 'online', none_offline: 'All devices online',
    err_token: 'Invalid token or not an operator', err_failed: 'Failed',
    space_blocked: 'Space occupied, not charging', parking_sensor: 'Parking sensors',
    ev_pile: 'EV piles', ebike_shed: 'Shed controllers', ebike_port: 'Charging ports',
    co_sensor: 'CO sensors', meter: 'Meters', display: 'Displays', fan: 'Exhaust fans', more: 'more',
    sensor_says: 'sensor', confirming: 'confirming', categories: 'Categories', device_type: 'Devices',
    config: 'Configuration versions', config_local: 'the local config files', config_active: 'Running',
    config_trial: 'on trial', config_rollback: 'Roll back to the previous good config',
    config_rollback_title: 'Roll back the configuration', config_none: 'No configuration pushed by the platform',
  },
};

const state = {
  lang: localStorage.getItem('hgj_lang') || 'zh',
  parking: null,
  spaces: new Map(),     // id -> space
  ev: null,
  ebike: null,
  alerts: [],
  alertsError: false,
  devices: null,
  source: null,
  timers: {},
  ackTarget: null,
};

function t(key) {
  return (I18N[state.lang] && I18N[state.lang][key]) || I18N.zh[key] || key;
}

// Builds an element; text goes through textContent only (device names and messages are data).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-') || k === 'title' || k === 'type' || k === 'id') e.setAttribute(k, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmt(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return typeof n === 'number' ? n.toFixed(digits === undefined ? 0 : digits) : String(n);
}

function age(iso) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + ' ' + t('ago_s');
  if (s < 3600) return Math.floor(s / 60) + ' ' + t('ago_m');
  if (s < 86400) return Math.floor(s / 3600) + ' ' + t('ago_h');
  return Math.floor(s / 86400) + ' ' + t('ago_d');
}

// --- API access ----------------------------------------------------------------------------

const { viewerToken, operatorToken, api } = window.hgjAuth;  // auth.js

// Runs `fn` at most once per `ms`, trailing (the last call wins).
function debounce(name, ms, fn) {
  if (state.timers[name]) return;
  state.timers[name] = setTimeout(() => {
    state.timers[name] = null;
    fn();
  }, ms);
}

// --- Parking ---------------------------------------------------------------------------------

async function loadParking(force) {
  const p = await api('/api/v1/parking');
  const changed = state.parking && JSON.stringify(levelCounts(state.parking)) !== JSON.stringify(levelCounts(p));
  state.parking = p;
  // The compound's name from the config (site.name); the id only when it has none.
  const siteName = p.site_name || p.site || '';
  document.getElementById('site-name').textContent = siteName;
  document.title = (siteName ? siteName + ' · ' : '') + t('title');
  document.getElementById('parking-title').textContent =
    state.lang === 'zh' && p.title ? p.title : t('parking');
  setUpdated(p.updated_at);
  renderParkingCounts();
  if (force || !state.spaces.size || changed) {
    // Counts moved without space events reaching us (or first load): refetch the spaces.
    await loadSpaces();
  }
}

function levelCounts(p) {
  return p.levels.map((l) => [l.level, l.zones.map((z) => [z.zone, z.occupied, z.free, z.unknown])]);
}

async function loadSpaces() {
  const s = await api('/api/v1/parking/spaces');
  state.spaces = new Map(s.spaces.map((x) => [x.id, x]));
  renderLevels();
}

function renderParkingCounts() {
  const p = state.parking;
  if (!p) return;
  document.getElementById('total-free').textContent = p.free;
  document.getElementById('total-occupied').textContent = p.occupied;
  document.getElementById('total-unknown').textContent = p.unknown;
  document.getElementById('total-all').textContent = p.total;
  // Free counts per space category (visitor spaces are what a visitor asks about).
  document.getElementById('categories').replaceChildren(...(p.categories || []).map((c) =>
    el('div', { class: 'chip category', 'data-category': c.category },
      el('span', { class: 'cat-name', text: state.lang === 'zh' ? c.name : c.category }), ' ',
      el('b', { class: 'f', 'data-count': 'free', text: c.free }), ` / ${c.total}`)));
  for (const l of p.levels) {
    const lc = document.querySelector(`.level[data-level="${CSS.escape(l.level)}"] .level-counts`);
    if (lc) fillCounts(lc, l);
    for (const z of l.zones) {
      const zc = document.querySelector(`.zone[data-zone="${CSS.escape(l.level + '-' + z.zone)}"] .zone-counts`);
      if (zc) fillCounts(zc, z);
    }
  }
}

function fillCounts(node, c) {
  node.replaceChildren(
    t('free') + ' ', el('b', { class: 'f', text: c.free, 'data-count': 'free' }),
    ' · ' + t('occupied') + ' ', el('b', { class: 'o', text: c.occupied, 'data-count': 'occupied' }),
    ' · ' + t('unknown') + ' ', el('b', { text: c.unknown, 'data-count': 'unknown' }),
    ' / ' + c.total);
}

function spaceTitle(s) {
  // The counted state leads; the sensor's own value is shown while it waits for the debounce.
  const raw = s.sensor && s.sensor !== s.state ? ` · ${t('sensor_says')} ${t(s.sensor)} (${t('confirming')})` : '';
  return `${s.id} · ${t(s.state)}` + raw + (s.since ? ` · ${age(s.since)}` : '') +
    (s.category ? ` · ${categoryName(s.category)}` : '') + (s.linked ? ` · ${s.linked}` : '');
}

function categoryName(id) {
  const c = state.parking && (state.parking.categories || []).find((x) => x.category === id);
  return c && state.lang === 'zh' ? c.name : id;
}

function renderLevels() {
  const p = state.parking;
  const root = document.getElementById('levels');
  if (!p) return;
  const byZone = new Map();
  for (const s of state.spaces.values()) {
    const key = s.level + '-' + s.zone;
    if (!byZone.has(key)) byZone.set(key, []);
    byZone.get(key).push(s);
  }
  root.replaceChildren(...p.levels.map((l) => el('div', { class: 'level', 'data-level': l.level },
    el('div', { class: 'level-head' },
      el('h3', { text: l.name && l.name !== l.level ? `${l.name} (${l.level})` : l.level }),
      el('span', { class: 'counts level-counts' })),
    el('div', { class: 'zones' }, ...l.zones.map((z) => el('div', { class: 'zone', 'data-zone': l.level + '-' + z.zone },
      el('div', { class: 'zone-head' },
        el('span', { class: 'zone-name', text: state.lang === 'zh' ? z.zone + ' ' + t('zone') : t('zone') + ' ' + z.zone }),
        el('span', { class: 'counts zone-counts' })),
      el('div', { class: 'spaces' }, ...(byZone.get(l.level + '-' + z.zone) || []).map((s) =>
        el('span', {
          class: `space state-${s.state}` + (s.linked ? ' linked' : '') + ` cat-${s.category || ''}`,
          'data-space': s.id, 'data-state': s.state, 'data-sensor': s.sensor,
          'data-category': s.category, title: spaceTitle(s),
        })))))))));
  renderParkingCounts();
}

function applySpace(ev) {
  const s = state.spaces.get(ev.id);
  if (!s || !ev.state) {
    debounce('parking', 300, refreshParking);
    return;
  }
  Object.assign(s, ev);
  const cell = document.querySelector(`.space[data-space="${CSS.escape(ev.id)}"]`);
  if (cell) {
    cell.className = `space state-${s.state}` + (s.linked ? ' linked' : '') + ` cat-${s.category || ''}`;
    cell.dataset.state = s.state;
    if (s.sensor) cell.dataset.sensor = s.sensor;
    cell.title = spaceTitle(s);
  }
  debounce('parking', 250, refreshParking);
}

function refreshParking() { loadParking().catch(showError); }

// --- EV piles --------------------------------------------------------------------------------

async function loadEv() {
  state.ev = await api('/api/v1/ev');
  const e = state.ev;
  document.getElementById('ev-summary').replaceChildren(
    chip(t('charging'), e.charging, 'ev-charging'), chip(t('idle'), e.idle, 'ev-idle'),
    chip(t('faulted'), e.faulted, 'ev-faulted'), chip(t('offline'), e.offline, 'ev-offline'),
    chip(t('blocked'), e.blocked_spaces, 'ev-blocked'),
    chip(t('power'), fmt(e.power_kw, 1) + ' kW', 'ev-power'));
  document.getElementById('ev-piles').replaceChildren(...e.piles.map((p) => el('div', {
    class: `tile pile-${p.status}` + (p.space && p.space.blocked ? ' blocked' : ''),
    'data-pile': p.id,
    title: p.space ? `${p.space.id}: ${t(p.space.state)}` : p.id,
  },
  el('div', { class: 'id', text: p.id }),
  el('div', { class: 'sub', text: `${t(p.status)} · ${fmt(p.power_kw, 1)} kW` }),
  p.space ? el('div', { class: 'sub' + (p.space.blocked ? ' warn-text' : ''),
    text: p.space.blocked ? t('space_blocked') : `${p.space.id} ${t(p.space.state)}` }) : null)));
}

function chip(label, value, id) {
  return el('span', { class: 'chip', 'data-chip': id }, label, el('b', { text: value }));
}

// --- E-bike sheds ----------------------------------------------------------------------------

async function loadEbike() {
  state.ebike = await api('/api/v1/ebike');
  const b = state.ebike;
  document.getElementById('ebike-summary').replaceChildren(
    chip(t('sheds'), b.sheds_total, 'sheds'), chip(t('ports'), b.ports_total, 'ports'),
    chip(t('in_use'), b.ports_in_use, 'ports-in-use'), chip(t('cut'), b.ports_cut, 'ports-cut'));
  document.getElementById('ebike-sheds').replaceChildren(...b.sheds.map((s) => el('div', {
    class: 'shed' + (s.smoke === true ? ' smoke' : ''), 'data-shed': s.id,
  },
  el('div', { class: 'shed-head' },
    el('span', { class: 'id', text: s.id }),
    el('span', { text: `${t('in_use')} ${s.ports_in_use}/${s.ports_total}` + (s.ports_cut ? ` · ${t('cut')} ${s.ports_cut}` : '') })),
  el('div', { class: 'sub counts', text: `${t('max_temp')} ${fmt(s.max_port_temp_c, 1)}°C · ${fmt(s.power_w)} W` +
    (s.smoke === true ? ` · ${t('smoke')}` : '') }),
  el('div', { class: 'ports' }, ...s.ports.map((p) => el('span', {
    class: 'port' + (p.in_use ? ' in-use' : '') + (p.cut ? ' cut' : '') +
      (typeof p.temp_c === 'number' && p.temp_c >= 55 ? ' hot' : '') + (p.online ? '' : ' offline'),
    'data-port': p.id,
    title: `${p.id} · ${fmt(p.power_w)} W · ${fmt(p.temp_c, 1)}°C` + (p.cut ? ' · ' + t('cut') : ''),
    text: `${p.n || ''} ${typeof p.temp_c === 'number' ? Math.round(p.temp_c) + '°' : ''}`,
  }))))));
}

// --- Alerts ----------------------------------------------------------------------------------

const SEVERITY = { critical: 0, warning: 1, info: 2 };

async function loadAlerts() {
  const showAcked = document.getElementById('show-acked').checked;
  let active;
  let acked = [];
  try {
    active = await api('/api/v1/alerts?state=active');
    if (showAcked) acked = await api('/api/v1/alerts?state=acked&limit=50');
    state.alertsError = false;
  } catch (e) {
    // Keep what is shown, and say that it may be out of date.
    state.alertsError = true;
    renderAlerts();
    throw e;
  }
  active.sort((a, b) => (SEVERITY[a.severity] ?? 3) - (SEVERITY[b.severity] ?? 3) ||
    Date.parse(b.raised_at) - Date.parse(a.raised_at));
  state.alerts = active.concat(acked);
  renderAlerts();
}

function renderAlerts() {
  const active = state.alerts.filter((a) => a.state === 'active').length;
  document.getElementById('alert-count').textContent = active;
  const empty = document.getElementById('alerts-empty');
  empty.textContent = t(state.alertsError ? 'alerts_unavailable' : 'no_alerts');
  empty.classList.toggle('error', !!state.alertsError);
  empty.classList.toggle('hidden', state.alerts.length > 0 && !state.alertsError);
  document.getElementById('alert-list').replaceChildren(...state.alerts.map((a) => el('li', {
    class: 'alert ' + a.state, 'data-alert-id': a.id, 'data-state': a.state,
  },
  el('span', { class: 'sev sev-' + a.severity, text: t(a.severity) }),
  el('span', { class: 'msg', text: a.message || a.rule }),
  a.state === 'active'
    ? el('button', { class: 'ack', type: 'button', 'data-ack': a.id, text: t('ack'), onclick: () => openAck(a) })
    : el('span', { class: 'counts', text: t(a.state) }),
  el('span', { class: 'meta', 'data-raised': a.raised_at,
    text: [a.device, a.location, age(a.raised_at), a.acked_by ? `${t('by')} ${a.acked_by}` : ''].filter(Boolean).join(' · ') }))));
}

// --- Operator actions behind a dialog (ack, configuration rollback) --------------------------
// The dialog `${name}-dialog` has the fields `${name}-by` and `${name}-token` (shown while this
// tab has no operator token), `${name}-error` and the button `${name}-submit`.

function openOperatorDialog(name) {
  document.getElementById(name + '-by').value = localStorage.getItem('hgj_operator_name') || '';
  document.getElementById(name + '-token').value = '';
  document.getElementById(name + '-token-row').classList.toggle('hidden', !!operatorToken());
  document.getElementById(name + '-error').textContent = '';
  document.getElementById(name + '-dialog').showModal();
}

// POSTs {by, ...fields} to `path` with the operator token (typed, or this tab's); true once the
// gateway took it and the dialog is closed; a refusal is shown in the dialog.
async function submitOperatorDialog(name, path, fields) {
  const by = document.getElementById(name + '-by').value.trim();
  if (!by) return false;
  const typed = document.getElementById(name + '-token').value.trim();
  const token = typed || operatorToken() || viewerToken();
  const btn = document.getElementById(name + '-submit');
  const error = document.getElementById(name + '-error');
  btn.disabled = true;
  try {
    await api(path, {
      method: 'POST', token, noPrompt: true,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(Object.assign({ by }, fields)),
    });
    localStorage.setItem('hgj_operator_name', by);
    if (typed) sessionStorage.setItem('hgj_operator_token', typed);
    document.getElementById(name + '-dialog').close();
    return true;
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      sessionStorage.removeItem('hgj_operator_token');
      document.getElementById(name + '-token-row').classList.remove('hidden');
      error.textContent = t('err_token');
    } else {
      error.textContent = `${t('err_failed')}: ${e.message}`;
    }
    return false;
  } finally {
    btn.disabled = false;
  }
}

function openAck(alert) {
  state.ackTarget = alert;
  document.getElementById('ack-what').textContent = `${alert.device} · ${alert.message || alert.rule}`;
  document.getElementById('ack-note').value = '';
  openOperatorDialog('ack');
}

async function submitAck(ev) {
  ev.preventDefault();
  const a = state.ackTarget;
  if (!a) return;
  const note = document.getElementById('ack-note').value;
  if (await submitOperatorDialog('ack', `/api/v1/alerts/${encodeURIComponent(a.id)}/ack`, { note })) {
    state.ackTarget = null;
    await loadAlerts().catch(showError);
  }
}

// --- Device health ---------------------------------------------------------------------------

async function loadDevices() {
  state.devices = await api('/api/v1/devices?online=false');
  const sum = state.devices.summary;
  document.getElementById('health-types').replaceChildren(...Object.entries(sum.by_type).map(([type, c]) =>
    el('div', { class: 'tile ' + (c.offline ? 'health-bad' : 'health-ok'), 'data-type': type },
      el('div', { class: 'id', text: t(type) }),
      el('div', { class: 'sub', text: `${c.online}/${c.total} ${t('online')}` }))));
  const off = state.devices.devices;
  const shown = off.slice(0, 60);
  const items = shown.map((d) => el('li', { 'data-device': d.id, title: d.fault,
    text: `${d.id}` + (d.faulted ? ` · ${t('faulted')}` : '') + (d.last_seen ? ` · ${age(d.last_seen)}` : '') }));
  if (off.length > shown.length) items.push(el('li', { text: `… ${t('more')} ${off.length - shown.length}` }));
  if (!off.length) items.push(el('li', { text: t('none_offline') }));
  document.getElementById('offline-list').replaceChildren(...items);
}

// --- Configuration versions (docs/remote-config.md) -------------------------------------------

async function loadConfig() {
  const c = await api('/api/v1/config/versions');
  state.config = c;
  renderConfig();
}

function renderConfig() {
  const c = state.config;
  if (!c) return;
  const active = c.active ? `#${c.active}` : t('config_local');
  document.getElementById('config-active').textContent =
    `${t('config_active')}: ${active}` + (c.trial ? ` (${t('config_trial')})` : '');
  const items = (c.versions || []).slice(0, 10).map((v) => el('li', { 'data-version': v.version,
    title: v.message || '',
    text: `#${v.version} · ${v.status} · ${v.by || ''} · ${v.received_ms ? new Date(v.received_ms).toLocaleString() : ''}` }));
  if (!items.length) items.push(el('li', { text: t('config_none') }));
  document.getElementById('config-list').replaceChildren(...items);
  document.getElementById('config-rollback').classList.toggle('hidden', !c.active);
}

function openRollback() { openOperatorDialog('rollback'); }

async function submitRollback(ev) {
  ev.preventDefault();
  if (await submitOperatorDialog('rollback', '/api/v1/config/rollback', {})) {
    // The daemon restarts onto the previous config; the event stream reconnects by itself.
    setTimeout(() => loadConfig().catch(showError), 3000);
  }
}

// --- Live updates ----------------------------------------------------------------------------

function setConn(key) {
  const c = document.getElementById('conn');
  c.dataset.i18n = key;
  c.textContent = t(key);
  c.className = 'conn ' + (key === 'conn_live' ? 'conn-live' : 'conn-off');
}

function setUpdated(iso) {
  if (iso) document.getElementById('updated').textContent = `${t('updated')} ${new Date(iso).toLocaleTimeString()}`;
}

function showError(e) {
  console.warn('dashboard:', e && e.message ? e.message : e);
}

function parse(e) {
  try { return JSON.parse(e.data); } catch (err) { return {}; }
}

function connect() {
  if (state.source) state.source.close();
  const token = operatorToken() || viewerToken();
  const src = new EventSource('/api/v1/events' + (token ? '?access_token=' + encodeURIComponent(token) : ''));
  state.source = src;
  let lost = false;
  src.onopen = () => {
    setConn('conn_live');
    // After a disconnect the server may have restarted: take everything afresh.
    if (lost) refreshAll();
    lost = false;
  };
  src.onerror = () => {
    lost = true;
    setConn('conn_lost');
    // The browser retries by itself unless the server refused the stream (401, 503): then retry
    // here, slowly.
    if (src.readyState === EventSource.CLOSED) {
      setTimeout(() => { if (state.source === src) connect(); }, 5000);
    }
  };
  src.addEventListener('space', (e) => applySpace(parse(e)));
  src.addEventListener('parking', () => debounce('parking', 250, refreshParking));
  src.addEventListener('alert', () => debounce('alerts', 250, () => loadAlerts().catch(showError)));
  src.addEventListener('device', () => {
    debounce('ev', 1000, () => loadEv().catch(showError));
    debounce('ebike', 1000, () => loadEbike().catch(showError));
    debounce('devices', 3000, () => loadDevices().catch(showError));
  });
  src.addEventListener('snapshot', (e) => {
    setUpdated(parse(e).updated_at);
    debounce('parking', 1000, refreshParking);
    debounce('ev', 5000, () => loadEv().catch(showError));
    debounce('ebike', 5000, () => loadEbike().catch(showError));
    debounce('devices', 15000, () => loadDevices().catch(showError));
  });
  src.addEventListener('resync', refreshAll);
}

function refreshAll() {
  return Promise.all([
    loadParking(true), loadEv(), loadEbike(), loadAlerts(), loadDevices(),
    loadConfig().catch(showError),
  ]).catch(showError);
}

function applyLang() {
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
  document.getElementById('lang').textContent = state.lang === 'zh' ? 'EN' : '中文';
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  if (state.parking) {
    const p = state.parking;
    const siteName = p.site_name || p.site || '';
    document.title = (siteName ? siteName + ' · ' : '') + t('title');
    document.getElementById('parking-title').textContent =
      state.lang === 'zh' && p.title ? p.title : t('parking');
  } else {
    document.title = state.lang === 'zh' ? '红管家 · 小区看板' : 'hgj · compound dashboard';
  }
  renderLevels();
  if (state.ev) loadEv().catch(showError);
  if (state.ebike) loadEbike().catch(showError);
  renderAlerts();
  if (state.devices) loadDevices().catch(showError);
  renderConfig();
}

function start() {
  document.getElementById('lang').addEventListener('click', () => {
    state.lang = state.lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('hgj_lang', state.lang);
    applyLang();
  });
  document.getElementById('show-acked').addEventListener('change', () => loadAlerts().catch(showError));
  document.getElementById('ack-form').addEventListener('submit', submitAck);
  document.getElementById('ack-cancel').addEventListener('click', () => document.getElementById('ack-dialog').close());
  document.getElementById('config-rollback').addEventListener('click', openRollback);
  document.getElementById('rollback-form').addEventListener('submit', submitRollback);
  document.getElementById('rollback-cancel').addEventListener('click', () => document.getElementById('rollback-dialog').close());
  applyLang();
  refreshAll().then(connect);
  // Ages in the alert list and polling fallbacks for data that has no events.
  setInterval(renderAlerts, 30000);
  setInterval(() => loadAlerts().catch(showError), 15000);
  setInterval(() => loadConfig().catch(showError), 30000);
}

document.addEventListener('DOMContentLoaded', start);

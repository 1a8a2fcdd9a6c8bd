#include "gateway/alerts/alert_manager.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "gateway/alerts/message_format.h"

namespace hgj::alerts {

namespace {

constexpr const char* kGateway = "gateway";
// Flood summaries go out this long after the first held notification, so a storm that lasts a
// few seconds becomes one message rather than one per tick.
constexpr int64_t kSummaryDelayMs = 10'000;
constexpr size_t kSummaryDeviceList = 30;

std::string dumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

model::Value valueFromText(const std::string& text) {
  if (text.empty()) {
    return {};
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return text;
  }
  return model::fromJson(j).value_or(model::Value{});
}

} // namespace

const char* ackStatusName(AckStatus s) {
  switch (s) {
  case AckStatus::Ok:
    return "ok";
  case AckStatus::AlreadyAcked:
    return "already_acked";
  case AckStatus::UnknownId:
    return "unknown_id";
  case AckStatus::AlreadyCleared:
    return "already_cleared";
  case AckStatus::Error:
    return "error";
  }
  return "error";
}

AlertManager::AlertManager(const AlertsConfig& config,
                           std::shared_ptr<const model::Compound> compound,
                           const std::string& db_path, const core::Clock& clock,
                           core::MetricsRegistry& metrics, AlertListener& listener)
    : config_(config), compound_(std::move(compound)), clock_(clock), listener_(listener),
      db_(db_path, clock.wallMs()),
      raised_total_(metrics.counter("hgj_alerts_raised_total", "alerts raised")),
      db_errors_(metrics.counter("hgj_alert_db_errors_total",
                                 "alert changes that could not be committed")),
      queued_total_(metrics.counter("hgj_alert_notifications_queued_total",
                                    "notifications queued for people's channels")),
      summarised_total_(metrics.counter("hgj_alert_notifications_summarised_total",
                                        "notifications folded into a flood summary")),
      escalated_total_(metrics.counter("hgj_alerts_escalated_total",
                                       "alerts escalated to the escalation contacts")),
      active_gauge_(metrics.gauge("hgj_alerts_open", "open alerts by state", {{"state", "active"}})),
      acked_gauge_(metrics.gauge("hgj_alerts_open", "open alerts by state", {{"state", "acked"}})) {
  restore();
}

AlertManager::~AlertManager() {
  try {
    commitBatch();
    persistDirty();
  } catch (const std::exception& e) {
    spdlog::error("alerts: final update not persisted: {}", e.what());
  }
}

void AlertManager::dbError(const char* what, const std::exception& e) {
  db_errors_.inc();
  log_.warn("alerts: {} failed: {}", what, e.what());
  if (batch_open_) {
    abortBatch();
  }
}

AlertManager::Scope::Scope(AlertManager& m) {
  if (!m.batch_open_) {
    m.beginTx(tx_);
  } else if (!m.batch_tx_) {
    // The batch's transaction starts with its first change: a batch of readings that changes no
    // alert takes no write lock at all.
    m.beginTx(m.batch_tx_);
  }
}

void AlertManager::Scope::commit() {
  if (tx_) {
    tx_->commit();
  }
}

void AlertManager::beginTx(std::optional<AlertDb::Tx>& tx) {
  if (before_write_) {
    before_write_();
  }
  tx.emplace(db_);
}

void AlertManager::beginBatch() { batch_open_ = true; }

bool AlertManager::commitBatch() {
  if (!batch_open_) {
    return true;
  }
  bool ok = true;
  if (batch_tx_) {
    try {
      batch_tx_->commit();
    } catch (const std::exception& e) {
      db_errors_.inc();
      log_.warn("alerts: batch commit failed: {}", e.what());
      abortBatch();
      ok = false;
    }
  }
  batch_tx_.reset();
  batch_open_ = false;
  std::vector<AlertEvent> events;
  events.swap(deferred_);
  for (const auto& ev : events) {
    emit(ev.kind, ev.alert, ev.at_ms, ev.actor);
  }
  wake();
  return ok;
}

void AlertManager::abortBatch() {
  // Roll the whole batch back and reload the open alerts from what is committed, so memory and
  // database agree again; the rules raise again while their conditions hold.
  batch_tx_.reset();
  deferred_.clear();
  wake_pending_ = false;
  open_.clear();
  by_id_.clear();
  flood_.clear();
  try {
    restore();
  } catch (const std::exception& e) {
    log_.warn("alerts: reload after a failed batch failed: {}", e.what());
  }
  // The batch stays open: its next change begins a fresh transaction.
}

void AlertManager::restore() {
  int64_t now_wall = clock_.wallMs();
  int64_t now = core::steadyMs(clock_);
  Stmt q(db_.handle(),
         "SELECT id, rule, device, grid, severity, state, message, value, source_ts, raised_at, "
         "acked_at, acked_by, ack_note, escalation_level, actions FROM alerts "
         "WHERE state != 'cleared' ORDER BY id");
  Stmt last(db_.handle(), "SELECT MAX(at) FROM alert_events WHERE alert_id=? AND "
                          "kind IN ('raised','escalated','renotified')");
  while (q.step()) {
    Open o;
    AlertRecord& a = o.rec;
    a.id = q.int64(0);
    a.rule = q.text(1);
    a.device = q.text(2);
    a.grid = q.text(3);
    a.severity = parseSeverity(q.text(4)).value_or(Severity::Warning);
    a.state = parseState(q.text(5)).value_or(AlertState::Active);
    a.message = q.text(6);
    a.value = valueFromText(q.text(7));
    a.source_ts = q.int64(8);
    a.raised_at = q.int64(9);
    a.acked_at = q.int64(10);
    a.acked_by = q.text(11);
    a.ack_note = q.text(12);
    a.escalation_level = static_cast<int>(q.int64(13));
    a.actions = q.text(14);
    // Steady time does not survive a restart: rebuild it from the stored wall times, never in
    // the future (a wall clock that jumped back only delays, it cannot skip an escalation).
    o.raised_steady_ms = now - std::max<int64_t>(0, now_wall - a.raised_at);
    int64_t last_notified = a.raised_at;
    last.bind(1, a.id);
    if (last.step() && !last.isNull(0)) {
      last_notified = last.int64(0);
    }
    last.reset();
    int64_t last_steady = now - std::max<int64_t>(0, now_wall - last_notified);
    o.next_due_ms = nextDue(o, last_steady);
    Key key{a.rule, a.device};
    by_id_[a.id] = key;
    open_[key] = std::move(o);
  }
  // Notifications held for a flood summary that was never written (crash): summarise them at the
  // first tick.
  Stmt held(db_.handle(),
            "SELECT DISTINCT rule, grid, kind FROM alert_notifications WHERE state='held'");
  while (held.step()) {
    FloodWindow w;
    w.start_ms = now - config_.flood.window.count();
    w.first_held_ms = now - kSummaryDelayMs;
    flood_[FloodKey{held.text(0), held.text(1), held.text(2)}] = w;
  }
  if (!open_.empty()) {
    spdlog::info("alerts: restored {} open alerts", open_.size());
  }
  updateGauges();
  publishSnapshot();
}

int64_t AlertManager::nextDue(const Open& o, int64_t from_ms) const {
  if (o.rec.state != AlertState::Active) {
    return 0;
  }
  const SeverityPolicy& p = config_.policy(o.rec.severity);
  if (o.rec.escalation_level == 0 && p.ack_timeout.count() > 0) {
    return o.raised_steady_ms + p.ack_timeout.count();
  }
  if (p.renotify.count() > 0) {
    return from_ms + p.renotify.count();
  }
  return 0;
}

std::vector<std::string> AlertManager::channelsFor(const std::string& grid_id) const {
  const model::Grid* g = grid_id.empty() ? nullptr : compound_->grid(grid_id);
  const std::vector<std::string>& ids =
      g != nullptr && !g->channels.empty() ? g->channels : config_.default_channels;
  std::vector<std::string> out;
  for (const auto& id : ids) {
    const ChannelConfig* c = config_.channel(id);
    if (c != nullptr && c->enabled && c->type != ChannelType::Upstream) {
      out.push_back(id);
    }
  }
  return out;
}

std::map<std::string, std::string> AlertManager::vars(const AlertRecord& a) const {
  std::map<std::string, std::string> v;
  v["site"] = config_.site_name;
  v["severity"] = severityNameZh(a.severity);
  v["severity_en"] = severityName(a.severity);
  v["message"] = a.message;
  v["rule"] = a.rule;
  v["device"] = a.device;
  std::string where = a.device;
  const model::Device* d = compound_->device(a.device);
  if (d != nullptr) {
    where = describeWhere(*compound_, *d);
  }
  v["where"] = where;
  const model::Grid* g = a.grid.empty() ? nullptr : compound_->grid(a.grid);
  v["grid"] = g != nullptr && !g->name.empty() ? g->name : (a.grid.empty() ? "未分配网格" : a.grid);
  std::string value = model::toText(a.value);
  v["value"] = value.empty() ? "—" : value;
  v["since"] = formatLocalTime(a.raised_at, config_.utc_offset_minutes);
  v["source_time"] =
      formatLocalTime(a.source_ts != 0 ? a.source_ts : a.raised_at, config_.utc_offset_minutes);
  v["actions"] = a.actions.empty() ? "无" : a.actions;
  v["id"] = std::to_string(a.id);
  v["ack_url"] = config_.dashboard_url + "#alert-" + std::to_string(a.id);
  v["acked_by"] = a.acked_by;
  v["ack_note"] = a.ack_note.empty() ? "" : "（" + a.ack_note + "）";
  int64_t end = a.cleared_at != 0 ? a.cleared_at : clock_.wallMs();
  v["duration"] = formatDurationZh(end - a.raised_at);
  v["elapsed"] = formatDurationZh(clock_.wallMs() - a.raised_at);
  v["level"] = std::to_string(a.escalation_level);
  return v;
}

bool AlertManager::enqueue(const AlertRecord& a, const std::string& kind, bool mention_escalation,
                           bool mention_staff) {
  const SeverityPolicy& policy = config_.policy(a.severity);
  if (!policy.notify_people) {
    return false;
  }
  std::vector<std::string> channels = channelsFor(a.grid);
  if (channels.empty()) {
    return false;
  }
  const std::string* tpl = &config_.templates.raised;
  if (kind == "escalated") {
    tpl = &config_.templates.escalated;
  } else if (kind == "renotify") {
    tpl = &config_.templates.renotify;
  } else if (kind == "acked") {
    tpl = &config_.templates.acked;
  } else if (kind == "cleared") {
    tpl = &config_.templates.cleared;
  }
  std::string body = renderTemplate(*tpl, vars(a));

  nlohmann::json users = nlohmann::json::array();
  nlohmann::json mobiles = nlohmann::json::array();
  if (const model::Grid* g = a.grid.empty() ? nullptr : compound_->grid(a.grid)) {
    auto add = [&](const std::vector<model::Staff>& people) {
      for (const auto& s : people) {
        if (!s.wecom_user.empty()) {
          users.push_back(s.wecom_user);
        }
        const std::string& m = s.dingtalk_mobile.empty() ? s.phone : s.dingtalk_mobile;
        if (!m.empty()) {
          mobiles.push_back(m);
        }
      }
    };
    if (mention_staff) {
      add(g->staff);
    }
    if (mention_escalation) {
      add(g->escalation);
    }
  }
  nlohmann::json mentions{{"wecom", users}, {"mobiles", mobiles}};
  nlohmann::json data = toJson(a);
  if (const model::Device* d = compound_->device(a.device)) {
    data["location"] = describeWhere(*compound_, *d);
  }
  data["level"] = mention_escalation ? 1 : 0;

  // Flood control: count this kind of notification for (rule, grid); past the threshold within
  // the window, hold it for one summary instead of sending it on its own.
  bool hold = false;
  int64_t now = core::steadyMs(clock_);
  if (config_.flood.threshold > 0 && kind != "acked") {
    FloodKey fk{a.rule, a.grid, kind};
    FloodWindow& w = flood_[fk];
    if (w.count == 0 || now - w.start_ms >= config_.flood.window.count()) {
      if (w.first_held_ms != 0) {
        flushSummary(fk);
      }
      FloodWindow& fresh = flood_[fk];
      fresh.start_ms = now;
      fresh.count = 0;
      fresh.first_held_ms = 0;
    }
    FloodWindow& cur = flood_[fk];
    ++cur.count;
    if (cur.count > config_.flood.threshold) {
      hold = true;
      if (cur.first_held_ms == 0) {
        cur.first_held_ms = now;
      }
    }
  }

  Stmt ins(db_.handle(),
           "INSERT INTO alert_notifications(alert_id, channel, kind, level, rule, grid, severity, "
           "created_at, state, body, mentions, data) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
  std::string mentions_text = dumpJson(mentions);
  std::string data_text = dumpJson(data);
  for (const auto& ch : channels) {
    ins.bind(1, a.id)
        .bind(2, ch)
        .bind(3, kind)
        .bind(4, mention_escalation ? 1 : 0)
        .bind(5, a.rule)
        .bind(6, a.grid)
        .bind(7, severityName(a.severity))
        .bind(8, clock_.wallMs())
        .bind(9, hold ? "held" : "pending")
        .bind(10, body)
        .bind(11, mentions_text)
        .bind(12, data_text)
        .run();
  }
  if (hold) {
    summarised_total_.inc(channels.size());
    return false;
  }
  queued_total_.inc(channels.size());
  return true;
}

void AlertManager::flushSummary(const FloodKey& key) {
  const auto& [rule, grid, kind] = key;
  // One summary per channel, listing the held alerts' devices and mentioning everyone they
  // would have mentioned.
  Stmt q(db_.handle(),
         "SELECT n.id, n.channel, n.severity, n.mentions, a.device, a.message, a.id "
         "FROM alert_notifications n LEFT JOIN alerts a ON a.id = n.alert_id "
         "WHERE n.state='held' AND n.rule=? AND n.grid=? AND n.kind=? ORDER BY n.channel, n.id");
  q.bind(1, rule).bind(2, grid).bind(3, kind);
  struct Pending {
    std::vector<int64_t> rows;
    std::vector<std::string> devices;
    std::vector<int64_t> alert_ids;
    Severity severity = Severity::Info;
    std::string message;
    std::vector<std::string> users;
    std::vector<std::string> mobiles;
  };
  std::map<std::string, Pending> by_channel;
  while (q.step()) {
    Pending& p = by_channel[q.text(1)];
    p.rows.push_back(q.int64(0));
    p.severity = std::max(p.severity, parseSeverity(q.text(2)).value_or(Severity::Warning));
    auto m = nlohmann::json::parse(q.text(3), nullptr, false);
    auto merge = [](std::vector<std::string>& into, const nlohmann::json& list) {
      if (!list.is_array()) {
        return;
      }
      for (const auto& v : list) {
        if (v.is_string() && std::find(into.begin(), into.end(), v.get<std::string>()) ==
                                 into.end()) {
          into.push_back(v.get<std::string>());
        }
      }
    };
    if (m.is_object()) {
      merge(p.users, m.value("wecom", nlohmann::json::array()));
      merge(p.mobiles, m.value("mobiles", nlohmann::json::array()));
    }
    p.devices.push_back(q.text(4));
    if (p.message.empty()) {
      p.message = q.text(5);
    }
    p.alert_ids.push_back(q.int64(6));
  }
  q.reset();

  Stmt ins(db_.handle(),
           "INSERT INTO alert_notifications(alert_id, channel, kind, level, rule, grid, severity, "
           "created_at, state, body, mentions, data) VALUES(NULL,?,'summary',0,?,?,?,?,"
           "'pending',?,?,?)");
  Stmt upd(db_.handle(), "UPDATE alert_notifications SET state='summarised', summary_id=? "
                         "WHERE id=?");
  const model::Grid* g = grid.empty() ? nullptr : compound_->grid(grid);
  for (auto& [channel, p] : by_channel) {
    std::string devices;
    for (size_t i = 0; i < p.devices.size() && i < kSummaryDeviceList; ++i) {
      devices += (i > 0 ? "、" : "") + p.devices[i];
    }
    if (p.devices.size() > kSummaryDeviceList) {
      devices += " 等 " + std::to_string(p.devices.size()) + " 个设备";
    }
    std::map<std::string, std::string> v;
    v["site"] = config_.site_name;
    v["severity"] = severityNameZh(p.severity);
    v["severity_en"] = severityName(p.severity);
    v["count"] = std::to_string(p.rows.size());
    v["rule"] = rule;
    v["kind"] = kind;
    v["kind_zh"] = kind == "cleared"     ? "已恢复"
                   : kind == "escalated" ? "升级告警"
                   : kind == "renotify"  ? "再次提醒"
                                         : "告警";
    v["message"] = p.message;
    v["grid"] = g != nullptr && !g->name.empty() ? g->name : (grid.empty() ? "未分配网格" : grid);
    v["devices"] = devices;
    v["ack_url"] = config_.dashboard_url;
    std::string body = renderTemplate(config_.templates.summary, v);
    nlohmann::json data{{"rule", rule},          {"grid", grid},
                        {"kind", kind},          {"severity", severityName(p.severity)},
                        {"count", p.rows.size()}, {"devices", p.devices},
                        {"alert_ids", p.alert_ids}};
    nlohmann::json mentions{{"wecom", p.users}, {"mobiles", p.mobiles}};
    ins.bind(1, channel)
        .bind(2, rule)
        .bind(3, grid)
        .bind(4, severityName(p.severity))
        .bind(5, clock_.wallMs())
        .bind(6, body)
        .bind(7, dumpJson(mentions))
        .bind(8, dumpJson(data))
        .run();
    int64_t summary_id = db_.lastInsertId();
    for (int64_t row : p.rows) {
      upd.bind(1, summary_id).bind(2, row).run();
    }
    queued_total_.inc();
    wake_pending_ = true;
  }
  auto it = flood_.find(key);
  if (it != flood_.end()) {
    it->second.first_held_ms = 0;
  }
}

void AlertManager::insertEvent(int64_t alert_id, const char* kind, int64_t at,
                               const std::string& actor, const std::string& detail) {
  Stmt ins(db_.handle(),
           "INSERT INTO alert_events(alert_id, kind, at, actor, detail) VALUES(?,?,?,?,?)");
  ins.bind(1, alert_id).bind(2, kind).bind(3, at).bind(4, actor).bindOpt(5, detail).run();
}

void AlertManager::emit(AlertEventKind kind, const AlertRecord& a, int64_t at,
                        const std::string& actor) {
  AlertEvent ev;
  ev.kind = kind;
  ev.alert = a;
  ev.at_ms = at;
  ev.actor = actor;
  if (batch_open_) {
    deferred_.push_back(std::move(ev));
    return;
  }
  try {
    listener_.onAlertEvent(ev);
  } catch (const std::exception& e) {
    log_.warn("alerts: listener failed on {} of alert {}: {}", eventKindName(kind), a.id,
              e.what());
  }
}

void AlertManager::wake() {
  if (batch_open_) {
    return;
  }
  if (wake_pending_ && wake_) {
    wake_();
  }
  wake_pending_ = false;
}

RaiseResult AlertManager::raise(const AlertRaise& r) {
  RaiseResult result;
  std::string device_id = r.device_id;
  std::string grid;
  if (r.device != model::kNoDevice) {
    if (r.device >= compound_->devices.size()) {
      result.error = "unknown device index " + std::to_string(r.device);
      log_.warn("alerts: rule {} raised for {}", r.rule, result.error);
      return result;
    }
    const model::Device& d = compound_->devices[r.device];
    device_id = d.id;
    grid = d.grid;
  }
  if (device_id.empty()) {
    device_id = kGateway;
  }
  Key key{r.rule, device_id};
  auto it = open_.find(key);
  if (it != open_.end()) {
    // A repeat: the same incident, still open. Keep the latest figures; the row is updated on
    // the next tick so a rule repeating at the reading rate does not cost a commit per reading.
    AlertRecord& a = it->second.rec;
    a.value = r.value;
    a.source_ts = r.source_ms;
    if (!r.message.empty()) {
      a.message = r.message;
    }
    if (!r.actions.empty()) {
      a.actions = r.actions;
    }
    it->second.dirty = true;
    result.ok = true;
    result.alert_id = a.id;
    return result;
  }

  Open o;
  AlertRecord& a = o.rec;
  a.rule = r.rule;
  a.device = device_id;
  a.grid = grid;
  a.severity = r.severity;
  a.state = AlertState::Active;
  a.message = r.message;
  a.value = r.value;
  a.source_ts = r.source_ms;
  a.raised_at = clock_.wallMs();
  a.actions = r.actions;
  const SeverityPolicy& policy = config_.policy(r.severity);
  bool at_once = r.escalate_now || policy.escalate_at_once;
  a.escalation_level = at_once ? 1 : 0;
  o.raised_steady_ms = core::steadyMs(clock_);
  try {
    Scope tx(*this);
    Stmt ins(db_.handle(),
             "INSERT INTO alerts(rule, device, grid, severity, state, message, value, source_ts, "
             "raised_at, escalation_level, actions) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
    ins.bind(1, a.rule)
        .bind(2, a.device)
        .bindOpt(3, a.grid)
        .bind(4, severityName(a.severity))
        .bind(5, "active")
        .bind(6, a.message)
        .bind(7, dumpJson(model::toJson(a.value)))
        .bind(8, a.source_ts)
        .bind(9, a.raised_at)
        .bind(10, a.escalation_level)
        .bindOpt(11, a.actions)
        .run();
    a.id = db_.lastInsertId();
    insertEvent(a.id, "raised", a.raised_at, kGateway, at_once ? "escalated at once" : "");
    if (enqueue(a, "raised", at_once, true)) {
      wake_pending_ = true;
    }
    tx.commit();
  } catch (const std::exception& e) {
    dbError("raise", e);
    result.error = e.what();
    wake_pending_ = false;
    return result;
  }
  raised_total_.inc();
  o.next_due_ms = nextDue(o, o.raised_steady_ms);
  by_id_[a.id] = key;
  AlertRecord copy = a;
  open_[key] = std::move(o);
  updateGauges();
  emit(AlertEventKind::Raised, copy, copy.raised_at, kGateway);
  if (at_once) {
    escalated_total_.inc();
  }
  wake();
  result.ok = true;
  result.created = true;
  result.alert_id = copy.id;
  return result;
}

AckResult AlertManager::ack(int64_t alert_id, const std::string& by, const std::string& note) {
  AckResult result;
  auto idx = by_id_.find(alert_id);
  if (idx == by_id_.end()) {
    try {
      Stmt q(db_.handle(), "SELECT state FROM alerts WHERE id=?");
      q.bind(1, alert_id);
      if (q.step()) {
        result.status = AckStatus::AlreadyCleared;
      } else {
        result.status = AckStatus::UnknownId;
      }
    } catch (const std::exception& e) {
      dbError("ack lookup", e);
      result.status = AckStatus::Error;
      result.error = e.what();
    }
    return result;
  }
  Open& o = open_.at(idx->second);
  if (o.rec.state == AlertState::Acked) {
    result.status = AckStatus::AlreadyAcked;
    result.alert = o.rec;
    return result;
  }
  AlertRecord a = o.rec;
  a.state = AlertState::Acked;
  a.acked_at = clock_.wallMs();
  a.acked_by = by.empty() ? "operator" : by;
  a.ack_note = note;
  try {
    Scope tx(*this);
    Stmt upd(db_.handle(),
             "UPDATE alerts SET state='acked', acked_at=?, acked_by=?, ack_note=? WHERE id=?");
    upd.bind(1, a.acked_at).bind(2, a.acked_by).bindOpt(3, a.ack_note).bind(4, a.id).run();
    insertEvent(a.id, "acked", a.acked_at, a.acked_by, note);
    if (config_.policy(a.severity).notify_ack && enqueue(a, "acked", false, false)) {
      wake_pending_ = true;
    }
    tx.commit();
  } catch (const std::exception& e) {
    dbError("ack", e);
    wake_pending_ = false;
    result.status = AckStatus::Error;
    result.error = e.what();
    return result;
  }
  o.rec = a;
  o.next_due_ms = 0;
  updateGauges();
  emit(AlertEventKind::Acked, a, a.acked_at, a.acked_by);
  wake();
  result.status = AckStatus::Ok;
  result.alert = a;
  return result;
}

bool AlertManager::clear(const std::string& rule, model::DeviceIndex device) {
  if (device >= compound_->devices.size()) {
    return false;
  }
  return clear(rule, compound_->devices[device].id);
}

bool AlertManager::clear(const std::string& rule, const std::string& device_id) {
  auto it = open_.find(Key{rule, device_id.empty() ? kGateway : device_id});
  if (it == open_.end()) {
    return false;
  }
  AlertRecord a = it->second.rec;
  a.state = AlertState::Cleared;
  a.cleared_at = clock_.wallMs();
  try {
    Scope tx(*this);
    Stmt upd(db_.handle(), "UPDATE alerts SET state='cleared', cleared_at=?, message=?, value=?, "
                           "source_ts=?, actions=? WHERE id=?");
    upd.bind(1, a.cleared_at)
        .bind(2, a.message)
        .bind(3, dumpJson(model::toJson(a.value)))
        .bind(4, a.source_ts)
        .bindOpt(5, a.actions)
        .bind(6, a.id)
        .run();
    insertEvent(a.id, "cleared", a.cleared_at, kGateway, "");
    if (config_.policy(a.severity).notify_clear && enqueue(a, "cleared", false, false)) {
      wake_pending_ = true;
    }
    tx.commit();
  } catch (const std::exception& e) {
    dbError("clear", e);
    wake_pending_ = false;
    return false;
  }
  by_id_.erase(a.id);
  open_.erase(it);
  updateGauges();
  emit(AlertEventKind::Cleared, a, a.cleared_at, kGateway);
  wake();
  return true;
}

void AlertManager::persistDirty() {
  bool any = std::any_of(open_.begin(), open_.end(), [](const auto& kv) { return kv.second.dirty; });
  if (!any) {
    return;
  }
  Scope tx(*this);
  Stmt upd(db_.handle(),
           "UPDATE alerts SET message=?, value=?, source_ts=?, actions=? WHERE id=?");
  for (auto& [key, o] : open_) {
    if (!o.dirty) {
      continue;
    }
    upd.bind(1, o.rec.message)
        .bind(2, dumpJson(model::toJson(o.rec.value)))
        .bind(3, o.rec.source_ts)
        .bindOpt(4, o.rec.actions)
        .bind(5, o.rec.id)
        .run();
  }
  tx.commit();
  for (auto& [key, o] : open_) {
    o.dirty = false;
  }
  updateGauges();
}

void AlertManager::tick() {
  try {
    persistDirty();
  } catch (const std::exception& e) {
    dbError("update", e);
  }
  publishSnapshot();

  int64_t now = core::steadyMs(clock_);
  int64_t now_wall = clock_.wallMs();
  std::vector<Key> due;
  for (const auto& [key, o] : open_) {
    if (o.next_due_ms != 0 && now >= o.next_due_ms) {
      due.push_back(key);
    }
  }
  std::vector<FloodKey> summaries;
  for (const auto& [fk, w] : flood_) {
    if (w.first_held_ms != 0 && (now - w.first_held_ms >= kSummaryDelayMs ||
                                 now - w.start_ms >= config_.flood.window.count())) {
      summaries.push_back(fk);
    }
  }
  if (due.empty() && summaries.empty()) {
    return;
  }

  std::vector<AlertRecord> escalated;
  std::map<Key, Open> updated;
  try {
    Scope tx(*this);
    Stmt lvl(db_.handle(), "UPDATE alerts SET escalation_level=? WHERE id=?");
    for (const Key& key : due) {
      Open o = open_.at(key);
      const SeverityPolicy& p = config_.policy(o.rec.severity);
      if (o.rec.escalation_level == 0 && p.ack_timeout.count() > 0) {
        o.rec.escalation_level = 1;
        lvl.bind(1, 1).bind(2, o.rec.id).run();
        insertEvent(o.rec.id, "escalated", now_wall, kGateway,
                    "unacknowledged for " + std::to_string(p.ack_timeout.count() / 1000) + "s");
        if (enqueue(o.rec, "escalated", true, true)) {
          wake_pending_ = true;
        }
        escalated.push_back(o.rec);
        o.next_due_ms = p.renotify.count() > 0 ? now + p.renotify.count() : 0;
      } else {
        insertEvent(o.rec.id, "renotified", now_wall, kGateway, "");
        if (enqueue(o.rec, "renotify", o.rec.escalation_level > 0, true)) {
          wake_pending_ = true;
        }
        // Keep the cadence but never fire twice for one tick that came late.
        int64_t interval = p.renotify.count();
        o.next_due_ms = interval > 0 ? std::max(o.next_due_ms + interval, now + 1) : 0;
      }
      updated[key] = std::move(o);
    }
    for (const FloodKey& fk : summaries) {
      flushSummary(fk);
    }
    tx.commit();
  } catch (const std::exception& e) {
    dbError("escalation", e);
    wake_pending_ = false;
    return;
  }
  for (auto& [key, o] : updated) {
    open_[key] = std::move(o);
  }
  updateGauges();
  for (const auto& a : escalated) {
    escalated_total_.inc();
    emit(AlertEventKind::Escalated, a, now_wall, kGateway);
  }
  wake();
}

void AlertManager::updateGauges() {
  int active = 0;
  int acked = 0;
  for (const auto& [key, o] : open_) {
    (o.rec.state == AlertState::Acked ? acked : active)++;
  }
  active_gauge_.set(active);
  acked_gauge_.set(acked);
  snapshot_dirty_ = true;
}

void AlertManager::publishSnapshot() {
  // Rebuilt at most once per tick: copying every open alert on each change would make a storm
  // quadratic on the pipeline thread.
  if (!snapshot_dirty_) {
    return;
  }
  std::vector<AlertRecord> snap;
  snap.reserve(open_.size());
  for (const auto& [key, o] : open_) {
    snap.push_back(o.rec);
  }
  std::sort(snap.begin(), snap.end(),
            [](const AlertRecord& x, const AlertRecord& y) { return x.id < y.id; });
  snapshot_dirty_ = false;
  std::lock_guard lock(snapshot_mu_);
  snapshot_ = std::move(snap);
}

std::vector<AlertRecord> AlertManager::openAlerts() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

std::optional<AlertRecord> AlertManager::find(const std::string& rule,
                                              const std::string& device_id) const {
  auto it = open_.find(Key{rule, device_id});
  if (it == open_.end()) {
    return std::nullopt;
  }
  return it->second.rec;
}

} // namespace hgj::alerts

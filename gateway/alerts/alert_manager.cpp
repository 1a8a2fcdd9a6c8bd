#include "gateway/alerts/alert_manager.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/enum_names.h"
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

constexpr core::EnumNames<AckStatus, 5> kAckStatusNames{
    {{AckStatus::Ok, "ok"}, {AckStatus::AlreadyAcked, "already_acked"},
     {AckStatus::UnknownId, "unknown_id"}, {AckStatus::AlreadyCleared, "already_cleared"},
     {AckStatus::Error, "error"}}};

const char* ackStatusName(AckStatus s) { return kAckStatusNames.name(s, "error"); }

AlertManager::AlertManager(const AlertsConfig& config,
                           std::shared_ptr<const model::Compound> compound,
                           const std::string& db_path, storage::DurableSink& sink,
                           const core::Clock& clock, core::MetricsRegistry& metrics,
                           AlertListener& listener)
    : AlertManager(config, std::move(compound), db_path, nullptr, &sink, clock, metrics,
                   listener) {}

AlertManager::AlertManager(const AlertsConfig& config,
                           std::shared_ptr<const model::Compound> compound,
                           const std::string& db_path, const core::Clock& clock,
                           core::MetricsRegistry& metrics, AlertListener& listener)
    : AlertManager(config, std::move(compound), db_path,
                   std::make_unique<storage::DirectSink>(db_path), nullptr, clock, metrics,
                   listener) {}

AlertManager::AlertManager(const AlertsConfig& config,
                           std::shared_ptr<const model::Compound> compound,
                           const std::string& db_path,
                           std::unique_ptr<storage::DirectSink> own_sink,
                           storage::DurableSink* sink, const core::Clock& clock,
                           core::MetricsRegistry& metrics, AlertListener& listener)
    : config_(config), compound_(std::move(compound)), clock_(clock), listener_(listener),
      db_(db_path), own_sink_(std::move(own_sink)),
      sink_(sink != nullptr ? sink : own_sink_.get()),
      raised_total_(metrics.counter("hgj_alerts_raised_total", "alerts raised")),
      db_errors_(metrics.counter("hgj_alert_db_errors_total",
                                 "alert lookups that failed on the database")),
      queued_total_(metrics.counter("hgj_alert_notifications_queued_total",
                                    "notifications queued for people's channels")),
      summarised_total_(metrics.counter("hgj_alert_notifications_summarised_total",
                                        "notifications folded into a flood summary")),
      escalated_total_(metrics.counter("hgj_alerts_escalated_total",
                                       "alerts escalated to the escalation contacts")),
      active_gauge_(metrics.gauge("hgj_alerts_open", "open alerts by state", {{"state", "active"}})),
      acked_gauge_(metrics.gauge("hgj_alerts_open", "open alerts by state", {{"state", "acked"}})) {
  createAlertsSchema(db_, clock_.wallMs());
  alert_ids_.open(db_);
  note_ids_.open(db_);
  first_id_this_boot_ = alert_ids_.peek();
  restore();
}

AlertManager::~AlertManager() {
  persistDirty();
  batch_open_ = false;
  submitWrites();
  if (own_sink_) {
    own_sink_->retry();
  }
  alert_ids_.close(db_);
  note_ids_.close(db_);
}

void AlertManager::write(std::function<void(storage::Database&)> apply, size_t bytes) {
  writes_.push_back({std::move(apply), nullptr, bytes});
}

void AlertManager::submitWrites() {
  if (batch_open_) {
    return;
  }
  if (!writes_.empty()) {
    sink_->submit(std::exchange(writes_, {}));
  }
  // The Notifier sees a notification only once its row is submitted: the row's insert is then
  // always ahead of the delivery state the Notifier records after sending it.
  for (auto& n : new_notes_) {
    book_.add(std::move(n));
  }
  new_notes_.clear();
}

int64_t AlertManager::newId(IdBlocks& ids) {
  int64_t id = ids.next();
  if (int64_t upto = ids.wantReserve(); upto != 0) {
    // The next block is recorded in this change's own transaction, long before it is needed.
    write([name = ids.name(), upto](storage::Database& db) {
      IdBlocks::writeReservation(db, name, upto);
    },
          64);
  }
  return id;
}

void AlertManager::setAlertState(int64_t alert_id, AlertState state) {
  book_.setAlertState(alert_id, state);
  for (auto& n : new_notes_) {
    if (n.alert_id == alert_id) {
      n.alert_state = state;
    }
  }
}

void AlertManager::beginBatch() { batch_open_ = true; }

bool AlertManager::commitBatch() {
  batch_open_ = false;
  submitWrites();
  wake();
  return true;
}

void AlertManager::restore() {
  int64_t now_wall = clock_.wallMs();
  int64_t now = core::steadyMs(clock_);
  storage::Statement q = db_.prepare(
      "SELECT id, rule, device, grid, severity, state, message, value, source_ts, raised_at, "
      "acked_at, acked_by, ack_note, escalation_level, actions FROM alerts "
      "WHERE state != 'cleared' ORDER BY id");
  storage::Statement last = db_.prepare(
      "SELECT MAX(at) FROM alert_events WHERE alert_id=? AND "
      "kind IN ('raised','escalated','renotified')");
  storage::Statement::Scope q_scope(q);
  while (q.step()) {
    Open o;
    AlertRecord& a = o.rec;
    a.id = q.columnInt(0);
    a.rule = q.columnText(1);
    a.device = q.columnText(2);
    a.grid = q.columnText(3);
    a.severity = parseSeverity(q.columnText(4)).value_or(Severity::Warning);
    a.state = parseState(q.columnText(5)).value_or(AlertState::Active);
    a.message = q.columnText(6);
    a.value = valueFromText(q.columnText(7));
    a.source_ts = q.columnInt(8);
    a.raised_at = q.columnInt(9);
    a.acked_at = q.columnInt(10);
    a.acked_by = q.columnText(11);
    a.ack_note = q.columnText(12);
    a.escalation_level = static_cast<int>(q.columnInt(13));
    a.actions = q.columnText(14);
    // Steady time does not survive a restart: rebuild it from the stored wall times, never in
    // the future (a wall clock that jumped back only delays, it cannot skip an escalation).
    o.raised_steady_ms = now - std::max<int64_t>(0, now_wall - a.raised_at);
    int64_t last_notified = a.raised_at;
    {
      storage::Statement::Scope scope(last);
      last.bind(1, a.id);
      if (last.step() && !last.columnNull(0)) {
        last_notified = last.columnInt(0);
      }
    }
    int64_t last_steady = now - std::max<int64_t>(0, now_wall - last_notified);
    o.next_due_ms = nextDue(o, last_steady);
    Key key{a.rule, a.device};
    by_id_[a.id] = key;
    open_[key] = std::move(o);
  }
  // Undelivered notifications go back into the Notifier's queue; those held for a flood
  // summary that was never written (crash) are summarised at the first tick.
  storage::Statement n = db_.prepare(
      "SELECT n.id, n.alert_id, n.channel, n.kind, n.level, n.rule, n.grid, n.severity, "
      "n.created_at, n.state, n.attempts, n.body, n.mentions, n.data, a.state "
      "FROM alert_notifications n LEFT JOIN alerts a ON a.id = n.alert_id "
      "WHERE n.state IN ('pending', 'held') ORDER BY n.id");
  storage::Statement::Scope n_scope(n);
  size_t waiting = 0;
  while (n.step()) {
    Notification note{
        .id = n.columnInt(0),
        .alert_id = n.columnInt(1),
        .channel = n.columnText(2),
        .kind = n.columnText(3),
        .level = static_cast<int>(n.columnInt(4)),
        .rule = n.columnText(5),
        .grid = n.columnText(6),
        .severity = n.columnText(7),
        .created_at = n.columnInt(8),
        .state = n.columnText(9) == "held" ? Notification::State::Held
                                           : Notification::State::Pending,
        .attempts = static_cast<int>(n.columnInt(10)),
        .body = n.columnText(11),
        .mentions = n.columnText(12),
        .data = n.columnText(13),
        .alert_state = parseState(n.columnText(14)).value_or(AlertState::Active),
    };
    book_.add(std::move(note));
    ++waiting;
  }
  for (const auto& key : book_.heldKeys()) {
    FloodWindow w;
    w.start_ms = now - config_.flood.window.count();
    w.first_held_ms = now - kSummaryDelayMs;
    flood_[key] = w;
  }
  if (!open_.empty() || waiting > 0) {
    spdlog::info("alerts: restored {} open alerts, {} undelivered notifications", open_.size(),
                 waiting);
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
  // The people responsible, by name and phone (not only as @mentions, which some phones hide).
  static const std::vector<model::Staff> kNobody;
  const auto& staff = g != nullptr ? g->staff : kNobody;
  const auto& escalation = g != nullptr ? g->escalation : kNobody;
  v["staff"] = staffText(staff);
  v["staff_names"] = staffNames(staff);
  v["staff_phones"] = staffPhones(staff);
  v["escalation_staff"] = staffText(escalation);
  v["escalation_names"] = staffNames(escalation);
  v["escalation_phones"] = staffPhones(escalation);
  v["value"] = formatValueZh(a.value, units_ ? units_(a) : std::string());
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

  const std::string mentions_text = dumpJson(mentions);
  const std::string data_text = dumpJson(data);
  const int64_t now_wall = clock_.wallMs();
  for (const auto& ch : channels) {
    Notification n;
    n.id = newId(note_ids_);
    n.alert_id = a.id;
    n.channel = ch;
    n.kind = kind;
    n.level = mention_escalation ? 1 : 0;
    n.rule = a.rule;
    n.grid = a.grid;
    n.severity = severityName(a.severity);
    n.created_at = now_wall;
    n.state = hold ? Notification::State::Held : Notification::State::Pending;
    n.body = body;
    n.mentions = mentions_text;
    n.data = data_text;
    n.alert_state = a.state;
    insertNotification(n, hold ? "held" : "pending");
    new_notes_.push_back(std::move(n));
  }
  if (hold) {
    summarised_total_.inc(channels.size());
    return false;
  }
  queued_total_.inc(channels.size());
  return true;
}

void AlertManager::insertNotification(const Notification& n, const char* state) {
  write([n, state](storage::Database& db) {
    using Opt = storage::Statement::Opt<int64_t>;
    db.cached("INSERT OR REPLACE INTO alert_notifications(id, alert_id, channel, kind, level, "
              "rule, grid, severity, created_at, state, body, mentions, data) "
              "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)")
        .bindAll(n.id, Opt{n.alert_id}, n.channel, n.kind, n.level, n.rule, n.grid, n.severity,
                 n.created_at, state, n.body, n.mentions, n.data)
        .run();
  },
        256 + n.body.size() + n.data.size() + n.mentions.size());
}

namespace {

// The held notifications of one flood, gathered per channel for its summary: the held alerts'
// devices, and everyone they would have mentioned.
struct SummaryGroup {
  std::vector<int64_t> rows;
  std::vector<std::string> devices;
  std::vector<int64_t> alert_ids;
  Severity severity = Severity::Info;
  std::string message;
  std::vector<std::string> users;
  std::vector<std::string> mobiles;
};

void mergeNames(std::vector<std::string>& into, const nlohmann::json& list) {
  if (!list.is_array()) {
    return;
  }
  for (const auto& v : list) {
    if (v.is_string() && std::find(into.begin(), into.end(), v.get<std::string>()) == into.end()) {
      into.push_back(v.get<std::string>());
    }
  }
}

std::map<std::string, SummaryGroup> groupByChannel(const std::vector<Notification>& held) {
  std::map<std::string, SummaryGroup> by_channel;
  for (const auto& n : held) {
    SummaryGroup& p = by_channel[n.channel];
    p.rows.push_back(n.id);
    p.severity = std::max(p.severity, parseSeverity(n.severity).value_or(Severity::Warning));
    auto m = nlohmann::json::parse(n.mentions, nullptr, false);
    if (m.is_object()) {
      mergeNames(p.users, m.value("wecom", nlohmann::json::array()));
      mergeNames(p.mobiles, m.value("mobiles", nlohmann::json::array()));
    }
    auto d = nlohmann::json::parse(n.data, nullptr, false);
    std::string device = d.is_object() ? d.value("device", std::string()) : std::string();
    std::string message = d.is_object() ? d.value("message", std::string()) : std::string();
    p.devices.push_back(device);
    if (p.message.empty()) {
      p.message = message;
    }
    p.alert_ids.push_back(n.alert_id);
  }
  return by_channel;
}

} // namespace

std::vector<Notification> AlertManager::takeHeld(const FloodKey& key) {
  const auto& [rule, grid, kind] = key;
  std::vector<Notification> held = book_.takeHeld(rule, grid, kind);
  for (auto it = new_notes_.begin(); it != new_notes_.end();) {
    if (it->state == Notification::State::Held && it->rule == rule && it->grid == grid &&
        it->kind == kind) {
      held.push_back(std::move(*it));
      it = new_notes_.erase(it);
    } else {
      ++it;
    }
  }
  std::sort(held.begin(), held.end(),
            [](const Notification& a, const Notification& b) { return a.id < b.id; });
  return held;
}

void AlertManager::flushSummary(const FloodKey& key) {
  const auto& [rule, grid, kind] = key;
  // One summary per channel, listing the held alerts' devices and mentioning everyone they
  // would have mentioned.
  std::map<std::string, SummaryGroup> by_channel = groupByChannel(takeHeld(key));

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
    if (g != nullptr) {
      v["staff"] = staffText(g->staff);
      v["staff_names"] = staffNames(g->staff);
      v["staff_phones"] = staffPhones(g->staff);
    } else {
      v["staff"] = v["staff_names"] = v["staff_phones"] = "—";
    }
    nlohmann::json data{{"rule", rule},          {"grid", grid},
                        {"kind", kind},          {"severity", severityName(p.severity)},
                        {"count", p.rows.size()}, {"devices", p.devices},
                        {"alert_ids", p.alert_ids}};
    nlohmann::json mentions{{"wecom", p.users}, {"mobiles", p.mobiles}};
    Notification summary;
    summary.id = newId(note_ids_);
    summary.channel = channel;
    summary.kind = "summary";
    summary.rule = rule;
    summary.grid = grid;
    summary.severity = severityName(p.severity);
    summary.created_at = clock_.wallMs();
    summary.body = renderTemplate(config_.templates.summary, v);
    summary.mentions = dumpJson(mentions);
    summary.data = dumpJson(data);
    insertNotification(summary, "pending");
    write([ids = p.rows, summary_id = summary.id](storage::Database& db) {
      auto& upd = db.cached("UPDATE alert_notifications SET state='summarised', summary_id=? "
                            "WHERE id=?");
      for (int64_t row : ids) {
        upd.bind(1, summary_id).bind(2, row).run();
      }
    },
          64 + p.rows.size() * 8);
    new_notes_.push_back(std::move(summary));
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
  write([alert_id, kind, at, actor, detail](storage::Database& db) {
    db.cached("INSERT INTO alert_events(alert_id, kind, at, actor, detail) VALUES(?,?,?,?,?)")
        .bind(1, alert_id)
        .bind(2, kind)
        .bind(3, at)
        .bind(4, actor)
        .bindOpt(5, detail)
        .run();
  },
        128 + actor.size() + detail.size());
}

void AlertManager::emit(AlertEventKind kind, const AlertRecord& a, int64_t at,
                        const std::string& actor) {
  AlertEvent ev;
  ev.kind = kind;
  ev.alert = a;
  ev.at_ms = at;
  ev.actor = actor;
  // Upstream first: the message goes out now, its outbox row rides in this change's
  // transaction.
  if (upstream_) {
    try {
      if (auto w = upstream_(ev)) {
        writes_.push_back(std::move(*w));
      }
    } catch (const std::exception& e) {
      log_.warn("alerts: upstream failed on {} of alert {}: {}", eventKindName(kind), a.id,
                e.what());
    }
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
  a.id = newId(alert_ids_);
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

  write([a, value = dumpJson(model::toJson(a.value))](storage::Database& db) {
    using Opt = storage::Statement::Opt<std::string>;
    db.cached("INSERT OR REPLACE INTO alerts(id, rule, device, grid, severity, state, message, "
              "value, source_ts, raised_at, escalation_level, actions) "
              "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)")
        .bindAll(a.id, a.rule, a.device, Opt{a.grid}, severityName(a.severity), "active",
                 a.message, value, a.source_ts, a.raised_at, a.escalation_level, Opt{a.actions})
        .run();
  },
        256 + a.message.size());
  insertEvent(a.id, "raised", a.raised_at, kGateway, at_once ? "escalated at once" : "");
  // Announced before its notifications are queued, so the upstream message (the fastest way to
  // the platform) is on its way first.
  AlertRecord copy = a;
  raised_total_.inc();
  o.next_due_ms = nextDue(o, o.raised_steady_ms);
  by_id_[a.id] = key;
  open_[key] = std::move(o);
  updateGauges();
  emit(AlertEventKind::Raised, copy, copy.raised_at, kGateway);
  if (enqueue(copy, "raised", at_once, true)) {
    wake_pending_ = true;
  }
  if (at_once) {
    escalated_total_.inc();
  }
  submitWrites();
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
    if (alert_id >= first_id_this_boot_ && alert_id < alert_ids_.peek()) {
      // Raised during this run and no longer open: cleared (its rows may still be on their
      // way to the disk).
      result.status = AckStatus::AlreadyCleared;
      return result;
    }
    try {
      storage::Statement q = db_.prepare("SELECT state FROM alerts WHERE id=?");
      storage::Statement::Scope scope(q);
      q.bind(1, alert_id);
      result.status = q.step() ? AckStatus::AlreadyCleared : AckStatus::UnknownId;
    } catch (const std::exception& e) {
      db_errors_.inc();
      log_.warn("alerts: ack lookup failed: {}", e.what());
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
  write([a](storage::Database& db) {
    db.cached("UPDATE alerts SET state='acked', acked_at=?, acked_by=?, ack_note=? WHERE id=?")
        .bind(1, a.acked_at)
        .bind(2, a.acked_by)
        .bindOpt(3, a.ack_note)
        .bind(4, a.id)
        .run();
  },
        128 + a.acked_by.size() + a.ack_note.size());
  insertEvent(a.id, "acked", a.acked_at, a.acked_by, note);
  o.rec = a;
  o.next_due_ms = 0;
  setAlertState(a.id, AlertState::Acked);
  updateGauges();
  emit(AlertEventKind::Acked, a, a.acked_at, a.acked_by);
  if (config_.policy(a.severity).notify_ack && enqueue(a, "acked", false, false)) {
    wake_pending_ = true;
  }
  submitWrites();
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
  write([a, value = dumpJson(model::toJson(a.value))](storage::Database& db) {
    db.cached("UPDATE alerts SET state='cleared', cleared_at=?, message=?, value=?, "
              "source_ts=?, actions=? WHERE id=?")
        .bind(1, a.cleared_at)
        .bind(2, a.message)
        .bind(3, value)
        .bind(4, a.source_ts)
        .bindOpt(5, a.actions)
        .bind(6, a.id)
        .run();
  },
        256 + a.message.size());
  insertEvent(a.id, "cleared", a.cleared_at, kGateway, "");
  by_id_.erase(a.id);
  open_.erase(it);
  setAlertState(a.id, AlertState::Cleared);
  updateGauges();
  emit(AlertEventKind::Cleared, a, a.cleared_at, kGateway);
  if (config_.policy(a.severity).notify_clear && enqueue(a, "cleared", false, false)) {
    wake_pending_ = true;
  }
  submitWrites();
  wake();
  return true;
}

void AlertManager::persistDirty() {
  std::vector<std::pair<AlertRecord, std::string>> dirty;
  for (auto& [key, o] : open_) {
    if (o.dirty) {
      dirty.emplace_back(o.rec, dumpJson(model::toJson(o.rec.value)));
      o.dirty = false;
    }
  }
  if (dirty.empty()) {
    return;
  }
  write([dirty](storage::Database& db) {
    auto& upd =
        db.cached("UPDATE alerts SET message=?, value=?, source_ts=?, actions=? WHERE id=?");
    for (const auto& [rec, value] : dirty) {
      upd.bind(1, rec.message)
          .bind(2, value)
          .bind(3, rec.source_ts)
          .bindOpt(4, rec.actions)
          .bind(5, rec.id)
          .run();
    }
  },
        128 * dirty.size());
  submitWrites();
  updateGauges();
}

void AlertManager::tick() {
  persistDirty();
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
  for (const Key& key : due) {
    Open& o = open_.at(key);
    const SeverityPolicy& p = config_.policy(o.rec.severity);
    if (o.rec.escalation_level == 0 && p.ack_timeout.count() > 0) {
      o.rec.escalation_level = 1;
      write([id = o.rec.id](storage::Database& db) {
        db.cached("UPDATE alerts SET escalation_level=? WHERE id=?").bind(1, 1).bind(2, id).run();
      },
            64);
      insertEvent(o.rec.id, "escalated", now_wall, kGateway,
                  "unacknowledged for " + std::to_string(p.ack_timeout.count() / 1000) + "s");
      o.next_due_ms = p.renotify.count() > 0 ? now + p.renotify.count() : 0;
      escalated_total_.inc();
      AlertRecord rec = o.rec;
      emit(AlertEventKind::Escalated, rec, now_wall, kGateway);
      if (enqueue(rec, "escalated", true, true)) {
        wake_pending_ = true;
      }
    } else {
      insertEvent(o.rec.id, "renotified", now_wall, kGateway, "");
      // Keep the cadence but never fire twice for one tick that came late.
      int64_t interval = p.renotify.count();
      o.next_due_ms = interval > 0 ? std::max(o.next_due_ms + interval, now + 1) : 0;
      if (enqueue(o.rec, "renotify", o.rec.escalation_level > 0, true)) {
        wake_pending_ = true;
      }
    }
  }
  for (const FloodKey& fk : summaries) {
    flushSummary(fk);
  }
  updateGauges();
  submitWrites();
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

#include "gateway/config_push/remote_config.h"

#include <csignal>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/fault_hooks.h"
#include "core/log.h"
#include "core/thread_name.h"

namespace hgj::config_push {

using nlohmann::json;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kTick(200);
// A rollback asked over HTTP answers first, then restarts: time for the answer to leave.
constexpr milliseconds kRestartAfterAnswer(300);
constexpr milliseconds kAnswerGrace(5000);
// Starts on one trial bundle (crashes, kill -9, watchdog restarts) before it is given up.
constexpr int64_t kMaxTrialBoots = 3;
constexpr size_t kMaxErrorLines = 50;

// Test-only (HGJ_FAULTS `config_apply_kill_at`, docs/reliability.md): kill -9 at one step of
// applying a bundle: 1 files staged (not yet durable), 2 the version directory renamed (the
// manifest not yet switched), 3 the manifest switched (the restart not yet done).
void killPoint(int64_t step) {
  if (core::faultHook("config_apply_kill_at") == step) {
    ::raise(SIGKILL);
  }
}

std::string healthProblem(const json& h) {
  std::string why;
  for (const char* area : {"ingest", "pipeline", "uplink"}) {
    auto it = h.find(area);
    if (it == h.end() || !it->is_string()) {
      continue;
    }
    const auto& v = it->get_ref<const std::string&>();
    if (v != "ok" && v != "disabled") {
      why += (why.empty() ? "" : "; ") + std::string(area) + ": " + v;
    }
  }
  return why;
}

} // namespace

RemoteConfig::RemoteConfig(std::string main_path, std::vector<config::Override> overrides,
                           const config::GatewayConfig& base, const core::Clock& clock)
    : main_path_(std::move(main_path)), overrides_(std::move(overrides)),
      storage_path_(base.storage.path), clock_(clock),
      store_(ConfigVersions::dirFor(base.storage.path)), options_(base.uplink.config_push) {}

RemoteConfig::~RemoteConfig() { stop(); }

std::vector<config::Override> RemoteConfig::loadOverrides() const {
  // The box's own --set values win over a bundle as over the local files (they are the
  // installer's drop-ins), and the database stays where the local config put it: a bundle's
  // relative storage.path would otherwise point into versions/N/.
  std::vector<config::Override> o = overrides_;
  o.push_back({"storage.path", storage_path_});
  return o;
}

config::GatewayConfig RemoteConfig::boot(config::GatewayConfig base) {
  std::lock_guard lock(mu_);
  try {
    state_ = store_.load();
  } catch (const std::exception& e) {
    spdlog::error("config push: {}; running the local configuration", e.what());
    state_ = ConfigState{};
    return base;
  }
  bool changed = false;
  if (state_.active != 0 && state_.base_mtime_ns != fileMtimeNs(main_path_)) {
    event("superseded", state_.active, "local", "local:" + main_path_, "",
          main_path_ + " was changed on the box after version " +
              std::to_string(state_.active) + " was applied: the local files win");
    if (auto* v = state_.find(state_.active); v != nullptr && v->status == "trial") {
      v->status = "rolled_back";
    }
    state_.active = 0;
    state_.trial.reset();
    state_.base_mtime_ns = fileMtimeNs(main_path_);
    changed = true;
  }
  if (state_.trial && state_.trial->version == state_.active) {
    state_.trial->boots += 1;
    changed = true;
    if (state_.trial->boots > kMaxTrialBoots) {
      switchTo(state_.trial->previous, "failed",
               "the gateway restarted " + std::to_string(kMaxTrialBoots) +
                   " times on it without becoming healthy",
               "gateway", "gateway");
      changed = false;
    }
  }
  while (state_.active != 0) {
    core::Diagnostics diag;
    auto cfg = config::loadConfig(store_.mainFile(state_.active), loadOverrides(), diag);
    if (diag.ok()) {
      if (changed) {
        saveLocked();
      }
      options_ = cfg.uplink.config_push;
      spdlog::info("config push: running version {} ({}){}", state_.active,
                   store_.versionDir(state_.active), state_.trial ? ", on trial" : "");
      if (state_.trial && state_.trial->boots == 1) {
        event("applied", state_.active, "gateway", "gateway", "",
              "running version " + std::to_string(state_.active) + "; healthy within " +
                  std::to_string(options_.health_window.count()) + " ms or rolled back");
        saveLocked();
      }
      return cfg;
    }
    auto lines = problemLines(diag, store_.versionDir(state_.active));
    std::string first = lines.empty() ? "it does not load" : lines.front();
    spdlog::error("config push: version {} does not load any more: {}", state_.active, first);
    const int64_t back = state_.trial && state_.trial->version == state_.active
                             ? state_.trial->previous
                             : previousGood();
    switchTo(back, "failed", "it does not load: " + first, "gateway", "gateway");
    changed = false;
  }
  if (changed) {
    saveLocked();
  }
  return base;
}

bool RemoteConfig::startFailed(const std::string& why) {
  std::lock_guard lock(mu_);
  if (state_.active == 0) {
    return false;
  }
  const int64_t back = state_.trial && state_.trial->version == state_.active
                           ? state_.trial->previous
                           : previousGood();
  switchTo(back, "failed", "the gateway cannot start on it: " + why, "gateway", "gateway");
  return true;
}

int64_t RemoteConfig::active() const {
  std::lock_guard lock(mu_);
  return state_.active;
}

std::pair<std::string, std::vector<config::Override>> RemoteConfig::source() const {
  std::lock_guard lock(mu_);
  if (state_.active == 0) {
    return {main_path_, overrides_};
  }
  return {store_.mainFile(state_.active), loadOverrides()};
}

void RemoteConfig::start() {
  std::lock_guard lock(mu_);
  if (started_) {
    return;
  }
  started_ = true;
  stop_ = false;
  trial_started_ = clock_.steadyNow();
  if (report_) {
    for (auto& e : unsent_) {
      report_(std::move(e));
    }
  }
  unsent_.clear();
  store_.prune(state_, options_.keep);
  thread_ = std::thread([this] {
    core::nameThisThread("hgj-cfgpush");
    run();
  });
}

void RemoteConfig::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    for (auto& job : jobs_) {
      job.promise.set_value({false, 503, "the gateway is stopping"});
    }
    jobs_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::future<pipeline::CommandResult> RemoteConfig::push(ConfigBundle bundle,
                                                        std::string request_id,
                                                        std::string identity) {
  Job job{std::move(bundle), std::move(request_id), std::move(identity), {}};
  auto f = job.promise.get_future();
  {
    std::lock_guard lock(mu_);
    if (stop_ || !started_) {
      job.promise.set_value({false, 503, "the gateway is not ready for a config push"});
      return f;
    }
    if (!jobs_.empty()) {
      job.promise.set_value({false, 409, "busy: another config push is being processed"});
      return f;
    }
    jobs_.push_back(std::move(job));
  }
  wake_.notify_all();
  return f;
}

void RemoteConfig::answered() {
  bool restart = false;
  {
    std::lock_guard lock(mu_);
    restart = restart_after_answer_;
    restart_after_answer_ = false;
    if (restart) {
      restart_at_.reset();
    }
  }
  if (restart) {
    requestRestart();
  }
}

void RemoteConfig::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, kTick, [this] { return stop_ || !jobs_.empty(); });
    if (stop_) {
      break;
    }
    if (!jobs_.empty()) {
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      pipeline::CommandResult r;
      try {
        r = handlePush(job);
      } catch (const std::exception& e) {
        r = {false, 500, std::string("config push failed: ") + e.what()};
        spdlog::error("config push: {}", r.message);
      }
      job.promise.set_value(r);
      continue;
    }
    if (restart_at_ && clock_.steadyNow() >= *restart_at_) {
      restart_at_.reset();
      lock.unlock();
      requestRestart();
      lock.lock();
      continue;
    }
    watchTrial();
  }
}

pipeline::CommandResult RemoteConfig::handlePush(Job& job) {
  const ConfigBundle& b = job.bundle;
  event("received", b.version, b.by, job.identity, job.request_id,
        std::to_string(b.files.size()) + " files");
  auto refuse = [&](int status, const std::string& why, json errors = nullptr) {
    event("refused", b.version, b.by, job.identity, job.request_id, why, std::move(errors));
    saveLocked();
    return pipeline::CommandResult{false, status, why};
  };
  if (restart_requested_ || restart_after_answer_ || restart_at_) {
    return refuse(409, "a restart onto another config is already under way");
  }
  if (state_.trial) {
    return refuse(409, "version " + std::to_string(state_.trial->version) +
                           " is still on trial; push again once it is confirmed or rolled back");
  }
  if (b.version <= state_.highest()) {
    return refuse(409, "version " + std::to_string(b.version) +
                           " is not newer than the newest stored one (" +
                           std::to_string(state_.highest()) + ")");
  }
  const std::string staged = store_.stage(b.files);
  killPoint(1);
  core::Diagnostics diag;
  config::loadConfig(staged + "/" + std::string(kMainFile), loadOverrides(), diag);
  if (!diag.ok()) {
    auto lines = problemLines(diag, staged);
    store_.discard(staged);
    json errors = json::array();
    std::string text;
    for (size_t i = 0; i < lines.size() && i < kMaxErrorLines; ++i) {
      errors.push_back(lines[i]);
      text += (i == 0 ? "" : "\n") + lines[i];
    }
    spdlog::warn("config push: version {} refused: {} problem(s)", b.version, lines.size());
    return refuse(400, "invalid configuration: " + std::to_string(lines.size()) +
                           " problem(s):\n" + text,
                  std::move(errors));
  }
  // Leftovers of a version written but never made active (kill -9 between the two steps).
  store_.discard(store_.versionDir(b.version));
  store_.commit(staged, b.version);
  killPoint(2);
  VersionEntry entry;
  entry.version = b.version;
  entry.status = "trial";
  entry.by = b.by;
  entry.identity = job.identity;
  entry.request_id = job.request_id;
  entry.received_ms = clock_.wallMs();
  entry.changed_ms = entry.received_ms;
  entry.message = "applying";
  // The switch: one rename of the manifest. Until it is done the running config stays the
  // active one, on disk and in memory.
  ConfigState next = state_;
  next.versions.push_back(entry);
  next.trial = Trial{b.version, state_.active, clock_.wallMs(), 0};
  next.active = b.version;
  next.base_mtime_ns = fileMtimeNs(main_path_);
  store_.save(next);
  state_ = std::move(next);
  event("accepted", b.version, b.by, job.identity, job.request_id,
        "valid; stored as " + store_.versionDir(b.version) + "; restarting to apply it");
  saveLocked();
  killPoint(3);
  store_.prune(state_, options_.keep);
  restart_after_answer_ = true;
  // Should the answer never be handed over (the uplink timed the command out meanwhile), the
  // worker restarts by itself.
  restart_at_ = clock_.steadyNow() + kAnswerGrace;
  spdlog::info("config push: version {} from {} stored; restarting onto it", b.version, b.by);
  return {true, 200,
          "version " + std::to_string(b.version) +
              " accepted: restarting onto it; rolled back unless healthy within " +
              std::to_string(options_.health_window.count()) + " ms"};
}

void RemoteConfig::watchTrial() {
  if (!state_.trial || state_.trial->version != state_.active || !health_ || restart_requested_ ||
      restart_at_ || restart_after_answer_) {
    return;
  }
  const auto now = clock_.steadyNow();
  std::string why;
  try {
    why = healthProblem(health_());
  } catch (const std::exception& e) {
    why = std::string("health: ") + e.what();
  }
  if (why.empty()) {
    if (!healthy_since_) {
      healthy_since_ = now;
    }
    if (now - *healthy_since_ >= options_.healthy_for) {
      const int64_t v = state_.active;
      if (auto* e = state_.find(v)) {
        e->status = "confirmed";
        e->changed_ms = clock_.wallMs();
        e->message = "healthy";
      }
      state_.trial.reset();
      event("confirmed", v, "gateway", "gateway", "",
            "ingest, pipeline and uplink healthy for " +
                std::to_string(options_.healthy_for.count()) + " ms");
      saveLocked();
      spdlog::info("config push: version {} confirmed", v);
    }
    return;
  }
  healthy_since_.reset();
  last_unhealthy_ = why;
  if (now - trial_started_ >= options_.health_window) {
    const int64_t v = state_.active;
    const int64_t back = state_.trial->previous;
    spdlog::error("config push: version {} not healthy within {} ms ({}): back to {}", v,
                  options_.health_window.count(), why,
                  back == 0 ? std::string("the local files") : "version " + std::to_string(back));
    switchTo(back, "rolled_back",
             "not healthy within " + std::to_string(options_.health_window.count()) +
                 " ms: " + why,
             "gateway", "gateway");
    restart_at_ = clock_.steadyNow();
  }
}

std::pair<int, json> RemoteConfig::rollback(const std::string& by, const std::string& identity) {
  std::lock_guard lock(mu_);
  if (state_.active == 0) {
    return {409, json{{"error", "the gateway runs its local configuration: nothing to roll "
                                "back"}}};
  }
  if (restart_requested_ || restart_after_answer_ || restart_at_) {
    return {409, json{{"error", "a restart onto another config is already under way"}}};
  }
  const int64_t from = state_.active;
  const int64_t back = state_.trial && state_.trial->version == state_.active
                           ? state_.trial->previous
                           : previousGood();
  switchTo(back, "rolled_back", "rolled back by " + by, by, identity);
  restart_at_ = clock_.steadyNow() + kRestartAfterAnswer;
  wake_.notify_all();
  return {200, json{{"rolled_back", from},
                    {"active", back},
                    {"message", "restarting onto " + (back == 0 ? std::string("the local files")
                                                              : "version " +
                                                                    std::to_string(back))}}};
}

json RemoteConfig::versions() const {
  std::lock_guard lock(mu_);
  json j = {{"active", state_.active}, {"directory", store_.dir()}};
  j["enabled"] = options_.enabled;
  j["health_window_ms"] = options_.health_window.count();
  j["trial"] = nullptr;
  if (state_.trial) {
    j["trial"] = {{"version", state_.trial->version},
                  {"previous", state_.trial->previous},
                  {"since_ms", state_.trial->since_ms}};
  }
  j["versions"] = json::array();
  for (auto it = state_.versions.rbegin(); it != state_.versions.rend(); ++it) {
    j["versions"].push_back(toJson(*it));
  }
  j["events"] = json::array();
  for (auto it = state_.events.rbegin(); it != state_.events.rend(); ++it) {
    j["events"].push_back(*it);
  }
  return j;
}

std::vector<std::string> RemoteConfig::problemLines(const core::Diagnostics& diag,
                                                    const std::string& staged_dir) {
  std::vector<core::ConfigProblem> problems = diag.problems();
  std::stable_sort(problems.begin(), problems.end(), [](const auto& a, const auto& b) {
    return std::tie(a.where.file, a.where.line) < std::tie(b.where.file, b.where.line);
  });
  const std::string prefix = staged_dir + "/";
  std::vector<std::string> out;
  for (auto p : problems) {
    if (p.where.file.rfind(prefix, 0) == 0) {
      p.where.file = p.where.file.substr(prefix.size());
    }
    out.push_back(p.format());
  }
  return out;
}

void RemoteConfig::event(const std::string& name, int64_t version, const std::string& by,
                         const std::string& identity, const std::string& request_id,
                         const std::string& message, json errors) {
  const int64_t now = clock_.wallMs();
  json e = {{"event", name}, {"version", version}, {"by", by},
            {"identity", identity}, {"at_ms", now}, {"message", message}};
  if (!request_id.empty()) {
    e["request_id"] = request_id;
  }
  if (!errors.is_null()) {
    e["errors"] = errors;
  }
  e["active"] = state_.active;
  state_.events.push_back(e);
  while (state_.events.size() > 50) {
    state_.events.erase(state_.events.begin());
  }
  if (audit_ != nullptr) {
    const std::string detail = errors.is_null() ? message : message + "\n" + errors.dump();
    storage::DurableWrite w;
    w.apply = [=](storage::Database& db) {
      db.exec("CREATE TABLE IF NOT EXISTS config_audit (id INTEGER PRIMARY KEY, ts_ms INTEGER "
              "NOT NULL, version INTEGER NOT NULL, event TEXT NOT NULL, by TEXT, identity TEXT, "
              "request_id TEXT, detail TEXT)");
      db.prepare("INSERT INTO config_audit (ts_ms, version, event, by, identity, request_id, "
                 "detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
          .bindAll(now, version, name, by, identity, request_id, detail)
          .run();
    };
    w.bytes = 256 + detail.size();
    audit_->submit({std::move(w)});
  }
  if (started_ && report_) {
    report_(e);
  } else {
    unsent_.push_back(e);
  }
}

void RemoteConfig::switchTo(int64_t target, const std::string& status, const std::string& why,
                            const std::string& by, const std::string& identity) {
  const int64_t from = state_.active;
  if (auto* e = state_.find(from)) {
    // A version that proved good stays a good one to go back to, even when left by hand.
    if (!(e->status == "confirmed" && status == "rolled_back")) {
      e->status = status;
    }
    e->changed_ms = clock_.wallMs();
    e->message = why;
  }
  state_.active = target;
  state_.trial.reset();
  state_.base_mtime_ns = fileMtimeNs(main_path_);
  event(status == "failed" ? "failed" : "rolled_back", from, by, identity, "",
        why + "; now " + (target == 0 ? std::string("the local files")
                                      : "version " + std::to_string(target)));
  saveLocked();
}

int64_t RemoteConfig::previousGood() const {
  // The newest confirmed version older than the active one; else the local files.
  int64_t best = 0;
  for (const auto& v : state_.versions) {
    if (v.version < state_.active && v.status == "confirmed" && v.version > best &&
        std::filesystem::exists(store_.mainFile(v.version))) {
      best = v.version;
    }
  }
  return best;
}

void RemoteConfig::saveLocked() {
  try {
    store_.save(state_);
  } catch (const std::exception& e) {
    spdlog::error("config push: cannot write the manifest: {}", e.what());
  }
}

void RemoteConfig::requestRestart() {
  {
    std::lock_guard lock(mu_);
    if (restart_requested_) {
      return;  // one restart: a second signal would stay pending across exec
    }
    restart_requested_ = true;
    restart_after_answer_ = false;
    restart_at_.reset();
  }
  if (restart_) {
    restart_();
  }
}

} // namespace hgj::config_push

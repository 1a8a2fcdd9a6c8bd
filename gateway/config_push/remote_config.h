#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "gateway/config/config.h"
#include "gateway/config_push/config_bundle.h"
#include "gateway/config_push/config_versions.h"
#include "gateway/pipeline/commands.h"
#include "gateway/storage/durable.h"

namespace hgj::config_push {

/// Remote configuration (docs/remote-config.md): validates pushed bundles with the checks of
/// `hgj-gateway check`, keeps them on disk (ConfigVersions), switches the manifest to a good one
/// and asks for a restart, watches the new config's health for `uplink.config_push.
/// health_window` and goes back to the previous good config by itself when ingest, the pipeline
/// or the uplink do not become healthy. Every step goes upstream (`hgj/{site}/config`), into
/// the manifest's event list (the local API) and into the `config_audit` table.
///
/// Threads: boot() and startFailed() run on main's thread before start(). start() launches one
/// worker thread that validates and stores pushes (it may take a few hundred ms and writes
/// files) and watches the trial; push(), rollback() and versions() are thread-safe (uplink
/// thread, HTTP workers). The callbacks are set before start() and must be thread-safe.
class RemoteConfig {
public:
  /// `main_path` and `overrides`: the daemon's `-c` and `--set`; `base` the config they load.
  RemoteConfig(std::string main_path, std::vector<config::Override> overrides,
               const config::GatewayConfig& base, const core::Clock& clock);
  ~RemoteConfig();
  RemoteConfig(const RemoteConfig&) = delete;
  RemoteConfig& operator=(const RemoteConfig&) = delete;

  /// The config to run: the active bundle when the manifest names one (and the local main file
  /// was not edited since), else `base`. A bundle that no longer loads is marked failed and the
  /// previous one is tried. Never throws (a manifest it cannot read is logged and ignored).
  config::GatewayConfig boot(config::GatewayConfig base);
  /// The daemon could not start on the active bundle (port taken, database...): marks it failed
  /// and goes back. True when there is a config to go back to (the caller restarts).
  bool startFailed(const std::string& why);
  /// The active version (0: the local files).
  int64_t active() const;
  /// The main file and overrides the running config was loaded from (SIGHUP reloads them).
  std::pair<std::string, std::vector<config::Override>> source() const;

  void setReporter(std::function<void(nlohmann::json)> report) { report_ = std::move(report); }
  void setAudit(storage::DurableSink* audit) { audit_ = audit; }
  void setHealth(std::function<nlohmann::json()> health) { health_ = std::move(health); }
  /// Asks main to restart the daemon on the manifest's config (called on the worker thread, or
  /// the uplink thread once a push's answer is on its way).
  void setRestart(std::function<void()> restart) { restart_ = std::move(restart); }

  void start();
  void stop();

  /// A bundle from the platform: validated and stored on the worker thread. The future says
  /// refused (400 with the FILE:LINE problems, 409 when not newer or during a trial) or accepted
  /// (200); after an accepted one, answered() restarts the daemon on it.
  std::future<pipeline::CommandResult> push(ConfigBundle bundle, std::string request_id,
                                            std::string identity);
  /// The uplink has handed the answer to a push to its outbox: a restart may follow.
  void answered();
  /// Goes back to the previous good config (an operator, from the local API): HTTP status and
  /// body. The restart follows shortly after the answer.
  std::pair<int, nlohmann::json> rollback(const std::string& by, const std::string& identity);
  /// The manifest for the local API: active version, trial, versions, recent events.
  nlohmann::json versions() const;

  /// The problems of a failed load with the bundle's file names (`devices.yaml:12: ...`).
  static std::vector<std::string> problemLines(const core::Diagnostics& diag,
                                               const std::string& staged_dir);

private:
  struct Job {
    ConfigBundle bundle;
    std::string request_id;
    std::string identity;
    std::promise<pipeline::CommandResult> promise;
  };

  void run();
  pipeline::CommandResult handlePush(Job& job);
  void watchTrial();
  /// Records one step: manifest events (caller saves), upstream, audit. mu_ held.
  void event(const std::string& name, int64_t version, const std::string& by,
             const std::string& identity, const std::string& request_id,
             const std::string& message, nlohmann::json errors = nullptr);
  /// Leaves the active version for `target`; marks the left one `status`. mu_ held; saves.
  void switchTo(int64_t target, const std::string& status, const std::string& why,
                const std::string& by, const std::string& identity);
  int64_t previousGood() const;
  std::vector<config::Override> loadOverrides() const;
  void saveLocked();
  void requestRestart();

  const std::string main_path_;
  const std::vector<config::Override> overrides_;
  const std::string storage_path_;
  const core::Clock& clock_;
  ConfigVersions store_;
  uplink::ConfigPushConfig options_;

  std::function<void(nlohmann::json)> report_;
  storage::DurableSink* audit_ = nullptr;
  std::function<nlohmann::json()> health_;
  std::function<void()> restart_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  ConfigState state_;                          // guarded by mu_
  std::deque<Job> jobs_;                       // guarded by mu_
  std::vector<nlohmann::json> unsent_;         // guarded by mu_: steps before start()
  bool started_ = false;                       // guarded by mu_
  bool stop_ = false;                          // guarded by mu_
  bool restart_after_answer_ = false;          // guarded by mu_
  std::optional<core::SteadyTime> restart_at_; // guarded by mu_
  bool restart_requested_ = false;             // guarded by mu_
  std::thread thread_;

  // Worker thread only.
  core::SteadyTime trial_started_{};
  std::optional<core::SteadyTime> healthy_since_;
  std::string last_unhealthy_;
};

} // namespace hgj::config_push

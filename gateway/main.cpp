// hgj-gateway: flags -> config -> build the stages -> run until a signal.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <linux/close_range.h>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/config_node.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/service_notify.h"
#include "gateway/app.h"
#include "gateway/config/config.h"
#include "gateway/config_push/remote_config.h"
#include "gateway/history_command.h"
#include "gateway/startup_error.h"
#include "hgj_version.h"

namespace {

constexpr const char* kUsage = R"(usage:
  hgj-gateway run   -c FILE [--set key.path=value ...]   run the gateway
  hgj-gateway check -c FILE [--set key.path=value ...]   validate the configuration and exit
  hgj-gateway history rebuild -c FILE [--from YYYY-MM-DD] [--force] [--set key.path=value ...]
                    recompute the history rollups from the readings table of storage.path
                    (after an upgrade, or when history rows were lost); stop the gateway first
  hgj-gateway --help | --version

options:
  -c, --config FILE      the main configuration file (conf/gateway.yaml)
  --set key.path=value   override one scalar value of the main file (repeatable), e.g.
                         --set mqtt.url=tcp://127.0.0.1:1884 --set http.port=8081
  --from YYYY-MM-DD      history rebuild: write only the buckets and days from this local day
                         on (history.utc_offset); earlier rows stay as stored. Default: all,
                         or from the first whole day of the readings when older history rows
                         exist (retention deleted the readings behind them)
  --force                history rebuild: even though http.bind:http.port answers

exit status: 0 ok; 1 runtime failure (history rebuild: a gateway answers on its HTTP port); 2
configuration problems (one line each: FILE:LINE: key.path: message); 3 the HTTP port cannot
be listened on; 4 the database cannot be opened or written (history rebuild: it does not
exist); 5 a Modbus serial port does not exist; 75 a restart onto another configuration could
not re-execute the binary (systemd's Restart= brings it back).

A configuration pushed by the platform and applied (docs/remote-config.md) runs instead of
the -c files, with the same --set values, until the -c main file is changed on the box.
)";

// Exit status when re-executing for a new configuration failed (EX_TEMPFAIL).
constexpr int kExitRestart = 75;

// Restarts the daemon in place onto the configuration the manifest names: same pid (systemd
// keeps tracking it), same argv and environment. Everything was stopped and flushed before.
// The blocked signal mask is inherited and taken over by the new image, so a signal that
// arrives meanwhile stays pending instead of killing it.
int reexec(char** argv) {
  spdlog::info("restarting onto the new configuration");
  spdlog::shutdown();
  // Again for the start-up failure path (harmless twice).
  hgj::core::notifyServiceManager("RELOADING=1");
  // Descriptors not marked close-on-exec (log files, sockets of libraries) must not leak into
  // the new image, one set per restart.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::execv("/proc/self/exe", argv);
  std::fprintf(stderr, "hgj-gateway: cannot re-execute itself: %s\n", std::strerror(errno));
  return kExitRestart;
}

struct Args {
  std::string command;
  std::string config;
  hgj::HistoryRebuildOptions rebuild;
  std::vector<hgj::config::Override> overrides;
};

int usageError(const std::string& msg) {
  std::fprintf(stderr, "hgj-gateway: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

/// Reads the command line into `args`; an exit status when there is nothing to run (--help,
/// --version) or the line is wrong (usage on stderr, 2).
std::optional<int> parseArgs(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version" || a == "-V") {
      std::printf("hgj-gateway %s\n", HGJ_VERSION);
      return 0;
    }
    if (a == "-c" || a == "--config") {
      if (i + 1 >= argc) {
        return usageError(a + " needs a file");
      }
      args.config = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      args.config = a.substr(9);
    } else if (a == "--set" || a.rfind("--set=", 0) == 0) {
      if (a == "--set" && i + 1 >= argc) {
        return usageError("--set needs key.path=value");
      }
      const std::string text = a == "--set" ? std::string(argv[++i]) : a.substr(6);
      auto o = hgj::config::parseOverride(text);
      if (!o) {
        return usageError("--set expects key.path=value, got \"" + text + "\"");
      }
      args.overrides.push_back(*o);
    } else if (a == "--from") {
      if (i + 1 >= argc) {
        return usageError("--from needs a day (YYYY-MM-DD)");
      }
      args.rebuild.from_day = argv[++i];
    } else if (a.rfind("--from=", 0) == 0) {
      args.rebuild.from_day = a.substr(7);
    } else if (a == "--force") {
      args.rebuild.force = true;
    } else if (args.command.empty() && (a == "run" || a == "check")) {
      args.command = a;
    } else if (args.command.empty() && a == "history") {
      if (i + 1 >= argc || std::string(argv[i + 1]) != "rebuild") {
        return usageError("history needs a subcommand: history rebuild");
      }
      ++i;
      args.command = "history rebuild";
    } else {
      return usageError("unknown argument \"" + a + "\"");
    }
  }
  if (args.command.empty()) {
    return usageError("missing command (run, check or history rebuild)");
  }
  if (args.command != "history rebuild" && (args.rebuild.from_day || args.rebuild.force)) {
    return usageError("--from and --force belong to history rebuild");
  }
  if (args.config.empty()) {
    return usageError("missing -c FILE");
  }
  return std::nullopt;
}

/// SIGHUP: the rules are reloaded from the files the daemon runs on; a configuration with
/// problems is refused and the running one kept.
void reload(hgj::App& app, const hgj::config_push::RemoteConfig& remote) {
  hgj::core::notifyServiceManager("RELOADING=1");
  spdlog::info("SIGHUP: reloading the configuration");
  hgj::core::Diagnostics diag;
  auto [path, overrides] = remote.source();
  auto fresh = hgj::config::loadConfig(path, overrides, diag);
  if (!diag.ok()) {
    spdlog::error("reload: the configuration has problems; keeping the running one:\n{}",
                  diag.format());
  } else {
    spdlog::info("reload: {}", app.reload(std::move(fresh)));
  }
  hgj::core::notifyServiceManager("READY=1");
}

enum class Ending { Stop, Restart };

/// The running daemon's main thread: takes the signals and feeds systemd's watchdog until a
/// signal ends the run. The watchdog is fed from the progress of the critical threads, not from
/// a health string: every thread beats its core::Heartbeat each time round its loop (busy, idle
/// or held back by backpressure); one silent for half the interval (a deadlock, a call that
/// never returns) stops the feed, and systemd restarts the gateway within the interval.
Ending serve(hgj::App& app, const hgj::config_push::RemoteConfig& remote,
             const sigset_t& signals) {
  const auto watchdog_interval = hgj::core::serviceWatchdogInterval();
  const bool watchdog = watchdog_interval.has_value();
  const int64_t watchdog_ms = watchdog ? watchdog_interval->count() / 1000 : 0;
  const int64_t feed_ms = watchdog ? std::clamp<int64_t>(watchdog_ms / 4, 10, 1000) : 1000;
  hgj::core::RateLimitedLog watchdog_log;
  // Bursts, reconnect redeliveries and reloads leave freed pages in the allocator's arenas;
  // this otherwise idle thread hands them back, so the resident set returns to its plateau.
  hgj::core::HeapTrimmer trimmer;
  auto& trims = app.metrics().counter("hgj_heap_trims_total",
                                      "times freed heap pages were given back to the kernel");
  auto& trimmed = app.metrics().counter(
      "hgj_heap_trimmed_bytes_total", "resident bytes given back to the kernel by heap trims");
  auto trim = [&] {
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    const uint64_t before = trimmer.trims();
    const double released =
        trimmer.maybeTrim(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
    if (trimmer.trims() != before) {
      trims.inc();
      trimmed.inc(static_cast<uint64_t>(released));
    }
  };
  while (true) {
    timespec wait{static_cast<time_t>(feed_ms / 1000),
                  static_cast<long>(feed_ms % 1000) * 1'000'000L};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig < 0) {
      trim();
      if (watchdog) {
        if (auto stalled = app.liveness().stalled(watchdog_ms / 2)) {
          watchdog_log.warn("watchdog: not fed: {}", *stalled);
        } else {
          hgj::core::notifyServiceManager("WATCHDOG=1");
        }
      }
      continue;
    }
    if (sig == SIGUSR2) {
      // Not STOPPING=1: systemd would then wait for an exit and kill the new image at
      // TimeoutStopSec. A restart in place is a reload to it, ended by the new READY=1.
      spdlog::info("config push: stopping to restart onto version {}", remote.active());
      hgj::core::notifyServiceManager("RELOADING=1");
      return Ending::Restart;
    }
    if (sig == SIGHUP) {
      reload(app, remote);
      continue;
    }
    spdlog::info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    hgj::core::notifyServiceManager("STOPPING=1");
    return Ending::Stop;
  }
}

/// `run`: starts the stages, serves until a signal, stops them; the exit status.
int runDaemon(hgj::config::GatewayConfig cfg, const Args& args,
              const std::vector<std::string>& exposed, char** argv) {
  // Signals are taken by this thread with sigwait; every thread started later inherits the mask.
  // SIGUSR2 is the daemon's own: restart onto the configuration the manifest names.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // A bundle pushed by the platform and applied takes the place of the -c files.
  hgj::config_push::RemoteConfig remote(args.config, args.overrides, cfg,
                                        hgj::core::SystemClock::instance());
  cfg = remote.boot(std::move(cfg));
  remote.setRestart([] { ::kill(::getpid(), SIGUSR2); });
  std::signal(SIGPIPE, SIG_IGN);

  hgj::core::setupLogging(cfg.log.level, cfg.log.file,
                          static_cast<size_t>(cfg.log.max_size_mb) * 1024 * 1024,
                          static_cast<size_t>(cfg.log.max_files));
  spdlog::info("hgj-gateway {} starting: site {} ({} devices)", HGJ_VERSION,
               cfg.compound->site_id, cfg.compound->devices.size());
  for (const auto& w : exposed) {
    spdlog::warn("{}", w);
  }
  Ending ending = Ending::Stop;
  try {
    hgj::App app(std::move(cfg), hgj::core::SystemClock::instance());
    app.setRemoteConfig(&remote);
    app.start();
    // Loading the compound (YAML trees, the device list) leaves freed memory behind in the heap;
    // give it back before settling into the steady state.
    malloc_trim(0);
    std::printf("hgj-gateway ready\n");
    std::fflush(stdout);
    hgj::core::notifyServiceManager("READY=1");
    ending = serve(app, remote, signals);
    app.stop();
  } catch (const hgj::StartupError& e) {
    // One line that says what and where; App::start has already stopped what it had started.
    spdlog::critical("hgj-gateway: cannot start: {}", e.what());
    if (remote.startFailed(e.what())) {
      return reexec(argv);
    }
    spdlog::shutdown();
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    spdlog::critical("hgj-gateway: {}", e.what());
    spdlog::shutdown();
    return static_cast<int>(hgj::ExitCode::Runtime);
  }
  if (ending == Ending::Restart) {
    return reexec(argv);
  }
  spdlog::info("hgj-gateway stopped");
  spdlog::shutdown();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  // A box has 1-2 GB shared with the broker: two malloc arenas instead of one per thread (up to
  // 8 per core) keep the resident set small; the threads that allocate on the hot path (ingest,
  // pipeline, writer) hand memory to each other anyway.
  mallopt(M_ARENA_MAX, 2);
  Args args;
  if (auto status = parseArgs(argc, argv, args)) {
    return *status;
  }
  hgj::core::Diagnostics diag;
  hgj::config::GatewayConfig cfg = hgj::config::loadConfig(args.config, args.overrides, diag);
  if (!diag.ok()) {
    std::fputs(diag.format().c_str(), stderr);
    std::fprintf(stderr, "hgj-gateway: %zu configuration problem(s)\n", diag.problems().size());
    return 2;
  }
  // Secrets in files others can read: warned by `check` and at every start, never fatal (the
  // operator may have reasons; the box keeps running).
  std::vector<std::string> exposed = hgj::core::exposedSecretWarnings(diag);
  if (args.command == "check") {
    for (const auto& w : exposed) {
      std::fprintf(stderr, "%s\n", w.c_str());
    }
    std::printf("%s: ok (%zu devices, %zu profiles, %zu grids)\n", args.config.c_str(),
                cfg.compound->devices.size(), cfg.compound->profiles.size(),
                cfg.compound->grids.size());
    return 0;
  }
  if (args.command == "history rebuild") {
    return hgj::historyRebuild(cfg, args.rebuild, stdout, stderr);
  }
  return runDaemon(std::move(cfg), args, exposed, argv);
}

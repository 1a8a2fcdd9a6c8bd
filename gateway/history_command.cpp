#include "gateway/history_command.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/time_format.h"
#include "gateway/history/rollups.h"
#include "gateway/startup_error.h"
#include "gateway/storage/sqlite.h"

namespace hgj {

namespace {

// Whether something accepts TCP connections on the gateway's HTTP address (a wildcard bind is
// probed on loopback). A refused or timed-out connect means no.
bool httpAnswers(const std::string& bind, int port) {
  const bool v6 = bind.find(':') != std::string::npos;
  std::string host = bind;
  if (bind == "0.0.0.0" || bind.empty()) {
    host = "127.0.0.1";
  } else if (bind == "::") {
    host = "::1";
  } else if (bind == "localhost") {
    host = "127.0.0.1";
  }
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  timeval tv{0, 500'000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bool ok = false;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    ok = ::inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) == 1 &&
         ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ok = ::inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1 &&
         ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ::close(fd);
  return ok;
}

std::string when(int64_t unix_ms) { return unix_ms > 0 ? core::rfc3339(unix_ms) : "-"; }

} // namespace

int historyRebuild(const config::GatewayConfig& cfg, const HistoryRebuildOptions& options,
                   std::FILE* out, std::FILE* err) {
  const std::string& path = cfg.storage.path;
  if (!cfg.history.enabled) {
    std::fprintf(err, "history rebuild: history.enabled is false in %s: nothing to rebuild\n",
                 cfg.path.c_str());
    return static_cast<int>(ExitCode::Config);
  }
  std::optional<int64_t> from;
  if (options.from_day) {
    from = history::localMidnight(*options.from_day, cfg.history.utc_offset_minutes);
    if (!from) {
      std::fprintf(err, "history rebuild: --from: expected a day YYYY-MM-DD, got \"%s\"\n",
                   options.from_day->c_str());
      return static_cast<int>(ExitCode::Config);
    }
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    std::fprintf(err, "history rebuild: storage.path %s: no database there (see storage.path)\n",
                 path.c_str());
    return static_cast<int>(ExitCode::Database);
  }
  // Root would leave a -wal/-shm file the gateway's user cannot open: run as the file's owner.
  struct stat st{};
  if (::geteuid() == 0 && ::stat(path.c_str(), &st) == 0 && st.st_uid != 0) {
    const passwd* pw = ::getpwuid(st.st_uid);
    std::fprintf(err,
                 "history rebuild: %s belongs to %s: run as that user (sudo -u %s hgj-gateway "
                 "history rebuild ...), not as root\n",
                 path.c_str(), pw != nullptr ? pw->pw_name : std::to_string(st.st_uid).c_str(),
                 pw != nullptr ? pw->pw_name : "<owner>");
    return static_cast<int>(ExitCode::Runtime);
  }
  if (!options.force && httpAnswers(cfg.http.bind, cfg.http.port)) {
    std::fprintf(err,
                 "history rebuild: something answers on %s:%d, the gateway's HTTP address: stop "
                 "the gateway first (systemctl stop hgj-gateway), or pass --force if that is "
                 "another program\n",
                 cfg.http.bind.c_str(), cfg.http.port);
    return static_cast<int>(ExitCode::Runtime);
  }
  try {
    storage::Database db(path);
    if (db.scalarInt("SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                     "name='readings'") == 0) {
      std::fprintf(err, "history rebuild: %s has no readings table (not a gateway database?)\n",
                   path.c_str());
      return static_cast<int>(ExitCode::Database);
    }
    // After an upgrade the history tables may not exist yet (the gateway creates them at start).
    history::createHistorySchema(db, std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    if (!from) {
      from = history::defaultRebuildFrom(db, cfg.history);
    }
    history::RebuildResult r = history::rebuildFrom(db, cfg.history, cfg.compound, from);
    std::fprintf(out,
                 "history rebuild: %s: replayed %lld readings (source times %s to %s) and %lld "
                 "alerts\n",
                 path.c_str(), static_cast<long long>(r.readings), when(r.oldest_ms).c_str(),
                 when(r.newest_ms).c_str(), static_cast<long long>(r.alerts));
    std::fprintf(out, "history rebuild: wrote %lld occupancy rows and %lld day rows from %s",
                 static_cast<long long>(r.occupancy_rows), static_cast<long long>(r.day_rows),
                 from ? core::rfc3339(*from).c_str() : "the first reading");
    if (from) {
      std::fprintf(out, " (%lld earlier rows of the replay not written: the stored ones stay)",
                   static_cast<long long>(r.skipped_rows));
    }
    std::fputc('\n', out);
  } catch (const std::exception& e) {
    std::fprintf(err, "history rebuild: storage: %s: %s (see storage.path)\n", path.c_str(),
                 e.what());
    return static_cast<int>(ExitCode::Database);
  }
  return 0;
}

} // namespace hgj

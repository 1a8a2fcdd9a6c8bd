#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <memory>

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

namespace hgj::core {

/// Lets through at most `burst` log lines per `interval` for one call site, then counts what it
/// suppressed and reports the count with the next line it lets through. Untrusted input (bad
/// payloads, Modbus faults, HTTP requests) is logged only through one of these, so a flood of bad
/// input cannot flood the log. Thread-safe.
class RateLimitedLog {
public:
  explicit RateLimitedLog(int burst = 5, std::chrono::seconds interval = std::chrono::seconds(10))
      : burst_(burst), interval_(interval) {}

  template <typename... Args>
  void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    uint64_t suppressed = 0;
    if (!admit(suppressed)) {
      return;
    }
    std::string msg = fmt::format(fmt, std::forward<Args>(args)...);
    if (suppressed > 0) {
      spdlog::warn("{} ({} similar messages suppressed)", msg, suppressed);
    } else {
      spdlog::warn("{}", msg);
    }
  }

private:
  bool admit(uint64_t& suppressed);

  const int burst_;
  const std::chrono::seconds interval_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point window_start_{};  // guarded by mu_
  int in_window_ = 0;                                      // guarded by mu_
  uint64_t suppressed_ = 0;                                // guarded by mu_
};

/// `text` made safe for a log line: control characters (including CR and LF, which would forge
/// log lines), backslashes and bytes that are not valid UTF-8 are escaped as \n, \xHH, \\;
/// at most `max` bytes of the input are shown, with "..." when cut. Every string a device, a
/// broker or an HTTP client chose (topics, device ids, payload excerpts, URLs) goes through this
/// before it is logged.
std::string printable(std::string_view text, size_t max = 200);

/// The syslog priority (0 emerg .. 7 debug) journald files a line of this level under:
/// critical 2, error 3, warn 4, info 6, debug and trace 7.
int syslogPriority(spdlog::level::level_enum level);

/// True when `journal_stream` (the value of $JOURNAL_STREAM, "DEVICE:INODE") names the file
/// open on `fd`: systemd connected that output to the journal, which then reads an sd-daemon
/// `<N>` prefix on each line as the line's priority. False for null, a malformed value or
/// another file (a shell redirect below a unit keeps the variable but not the stream).
bool journalStreamMatches(int fd, const char* journal_stream);

/// Writes formatted lines to a file descriptor the journal reads, each line (also the inner
/// lines of a multi-line message) prefixed with `<N>`, its level's syslog priority. The
/// journal timestamps lines itself, so the pattern set on this sink carries no time.
/// Thread-safe (spdlog's base_sink mutex); does not own `fd`.
std::shared_ptr<spdlog::sinks::sink> makeJournalStreamSink(int fd);

/// Sets up spdlog: stdout, and a rotating file when `file` is not empty. Under systemd (stdout
/// is the journal stream of $JOURNAL_STREAM) stdout lines carry their `<N>` priority and no
/// timestamp, so `journalctl -p warning` filters by level; otherwise they are plain text
/// with a UTC timestamp.
void setupLogging(const std::string& level, const std::string& file, size_t max_size_bytes,
                  size_t max_files);

} // namespace hgj::core

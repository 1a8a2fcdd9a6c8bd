#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

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

/// Sets up spdlog: stdout, and a rotating file when `file` is not empty.
void setupLogging(const std::string& level, const std::string& file, size_t max_size_bytes,
                  size_t max_files);

} // namespace hgj::core

#include "core/log.h"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace hgj::core {

bool RateLimitedLog::admit(uint64_t& suppressed) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (now - window_start_ >= interval_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

void setupLogging(const std::string& level, const std::string& file, size_t max_size_bytes,
                  size_t max_files) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  if (!file.empty()) {
    sinks.push_back(
        std::make_shared<spdlog::sinks::rotating_file_sink_mt>(file, max_size_bytes, max_files));
  }
  auto logger = std::make_shared<spdlog::logger>("hgj", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(level));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%t] %v", spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  spdlog::flush_every(std::chrono::seconds(1));
}

} // namespace hgj::core

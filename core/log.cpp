#include "core/log.h"

#include <algorithm>

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

std::string printable(std::string_view text, size_t max) {
  std::string out;
  size_t n = std::min(text.size(), max);
  out.reserve(n + 8);
  static const char* hex = "0123456789abcdef";
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 0xF];
  };
  size_t i = 0;
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      escape(c);
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      // A well-formed UTF-8 sequence (Chinese names, °C) passes; anything else is escaped.
      size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
      bool ok = len > 0 && i + len <= n;
      for (size_t k = 1; ok && k < len; ++k) {
        ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
      }
      if (ok) {
        out.append(text.substr(i, len));
        i += len;
        continue;
      }
      escape(c);
    }
    ++i;
  }
  if (text.size() > max) {
    out += "...";
  }
  return out;
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

#include "core/log.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <unistd.h>

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

int syslogPriority(spdlog::level::level_enum level) {
  switch (level) {
  case spdlog::level::critical:
    return 2;
  case spdlog::level::err:
    return 3;
  case spdlog::level::warn:
    return 4;
  case spdlog::level::info:
    return 6;
  default:
    return 7;
  }
}

bool journalStreamMatches(int fd, const char* journal_stream) {
  if (journal_stream == nullptr) {
    return false;
  }
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  char tail = 0;
  if (std::sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &tail) != 2) {
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return false;
  }
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

namespace {

class JournalStreamSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit JournalStreamSink(int fd) : fd_(fd) {}

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    // Appended, not `"<" + std::to_string(...)`: GCC 12 at -O3 reports a false -Wrestrict on
    // a literal prepended to a temporary string (GCC bug 105329).
    std::string prefix(1, '<');
    prefix += std::to_string(syslogPriority(msg.level));
    prefix += '>';
    std::string line = prefix;
    line.reserve(formatted.size() + 8);
    for (size_t i = 0; i < formatted.size(); ++i) {
      line += formatted[i];
      // journald reads a prefix per line: inner lines keep the message's priority.
      if (formatted[i] == '\n' && i + 1 < formatted.size()) {
        line += prefix;
      }
    }
    writeAll(line);
  }
  void flush_() override {}

private:
  void writeAll(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return;  // the journal went away: nothing better to do with a log line
      }
      off += static_cast<size_t>(n);
    }
  }

  const int fd_;
};

std::unique_ptr<spdlog::formatter> plainFormatter() {
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l [%t] %v",
                                                     spdlog::pattern_time_type::utc);
}

} // namespace

std::shared_ptr<spdlog::sinks::sink> makeJournalStreamSink(int fd) {
  return std::make_shared<JournalStreamSink>(fd);
}

void setupLogging(const std::string& level, const std::string& file, size_t max_size_bytes,
                  size_t max_files) {
  std::vector<spdlog::sink_ptr> sinks;
  if (journalStreamMatches(STDOUT_FILENO, std::getenv("JOURNAL_STREAM"))) {
    std::fflush(stdout);
    auto journal = makeJournalStreamSink(STDOUT_FILENO);
    journal->set_pattern("%l [%t] %v");
    sinks.push_back(journal);
  } else {
    auto out = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    out->set_formatter(plainFormatter());
    sinks.push_back(out);
  }
  if (!file.empty()) {
    auto rotating =
        std::make_shared<spdlog::sinks::rotating_file_sink_mt>(file, max_size_bytes, max_files);
    rotating->set_formatter(plainFormatter());
    sinks.push_back(rotating);
  }
  auto logger = std::make_shared<spdlog::logger>("hgj", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  spdlog::flush_every(std::chrono::seconds(1));
}

} // namespace hgj::core

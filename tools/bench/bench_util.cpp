#include "tools/bench/bench_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sys/resource.h>

namespace hgj::bench {

double monoSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int64_t wallMsInt() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

double wallMsFrac() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double processCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

void requireLoopback(const std::string& host) {
  if (host == "127.0.0.1" || host == "localhost" || host == "::1") {
    return;
  }
  std::fprintf(stderr, "refusing non-loopback target %s: the benchmark only uses 127.0.0.1\n",
               host.c_str());
  std::exit(2);
}

Options::Options(int argc, char** argv, std::vector<std::string> known_flags,
                 std::vector<std::string> known_values, const char* usage)
    : usage_(usage) {
  auto known = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage_, stdout);
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) {
      std::fprintf(stderr, "unexpected argument %s\n%s", a.c_str(), usage_);
      std::exit(2);
    }
    std::string name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (known(known_flags, name) && !has_value) {
      flags_.push_back(name);
      continue;
    }
    if (!known(known_values, name)) {
      std::fprintf(stderr, "unknown option --%s\n%s", name.c_str(), usage_);
      std::exit(2);
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "option --%s needs a value\n", name.c_str());
        std::exit(2);
      }
      value = argv[++i];
    }
    values_.emplace_back(name, value);
  }
}

bool Options::flag(const std::string& name) const {
  return std::find(flags_.begin(), flags_.end(), name) != flags_.end();
}

std::string Options::str(const std::string& name, const std::string& dflt) const {
  for (auto it = values_.rbegin(); it != values_.rend(); ++it) {
    if (it->first == name) {
      return it->second;
    }
  }
  return dflt;
}

long long Options::integer(const std::string& name, long long dflt) const {
  std::string s = str(name, "");
  if (s.empty()) {
    return dflt;
  }
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0') {
    std::fprintf(stderr, "--%s: not an integer: %s\n", name.c_str(), s.c_str());
    std::exit(2);
  }
  return v;
}

double Options::real(const std::string& name, double dflt) const {
  std::string s = str(name, "");
  if (s.empty()) {
    return dflt;
  }
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') {
    std::fprintf(stderr, "--%s: not a number: %s\n", name.c_str(), s.c_str());
    std::exit(2);
  }
  return v;
}

void touchFile(const std::string& path, const std::string& text) {
  if (path.empty()) {
    return;
  }
  if (FILE* f = std::fopen(path.c_str(), "w")) {
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }
}

std::string jsonEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

} // namespace hgj::bench

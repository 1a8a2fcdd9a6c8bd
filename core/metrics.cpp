#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace hgj::core {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size()]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    buckets_[i] = 0;
  }
}

void Histogram::observe(double v) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (v <= bounds_[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
    }
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.add(v);
}

MetricsRegistry::Series& MetricsRegistry::series(const std::string& name, Kind kind,
                                                 const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = families_.try_emplace(name);
  Family& fam = it->second;
  if (inserted) {
    fam.kind = kind;
    fam.help = help;
  }
  for (auto& s : fam.series) {
    if (s->labels == labels) {
      return *s;
    }
  }
  auto s = std::make_unique<Series>();
  s->labels = labels;
  fam.series.push_back(std::move(s));
  return *fam.series.back();
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const Labels& labels) {
  Series& s = series(name, Kind::Counter, help, labels);
  std::lock_guard lock(mu_);
  if (!s.counter) {
    s.counter = std::make_unique<Counter>();
  }
  return *s.counter;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const Labels& labels) {
  Series& s = series(name, Kind::Gauge, help, labels);
  std::lock_guard lock(mu_);
  if (!s.gauge) {
    s.gauge = std::make_unique<Gauge>();
  }
  return *s.gauge;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> bounds, const Labels& labels) {
  Series& s = series(name, Kind::Histogram, help, labels);
  std::lock_guard lock(mu_);
  if (!s.histogram) {
    s.histogram = std::make_unique<Histogram>(std::move(bounds));
  }
  return *s.histogram;
}

void MetricsRegistry::gaugeFn(const std::string& name, const std::string& help,
                              std::function<double()> fn, const Labels& labels) {
  Series& s = series(name, Kind::GaugeFn, help, labels);
  std::lock_guard lock(mu_);
  s.fn = std::move(fn);
}

namespace {

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string labelText(const Labels& labels, const std::string& extra = {}) {
  if (labels.empty() && extra.empty()) {
    return {};
  }
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += k + "=\"" + escapeLabel(v) + "\"";
  }
  if (!extra.empty()) {
    if (!first) {
      out += ',';
    }
    out += extra;
  }
  out += '}';
  return out;
}

std::string num(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

} // namespace

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  std::ostringstream out;
  for (const auto& [name, fam] : families_) {
    const char* type = "gauge";
    if (fam.kind == Kind::Counter) {
      type = "counter";
    } else if (fam.kind == Kind::Histogram) {
      type = "histogram";
    }
    out << "# HELP " << name << ' ' << fam.help << '\n';
    out << "# TYPE " << name << ' ' << type << '\n';
    for (const auto& s : fam.series) {
      switch (fam.kind) {
      case Kind::Counter:
        out << name << labelText(s->labels) << ' ' << (s->counter ? s->counter->value() : 0)
            << '\n';
        break;
      case Kind::Gauge:
        out << name << labelText(s->labels) << ' ' << num(s->gauge ? s->gauge->value() : 0)
            << '\n';
        break;
      case Kind::GaugeFn:
        out << name << labelText(s->labels) << ' ' << num(s->fn ? s->fn() : 0) << '\n';
        break;
      case Kind::Histogram: {
        const Histogram& h = *s->histogram;
        for (size_t i = 0; i < h.bounds().size(); ++i) {
          out << name << "_bucket" << labelText(s->labels, "le=\"" + num(h.bounds()[i]) + "\"")
              << ' ' << h.bucketCount(i) << '\n';
        }
        out << name << "_bucket" << labelText(s->labels, "le=\"+Inf\"") << ' ' << h.count()
            << '\n';
        out << name << "_sum" << labelText(s->labels) << ' ' << num(h.sum()) << '\n';
        out << name << "_count" << labelText(s->labels) << ' ' << h.count() << '\n';
        break;
      }
      }
    }
  }
  return out.str();
}

double MetricsRegistry::value(const std::string& name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    return 0;
  }
  for (const auto& s : it->second.series) {
    if (s->labels != labels) {
      continue;
    }
    if (s->counter) {
      return static_cast<double>(s->counter->value());
    }
    if (s->gauge) {
      return s->gauge->value();
    }
    if (s->fn) {
      return s->fn();
    }
    if (s->histogram) {
      return static_cast<double>(s->histogram->count());
    }
  }
  return 0;
}

double processResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) {
    return 0;
  }
  long pages_total = 0;
  long pages_resident = 0;
  int n = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
  std::fclose(f);
  if (n != 2) {
    return 0;
  }
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double heapInUseBytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  // Walks every arena under its lock: a scrape's worth of work, not a hot-path call.
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd);
#else
  return 0;
#endif
}

double HeapTrimmer::maybeTrim(int64_t now_ms) {
  const double rss = processResidentBytes();
  if (baseline_ < 0) {
    baseline_ = rss;
    last_ms_ = now_ms;
    return 0;
  }
  baseline_ = std::min(baseline_, rss);  // what shrank by itself is the new floor
  if (now_ms - last_ms_ < min_interval_ms_ || rss < baseline_ + min_growth_) {
    return 0;
  }
  last_ms_ = now_ms;
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  ++trims_;
  baseline_ = processResidentBytes();
  return rss > baseline_ ? rss - baseline_ : 0;
}

} // namespace hgj::core

#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hgj::core {

/// A monotonically increasing counter; incremented lock-free from any thread.
class Counter {
public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

/// A value that goes up and down, set from any thread.
class Gauge {
public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double d) {
    double cur = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
    }
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0};
};

/// Fixed-bucket histogram (cumulative buckets as Prometheus wants them), lock-free.
class Histogram {
public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  uint64_t bucketCount(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.value(); }

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  Gauge sum_;
};

using Labels = std::vector<std::pair<std::string, std::string>>;

/// The process's metrics. Components ask for their instruments once at start-up and keep the
/// returned reference (stable for the registry's lifetime); the HTTP thread renders the text
/// exposition format. Registration takes a lock; updating an instrument does not.
class MetricsRegistry {
public:
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> bounds, const Labels& labels = {});
  /// A gauge computed when scraped (queue depths, RSS). `fn` runs on the HTTP thread.
  void gaugeFn(const std::string& name, const std::string& help, std::function<double()> fn,
               const Labels& labels = {});

  /// Prometheus text format 0.0.4.
  std::string render() const;

  /// Value of a counter or gauge by name and labels, for tests and /healthz; 0 when absent.
  double value(const std::string& name, const Labels& labels = {}) const;

private:
  enum class Kind { Counter, Gauge, Histogram, GaugeFn };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> fn;
  };
  struct Family {
    Kind kind;
    std::string help;
    std::vector<std::unique_ptr<Series>> series;
  };
  Series& series(const std::string& name, Kind kind, const std::string& help,
                 const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
};

/// Resident set size of this process in bytes (from /proc/self/statm).
double processResidentBytes();
/// Bytes the C allocator has handed out and not had back (glibc's mallinfo2: in-use chunks,
/// arenas and mmapped). A leak grows this; memory freed but kept by the allocator's arenas
/// grows only the resident set. 0 where not glibc.
double heapInUseBytes();

/// Gives the pages the C allocator holds free back to the kernel (glibc's `malloc_trim`), but
/// only when the resident set has grown by `min_growth_bytes` since the last trim and at most
/// once per `min_interval_ms`: after a burst, a reconnect's redelivery or a reload has been
/// freed, the arenas keep its pages; at steady state nothing is trimmed. A trim walks the arenas
/// under their locks (sub-millisecond for the gateway's few MiB), so main's idle thread calls it.
class HeapTrimmer {
public:
  explicit HeapTrimmer(double min_growth_bytes = 256.0 * 1024, int64_t min_interval_ms = 30'000)
      : min_growth_(min_growth_bytes), min_interval_ms_(min_interval_ms) {}
  /// `now_ms` from a steady clock. Returns the resident bytes released, or 0 if it did not trim.
  double maybeTrim(int64_t now_ms);
  uint64_t trims() const { return trims_; }

private:
  double min_growth_;
  int64_t min_interval_ms_;
  double baseline_ = -1;        // resident bytes after the last trim (or at the first call)
  int64_t last_ms_ = INT64_MIN / 2;
  uint64_t trims_ = 0;
};

} // namespace hgj::core

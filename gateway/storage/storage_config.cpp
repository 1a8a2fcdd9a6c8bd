#include "gateway/storage/storage_config.h"

#include <chrono>

namespace hgj::storage {

void parseStorageConfig(const core::ConfigNode& n, StorageConfig& c) {
  n.allowKeys({"path", "commit_interval", "batch_max_rows", "queue_max_rows", "retention",
               "state_flush_interval", "busy_timeout"});
  // A relative path is relative to the config file's folder: the same file then means the same
  // database whichever directory the daemon was started from.
  c.path = n.str("path", c.path) == ":memory:" ? ":memory:" : n.filePath("path", c.path);
  if (c.path.empty()) {
    n.errorAt("path", "expected a file path, got an empty string");
  }
  c.commit_interval_ms = n.duration("commit_interval", std::chrono::milliseconds(100),
                                    std::chrono::milliseconds(5), std::chrono::milliseconds(200))
                             .count();
  c.batch_max_rows = static_cast<size_t>(n.integer("batch_max_rows", 5000, 1, 1'000'000));
  c.queue_max_rows = static_cast<size_t>(n.integer("queue_max_rows", 10'000, 1000, 50'000'000));
  core::ConfigNode r = n.child("retention");
  r.allowKeys({"max_age", "max_size_mb", "check_interval"});
  c.retention_max_age_ms = r.duration("max_age", std::chrono::hours(24 * 30),
                                      std::chrono::minutes(1), std::chrono::hours(24 * 3650))
                               .count();
  c.retention_max_mb = r.integer("max_size_mb", 2048, 1, 10'000'000);
  c.retention_check_ms = r.duration("check_interval", std::chrono::minutes(1),
                                    std::chrono::milliseconds(100), std::chrono::hours(24))
                             .count();
  c.state_flush_ms = n.duration("state_flush_interval", std::chrono::seconds(5),
                                std::chrono::milliseconds(100), std::chrono::minutes(10))
                         .count();
  c.busy_timeout_ms = n.duration("busy_timeout", std::chrono::seconds(5),
                                 std::chrono::milliseconds(10), std::chrono::minutes(5))
                          .count();
}

} // namespace hgj::storage

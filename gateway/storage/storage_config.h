#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config_node.h"

namespace hgj::storage {

/// The `storage:` section (docs/configuration.md lists every key; docs/storage.md what each
/// bound does). Owned here so that the store needs nothing of the gateway's whole config.
struct StorageConfig {
  std::string path = "/var/lib/hgj/hgj.db";  ///< absolute once loaded
  int64_t commit_interval_ms = 100;
  size_t batch_max_rows = 5000;
  size_t queue_max_rows = 10'000;
  int64_t retention_max_age_ms = 30LL * 86'400'000;
  int64_t retention_max_mb = 2048;
  int64_t retention_check_ms = 60'000;
  int64_t state_flush_ms = 5'000;
  int64_t busy_timeout_ms = 5'000;
};

/// Parses the `storage:` node into `c`; problems go to the node's diagnostics as FILE:LINE.
/// A relative `path` is taken relative to the file that names it.
void parseStorageConfig(const core::ConfigNode& n, StorageConfig& c);

} // namespace hgj::storage

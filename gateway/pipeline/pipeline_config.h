#pragma once

#include <cstddef>
#include <cstdint>

#include "core/config_node.h"
#include "gateway/history/rollups.h"
#include "gateway/storage/storage_config.h"

namespace hgj::pipeline {

/// The `pipeline:` section (docs/configuration.md).
struct PipelineConfig {
  int64_t snapshot_interval_ms = 250;
  int64_t tick_interval_ms = 100;
  size_t batch_max = 1024;
};

/// Parses the `pipeline:` node into `c`; problems go to the node's diagnostics as FILE:LINE.
void parsePipelineConfig(const core::ConfigNode& n, PipelineConfig& c);

/// What the pipeline reads of the configuration, gathered by the App from the loaded
/// GatewayConfig, so that the pipeline depends on these sections and not on the whole file.
struct PipelineSettings {
  PipelineConfig loop;              ///< `pipeline:`
  storage::StorageConfig storage;   ///< its reader's path and busy timeout, the state flush
  history::HistoryConfig history;   ///< `history:` (the rollups it keeps)
  size_t queue_capacity = 2048;     ///< `mqtt.queue_capacity`: its queue, in messages
  size_t max_payload_bytes = 64 * 1024;  ///< `mqtt.max_payload_bytes` (the decoder's limit)
  size_t max_topic_length = 256;         ///< `mqtt.max_topic_length` (the decoder's limit)
  bool allow_override = false;      ///< `uplink.commands.allow_override`
};

} // namespace hgj::pipeline

#include "gateway/pipeline/pipeline_config.h"

#include <chrono>

namespace hgj::pipeline {

void parsePipelineConfig(const core::ConfigNode& n, PipelineConfig& c) {
  n.allowKeys({"snapshot_interval", "tick_interval", "batch_max"});
  c.snapshot_interval_ms = n.duration("snapshot_interval", std::chrono::milliseconds(250),
                                      std::chrono::milliseconds(20), std::chrono::seconds(10))
                               .count();
  c.tick_interval_ms = n.duration("tick_interval", std::chrono::milliseconds(100),
                                  std::chrono::milliseconds(10), std::chrono::seconds(5))
                           .count();
  c.batch_max = static_cast<size_t>(n.integer("batch_max", 1024, 1, 1'000'000));
}

} // namespace hgj::pipeline

#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config_node.h"
#include "drivers/modbus/modbus_config.h"
#include "drivers/mqtt/mqtt_config.h"
#include "gateway/alerts/alerts_config.h"
#include "gateway/history/rollups.h"
#include "gateway/api/http_config.h"
#include "gateway/pipeline/pipeline_config.h"
#include "gateway/storage/storage_config.h"
#include "gateway/uplink/uplink_config.h"
#include "rules/rules_config.h"
#include "model/compound.h"

namespace hgj::config {

/// The `mqtt:` section, parsed by drivers/mqtt (parseMqttConfig).
using MqttConfig = drivers::mqtt::MqttConfig;

/// The `storage:` section, parsed by gateway/storage (parseStorageConfig).
using StorageConfig = storage::StorageConfig;

struct LogConfig {
  std::string level = "info";
  std::string file;
  int64_t max_size_mb = 10;
  int64_t max_files = 5;
};

/// The `pipeline:` section, parsed by gateway/pipeline (parsePipelineConfig).
using PipelineConfig = pipeline::PipelineConfig;

/// The whole configuration, validated. Sections owned by other areas are parsed by their own
/// parsers (drivers/modbus, rules, alerts, uplink, api) from the nodes kept here.
struct GatewayConfig {
  std::string path;  ///< the main file
  std::shared_ptr<model::Compound> compound;
  MqttConfig mqtt;
  StorageConfig storage;
  LogConfig log;
  PipelineConfig pipeline;
  drivers::modbus::ModbusConfig modbus;
  rules::RulesConfig rules;
  alerts::AlertsConfig alerts;
  uplink::UplinkConfig uplink;
  api::HttpConfig http;
  history::HistoryConfig history;
  std::string rules_path;
};

/// One `--set key.path=value` override.
struct Override {
  std::string key;
  std::string value;
};

/// Parses "key.path=value"; nullopt when there is no '=' or no key.
std::optional<Override> parseOverride(const std::string& text);

/// Loads and validates the main file, its includes and the profiles. `diag` receives every
/// problem (as FILE:LINE: key.path: message); the result is usable only when diag.ok().
/// Problems in overridden keys are reported at `--set:N` (N = the override's position).
GatewayConfig loadConfig(const std::string& path, const std::vector<Override>& overrides,
                         core::Diagnostics& diag);

/// Expands "{n:04}", "{n+435:04}", "{n}" and "{parent}" in an id template.
std::string expandTemplate(const std::string& text, int64_t n, const std::string& parent = {});

} // namespace hgj::config

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
#include "gateway/uplink/uplink_config.h"
#include "rules/rules_config.h"
#include "model/compound.h"

namespace hgj::config {

/// The `mqtt:` section, parsed by drivers/mqtt (parseMqttConfig).
using MqttConfig = drivers::mqtt::MqttConfig;

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

struct LogConfig {
  std::string level = "info";
  std::string file;
  int64_t max_size_mb = 10;
  int64_t max_files = 5;
};

struct PipelineConfig {
  int64_t snapshot_interval_ms = 250;
  int64_t tick_interval_ms = 100;
  size_t batch_max = 1024;
};

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

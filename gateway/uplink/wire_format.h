#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/config_push/config_bundle.h"
#include "gateway/pipeline/commands.h"
#include "gateway/uplink/outbox.h"
#include "gateway/uplink/uplink_config.h"

namespace hgj::uplink {

/// Topic names and payload shapes of one mode. Pure and immutable: used from any thread.
///
/// native: `hgj/{site}/{subtopic}` with the body plus `msg_id` and `ts` (Unix ms).
/// thingsboard (ThingsBoard gateway MQTT API):
///   - summaries -> `v1/devices/me/telemetry` `{"ts":..,"values":{flattened keys}}` (the gateway
///     device stands for the compound: `parking_free`, `parking_B1_A_free`, `ev_power_kw` ...);
///   - alerts with a `device` -> `v1/gateway/telemetry` `{"<device>":[{"ts":..,"values":
///     {"alert_id":..,"alert_rule":..,"alert_state":..,...}}]}`; without one, the gateway's own
///     telemetry;
///   - raw telemetry batches (`{"readings":[{device,point,value,ts}]}`) -> `v1/gateway/telemetry`
///     grouped by device and ts;
///   - device announcements -> `v1/gateway/connect` `{"device":..,"type":..}` and
///     `v1/gateway/attributes` `{"<device>":{..}}`.
///   ThingsBoard de-duplicates by (device, key, ts), so its payloads carry no msg_id.
class WireFormat {
public:
  WireFormat(Mode mode, std::string site_id);

  Mode mode() const { return mode_; }
  const std::string& site() const { return site_; }

  /// Renders an enqueued message. `body` is consumed.
  void render(Kind kind, const std::string& subtopic, nlohmann::json body,
              const std::string& msg_id, int64_t ts_ms, std::string& topic,
              std::string& payload) const;

  std::string nativeTopic(std::string_view subtopic) const;
  /// `hgj/{site}/status` (native mode only).
  std::string statusTopic() const { return nativeTopic("status"); }
  /// Topics the uplink subscribes to for commands.
  std::vector<std::string> commandTopics() const;

  /// Flattens nested objects into `a_b_c` keys; arrays of objects are keyed by their
  /// level/zone/shed/id/space field (or their index).
  static void flatten(const std::string& prefix, const nlohmann::json& j, nlohmann::json& out);

private:
  Mode mode_;
  std::string site_;
};

/// An upstream command after validation.
struct ParsedCommand {
  bool ok = false;
  std::string id;      ///< the request id ("" when the payload was too broken to have one)
  std::string method;
  std::string reason;  ///< why it was refused (when !ok)
  int status = 400;
  pipeline::Command command;
  /// Where the answer goes: native `hgj/{site}/cmd/result`; thingsboard gateway RPC (reply on
  /// `v1/gateway/rpc` for `tb_device`) or server-side RPC to the gateway device (reply on
  /// `v1/devices/me/rpc/response/{tb_request_id}`).
  enum class Route { Native, TbGatewayRpc, TbDeviceRpc } route = Route::Native;
  std::string tb_device;
  std::string tb_request_id;
  /// An RPC answer (ours, echoed by a plain broker on v1/gateway/rpc), not a request: skip it.
  bool is_response = false;
  /// `config_push`: the bundle, checked against the limits (file names, sizes); not yet
  /// validated as a configuration.
  std::shared_ptr<config_push::ConfigBundle> bundle;
};

constexpr size_t kMaxCommandBytes = 16 * 1024;

/// The largest command payload accepted: kMaxCommandBytes, or with config push on, room for a
/// bundle of `limits.max_bytes` written as JSON strings (escaping may double it).
size_t commandByteLimit(const config_push::BundleLimits* limits);

/// Parses a command arriving on `topic`. `allowed` is the configured method allow list;
/// `config_push` the bundle limits when `config_push` may be allowed (nullptr: the method is
/// refused like any other not allowed). Never throws.
ParsedCommand parseCommand(const WireFormat& format, const std::string& topic,
                           std::string_view payload, const std::vector<std::string>& allowed,
                           const config_push::BundleLimits* config_push = nullptr);

/// The answer to a command: topic and payload, ready for the outbox.
void renderCommandResult(const WireFormat& format, const ParsedCommand& cmd, bool ok, int status,
                         const std::string& message, const std::string& msg_id, int64_t ts_ms,
                         std::string& topic, std::string& payload);

} // namespace hgj::uplink

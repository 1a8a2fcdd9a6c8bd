#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config_node.h"
#include "core/tls_config.h"
#include "gateway/config_push/config_bundle.h"
#include "gateway/uplink/replay_pacer.h"

namespace hgj::uplink {

enum class Mode { Native, ThingsBoard };

/// `uplink.tls` (one shape and parser with `mqtt.tls`).
using TlsConfig = core::TlsConfig;

struct SummaryConfig {
  std::chrono::milliseconds parking{std::chrono::seconds(60)};  ///< 0 = never periodically
  std::chrono::milliseconds ev{std::chrono::seconds(60)};
  std::chrono::milliseconds ebike{std::chrono::seconds(60)};
  std::chrono::milliseconds health{std::chrono::minutes(5)};
  bool on_change = true;  ///< also send when the counts change significantly
  std::chrono::milliseconds min_interval{std::chrono::seconds(5)};  ///< between change-driven ones
  std::chrono::milliseconds ev_blocked_after{std::chrono::minutes(15)};
  double ebike_in_use_a = 0.1;  ///< a port drawing more than this is in use
  /// A newer summary of a kind replaces an older one of the same kind that was never sent
  /// (during an outage): the platform gets the latest state, not every minute of it.
  bool coalesce = true;
  int utc_offset_minutes = 8 * 60;  ///< where "today" starts for energy totals (China: +08:00)
};

struct TelemetryConfig {
  bool enabled = false;
  std::chrono::milliseconds period{std::chrono::seconds(10)};
  int max_batch = 500;  ///< readings per message
};

struct OutboxConfig {
  int64_t max_rows = 200'000;
  int64_t max_bytes = 64LL * 1024 * 1024;
};

/// `uplink.commands`: what the district platform may ask of this gateway. Everything that can
/// switch power is off unless the installer turns it on, point by point.
struct CommandConfig {
  bool enabled = false;  ///< commands from upstream at all
  std::vector<std::string> allow{"write", "ack_alert", "summary_now"};  ///< methods
  /// The points `write` may set: "DEVICE.POINT" patterns, `*` matching any run of characters
  /// ("S*/P*.relay", "DSP-01.brightness"). Empty: no writes from upstream.
  std::vector<std::string> write_points;
  /// Whether an upstream write may override a safety latch (re-enable a cut port).
  bool allow_override = false;
  /// `write` only over a TLS uplink (or one to a loopback broker): a plain tcp:// command
  /// channel can be spoofed on the way.
  bool require_tls = true;
  std::chrono::milliseconds timeout{std::chrono::seconds(15)};

  /// Whether `write` may set `point` of `device` (write_points).
  bool writeAllowed(const std::string& device, const std::string& point) const;
};

/// `uplink.config_push`: whether the platform may replace this gateway's configuration
/// (docs/remote-config.md). Off unless the installer turns it on.
struct ConfigPushConfig {
  bool enabled = false;
  /// How long a freshly applied bundle has to make ingest, the pipeline and the uplink healthy
  /// before the gateway goes back to the previous good config by itself.
  std::chrono::milliseconds health_window{std::chrono::seconds(60)};
  /// How long they must stay healthy together for the bundle to be confirmed.
  std::chrono::milliseconds healthy_for{std::chrono::seconds(5)};
  size_t keep = 5;  ///< stored bundles kept (besides the active one and the way back)
  config_push::BundleLimits limits;
};

/// Glob match with `*` (any run of characters, including none and '/').
bool globMatch(std::string_view pattern, std::string_view text);

/// The `uplink:` section. Plain data, copied into the Uplink at construction.
struct UplinkConfig {
  bool enabled = false;
  std::string url = "tcp://127.0.0.1:1883";  ///< tcp:// mqtt:// ssl:// mqtts://
  Mode mode = Mode::Native;
  std::string client_id;  ///< empty = "hgj-{site}"
  std::string username;
  std::string password;
  std::chrono::milliseconds keepalive{std::chrono::seconds(30)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  TlsConfig tls;
  std::chrono::milliseconds backoff_min{std::chrono::seconds(1)};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(60)};
  /// The first reconnect after a working connection was lost is drawn from [min/4, this]
  /// (capped at backoff_max), not from [min/4, min]: a district's gateways that lose the same
  /// broker at the same instant do not all come back within the same second.
  std::chrono::milliseconds backoff_first{std::chrono::seconds(10)};
  SummaryConfig summaries;
  TelemetryConfig telemetry;
  OutboxConfig outbox;
  int inflight = 64;        ///< unacknowledged QoS 1 publishes at a time
  ReplaySettings replay;     ///< pacing of what is sent (the replay after an outage)
  CommandConfig commands;
  ConfigPushConfig config_push;
  std::string thingsboard_access_token;  ///< thingsboard mode: the gateway device's token

  bool usesTls() const;
};

/// Parses the `uplink:` section (undefined node -> all defaults). Problems go to
/// `uplink_section.diag()` as `FILE:LINE: uplink.key: message`; unknown keys are rejected.
UplinkConfig parseUplinkConfig(const core::ConfigNode& uplink_section);

const char* modeName(Mode mode);

} // namespace hgj::uplink

#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config_node.h"
#include "gateway/alerts/alert_types.h"
#include "model/compound.h"

namespace hgj::alerts {

using std::chrono::milliseconds;

enum class ChannelType : uint8_t { WeCom, DingTalk, Webhook, Upstream };
const char* channelTypeName(ChannelType t);

/// `url` with what may be a credential replaced by `<redacted>`: user:password@, the path and
/// the query (robot keys travel in both). For messages and logs about a channel's URL.
std::string redactUrl(const std::string& url);

/// One place alerts go. `upstream` is the AlertListener (events to `hgj/{site}/alerts`); the
/// others are HTTP robots delivered by the Notifier.
struct ChannelConfig {
  std::string id;
  ChannelType type = ChannelType::Webhook;
  bool enabled = true;
  std::string url;     ///< full URL with the robot's key/token in the query
  std::string secret;  ///< DingTalk signing secret ("SEC..."); empty = unsigned
  std::string ca_file;  ///< https only: CA bundle; empty = the system's
  milliseconds timeout{5000};  ///< connect and read timeout of one request
  int rate_per_minute = 20;    ///< messages per rolling minute; 0 = unlimited
  int max_batch = 10;          ///< notifications combined into one message at most
  int max_bytes = 4000;        ///< body text size limit of one message (WeCom: 4,096)
};

/// How fast and how far an unacknowledged alert of one severity goes.
struct SeverityPolicy {
  milliseconds ack_timeout{0};  ///< unacked this long -> escalation contacts; 0 = never
  milliseconds renotify{0};     ///< then repeat at this interval until acked/cleared; 0 = never
  bool escalate_at_once = false;  ///< tell staff and escalation contacts in the first message
  bool notify_people = true;      ///< false: upstream only (no robot messages)
  bool notify_ack = true;         ///< tell the group when someone acks
  bool notify_clear = true;       ///< tell the group when it clears
};

/// A storm of one kind (same rule, same grid, same notification kind) above `threshold` within
/// `window` becomes one summary per window instead of one message per alert.
struct FloodControl {
  milliseconds window{60'000};
  int threshold = 5;  ///< individual messages per window before summarising; 0 = no flood control
};

struct DeliveryConfig {
  milliseconds retry_initial{2000};  ///< first backoff after a failed send
  milliseconds retry_max{300'000};   ///< backoff cap
  milliseconds batch_delay{300};     ///< wait this long after a notification appears to batch it
  milliseconds poll_interval{1000};  ///< a worker's idle wake-up (it is also woken on new rows)
  milliseconds expire_after{24 * 3600 * 1000LL};  ///< undelivered older than this: expired
};

/// Message templates; `{name}` placeholders are listed in docs/alerts.md.
struct Templates {
  std::string title;
  std::string raised;
  std::string escalated;
  std::string renotify;
  std::string acked;
  std::string cleared;
  std::string summary;
};

struct AlertsConfig {
  std::string site_id;
  std::string site_name;
  std::vector<ChannelConfig> channels;
  std::vector<std::string> default_channels;  ///< for grids that name none
  std::array<SeverityPolicy, 3> policies;     ///< by Severity
  FloodControl flood;
  DeliveryConfig delivery;
  Templates templates;
  std::string dashboard_url = "http://127.0.0.1:8080/";
  int utc_offset_minutes = 8 * 60;  ///< local time in messages (China Standard Time)

  const ChannelConfig* channel(const std::string& id) const;
  const SeverityPolicy& policy(Severity s) const { return policies[static_cast<size_t>(s)]; }
};

/// The defaults (Chinese templates, policies of docs/alerts.md), with no channels.
AlertsConfig defaultAlertsConfig();

/// Parses the `alerts:` section (undefined -> defaults with no channels). Problems (unknown keys,
/// bad values, a grid naming an unknown channel) go to `alerts_section.diag()`. Config loading
/// only (single thread).
AlertsConfig parseAlertsConfig(const core::ConfigNode& alerts_section,
                               const model::Compound& compound);

} // namespace hgj::alerts

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "model/severity.h"
#include "model/value.h"

namespace hgj::alerts {

using model::Severity;
enum class AlertState : uint8_t { Active, Acked, Cleared };

using model::severityName;  ///< "info" | "warning" | "critical"
const char* severityNameZh(Severity s);      ///< "提示" | "警告" | "紧急"
using model::parseSeverity;  ///< the inverse of severityName
const char* stateName(AlertState s);         ///< "active" | "acked" | "cleared"
std::optional<AlertState> parseState(std::string_view s);

/// One row of the `alerts` table, as the manager keeps it and hands it to listeners.
struct AlertRecord {
  int64_t id = 0;
  std::string rule;
  std::string device;  ///< device id ("S03/P07")
  std::string grid;
  Severity severity = Severity::Warning;
  AlertState state = AlertState::Active;
  std::string message;
  model::Value value;
  int64_t source_ts = 0;  ///< Unix ms of the reading that triggered it
  int64_t raised_at = 0;  ///< Unix ms
  int64_t acked_at = 0;   ///< 0 = not acked
  std::string acked_by;
  std::string ack_note;
  int64_t cleared_at = 0;  ///< 0 = not cleared
  int escalation_level = 0;  ///< 0 grid staff only, 1 escalation contacts told too
  std::string actions;       ///< what the gateway already did ("已自动断电")
};

enum class AlertEventKind : uint8_t { Raised, Acked, Cleared, Escalated };
const char* eventKindName(AlertEventKind k);  ///< "raised" | "acked" | "cleared" | "escalated"

/// A change of an alert, after it is committed to the database.
struct AlertEvent {
  AlertEventKind kind = AlertEventKind::Raised;
  AlertRecord alert;  ///< the alert's fields after the change
  int64_t at_ms = 0;  ///< when the change happened (Unix ms)
  std::string actor;  ///< "gateway" for the rules and escalation, the operator's name for acks
};

/// Receives every committed alert change; the lead forwards them to the upstream outbox
/// (`hgj/{site}/alerts`). Called on the pipeline thread (the AlertManager's thread), after the
/// change is committed; must not block (enqueue and return).
class AlertListener {
public:
  virtual ~AlertListener() = default;
  virtual void onAlertEvent(const AlertEvent& event) = 0;
};

/// The alert's fields as JSON, with the names of the `alerts` table and of `GET /api/v1/alerts`
/// (`raised_at` etc. as Unix ms; `value` as a JSON scalar or null).
nlohmann::json toJson(const AlertRecord& alert);
/// The upstream event: the alert's fields plus `"event":"raised|acked|cleared|escalated"`,
/// `"at"` and `"actor"` (the uplink adds `msg_id` and `ts`).
nlohmann::json toJson(const AlertEvent& event);

} // namespace hgj::alerts

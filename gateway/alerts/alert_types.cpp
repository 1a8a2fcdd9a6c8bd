#include "gateway/alerts/alert_types.h"

#include <nlohmann/json.hpp>

namespace hgj::alerts {

const char* severityNameZh(Severity s) {
  switch (s) {
  case Severity::Info:
    return "提示";
  case Severity::Warning:
    return "警告";
  case Severity::Critical:
    return "紧急";
  }
  return "警告";
}

const char* stateName(AlertState s) {
  switch (s) {
  case AlertState::Active:
    return "active";
  case AlertState::Acked:
    return "acked";
  case AlertState::Cleared:
    return "cleared";
  }
  return "active";
}

std::optional<AlertState> parseState(std::string_view s) {
  if (s == "active") {
    return AlertState::Active;
  }
  if (s == "acked") {
    return AlertState::Acked;
  }
  if (s == "cleared") {
    return AlertState::Cleared;
  }
  return std::nullopt;
}

const char* eventKindName(AlertEventKind k) {
  switch (k) {
  case AlertEventKind::Raised:
    return "raised";
  case AlertEventKind::Acked:
    return "acked";
  case AlertEventKind::Cleared:
    return "cleared";
  case AlertEventKind::Escalated:
    return "escalated";
  }
  return "raised";
}

nlohmann::json toJson(const AlertRecord& a) {
  auto opt_ms = [](int64_t v) { return v == 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  auto opt_str = [](const std::string& v) {
    return v.empty() ? nlohmann::json(nullptr) : nlohmann::json(v);
  };
  return nlohmann::json{{"id", a.id},
                        {"rule", a.rule},
                        {"device", a.device},
                        {"grid", opt_str(a.grid)},
                        {"severity", severityName(a.severity)},
                        {"state", stateName(a.state)},
                        {"message", a.message},
                        {"value", model::toJson(a.value)},
                        {"source_ts", a.source_ts},
                        {"raised_at", a.raised_at},
                        {"acked_at", opt_ms(a.acked_at)},
                        {"acked_by", opt_str(a.acked_by)},
                        {"ack_note", opt_str(a.ack_note)},
                        {"cleared_at", opt_ms(a.cleared_at)},
                        {"escalation_level", a.escalation_level},
                        {"actions", opt_str(a.actions)}};
}

nlohmann::json toJson(const AlertEvent& e) {
  nlohmann::json j = toJson(e.alert);
  j["event"] = eventKindName(e.kind);
  j["at"] = e.at_ms;
  j["actor"] = e.actor;
  return j;
}

} // namespace hgj::alerts

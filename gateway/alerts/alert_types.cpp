#include "gateway/alerts/alert_types.h"

#include <nlohmann/json.hpp>

#include "core/enum_names.h"

namespace hgj::alerts {

namespace {

constexpr core::EnumNames<Severity, 3> kSeverityZh{
    {{Severity::Info, "提示"}, {Severity::Warning, "警告"}, {Severity::Critical, "紧急"}}};
constexpr core::EnumNames<AlertState, 3> kStateNames{{{AlertState::Active, "active"},
                                                      {AlertState::Acked, "acked"},
                                                      {AlertState::Cleared, "cleared"}}};
constexpr core::EnumNames<AlertEventKind, 4> kEventKindNames{
    {{AlertEventKind::Raised, "raised"},
     {AlertEventKind::Acked, "acked"},
     {AlertEventKind::Cleared, "cleared"},
     {AlertEventKind::Escalated, "escalated"}}};

} // namespace

const char* severityNameZh(Severity s) { return kSeverityZh.name(s, "警告"); }

const char* stateName(AlertState s) { return kStateNames.name(s, "active"); }

std::optional<AlertState> parseState(std::string_view s) { return kStateNames.parse(s); }

const char* eventKindName(AlertEventKind k) { return kEventKindNames.name(k, "raised"); }

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

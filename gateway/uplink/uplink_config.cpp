#include "gateway/uplink/uplink_config.h"


namespace hgj::uplink {

namespace {

using std::chrono::milliseconds;

bool hasScheme(const std::string& url, std::string_view scheme) {
  return url.rfind(scheme, 0) == 0;
}

// "+08:00", "-05:30", "0" -> minutes east of UTC.
std::optional<int> parseUtcOffset(const std::string& text) {
  if (text == "0" || text == "Z" || text == "+00:00") {
    return 0;
  }
  if (text.size() != 6 || (text[0] != '+' && text[0] != '-') || text[3] != ':') {
    return std::nullopt;
  }
  auto digit = [&](size_t i) { return text[i] >= '0' && text[i] <= '9'; };
  if (!digit(1) || !digit(2) || !digit(4) || !digit(5)) {
    return std::nullopt;
  }
  int hours = (text[1] - '0') * 10 + (text[2] - '0');
  int minutes = (text[4] - '0') * 10 + (text[5] - '0');
  if (hours > 14 || minutes > 59) {
    return std::nullopt;
  }
  int total = hours * 60 + minutes;
  return text[0] == '-' ? -total : total;
}

void parseSummaries(const core::ConfigNode& node, SummaryConfig& s) {
  if (!node.defined()) {
    return;
  }
  node.allowKeys({"parking", "ev", "ebike", "health", "on_change", "min_interval",
                  "ev_blocked_after", "ebike_in_use_a", "utc_offset", "coalesce"});
  s.coalesce = node.boolean("coalesce", s.coalesce);
  s.parking = node.duration("parking", s.parking);
  s.ev = node.duration("ev", s.ev);
  s.ebike = node.duration("ebike", s.ebike);
  s.health = node.duration("health", s.health);
  s.on_change = node.boolean("on_change", s.on_change);
  s.min_interval = node.duration("min_interval", s.min_interval, milliseconds(100));
  s.ev_blocked_after = node.duration("ev_blocked_after", s.ev_blocked_after);
  s.ebike_in_use_a = node.number("ebike_in_use_a", s.ebike_in_use_a, 0, 100);
  std::string offset = node.str("utc_offset", "+08:00");
  if (auto minutes = parseUtcOffset(offset)) {
    s.utc_offset_minutes = *minutes;
  } else {
    node.errorAt("utc_offset", "expected an offset like \"+08:00\", got \"" + offset + "\"");
  }
}

} // namespace

bool UplinkConfig::usesTls() const {
  return hasScheme(url, "ssl://") || hasScheme(url, "mqtts://") || hasScheme(url, "wss://");
}

const char* modeName(Mode mode) {
  return mode == Mode::ThingsBoard ? "thingsboard" : "native";
}

bool globMatch(std::string_view pattern, std::string_view text) {
  // Iterative matcher with one backtrack point: linear enough for short ids.
  size_t p = 0;
  size_t t = 0;
  size_t star = std::string_view::npos;
  size_t mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

bool CommandConfig::writeAllowed(const std::string& device, const std::string& point) const {
  for (const auto& wp : write_points) {
    size_t dot = wp.rfind('.');
    if (dot == std::string::npos) {
      continue;
    }
    if (globMatch(std::string_view(wp).substr(0, dot), device) &&
        globMatch(std::string_view(wp).substr(dot + 1), point)) {
      return true;
    }
  }
  return false;
}

UplinkConfig parseUplinkConfig(const core::ConfigNode& node) {
  UplinkConfig c;
  if (!node.defined()) {
    return c;
  }
  node.allowKeys({"enabled", "url", "mode", "client_id", "username", "password", "password_file",
                  "keepalive",
                  "connect_timeout", "tls", "backoff", "summaries", "telemetry", "outbox",
                  "inflight", "replay", "replay_rate", "commands", "config_push", "thingsboard"});
  c.enabled = node.boolean("enabled", c.enabled);
  c.url = node.str("url", c.url);
  if (!hasScheme(c.url, "tcp://") && !hasScheme(c.url, "mqtt://") && !c.usesTls()) {
    node.errorAt("url", "expected tcp://, mqtt://, ssl:// or mqtts://HOST:PORT, got \"" + c.url +
                            "\"");
  }
  c.mode = node.choice("mode", "native", {"native", "thingsboard"}) == "thingsboard"
               ? Mode::ThingsBoard
               : Mode::Native;
  c.client_id = node.str("client_id", "");
  if (c.client_id.size() > 128) {
    node.errorAt("client_id", "too long (expected at most 128 characters)");
  }
  c.username = node.str("username", "");
  c.password = node.secret("password");
  c.keepalive = node.duration("keepalive", c.keepalive, std::chrono::seconds(2),
                              std::chrono::hours(18));
  c.connect_timeout = node.duration("connect_timeout", c.connect_timeout,
                                    std::chrono::milliseconds(200), std::chrono::minutes(5));
  core::parseTlsConfig(node.child("tls"), c.tls);
  if (node.has("tls") && !c.usesTls()) {
    node.errorAt("tls", "tls settings need an ssl:// or mqtts:// url");
  }

  if (auto b = node.child("backoff"); b.defined()) {
    b.allowKeys({"min", "max", "first"});
    c.backoff_min = b.duration("min", c.backoff_min, milliseconds(10), std::chrono::hours(1));
    c.backoff_max = b.duration("max", c.backoff_max, milliseconds(10), std::chrono::hours(1));
    if (c.backoff_max < c.backoff_min) {
      b.errorAt("max", "must not be below backoff.min");
    }
    c.backoff_first = b.duration("first", c.backoff_first, milliseconds(0), std::chrono::hours(1));
  }
  parseSummaries(node.child("summaries"), c.summaries);
  if (auto t = node.child("telemetry"); t.defined()) {
    t.allowKeys({"enabled", "period", "max_batch"});
    c.telemetry.enabled = t.boolean("enabled", c.telemetry.enabled);
    c.telemetry.period = t.duration("period", c.telemetry.period, milliseconds(100));
    c.telemetry.max_batch = static_cast<int>(t.integer("max_batch", c.telemetry.max_batch, 1,
                                                       10'000));
  }
  if (auto o = node.child("outbox"); o.defined()) {
    o.allowKeys({"max_rows", "max_bytes"});
    c.outbox.max_rows = o.integer("max_rows", c.outbox.max_rows, 10, 100'000'000);
    c.outbox.max_bytes = o.integer("max_bytes", c.outbox.max_bytes, 64 * 1024,
                                   int64_t{64} * 1024 * 1024 * 1024);
  }
  c.inflight = static_cast<int>(node.integer("inflight", c.inflight, 1, 10'000));
  // `replay_rate` is the older spelling of replay.max_rate (kept so existing configs load).
  c.replay.max_rate = node.number("replay_rate", c.replay.max_rate, 0, 1e7);
  if (auto r = node.child("replay"); r.defined()) {
    if (node.has("replay_rate")) {
      node.errorAt("replay_rate", "give either replay_rate or replay.max_rate, not both");
    }
    r.allowKeys({"max_rate", "min_rate", "start_rate", "increase", "slow_ack", "adaptive"});
    ReplaySettings& rs = c.replay;
    rs.max_rate = r.number("max_rate", rs.max_rate, 0, 1e7);
    rs.min_rate = r.number("min_rate", rs.min_rate, 0.1, 1e7);
    rs.start_rate = r.number("start_rate", rs.start_rate, 0.1, 1e7);
    rs.increase = r.number("increase", rs.increase, 0, 1e7);
    rs.slow_ack = r.duration("slow_ack", rs.slow_ack, milliseconds(1), std::chrono::minutes(10));
    rs.adaptive = r.boolean("adaptive", rs.adaptive);
    if (rs.max_rate > 0 && rs.min_rate > rs.max_rate) {
      r.errorAt("min_rate", "must not be above replay.max_rate");
    }
  }
  if (auto cmd = node.child("commands"); cmd.defined()) {
    cmd.allowKeys({"enabled", "allow", "write_points", "allow_override", "require_tls",
                   "timeout"});
    c.commands.enabled = cmd.boolean("enabled", c.commands.enabled);
    if (cmd.has("allow")) {
      c.commands.allow = cmd.strList("allow");
      for (const auto& m : c.commands.allow) {
        if (m != "write" && m != "ack_alert" && m != "summary_now") {
          cmd.errorAt("allow", "unknown method \"" + m +
                                   "\" (expected write, ack_alert or summary_now)");
        }
      }
    }
    c.commands.write_points = cmd.strList("write_points");
    for (const auto& wp : c.commands.write_points) {
      size_t dot = wp.rfind('.');
      if (dot == std::string::npos || dot == 0 || dot + 1 == wp.size()) {
        cmd.errorAt("write_points", "expected DEVICE.POINT (with * wildcards), got \"" + wp +
                                        "\"");
      }
    }
    c.commands.allow_override = cmd.boolean("allow_override", c.commands.allow_override);
    c.commands.require_tls = cmd.boolean("require_tls", c.commands.require_tls);
    c.commands.timeout = cmd.duration("timeout", c.commands.timeout, milliseconds(100),
                                      std::chrono::minutes(5));
  }
  if (auto cp = node.child("config_push"); cp.defined()) {
    cp.allowKeys({"enabled", "health_window", "healthy_for", "keep", "max_bytes", "max_files",
                  "max_file_bytes"});
    auto& p = c.config_push;
    p.enabled = cp.boolean("enabled", p.enabled);
    p.health_window = cp.duration("health_window", p.health_window, std::chrono::seconds(1),
                                  std::chrono::hours(1));
    p.healthy_for = cp.duration("healthy_for", p.healthy_for, milliseconds(100),
                                std::chrono::minutes(10));
    if (p.healthy_for >= p.health_window) {
      cp.errorAt("healthy_for", "must be shorter than uplink.config_push.health_window");
    }
    p.keep = static_cast<size_t>(cp.integer("keep", static_cast<int64_t>(p.keep), 1, 100));
    p.limits.max_bytes = static_cast<size_t>(
        cp.integer("max_bytes", static_cast<int64_t>(p.limits.max_bytes), 1024, 16 * 1024 * 1024));
    p.limits.max_files = static_cast<size_t>(
        cp.integer("max_files", static_cast<int64_t>(p.limits.max_files), 1, 1000));
    p.limits.max_file_bytes = static_cast<size_t>(cp.integer(
        "max_file_bytes", static_cast<int64_t>(p.limits.max_file_bytes), 1024, 16 * 1024 * 1024));
  }
  if (auto tb = node.child("thingsboard"); tb.defined()) {
    tb.allowKeys({"access_token", "access_token_file"});
    c.thingsboard_access_token = tb.secret("access_token");
  }
  if (c.enabled && c.mode == Mode::ThingsBoard && c.thingsboard_access_token.empty() &&
      c.username.empty()) {
    node.errorAt("mode", "thingsboard mode needs uplink.thingsboard.access_token (the gateway "
                         "device's token)");
  }
  return c;
}

} // namespace hgj::uplink

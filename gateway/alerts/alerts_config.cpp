#include "gateway/alerts/alerts_config.h"

#include <set>

#include "core/enum_names.h"
#include "core/log.h"
#include "gateway/alerts/message_format.h"

namespace hgj::alerts {

namespace {

using namespace std::chrono_literals;

constexpr core::EnumNames<ChannelType, 4> kChannelTypes{{{ChannelType::WeCom, "wecom"},
                                                         {ChannelType::DingTalk, "dingtalk"},
                                                         {ChannelType::Webhook, "webhook"},
                                                         {ChannelType::Upstream, "upstream"}}};

Templates defaultTemplates() {
  Templates t;
  t.title = "{site}告警";
  t.raised =
      "### 【{severity}】{message}\n"
      "> 位置：{where}\n"
      "> 设备：{device}（{grid}）\n"
      "> 负责人：{staff}\n"
      "> 数值：{value}\n"
      "> 发生时间：{since}\n"
      "> 已处置：{actions}\n"
      "> 编号：{id}，请尽快处理并在[值守页面]({ack_url})确认";
  t.escalated =
      "### 【升级·{severity}】{message}\n"
      "> 已 {elapsed} 无人确认，升级通知\n"
      "> 位置：{where}\n"
      "> 设备：{device}（{grid}）\n"
      "> 负责人：{staff}；升级联系人：{escalation_staff}\n"
      "> 数值：{value}\n"
      "> 发生时间：{since}\n"
      "> 已处置：{actions}\n"
      "> 编号：{id}，请在[值守页面]({ack_url})确认";
  t.renotify =
      "### 【再次提醒·{severity}】{message}\n"
      "> 已 {elapsed} 无人确认\n"
      "> 位置：{where}\n"
      "> 设备：{device}（{grid}）\n"
      "> 编号：{id}，请在[值守页面]({ack_url})确认";
  t.acked =
      "### 【已确认】{message}\n"
      "> 确认人：{acked_by} {ack_note}\n"
      "> 设备：{device}（{where}）\n"
      "> 编号：{id}";
  t.cleared =
      "### 【已恢复】{message}\n"
      "> 设备：{device}（{where}）\n"
      "> 持续：{duration}\n"
      "> 编号：{id}";
  t.summary =
      "### 【汇总·{severity}】{count} 条{kind_zh}：{message} 等\n"
      "> 网格：{grid}（{staff}）\n"
      "> 设备：{devices}\n"
      "> 请在[值守页面]({ack_url})查看并确认";
  return t;
}

// A host the traffic to which never leaves the box: plain http:// is acceptable there.
bool loopbackHost(const std::string& url) {
  size_t start = url.find("://");
  if (start == std::string::npos) {
    return false;
  }
  start += 3;
  std::string host;
  if (start < url.size() && url[start] == '[') {
    size_t close = url.find(']', start);
    host = close == std::string::npos ? "" : url.substr(start + 1, close - start - 1);
  } else {
    host = url.substr(start, url.find_first_of(":/?", start) - start);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

ChannelConfig parseChannel(const core::ConfigNode& n) {
  ChannelConfig c;
  n.allowKeys({"id", "type", "enabled", "url", "url_file", "secret", "secret_file", "ca_file",
               "allow_insecure", "timeout", "rate_per_minute", "max_batch", "max_bytes"});
  c.id = n.requiredStr("id");
  std::string type = n.choice("type", "webhook", {"wecom", "dingtalk", "webhook", "upstream"});
  c.type = kChannelTypes.parse(type).value_or(ChannelType::Webhook);
  c.enabled = n.boolean("enabled", true);
  // A robot's URL carries its key (?key=, ?access_token=): a secret, never shown in messages.
  c.url = n.secret("url");
  c.secret = n.secret("secret");
  c.ca_file = n.filePath("ca_file", "");
  bool allow_insecure = n.boolean("allow_insecure", false);
  c.timeout = n.duration("timeout", 5s, 100ms, 120s);
  c.rate_per_minute = static_cast<int>(n.integer("rate_per_minute", 20, 0, 10'000));
  c.max_batch = static_cast<int>(n.integer("max_batch", 10, 1, 100));
  c.max_bytes = static_cast<int>(
      n.integer("max_bytes", c.type == ChannelType::DingTalk ? 18'000 : 4000, 512, 1'000'000));
  if (c.type == ChannelType::Upstream) {
    if (!c.url.empty()) {
      n.errorAt("url", "an upstream channel has no url (it uses the uplink connection)");
    }
  } else if (c.url.empty()) {
    if (!n.has("url_file")) {
      n.errorAt("url", "missing (expected the robot's https:// URL, inline or as url_file)");
    }
  } else if (c.url.rfind("http://", 0) != 0 && c.url.rfind("https://", 0) != 0) {
    n.errorAt(n.has("url_file") ? "url_file" : "url",
              "expected an http:// or https:// URL, got \"" + redactUrl(c.url) + "\"");
  } else if (!parseUrl(c.url)) {
    n.errorAt(n.has("url_file") ? "url_file" : "url",
              "malformed URL (expected https://HOST[:PORT]/PATH), got \"" + redactUrl(c.url) +
                  "\"");
  } else if (c.url.rfind("http://", 0) == 0 && !allow_insecure && !loopbackHost(c.url)) {
    // The key and every alert would cross the network in clear text.
    n.errorAt(n.has("url_file") ? "url_file" : "url",
              "plain http:// sends the robot's key and the alerts unencrypted (expected https://, "
              "or allow_insecure: true), got \"" +
                  redactUrl(c.url) + "\"");
  }
  if (!c.secret.empty() && c.type != ChannelType::DingTalk) {
    n.errorAt("secret", "only DingTalk robots are signed with a secret");
  }
  return c;
}

SeverityPolicy parsePolicy(const core::ConfigNode& n, SeverityPolicy p) {
  if (!n.defined()) {
    return p;
  }
  n.allowKeys({"ack_timeout", "renotify", "escalate_at_once", "notify_people", "notify_ack",
               "notify_clear"});
  p.ack_timeout = n.duration("ack_timeout", p.ack_timeout);
  p.renotify = n.duration("renotify", p.renotify);
  if (p.renotify.count() > 0 && p.renotify < 10s) {
    n.errorAt("renotify", "too short (expected 0s = off, or at least 10s)");
  }
  p.escalate_at_once = n.boolean("escalate_at_once", p.escalate_at_once);
  p.notify_people = n.boolean("notify_people", p.notify_people);
  p.notify_ack = n.boolean("notify_ack", p.notify_ack);
  p.notify_clear = n.boolean("notify_clear", p.notify_clear);
  return p;
}

std::optional<int> parseUtcOffset(const std::string& s) {
  // "+08:00", "-05:30", "Z"
  if (s == "Z" || s == "UTC" || s == "+00:00") {
    return 0;
  }
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') {
    return std::nullopt;
  }
  auto digit = [&](size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  if (!digit(1) || !digit(2) || !digit(4) || !digit(5)) {
    return std::nullopt;
  }
  int h = (s[1] - '0') * 10 + (s[2] - '0');
  int m = (s[4] - '0') * 10 + (s[5] - '0');
  if (h > 14 || m > 59) {
    return std::nullopt;
  }
  int total = h * 60 + m;
  return s[0] == '-' ? -total : total;
}

} // namespace

std::string redactUrl(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return url.empty() ? url : "<redacted>";
  }
  size_t host_start = scheme_end + 3;
  size_t host_end = url.find_first_of("/?#", host_start);
  std::string authority = url.substr(host_start, host_end == std::string::npos
                                                     ? std::string::npos
                                                     : host_end - host_start);
  // user:password@ is a credential too.
  if (size_t at = authority.rfind('@'); at != std::string::npos) {
    authority = "<redacted>@" + authority.substr(at + 1);
  }
  std::string out = core::printable(url.substr(0, host_start) + authority, 120);
  if (host_end != std::string::npos) {
    out += "/<redacted>";
  }
  return out;
}

const char* channelTypeName(ChannelType t) { return kChannelTypes.name(t, "webhook"); }

const ChannelConfig* AlertsConfig::channel(const std::string& id) const {
  for (const auto& c : channels) {
    if (c.id == id) {
      return &c;
    }
  }
  return nullptr;
}

AlertsConfig defaultAlertsConfig() {
  AlertsConfig c;
  SeverityPolicy& critical = c.policies[static_cast<size_t>(Severity::Critical)];
  critical.ack_timeout = 5min;
  critical.renotify = 5min;
  critical.escalate_at_once = false;
  SeverityPolicy& warning = c.policies[static_cast<size_t>(Severity::Warning)];
  warning.ack_timeout = 30min;
  warning.renotify = 30min;
  SeverityPolicy& info = c.policies[static_cast<size_t>(Severity::Info)];
  info.ack_timeout = 0ms;
  info.renotify = 0ms;
  info.notify_ack = false;
  info.notify_clear = false;
  c.templates = defaultTemplates();
  return c;
}

AlertsConfig parseAlertsConfig(const core::ConfigNode& n, const model::Compound& compound) {
  AlertsConfig c = defaultAlertsConfig();
  c.site_id = compound.site_id;
  c.site_name = compound.site_name.empty() ? compound.site_id : compound.site_name;

  if (n.defined()) {
    n.allowKeys({"channels", "default_channels", "escalation", "flood", "delivery", "templates",
                 "dashboard_url", "utc_offset"});

    core::ConfigNode chans = n.child("channels");
    if (chans.defined() && chans.requireSeq()) {
      std::set<std::string> seen;
      for (const auto& item : chans.items()) {
        ChannelConfig ch = parseChannel(item);
        if (ch.id.empty()) {
          continue;
        }
        if (!seen.insert(ch.id).second) {
          item.errorAt("id", "duplicate channel id \"" + ch.id + "\"");
          continue;
        }
        c.channels.push_back(std::move(ch));
      }
    }

    core::ConfigNode esc = n.child("escalation");
    if (esc.defined()) {
      esc.allowKeys({"info", "warning", "critical"});
      for (Severity s : {Severity::Info, Severity::Warning, Severity::Critical}) {
        auto& p = c.policies[static_cast<size_t>(s)];
        p = parsePolicy(esc.child(severityName(s)), p);
      }
    }

    core::ConfigNode flood = n.child("flood");
    if (flood.defined()) {
      flood.allowKeys({"window", "threshold"});
      c.flood.window = flood.duration("window", c.flood.window, 1s, 24h);
      c.flood.threshold = static_cast<int>(flood.integer("threshold", c.flood.threshold, 0, 10'000));
    }

    core::ConfigNode del = n.child("delivery");
    if (del.defined()) {
      del.allowKeys({"retry_initial", "retry_max", "batch_delay", "poll_interval", "expire_after"});
      auto& d = c.delivery;
      d.retry_initial = del.duration("retry_initial", d.retry_initial, 10ms, 1h);
      d.retry_max = del.duration("retry_max", d.retry_max, 10ms, 24h);
      d.batch_delay = del.duration("batch_delay", d.batch_delay, 0ms, 60s);
      d.poll_interval = del.duration("poll_interval", d.poll_interval, 1ms, 60s);
      d.expire_after = del.duration("expire_after", d.expire_after, 1min);
      if (d.retry_max < d.retry_initial) {
        del.errorAt("retry_max", "must not be shorter than retry_initial");
      }
    }

    core::ConfigNode tpl = n.child("templates");
    if (tpl.defined()) {
      tpl.allowKeys({"title", "raised", "escalated", "renotify", "acked", "cleared", "summary"});
      auto& t = c.templates;
      t.title = tpl.str("title", t.title);
      t.raised = tpl.str("raised", t.raised);
      t.escalated = tpl.str("escalated", t.escalated);
      t.renotify = tpl.str("renotify", t.renotify);
      t.acked = tpl.str("acked", t.acked);
      t.cleared = tpl.str("cleared", t.cleared);
      t.summary = tpl.str("summary", t.summary);
    }

    c.dashboard_url = n.str("dashboard_url", c.dashboard_url);
    std::string offset = n.str("utc_offset", "+08:00");
    if (auto m = parseUtcOffset(offset)) {
      c.utc_offset_minutes = *m;
    } else {
      n.errorAt("utc_offset", "expected an offset such as +08:00, got \"" + offset + "\"");
    }
  }

  std::vector<std::string> ids;
  for (const auto& ch : c.channels) {
    ids.push_back(ch.id);
  }
  auto check_id = [&](const std::string& id, const std::string& where) {
    if (c.channel(id) != nullptr) {
      return;
    }
    std::string msg = where + " names unknown channel \"" + id + "\"";
    if (auto m = core::closestMatch(id, ids)) {
      msg += " (did you mean \"" + *m + "\"?)";
    } else if (ids.empty()) {
      msg += " (no channels are defined under alerts.channels)";
    }
    // Reported through diag() rather than errorAt(): the section may be absent (a zombie node).
    n.diag().error(n.location(), n.path().empty() ? "channels" : n.path() + ".channels", msg);
  };
  c.default_channels = n.defined() ? n.strList("default_channels") : std::vector<std::string>{};
  for (const auto& id : c.default_channels) {
    check_id(id, "default_channels");
  }
  for (const auto& g : compound.grids) {
    for (const auto& id : g.channels) {
      check_id(id, "grid \"" + g.id + "\"");
    }
  }
  return c;
}

} // namespace hgj::alerts

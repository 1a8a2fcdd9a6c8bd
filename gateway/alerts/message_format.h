#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/compound.h"

namespace hgj::alerts {

/// Replaces every `{name}` of `tpl` with `vars[name]`; unknown placeholders stay as written.
std::string renderTemplate(const std::string& tpl, const std::map<std::string, std::string>& vars);

/// "2026-11-27 22:18:48" in the given offset from UTC.
std::string formatLocalTime(int64_t unix_ms, int utc_offset_minutes);
/// "45秒", "12分钟", "2小时5分钟", "3天4小时".
std::string formatDurationZh(int64_t ms);
/// Where a device is, for people: building / level / zone / space, and for a charging port its
/// shed and port number ("3号楼 S03车棚 7号口").
std::string describeWhere(const model::Compound& compound, const model::Device& device);
/// A value as people read it: booleans 是/否 (also the texts "true"/"false"), numbers with at most
/// one decimal and the point's unit ("75.2°C", "1200 W", "35 ppm"), other text as it is, "—" for
/// nothing.
std::string formatValueZh(const model::Value& value, std::string_view unit = {});
/// Staff of a grid for a message: "刘强 13800000003、陈静 13800000004" (names and phones),
/// names only ("刘强、陈静") or phones only; "—" when there is nobody.
std::string staffText(const std::vector<model::Staff>& staff);
std::string staffNames(const std::vector<model::Staff>& staff);
std::string staffPhones(const std::vector<model::Staff>& staff);
/// Cuts at `max_bytes` without splitting a UTF-8 sequence, marking the cut with "…".
std::string truncateUtf8(const std::string& s, size_t max_bytes);

/// DingTalk robot signature: urlencode(base64(HMAC-SHA256(secret, "<ts>\n<secret>"))).
std::string dingTalkSign(const std::string& secret, int64_t timestamp_ms);
std::string base64Encode(const unsigned char* data, size_t n);
std::string urlEncode(const std::string& s);

struct ParsedUrl {
  std::string scheme_host_port;  ///< "https://oapi.dingtalk.com" (port kept when given)
  std::string path_query;        ///< "/robot/send?access_token=..."
  bool https = false;
};
std::optional<ParsedUrl> parseUrl(const std::string& url);

/// One notification as the Notifier puts it into a message.
struct OutgoingItem {
  int64_t id = 0;      ///< alert_notifications.id
  std::string kind;    ///< raised | escalated | renotify | acked | cleared | summary
  std::string body;    ///< rendered markdown section
  std::vector<std::string> wecom_users;
  std::vector<std::string> mobiles;
  nlohmann::json data;  ///< structured fields for the generic webhook
};

/// WeCom group robot: {"msgtype":"markdown","markdown":{"content":...}} with `<@userid>`
/// mentions at the end.
std::string buildWeComBody(const std::string& title, const std::vector<OutgoingItem>& items);
/// DingTalk robot: {"msgtype":"markdown","markdown":{"title":..,"text":..},
/// "at":{"atMobiles":[..],"isAtAll":false}}; the text ends with "@<mobile>" for each mobile.
std::string buildDingTalkBody(const std::string& title, const std::vector<OutgoingItem>& items);
/// Generic webhook: {"source":"hgj-gateway","site":..,"title":..,"text":..,
/// "mentions":{"wecom_users":[..],"mobiles":[..]},"notifications":[{"id":..,"kind":..,...data}]}.
std::string buildWebhookBody(const std::string& site_id, const std::string& title,
                             const std::vector<OutgoingItem>& items);
/// The markdown text of a batch (sections joined; a count header when there are several).
std::string batchText(const std::string& title, const std::vector<OutgoingItem>& items);

} // namespace hgj::alerts

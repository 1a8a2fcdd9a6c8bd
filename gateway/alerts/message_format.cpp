#include "gateway/alerts/message_format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace hgj::alerts {

std::string renderTemplate(const std::string& tpl, const std::map<std::string, std::string>& vars) {
  std::string out;
  out.reserve(tpl.size() + 64);
  size_t i = 0;
  while (i < tpl.size()) {
    if (tpl[i] == '{') {
      size_t end = tpl.find('}', i + 1);
      if (end != std::string::npos) {
        auto it = vars.find(tpl.substr(i + 1, end - i - 1));
        if (it != vars.end()) {
          out += it->second;
          i = end + 1;
          continue;
        }
      }
    }
    out += tpl[i];
    ++i;
  }
  return out;
}

std::string formatLocalTime(int64_t unix_ms, int utc_offset_minutes) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000) + utc_offset_minutes * 60;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string formatDurationZh(int64_t ms) {
  int64_t s = std::max<int64_t>(0, ms / 1000);
  int64_t d = s / 86400;
  int64_t h = (s % 86400) / 3600;
  int64_t m = (s % 3600) / 60;
  if (d > 0) {
    return std::to_string(d) + "天" + (h > 0 ? std::to_string(h) + "小时" : "");
  }
  if (h > 0) {
    return std::to_string(h) + "小时" + (m > 0 ? std::to_string(m) + "分钟" : "");
  }
  if (m > 0) {
    return std::to_string(m) + "分钟";
  }
  return std::to_string(s) + "秒";
}

std::string describeWhere(const model::Compound& compound, const model::Device& device) {
  const model::Device* anchor = &device;
  std::string port;
  if (device.parent != model::kNoDevice && device.parent < compound.devices.size()) {
    anchor = &compound.devices[device.parent];
    if (device.child_number > 0) {
      port = std::to_string(device.child_number) + "号口";
    }
  }
  model::Location loc = device.location;
  if (loc.building.empty() && loc.level.empty() && loc.zone.empty()) {
    loc = anchor->location;
  }
  std::string out = loc.text();
  auto add = [&](const std::string& part) {
    if (part.empty()) {
      return;
    }
    if (!out.empty()) {
      out += ' ';
    }
    out += part;
  };
  if (anchor != &device) {
    if (out.find(anchor->id) == std::string::npos) {
      add(anchor->type() == "ebike_shed" ? anchor->id + "车棚" : anchor->id);
    }
    add(port);
  }
  if (out.empty()) {
    out = device.id;
  }
  return out;
}

std::string formatValueZh(const model::Value& value, std::string_view unit) {
  if (const auto* b = std::get_if<bool>(&value)) {
    return *b ? "是" : "否";
  }
  if (const auto* text = std::get_if<std::string>(&value)) {
    if (*text == "true") {
      return "是";
    }
    if (*text == "false") {
      return "否";
    }
    return text->empty() ? "—" : *text;
  }
  const auto* d = std::get_if<double>(&value);
  if (d == nullptr) {
    return "—";
  }
  char buf[48];
  double rounded = std::round(*d * 10.0) / 10.0;
  if (rounded == std::floor(rounded) && std::fabs(rounded) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", rounded == 0 ? 0.0 : rounded);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", rounded);
  }
  std::string out = buf;
  if (!unit.empty()) {
    // Degrees and percent stick to the number; other units follow a space (SI style).
    bool attach = unit == "°C" || unit == "%" || unit == "℃";
    out += attach ? "" : " ";
    out += unit;
  }
  return out;
}

namespace {

std::string joinStaff(const std::vector<model::Staff>& staff,
                      const std::function<std::string(const model::Staff&)>& part) {
  std::string out;
  for (const auto& s : staff) {
    std::string p = part(s);
    if (p.empty()) {
      continue;
    }
    if (!out.empty()) {
      out += "、";
    }
    out += p;
  }
  return out.empty() ? "—" : out;
}

} // namespace

std::string staffText(const std::vector<model::Staff>& staff) {
  return joinStaff(staff, [](const model::Staff& s) {
    return s.phone.empty() ? s.name : (s.name.empty() ? s.phone : s.name + " " + s.phone);
  });
}

std::string staffNames(const std::vector<model::Staff>& staff) {
  return joinStaff(staff, [](const model::Staff& s) { return s.name; });
}

std::string staffPhones(const std::vector<model::Staff>& staff) {
  return joinStaff(staff, [](const model::Staff& s) { return s.phone; });
}

std::string truncateUtf8(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) {
    return s;
  }
  static const std::string kEllipsis = "…";
  size_t cut = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
  // Step back over continuation bytes (10xxxxxx) so the cut falls between characters.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return s.substr(0, cut) + kEllipsis;
}

std::string base64Encode(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string urlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string dingTalkSign(const std::string& secret, int64_t timestamp_ms) {
  std::string to_sign = std::to_string(timestamp_ms) + "\n" + secret;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(to_sign.data()), to_sign.size(), mac, &mac_len);
  return urlEncode(base64Encode(mac, mac_len));
}

std::optional<ParsedUrl> parseUrl(const std::string& url) {
  ParsedUrl p;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return std::nullopt;
  }
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return std::nullopt;
  }
  p.https = scheme == "https";
  size_t host_start = scheme_end + 3;
  size_t path_start = url.find_first_of("/?", host_start);
  if (path_start == host_start) {
    return std::nullopt;
  }
  p.scheme_host_port = url.substr(0, path_start);
  p.path_query = path_start == std::string::npos ? "/" : url.substr(path_start);
  if (p.path_query[0] == '?') {
    p.path_query = "/" + p.path_query;
  }
  return p;
}

namespace {

std::vector<std::string> unionOf(const std::vector<OutgoingItem>& items,
                                 std::vector<std::string> OutgoingItem::*field) {
  std::vector<std::string> out;
  for (const auto& it : items) {
    for (const auto& v : it.*field) {
      if (!v.empty() && std::find(out.begin(), out.end(), v) == out.end()) {
        out.push_back(v);
      }
    }
  }
  return out;
}

} // namespace

std::string batchText(const std::string& title, const std::vector<OutgoingItem>& items) {
  std::string text;
  if (items.size() > 1) {
    text = "**" + title + "（" + std::to_string(items.size()) + " 条）**\n\n";
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) {
      text += "\n\n";
    }
    text += items[i].body;
  }
  return text;
}

std::string buildWeComBody(const std::string& title, const std::vector<OutgoingItem>& items) {
  std::string text = batchText(title, items);
  auto users = unionOf(items, &OutgoingItem::wecom_users);
  if (!users.empty()) {
    text += "\n";
    for (const auto& u : users) {
      text += "<@" + u + ">";
    }
  }
  nlohmann::json j{{"msgtype", "markdown"}, {"markdown", {{"content", text}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string buildDingTalkBody(const std::string& title, const std::vector<OutgoingItem>& items) {
  std::string text = batchText(title, items);
  auto mobiles = unionOf(items, &OutgoingItem::mobiles);
  if (!mobiles.empty()) {
    text += "\n\n";
    for (size_t i = 0; i < mobiles.size(); ++i) {
      text += (i > 0 ? " @" : "@") + mobiles[i];
    }
  }
  nlohmann::json j{{"msgtype", "markdown"},
                   {"markdown", {{"title", title}, {"text", text}}},
                   {"at", {{"atMobiles", mobiles}, {"isAtAll", false}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string buildWebhookBody(const std::string& site_id, const std::string& title,
                             const std::vector<OutgoingItem>& items) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& it : items) {
    nlohmann::json n = it.data.is_object() ? it.data : nlohmann::json::object();
    n["notification_id"] = it.id;
    n["kind"] = it.kind;
    list.push_back(std::move(n));
  }
  nlohmann::json j{{"source", "hgj-gateway"},
                   {"site", site_id},
                   {"title", title},
                   {"text", batchText(title, items)},
                   {"mentions",
                    {{"wecom_users", unionOf(items, &OutgoingItem::wecom_users)},
                     {"mobiles", unionOf(items, &OutgoingItem::mobiles)}}},
                   {"notifications", std::move(list)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace hgj::alerts

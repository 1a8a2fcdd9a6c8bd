#include "gateway/api/http_message.h"

#include <algorithm>

#include "core/enum_names.h"

namespace hgj::api {

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool equalsLower(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != lower[i]) {
      return false;
    }
  }
  return true;
}

const std::string kEmpty;

} // namespace

constexpr core::EnumNames<Role, 3> kRoleNames{
    {{Role::Operator, "operator"}, {Role::Viewer, "viewer"}, {Role::None, "none"}}};

const char* roleName(Role role) { return kRoleNames.name(role, "none"); }

const std::string& Request::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) {
      return v;
    }
  }
  return kEmpty;
}

bool Request::hasHeader(std::string_view lower_name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return h.first == lower_name; });
}

std::optional<std::string> Request::param(std::string_view name) const {
  return queryParam(query, name);
}

void Response::setHeader(std::string name, std::string value) {
  for (auto& [k, v] : headers) {
    if (equalsLower(k, name) || equalsLower(name, k)) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

bool Response::hasHeader(std::string_view name) const {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return equalsLower(h.first, lower); });
}

void Response::setJson(int code, const Json& json) {
  status = code;
  content_type = "application/json; charset=utf-8";
  // Names and messages may hold bytes a client sent; invalid UTF-8 is replaced, never thrown on.
  body = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Response::setError(int code, const std::string& message) {
  setJson(code, Json{{"error", message}, {"status", code}});
}

std::optional<std::string> percentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) {
        return std::nullopt;
      }
      int hi = hexValue(s[i + 1]);
      int lo = hexValue(s[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<Target> splitTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    return std::nullopt;
  }
  Target t;
  std::string_view raw_path = target;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    raw_path = target.substr(0, q);
    t.query = std::string(target.substr(q + 1));
  }
  if (size_t hash = t.query.find('#'); hash != std::string::npos) {
    t.query.resize(hash);
  }
  auto decoded = percentDecode(raw_path, false);
  if (!decoded || decoded->find('\0') != std::string::npos) {
    return std::nullopt;
  }
  // Routes compare decoded paths, so dot segments would let "/x/../api/v1/..." reach a handler
  // under another name, and "//" would be a second spelling of a path.
  std::string_view p = *decoded;
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    std::string_view seg = p.substr(start, end == std::string_view::npos ? p.npos : end - start);
    if (seg == "." || seg == "..") {
      return std::nullopt;
    }
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  t.path = std::move(*decoded);
  return t;
}

std::optional<std::string> queryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    auto key = percentDecode(pair.substr(0, eq), true);
    if (!key || *key != name) {
      continue;
    }
    if (eq == std::string_view::npos) {
      return std::string();
    }
    return percentDecode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

namespace {

// The statuses the server answers with: the reason phrase of the status line (RFC 9110) and the
// text of an error body when the handler gave none. 409 has no default text: every 409 says why.
struct StatusText {
  int status;
  const char* reason;
  const char* error;
};
constexpr StatusText kStatuses[] = {
    {200, "OK", nullptr}, {204, "No Content", nullptr}, {304, "Not Modified", nullptr},
    {400, "Bad Request", "bad request"}, {401, "Unauthorized", "unauthorized"},
    {403, "Forbidden", "forbidden"}, {404, "Not Found", "not found"},
    {405, "Method Not Allowed", "method not allowed"},
    {408, "Request Timeout", "request timeout"}, {409, "Conflict", nullptr},
    {411, "Length Required", "length required"},
    {413, "Content Too Large", "request body too large"},
    {414, "URI Too Long", "request uri too long"},
    {415, "Unsupported Media Type", "unsupported media type"},
    {431, "Request Header Fields Too Large", "request header too large"},
    {500, "Internal Server Error", nullptr}, {501, "Not Implemented", "not implemented"},
    {503, "Service Unavailable", "service unavailable"}, {504, "Gateway Timeout", "timed out"},
    {505, "HTTP Version Not Supported", nullptr}};

const StatusText* statusText(int status) {
  for (const auto& s : kStatuses) {
    if (s.status == status) {
      return &s;
    }
  }
  return nullptr;
}

} // namespace

const char* reasonPhrase(int status) {
  const StatusText* s = statusText(status);
  if (s != nullptr) {
    return s->reason;
  }
  return status >= 500 ? "Error" : "Unknown";
}

const char* errorText(int status) {
  const StatusText* s = statusText(status);
  if (s != nullptr && s->error != nullptr) {
    return s->error;
  }
  return status >= 500 ? "internal error" : "error";
}

std::string serializeHead(const Response& res, bool keep_alive, bool head_request) {
  std::string out = "HTTP/1.1 " + std::to_string(res.status) + " " + reasonPhrase(res.status) +
                    "\r\n";
  if (!res.content_type.empty()) {
    out += "Content-Type: " + res.content_type + "\r\n";
  }
  for (const auto& [k, v] : res.headers) {
    out += k + ": " + v + "\r\n";
  }
  if (res.stream) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (res.status != 204 && res.status != 304) {
    (void)head_request; // a HEAD answer announces the length of the body it leaves out
    out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
  }
  out += keep_alive && !res.close ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  return out;
}

std::optional<uint64_t> parseUnsigned(std::string_view s) {
  if (s.empty() || s.size() > 18) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

bool validName(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) {
    return false;
  }
  return std::none_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

} // namespace hgj::api

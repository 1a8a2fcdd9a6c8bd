#include "gateway/api/auth.h"

#include <algorithm>
#include <cctype>

namespace hgj::api {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

} // namespace

bool tokenEquals(std::string_view a, std::string_view b) {
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string bearerToken(std::string_view h) {
  while (!h.empty() && h.front() == ' ') {
    h.remove_prefix(1);
  }
  if (h.size() < 7 || lower(h.substr(0, 7)) != "bearer ") {
    return {};
  }
  h.remove_prefix(7);
  while (!h.empty() && h.front() == ' ') {
    h.remove_prefix(1);
  }
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) {
    h.remove_suffix(1);
  }
  return std::string(h);
}

std::string hostWithoutPort(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    if (close == std::string_view::npos) {
      return lower(h);
    }
    return lower(h.substr(1, close - 1));
  }
  size_t colon = h.rfind(':');
  if (colon != std::string_view::npos && h.find(':') == colon) {
    h = h.substr(0, colon);
  }
  return lower(h);
}

AccessPolicy::AccessPolicy(const HttpConfig& c)
    : viewer_(c.viewer_token), operator_(c.operator_token), cors_(c.cors_origins) {
  for (const auto& h : c.allowed_hosts) {
    if (h == "*") {
      hosts_.clear();
      return;
    }
    hosts_.push_back(hostWithoutPort(h));
  }
  if (hosts_.empty() && c.loopbackBind()) {
    // Bound to loopback: only local names, so a web page cannot reach the box through a DNS
    // name that it rebinds to 127.0.0.1.
    hosts_ = {"localhost", "127.0.0.1", "::1"};
    if (c.bind != "localhost" && c.bind != "127.0.0.1" && c.bind != "::1") {
      hosts_.push_back(lower(c.bind));
    }
  }
}

bool isApiPath(std::string_view path) {
  return path.rfind("/api/", 0) == 0 || path == "/healthz" || path == "/metrics";
}

Role AccessPolicy::roleOf(std::string_view bearer) const {
  if (bearer.empty()) {
    return Role::None;
  }
  // Both comparisons always run, so the time taken does not tell which token matched.
  bool is_operator = !operator_.empty() && tokenEquals(bearer, operator_);
  bool is_viewer = !viewer_.empty() && tokenEquals(bearer, viewer_);
  return is_operator ? Role::Operator : is_viewer ? Role::Viewer : Role::None;
}

Access AccessPolicy::check(std::string_view bearer, bool operator_action) const {
  Role role = roleOf(bearer);
  if (operator_action) {
    if (role == Role::Operator) {
      return Access::Allow;
    }
    // No operator token configured: nobody may act (a local process is not an operator just
    // because it runs on the box). A viewer is known and refused; anyone else must log in.
    if (operator_.empty() || role == Role::Viewer) {
      return Access::Forbidden;
    }
    return Access::Unauthorized;
  }
  if (viewer_.empty() || role != Role::None) {
    return Access::Allow;
  }
  return Access::Unauthorized;
}

Admission AccessPolicy::admit(const Request& req) const {
  Admission a;
  const std::string& host = req.header("host");
  if (!hostAllowed(host)) {
    a.status = 400;
    a.reason = "bad_host";
    a.message = "host not allowed";
    return a;
  }
  const std::string& origin = req.header("origin");
  if (req.method == "OPTIONS") {
    if (!origin.empty() && corsListed(origin) && isApiPath(req.path)) {
      return a; // a preflight from a listed origin: the server answers it
    }
    a.status = 403;
    a.reason = "cross_origin";
    a.message = "cross-origin request not allowed";
    return a;
  }
  bool is_read = req.isRead();
  // A browser sends Origin with every cross-site POST; a page elsewhere must not act with the
  // operator's session.
  if (!is_read && ((!origin.empty() && !originAllowed(origin, host)) ||
                   (req.header("sec-fetch-site") == "cross-site" && !corsListed(origin)))) {
    a.status = 403;
    a.reason = "cross_origin";
    a.message = "cross-origin request not allowed";
    return a;
  }
  if (!isApiPath(req.path)) {
    a.role = Role::Viewer; // dashboard files carry no data
    return a;
  }
  std::string token = bearerToken(req.header("authorization"));
  if (token.empty() && req.path == "/api/v1/events") {
    // EventSource cannot set headers; the dashboard passes the token in the query instead.
    token = req.paramOr("access_token");
  }
  switch (check(token, !is_read)) {
  case Access::Allow:
    a.role = roleOf(token);
    if (a.role == Role::None) {
      a.role = Role::Viewer; // open reads
    }
    return a;
  case Access::Unauthorized:
    a.status = 401;
    a.reason = "unauthorized";
    a.message = token.empty() ? "missing bearer token" : "invalid bearer token";
    return a;
  case Access::Forbidden:
    a.status = 403;
    a.reason = "forbidden";
    a.message = operator_.empty()
                    ? "operator actions are disabled: no http.operator_token is configured"
                    : "operator token required";
    return a;
  }
  return a;
}

bool AccessPolicy::hostAllowed(std::string_view host_header) const {
  if (host_header.empty()) {
    return false;
  }
  if (hosts_.empty()) {
    return true;
  }
  std::string h = hostWithoutPort(host_header);
  return std::find(hosts_.begin(), hosts_.end(), h) != hosts_.end();
}

bool AccessPolicy::corsListed(std::string_view origin) const {
  std::string o = lower(origin);
  for (const auto& c : cors_) {
    if (lower(c) == o) {
      return true;
    }
  }
  return false;
}

bool AccessPolicy::originAllowed(std::string_view origin, std::string_view host_header) const {
  if (corsListed(origin)) {
    return true;
  }
  std::string o = lower(origin);
  std::string host = lower(host_header);
  return o == "http://" + host || o == "https://" + host;
}

} // namespace hgj::api

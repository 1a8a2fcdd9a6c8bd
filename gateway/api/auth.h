#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/api/http_config.h"
#include "gateway/api/http_message.h"

namespace hgj::api {

enum class Access { Allow, Unauthorized, Forbidden };

/// What the access rules decided about one request: admitted (status 0) with the caller's role,
/// or refused with a status, a metric reason and a message for the client (never a token).
struct Admission {
  int status = 0;
  Role role = Role::None;
  const char* reason = "";
  std::string message;
  bool admitted() const { return status == 0; }
};

/// Paths that carry data or act (the API, /healthz, /metrics): the dashboard files do not.
bool isApiPath(std::string_view path);

/// The API's access rules: bearer tokens, Host header and Origin checks. Immutable after
/// construction; called from every HTTP worker thread. Never logs or returns a token.
class AccessPolicy {
public:
  explicit AccessPolicy(const HttpConfig& config);

  /// The whole decision for a request: Host (400), cross-origin (403), then, for API paths, the
  /// bearer token (Authorization, or `access_token` in the query of the event stream):
  /// reads need the viewer or operator token unless no viewer token is configured; operator
  /// actions (every method but GET and HEAD) always need the operator token: with none
  /// configured nobody can act through the API. Preflights from listed origins are admitted
  /// (the caller answers them). Pure; any thread.
  Admission admit(const Request& req) const;

  /// `bearer` is the presented token ("" when none); the token part of admit().
  Access check(std::string_view bearer, bool operator_action) const;
  /// The role a token gives: Operator, Viewer, or None (unknown or absent).
  Role roleOf(std::string_view bearer) const;

  /// The Host header (with or without port) is one this server answers to (DNS rebinding).
  bool hostAllowed(std::string_view host_header) const;

  /// The Origin is the server's own (same scheme-less host:port as the Host header) or listed in
  /// cors_origins.
  bool originAllowed(std::string_view origin, std::string_view host_header) const;
  /// Listed in cors_origins (gets Access-Control-Allow-Origin).
  bool corsListed(std::string_view origin) const;

  bool tokensConfigured() const { return !viewer_.empty() || !operator_.empty(); }
  bool operatorConfigured() const { return !operator_.empty(); }

private:
  std::string viewer_;
  std::string operator_;
  std::vector<std::string> hosts_; ///< lower-case, without port; empty = any
  std::vector<std::string> cors_;
};

/// The token of "Authorization: Bearer <token>", or "" when absent or another scheme.
std::string bearerToken(std::string_view authorization_header);

/// "example.com:8080" -> "example.com", "[::1]:8080" -> "::1", lower-cased.
std::string hostWithoutPort(std::string_view host_header);

/// Constant-time comparison (the time taken does not reveal how much of a token matched).
bool tokenEquals(std::string_view a, std::string_view b);

} // namespace hgj::api

#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/api/http_config.h"

namespace hgj::api {

enum class Access { Allow, Unauthorized, Forbidden };

/// The API's access rules: bearer tokens, Host header and Origin checks. Immutable after
/// construction; called from every HTTP worker thread. Never logs or returns a token.
class AccessPolicy {
public:
  explicit AccessPolicy(const HttpConfig& config);

  /// `bearer` is the presented token ("" when none). Reads need the viewer or operator token
  /// (open when no viewer token is configured); operator actions need the operator token (open
  /// only when no token at all is configured, which config validation allows only on loopback).
  Access check(std::string_view bearer, bool operator_action) const;

  /// The Host header (with or without port) is one this server answers to (DNS rebinding).
  bool hostAllowed(std::string_view host_header) const;

  /// The Origin is the server's own (same scheme-less host:port as the Host header) or listed in
  /// cors_origins.
  bool originAllowed(std::string_view origin, std::string_view host_header) const;
  /// Listed in cors_origins (gets Access-Control-Allow-Origin).
  bool corsListed(std::string_view origin) const;

  bool tokensConfigured() const { return !viewer_.empty() || !operator_.empty(); }

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

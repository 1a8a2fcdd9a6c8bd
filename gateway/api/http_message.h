#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hgj::api {

using Json = nlohmann::ordered_json;

/// Who made a request, as far as its bearer token tells (set by AccessPolicy::admit).
enum class Role { None, Viewer, Operator };
const char* roleName(Role role);

/// One parsed HTTP request, independent of the network library: the connection layer
/// (http_listener) fills it from the wire, the access rules and the handlers read it. Plain data,
/// owned by the thread handling the request.
struct Request {
  std::string method;  ///< "GET", as sent
  std::string target;  ///< the request target as sent ("/api/v1/devices/S03%2FP07?x=1")
  std::string path;    ///< the target's path, percent-decoded ("/api/v1/devices/S03/P07")
  std::string query;   ///< the raw query string after '?', "" when none
  /// Header fields in arrival order; names lower-cased.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;    ///< the client's address, for logs
  Role role = Role::None;
  /// Pieces of the path that a route matched (device id, point name, alert id).
  std::vector<std::string> params;

  /// The first header field of that (lower-case) name, "" when absent.
  const std::string& header(std::string_view lower_name) const;
  bool hasHeader(std::string_view lower_name) const;
  /// The first query parameter of that name, decoded ('+' is a space); nullopt when absent.
  std::optional<std::string> param(std::string_view name) const;
  /// param(name) or "".
  std::string paramOr(std::string_view name) const { return param(name).value_or(""); }
  bool isRead() const { return method == "GET" || method == "HEAD"; }
};

/// One response. `stream` responses (server-sent events) have no body here: the connection
/// layer writes the head and then whatever the event stream hands it.
struct Response {
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool stream = false;
  /// For streams: the sequence number of the last live event already in `body`
  /// (HttpListener::broadcast skips events up to it).
  uint64_t stream_after = 0;
  /// The connection is closed after this response (errors on the request framing).
  bool close = false;

  void setHeader(std::string name, std::string value);
  bool hasHeader(std::string_view name) const;
  void setJson(int code, const Json& json);
  /// `{"error": message, "status": code}`.
  void setError(int code, const std::string& message);
};

/// Splits a request target into its percent-decoded path and raw query. nullopt for targets that
/// are not origin-form ("/..."), hold an encoded NUL, or decode to something else than a
/// normalised absolute path ("..", "." segments; the decoded path is what routes see).
struct Target {
  std::string path;
  std::string query;
};
std::optional<Target> splitTarget(std::string_view target);

/// Percent-decoding; `plus_is_space` for query strings. nullopt on a malformed escape.
std::optional<std::string> percentDecode(std::string_view s, bool plus_is_space);

/// The value of `name` in a query string ("a=1&b=x%20y"), decoded; nullopt when absent or
/// malformed. The first occurrence wins.
std::optional<std::string> queryParam(std::string_view query, std::string_view name);

/// The reason phrase of a status code ("Not Found").
const char* reasonPhrase(int status);
/// A short lower-case explanation used as the JSON error of bare statuses ("not found").
const char* errorText(int status);

/// The response head on the wire ("HTTP/1.1 200 OK\r\n...\r\n\r\n"), with Content-Length
/// (or chunked transfer for streams) and Connection headers.
std::string serializeHead(const Response& res, bool keep_alive, bool head_request);

/// A decimal in 1..18 digits, nothing else; nullopt otherwise.
std::optional<uint64_t> parseUnsigned(std::string_view s);

/// A name a client may choose (ids, levels, operator names): 1..max_len bytes, no control
/// characters.
bool validName(std::string_view s, size_t max_len);

} // namespace hgj::api

#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/api/http_message.h"

namespace hgj::api {

/// Reads one HTTP/1.x request from bytes as they arrive: Boost.Beast's parser for the framing
/// (request line, header fields, Content-Length and chunked bodies) with the size limits set
/// before the first byte, then our own Request (decoded path, query, lower-case header names).
/// No sockets, so the whole path from bytes to Request is fuzzed (tests/fuzz/fuzz_http_request).
/// One reader per request; one thread.
class RequestReader {
public:
  RequestReader(size_t max_header_bytes, size_t max_body_bytes);
  ~RequestReader();
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;

  struct Progress {
    size_t consumed = 0;    ///< bytes of the input used; the rest belongs to a later call
    int error_status = 0;   ///< 400, 413 or 431: the request cannot be read further
    std::string error;      ///< why, for the client and the log (no input echoed)
  };
  /// Feeds the bytes received so far that were not consumed yet. A head is only parsed once it
  /// is complete, so `data` must hold all unconsumed bytes.
  Progress feed(std::string_view data);

  bool headDone() const;
  bool done() const;
  /// The client sent "Expect: 100-continue" and the body is still to come.
  bool expectsContinue() const;
  /// HTTP/1.1 without "Connection: close", or HTTP/1.0 with keep-alive (after headDone()).
  bool keepAlive() const;

  /// The request, once done(); nullopt (and `error` set) when its target is not an absolute
  /// path we accept (400). Call once.
  std::optional<Request> take(std::string* error);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace hgj::api

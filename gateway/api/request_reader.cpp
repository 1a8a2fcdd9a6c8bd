#include "gateway/api/request_reader.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

namespace hgj::api {

namespace bhttp = boost::beast::http;

struct RequestReader::Impl {
  bhttp::request_parser<bhttp::string_body> parser;
};

RequestReader::RequestReader(size_t max_header_bytes, size_t max_body_bytes)
    : impl_(std::make_unique<Impl>()) {
  impl_->parser.header_limit(static_cast<uint32_t>(max_header_bytes));
  impl_->parser.body_limit(static_cast<uint64_t>(max_body_bytes));
  // Keep going past the head and each chunk while input remains.
  impl_->parser.eager(true);
}

RequestReader::~RequestReader() = default;

RequestReader::Progress RequestReader::feed(std::string_view data) {
  Progress p;
  auto& parser = impl_->parser;
  while (p.consumed < data.size() && !parser.is_done()) {
    boost::system::error_code ec;
    size_t used = parser.put(
        boost::asio::const_buffer(data.data() + p.consumed, data.size() - p.consumed), ec);
    p.consumed += used;
    if (ec == bhttp::error::need_more) {
      break;
    }
    if (ec == bhttp::error::body_limit) {
      p.error_status = 413;
      p.error = "request body too large";
      return p;
    }
    if (ec == bhttp::error::header_limit) {
      p.error_status = 431;
      p.error = "request head too large";
      return p;
    }
    if (ec) {
      p.error_status = 400;
      p.error = "malformed request: " + ec.message();
      return p;
    }
    if (used == 0) {
      break;
    }
  }
  return p;
}

bool RequestReader::headDone() const {
  return impl_->parser.is_header_done();
}

bool RequestReader::done() const {
  return impl_->parser.is_done();
}

bool RequestReader::expectsContinue() const {
  if (!headDone() || done()) {
    return false;
  }
  auto v = impl_->parser.get()[bhttp::field::expect];
  return boost::beast::iequals(v, "100-continue");
}

bool RequestReader::keepAlive() const {
  return headDone() && impl_->parser.get().keep_alive();
}

std::optional<Request> RequestReader::take(std::string* error) {
  auto message = impl_->parser.release();
  Request req;
  req.method = std::string(message.method_string());
  req.target = std::string(message.target());
  for (const auto& f : message) {
    std::string name(f.name_string());
    for (char& ch : name) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    req.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  req.body = std::move(message.body());
  auto target = splitTarget(req.target);
  if (!target) {
    if (error != nullptr) {
      *error = "malformed request target";
    }
    return std::nullopt;
  }
  req.path = std::move(target->path);
  req.query = std::move(target->query);
  return req;
}

} // namespace hgj::api

#include "gateway/uplink/tls_probe.h"

#include <cerrno>
#include <cstring>
#include <memory>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace hgj::uplink {
namespace {

struct Endpoint {
  std::string host;
  std::string port;
};

bool parseTlsUrl(const std::string& url, Endpoint& ep) {
  std::string rest;
  for (const char* scheme : {"ssl://", "mqtts://"}) {
    if (url.rfind(scheme, 0) == 0) {
      rest = url.substr(std::strlen(scheme));
      break;
    }
  }
  if (rest.empty()) {
    return false;
  }
  ep.port = "8883";
  if (rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) {
      return false;
    }
    ep.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') {
        return false;
      }
      ep.port = rest.substr(close + 2);
    }
  } else {
    size_t colon = rest.rfind(':');
    ep.host = rest.substr(0, colon);
    if (colon != std::string::npos) {
      ep.port = rest.substr(colon + 1);
    }
  }
  while (!ep.port.empty() && ep.port.back() == '/') {
    ep.port.pop_back();
  }
  return !ep.host.empty() && !ep.port.empty();
}

class Fd {
public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

private:
  int fd_;
};

/// A blocking socket connected within `timeout`, or -1 with `error` set.
int connectWithin(const Endpoint& ep, std::chrono::milliseconds timeout, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(ep.host.c_str(), ep.port.c_str(), &hints, &res);
  if (rc != 0) {
    error = "tcp: " + std::string(::gai_strerror(rc));
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(res, &::freeaddrinfo);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      ai->ai_protocol);
    if (fd < 0) {
      error = "tcp: " + std::string(std::strerror(errno));
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = "tcp: " + std::string(std::strerror(errno));
      ::close(fd);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (ready <= 0) {
      error = "tcp: connect timed out";
    } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      error = "tcp: " + std::string(std::strerror(so_error != 0 ? so_error : errno));
    } else {
      // Blocking from here, with the handshake bounded by socket timeouts.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{static_cast<time_t>(timeout.count() / 1000),
                 static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

std::string opensslError(const char* what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) {
    return what;
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  // "error:0A000086:SSL routines::certificate verify failed": the reason after the last ':'.
  std::string text(buf);
  size_t colon = text.rfind(':');
  return colon == std::string::npos ? text : text.substr(colon + 1);
}

} // namespace

std::string probeTls(const std::string& url, const TlsConfig& tls,
                     std::chrono::milliseconds timeout) {
  Endpoint ep;
  if (!parseTlsUrl(url, ep)) {
    return "not a TLS broker URL";
  }
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&::SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                          &::SSL_CTX_free);
  if (!ctx) {
    return opensslError("cannot create a TLS context");
  }
  if (!tls.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), tls.ca_file.c_str(), nullptr) != 1) {
      return "ca_file: " + opensslError("cannot load");
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx.get());
  }
  if (!tls.key_password.empty()) {
    SSL_CTX_set_default_passwd_cb_userdata(ctx.get(),
                                           const_cast<char*>(tls.key_password.c_str()));
  }
  if (!tls.cert_file.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert_file.c_str()) != 1) {
    return "cert_file: " + opensslError("cannot load");
  }
  const std::string& key = tls.key_file.empty() ? tls.cert_file : tls.key_file;
  if (!key.empty() && SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return "key_file: " + opensslError("cannot load");
  }
  SSL_CTX_set_verify(ctx.get(), tls.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);

  std::string error;
  Fd fd(connectWithin(ep, timeout, error));
  if (fd.get() < 0) {
    return error;
  }
  std::unique_ptr<SSL, decltype(&::SSL_free)> ssl(SSL_new(ctx.get()), &::SSL_free);
  if (!ssl) {
    return opensslError("cannot create a TLS session");
  }
  SSL_set_fd(ssl.get(), fd.get());
  SSL_set_tlsext_host_name(ssl.get(), ep.host.c_str());
  if (tls.verify) {
    SSL_set_hostflags(ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl.get(), ep.host.c_str());
  }
  if (SSL_connect(ssl.get()) == 1) {
    // Under TLS 1.3 the broker checks the client certificate after the client's handshake
    // ends and answers a missing or wrong one with an alert: wait briefly for it (an MQTT
    // broker sends nothing else before CONNECT, so silence means the session stands).
    timeval tv{0, 500'000};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char byte = 0;
    int n = SSL_peek(ssl.get(), &byte, 1);
    if (n <= 0) {
      int why = SSL_get_error(ssl.get(), n);
      if (why == SSL_ERROR_SSL) {
        return opensslError("the broker ended the TLS session");
      }
    }
    ERR_clear_error();
    return "";
  }
  long verify = SSL_get_verify_result(ssl.get());
  if (verify != X509_V_OK) {
    ERR_clear_error();
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  }
  return opensslError("handshake failed");
}

} // namespace hgj::uplink

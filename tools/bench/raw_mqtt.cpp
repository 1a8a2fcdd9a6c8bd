#include "tools/bench/raw_mqtt.h"

#include "tools/bench/bench_util.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hgj::bench::mqtt {
Connection::~Connection() { close(); }

bool Connection::open(const std::string& host, int port, std::string_view client_id,
                      bool clean_session, uint16_t keepalive_s, double timeout_s,
                      int rcvbuf_bytes) {
  requireLoopback(host);
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (rcvbuf_bytes > 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error_ = std::string("connect: ") + std::strerror(errno);
    close();
    return false;
  }
  std::vector<uint8_t> pkt;
  drivers::mqtt::wire::appendConnect(pkt, {client_id, clean_session, keepalive_s, {}, {}});
  if (!writeAll(pkt)) {
    error_ = "write CONNECT failed";
    return false;
  }
  double deadline = monoSeconds() + timeout_s;
  while (len_ < 4) {
    int left_ms = static_cast<int>((deadline - monoSeconds()) * 1000);
    if (left_ms <= 0 || readSome(left_ms, 4096) < 0) {
      error_ = "no CONNACK";
      close();
      return false;
    }
  }
  if (buf_[0] != 0x20 || buf_[1] != 2 || buf_[3] != 0) {
    error_ = "CONNACK refused (code " + std::to_string(buf_[3]) + ")";
    close();
    return false;
  }
  session_present_ = (buf_[2] & 1) != 0;
  consume(4);
  return true;
}

bool Connection::writeAll(const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

long Connection::readSome(int timeout_ms, size_t max_bytes) {
  if (timeout_ms >= 0) {
    pollfd p{fd_, POLLIN, 0};
    int pr = ::poll(&p, 1, timeout_ms);
    if (pr == 0) {
      return 0;
    }
    if (pr < 0) {
      return errno == EINTR ? 0 : -1;
    }
  }
  // Grow only: resizing a vector zero-fills, which must not happen on every read.
  if (buf_.size() < len_ + max_bytes) {
    buf_.resize(len_ + max_bytes);
  }
  ssize_t r = ::read(fd_, buf_.data() + len_, max_bytes);
  if (r <= 0) {
    return -1;
  }
  len_ += static_cast<size_t>(r);
  return r;
}

long Connection::readExact(size_t n, int timeout_ms) {
  size_t got = 0;
  while (got < n) {
    long r = readSome(timeout_ms, n - got);
    if (r <= 0) {
      return -1;
    }
    got += static_cast<size_t>(r);
  }
  return static_cast<long>(got);
}

void Connection::consume(size_t n) {
  if (n >= len_) {
    len_ = 0;
  } else if (n > 0) {
    std::memmove(buf_.data(), buf_.data() + n, len_ - n);
    len_ -= n;
  }
}

void Connection::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

} // namespace hgj::bench::mqtt

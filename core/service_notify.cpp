#include "core/service_notify.h"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace hgj::core {

namespace {

std::optional<uint64_t> envNumber(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  uint64_t n = 0;
  const char* end = v + std::strlen(v);
  auto [p, ec] = std::from_chars(v, end, n);
  if (ec != std::errc() || p != end) {
    return std::nullopt;
  }
  return n;
}

} // namespace

bool notifyServiceManager(std::string_view state) {
  const char* where = std::getenv("NOTIFY_SOCKET");
  if (where == nullptr || (where[0] != '/' && where[0] != '@')) {
    return false;  // not under a service manager (or a transport we do not speak, e.g. vsock)
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = std::strlen(where);
  if (len >= sizeof(addr.sun_path)) {
    return false;
  }
  std::memcpy(addr.sun_path, where, len);
  if (addr.sun_path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: the name is not NUL-terminated
  }
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len +
                                               (where[0] == '/' ? 1 : 0));
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  ssize_t sent;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), addr_len);
  } while (sent < 0 && errno == EINTR);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

std::optional<std::chrono::microseconds> serviceWatchdogInterval() {
  auto usec = envNumber("WATCHDOG_USEC");
  if (!usec || *usec == 0) {
    return std::nullopt;
  }
  if (std::getenv("WATCHDOG_PID") != nullptr) {
    auto pid = envNumber("WATCHDOG_PID");
    if (!pid || *pid != static_cast<uint64_t>(::getpid())) {
      return std::nullopt;  // meant for another process (e.g. our parent)
    }
  }
  return std::chrono::microseconds(static_cast<int64_t>(*usec));
}

} // namespace hgj::core

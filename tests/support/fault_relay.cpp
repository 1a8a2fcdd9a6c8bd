#include "tests/support/fault_relay.h"

#include <stdexcept>
#include <string>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/test_support.h"

namespace hgj::test {

namespace {

int connectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

} // namespace

FaultRelay::FaultRelay(int target_port) : target_(target_port), port_(freePort()) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw std::runtime_error("relay: pipe failed");
  }
  openListener();
  thread_ = std::thread([this] { run(); });
}

FaultRelay::~FaultRelay() {
  stop_ = true;
  char c = 0;
  (void)::write(wake_[1], &c, 1);
  thread_.join();
  closeAll();
  closeListener();
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::string FaultRelay::url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

void FaultRelay::setMode(Mode mode) {
  mode_ = mode;
  char c = 0;
  (void)::write(wake_[1], &c, 1);
}

void FaultRelay::openListener() {
  if (listen_fd_ >= 0) {
    return;
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int yes = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port_));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    throw std::runtime_error("relay: cannot listen on port " + std::to_string(port_));
  }
}

void FaultRelay::closeListener() {
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void FaultRelay::closeAll() {
  for (auto& p : pairs_) {
    ::close(p.client);
    if (p.server >= 0) {
      ::close(p.server);
    }
  }
  pairs_.clear();
}

void FaultRelay::run() {
  char buf[65536];
  Mode applied = Mode::Pass;
  while (!stop_) {
    const Mode mode = mode_.load();
    if (mode != applied) {
      if (mode == Mode::Refuse) {
        closeAll();
        closeListener();
      } else if (applied == Mode::Refuse) {
        openListener();
      }
      applied = mode;
    }
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    if (listen_fd_ >= 0) {
      fds.push_back({listen_fd_, POLLIN, 0});
    }
    const size_t first_pair = fds.size();
    for (const auto& p : pairs_) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.server, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 200) <= 0) {
      continue;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      while (::read(wake_[0], buf, sizeof buf) > 0) {
      }
      continue;  // re-apply the mode before touching any data
    }
    if (listen_fd_ >= 0 && (fds[1].revents & POLLIN) != 0) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        ++accepted_;
        int s = connectTo(target_);
        if (s < 0 && mode == Mode::Pass) {
          ::close(c);  // the broker behind is down: so is the relay
        } else {
          pairs_.push_back({c, s});
        }
      }
    }
    // Only the pairs polled above: one accepted just now has no entry in fds yet.
    const size_t polled = (fds.size() - first_pair) / 2;
    std::vector<size_t> dead;
    for (size_t i = 0; i < polled; ++i) {
      const pollfd& pc = fds[first_pair + 2 * i];
      const pollfd& ps = fds[first_pair + 2 * i + 1];
      Pair& p = pairs_[i];
      bool closed = false;
      for (int side = 0; side < 2 && !closed; ++side) {
        const pollfd& from = side == 0 ? pc : ps;
        if ((from.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
          continue;
        }
        ssize_t n = ::read(from.fd, buf, sizeof buf);
        if (n <= 0) {
          if (side == 1 && mode == Mode::Blackhole) {
            // The broker gave up on the silent client; the client must not learn of it.
            ::close(p.server);
            p.server = -1;
            continue;
          }
          closed = true;
          break;
        }
        if (mode == Mode::Pass) {
          int to = side == 0 ? p.server : p.client;
          size_t off = 0;
          while (off < static_cast<size_t>(n)) {
            ssize_t w = ::write(to, buf + off, static_cast<size_t>(n) - off);
            if (w <= 0) {
              closed = true;
              break;
            }
            off += static_cast<size_t>(w);
          }
        }
        // Blackhole: read and drop, so the sender's kernel still accepts its bytes.
      }
      if (closed) {
        dead.push_back(i);
      }
    }
    for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
      ::close(pairs_[*it].client);
      if (pairs_[*it].server >= 0) {
        ::close(pairs_[*it].server);
      }
      pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(*it));
    }
  }
}

} // namespace hgj::test

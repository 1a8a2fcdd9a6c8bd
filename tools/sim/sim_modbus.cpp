#include "tools/sim/sim_modbus.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace hgj::sim {

namespace {

constexpr int kTcpHeader = 7;  // MBAP header; the unit id is its last byte

bool isWrite(int function) {
  return function == MODBUS_FC_WRITE_SINGLE_COIL || function == MODBUS_FC_WRITE_SINGLE_REGISTER ||
         function == MODBUS_FC_WRITE_MULTIPLE_COILS ||
         function == MODBUS_FC_WRITE_MULTIPLE_REGISTERS ||
         function == MODBUS_FC_MASK_WRITE_REGISTER ||
         function == MODBUS_FC_WRITE_AND_READ_REGISTERS;
}

} // namespace

ModbusTcpServer::ModbusTcpServer(std::string line, std::string bind, int port)
    : line_(std::move(line)), bind_(std::move(bind)), port_(port) {}

ModbusTcpServer::~ModbusTcpServer() {
  stop();
  for (auto& [id, u] : units_) {
    modbus_mapping_free(u.map);
  }
}

void ModbusTcpServer::addUnit(int unit, const UnitTables& t) {
  if (units_.count(unit)) {
    return;
  }
  Unit u;
  u.map = modbus_mapping_new_start_address(0, t.coils, 0, t.discrete_inputs, 0, t.holding, 0,
                                           t.input);
  if (!u.map) {
    throw std::runtime_error("modbus line " + line_ + ": cannot allocate tables for unit " +
                             std::to_string(unit));
  }
  units_.emplace(unit, u);
}

void ModbusTcpServer::start() {
  if (running_) {
    return;
  }
  std::string host = bind_ == "localhost" ? "127.0.0.1" : bind_;
  ctx_ = host.find(':') != std::string::npos
             ? modbus_new_tcp_pi(host.c_str(), std::to_string(port_.load()).c_str())
             : modbus_new_tcp(host.c_str(), port_.load());
  if (!ctx_) {
    throw std::runtime_error("modbus line " + line_ + ": " + modbus_strerror(errno));
  }
  listen_fd_ = host.find(':') != std::string::npos ? modbus_tcp_pi_listen(ctx_, 16)
                                                    : modbus_tcp_listen(ctx_, 16);
  if (listen_fd_ < 0) {
    std::string err = modbus_strerror(errno);
    modbus_free(ctx_);
    ctx_ = nullptr;
    throw std::runtime_error("modbus line " + line_ + ": cannot listen on " + host + ":" +
                             std::to_string(port_.load()) + ": " + err);
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    if (addr.ss_family == AF_INET) {
      port_ = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      port_ = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
  }
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void ModbusTcpServer::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
  if (ctx_) {
    modbus_free(ctx_);
    ctx_ = nullptr;
  }
}

bool ModbusTcpServer::withUnit(int unit, const std::function<void(modbus_mapping_t&)>& f) {
  auto it = units_.find(unit);
  if (it == units_.end()) {
    return false;
  }
  std::lock_guard lock(mu_);
  f(*it->second.map);
  return true;
}

void ModbusTcpServer::setFault(int unit, UnitFault fault, int exception_code) {
  auto it = units_.find(unit);
  if (it == units_.end()) {
    return;
  }
  std::lock_guard lock(mu_);
  it->second.fault = fault;
  it->second.code = exception_code;
}

void ModbusTcpServer::setIgnoredCoils(int unit, std::set<int> coils) {
  auto it = units_.find(unit);
  if (it == units_.end()) {
    return;
  }
  std::lock_guard lock(mu_);
  it->second.ignored_coils = std::move(coils);
}

void ModbusTcpServer::run() {
  std::vector<int> clients;
  try {
    while (running_) {
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(listen_fd_, &fds);
      int max_fd = listen_fd_;
      for (int fd : clients) {
        FD_SET(fd, &fds);
        max_fd = std::max(max_fd, fd);
      }
      // A short timeout so stop() is noticed; select() is the wait, not a sleep.
      timeval tv{0, 100'000};
      int rc = select(max_fd + 1, &fds, nullptr, nullptr, &tv);
      if (rc < 0) {
        if (errno == EINTR) {
          continue;
        }
        spdlog::error("modbus line {}: select failed: {}", line_, std::strerror(errno));
        break;
      }
      if (rc == 0) {
        continue;
      }
      if (FD_ISSET(listen_fd_, &fds)) {
        int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) {
          if (clients.size() >= 64 || fd >= FD_SETSIZE) {
            close(fd);
          } else {
            clients.push_back(fd);
          }
        }
      }
      std::vector<int> closed;
      for (int fd : clients) {
        if (FD_ISSET(fd, &fds)) {
          handle(fd, closed);
        }
      }
      for (int fd : closed) {
        close(fd);
        clients.erase(std::remove(clients.begin(), clients.end(), fd), clients.end());
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("modbus line {}: server thread stopped: {}", line_, e.what());
  }
  for (int fd : clients) {
    close(fd);
  }
}

void ModbusTcpServer::handle(int fd, std::vector<int>& closed) {
  uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  modbus_set_socket(ctx_, fd);
  int rc = modbus_receive(ctx_, query);
  if (rc < 0) {
    closed.push_back(fd);
    return;
  }
  if (rc <= kTcpHeader) {
    return;
  }
  ++requests_;
  int unit = query[kTcpHeader - 1];
  int function = query[kTcpHeader];
  bool wrote = false;
  {
    std::lock_guard lock(mu_);
    auto it = units_.find(unit);
    if (it == units_.end()) {
      modbus_reply_exception(ctx_, query, MODBUS_EXCEPTION_GATEWAY_TARGET);
      return;
    }
    Unit& u = it->second;
    if (u.fault == UnitFault::Silent) {
      return;
    }
    if (u.fault == UnitFault::Exception) {
      modbus_reply_exception(ctx_, query, static_cast<unsigned int>(u.code));
      return;
    }
    std::vector<std::pair<int, uint8_t>> kept;
    if (isWrite(function)) {
      for (int c : u.ignored_coils) {
        if (c >= 0 && c < u.map->nb_bits) {
          kept.emplace_back(c, u.map->tab_bits[c]);
        }
      }
    }
    int replied = modbus_reply(ctx_, query, rc, u.map);
    // An ignored coil acknowledges the write but keeps its state, as a stuck relay would.
    for (const auto& [c, v] : kept) {
      u.map->tab_bits[c] = v;
    }
    if (replied < 0) {
      closed.push_back(fd);
      return;
    }
    wrote = isWrite(function);
  }
  if (wrote && notify_) {
    notify_();
  }
}

void putFloatAbcd(uint16_t* regs, int addr, double value) {
  // Not modbus_set_float_abcd: in libmodbus 3.1.6 it is not the inverse of the _get_ function.
  auto f = static_cast<float>(value);
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof(bits));
  putU32(regs, addr, bits);
}

void putU32(uint16_t* regs, int addr, uint32_t value) {
  regs[addr] = static_cast<uint16_t>(value >> 16);
  regs[addr + 1] = static_cast<uint16_t>(value & 0xFFFF);
}

void putU16(uint16_t* regs, int addr, double value) {
  double v = std::clamp(std::round(value), 0.0, 65535.0);
  regs[addr] = static_cast<uint16_t>(v);
}

void putI16(uint16_t* regs, int addr, double value) {
  double v = std::clamp(std::round(value), -32768.0, 32767.0);
  regs[addr] = static_cast<uint16_t>(static_cast<int16_t>(v));
}

} // namespace hgj::sim

#include "tools/sim/modbus_slave.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers/modbus/modbus_decode.h"

namespace hgj::sim {

namespace {

const TableRange& rangeOf(const UnitLayout& l, RegisterTable t) {
  switch (t) {
  case RegisterTable::Coil:
    return l.coils;
  case RegisterTable::Discrete:
    return l.discrete;
  case RegisterTable::Holding:
    return l.holding;
  case RegisterTable::Input:
    return l.input;
  }
  return l.holding;
}

bool isWriteFunction(int fc) {
  return fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_SINGLE_REGISTER ||
         fc == MODBUS_FC_WRITE_MULTIPLE_COILS || fc == MODBUS_FC_WRITE_MULTIPLE_REGISTERS ||
         fc == MODBUS_FC_MASK_WRITE_REGISTER || fc == MODBUS_FC_WRITE_AND_READ_REGISTERS;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF), low byte sent first.
uint16_t crc16(const uint8_t* data, size_t n) {
  uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int b = 0; b < 8; ++b) {
      crc = (crc & 1U) != 0 ? static_cast<uint16_t>((crc >> 1) ^ 0xA001) : static_cast<uint16_t>(crc >> 1);
    }
  }
  return crc;
}

} // namespace

std::unique_ptr<ModbusSlave> ModbusSlave::tcp(const std::string& host, int port) {
  std::unique_ptr<ModbusSlave> s(new ModbusSlave());
  s->host_ = host;
  s->port_ = port;
  return s;
}

std::unique_ptr<ModbusSlave> ModbusSlave::rtu(const RtuPort& port) {
  std::unique_ptr<ModbusSlave> s(new ModbusSlave());
  s->is_rtu_ = true;
  s->rtu_ = port;
  return s;
}

ModbusSlave::~ModbusSlave() {
  stop();
  for (auto& [id, u] : units_) {
    modbus_mapping_free(u->mapping);
  }
}

void ModbusSlave::addUnit(int unit, const UnitLayout& layout) {
  std::lock_guard lock(mu_);
  if (units_.count(unit) != 0) {
    throw std::invalid_argument("unit " + std::to_string(unit) + " added twice");
  }
  auto u = std::make_unique<Unit>();
  u->layout = layout;
  u->mapping = modbus_mapping_new_start_address(
      layout.coils.start, layout.coils.count, layout.discrete.start, layout.discrete.count,
      layout.holding.start, layout.holding.count, layout.input.start, layout.input.count);
  if (u->mapping == nullptr) {
    throw std::runtime_error("modbus_mapping_new_start_address failed");
  }
  units_.emplace(unit, std::move(u));
}

void ModbusSlave::start() {
  if (running_) {
    return;
  }
  if (::pipe2(wake_fds_, O_CLOEXEC | O_NONBLOCK) == -1) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  if (is_rtu_) {
    ctx_ = modbus_new_rtu(rtu_.device.c_str(), rtu_.baud, rtu_.parity, rtu_.data_bits,
                          rtu_.stop_bits);
    if (ctx_ == nullptr) {
      throw std::runtime_error("modbus_new_rtu failed for " + rtu_.device);
    }
    if (modbus_connect(ctx_) == -1) {
      std::string err = modbus_strerror(errno);
      modbus_free(ctx_);
      ctx_ = nullptr;
      throw std::runtime_error("cannot open " + rtu_.device + ": " + err);
    }
  } else {
    ctx_ = modbus_new_tcp(host_.c_str(), port_);
    if (ctx_ == nullptr) {
      throw std::runtime_error("modbus_new_tcp failed for " + host_);
    }
    listen_fd_ = modbus_tcp_listen(ctx_, 64);
    if (listen_fd_ == -1) {
      std::string err = modbus_strerror(errno);
      modbus_free(ctx_);
      ctx_ = nullptr;
      throw std::runtime_error("cannot listen on " + host_ + ":" + std::to_string(port_) + ": " +
                               err);
    }
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  // A partial frame must not hold the server thread for ever.
  modbus_set_indication_timeout(ctx_, 1, 0);
  running_ = true;
  thread_ = std::thread([this] { is_rtu_ ? serveRtu() : serveTcp(); });
}

void ModbusSlave::stop() {
  if (!running_) {
    return;
  }
  running_ = false;
  char c = 1;
  (void)::write(wake_fds_[1], &c, 1);
  if (thread_.joinable()) {
    thread_.join();
  }
  if (listen_fd_ != -1) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  if (ctx_ != nullptr) {
    if (is_rtu_) {
      modbus_close(ctx_);
    }
    modbus_free(ctx_);
    ctx_ = nullptr;
  }
  ::close(wake_fds_[0]);
  ::close(wake_fds_[1]);
  wake_fds_[0] = wake_fds_[1] = -1;
}

void ModbusSlave::serveTcp() {
  std::vector<int> clients;
  uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  while (running_) {
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(wake_fds_[0], &rd);
    FD_SET(listen_fd_, &rd);
    int max_fd = std::max(wake_fds_[0], listen_fd_);
    for (int fd : clients) {
      FD_SET(fd, &rd);
      max_fd = std::max(max_fd, fd);
    }
    if (::select(max_fd + 1, &rd, nullptr, nullptr, nullptr) == -1) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    if (FD_ISSET(wake_fds_[0], &rd)) {
      break;
    }
    if (FD_ISSET(listen_fd_, &rd)) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd != -1 && fd < FD_SETSIZE) {
        clients.push_back(fd);
        ++connections_;
      } else if (fd != -1) {
        ::close(fd);
      }
    }
    for (auto it = clients.begin(); it != clients.end();) {
      if (!FD_ISSET(*it, &rd)) {
        ++it;
        continue;
      }
      modbus_set_socket(ctx_, *it);
      int rc = modbus_receive(ctx_, query);
      if (rc > 0) {
        handle(query, rc);
        ++it;
      } else if (rc == -1) {
        ::close(*it);
        it = clients.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (int fd : clients) {
    ::close(fd);
  }
  modbus_set_socket(ctx_, -1);
}

void ModbusSlave::serveRtu() {
  // libmodbus's own RTU receive frames by expected length and, after a request for another
  // unit, tries to skip that unit's reply; on a bus where the other unit is silent it then
  // swallows the master's next request and can lose the framing for good. A real device frames
  // by the silent interval between frames instead, and so does this server: it collects bytes
  // until the line has been quiet, checks the CRC, and answers any unit it hosts.
  int fd = modbus_get_socket(ctx_);
  std::vector<uint8_t> frame;
  while (running_) {
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(wake_fds_[0], &rd);
    FD_SET(fd, &rd);
    timeval quiet{0, 5000};
    int rc = ::select(std::max(fd, wake_fds_[0]) + 1, &rd, nullptr, nullptr,
                      frame.empty() ? nullptr : &quiet);
    if (rc == -1) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    if (FD_ISSET(wake_fds_[0], &rd)) {
      break;
    }
    if (rc == 0) {
      std::vector<uint8_t> done;
      done.swap(frame);
      if (done.size() >= 4 && done.size() <= MODBUS_RTU_MAX_ADU_LENGTH &&
          crc16(done.data(), done.size() - 2) ==
              static_cast<uint16_t>(done[done.size() - 2] | (done[done.size() - 1] << 8))) {
        {
          std::lock_guard lock(mu_);
          if (units_.count(done[0]) == 0) {
            continue;
          }
        }
        modbus_set_slave(ctx_, done[0]);
        handle(done.data(), static_cast<int>(done.size()));
      }
      continue;
    }
    uint8_t buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0 || errno == EIO || errno == EBADF) {
        break;  // the other end of the line is gone
      }
      continue;
    }
    if (frame.size() + static_cast<size_t>(n) > 1024) {
      frame.clear();  // noise on the line, not a frame
    }
    frame.insert(frame.end(), buf, buf + n);
  }
}

void ModbusSlave::handle(const uint8_t* query, int length) {
  int hl = modbus_get_header_length(ctx_);
  if (length <= hl) {
    return;
  }
  int unit_id = query[hl - 1];
  int fc = query[hl];
  std::unique_lock lock(mu_);
  auto it = units_.find(unit_id);
  if (it == units_.end()) {
    return;
  }
  Unit& u = *it->second;
  ++u.requests;
  if (u.faults.silent) {
    return;
  }
  int exception = 0;
  if (u.faults.exception != 0 && u.faults.exception_count != 0) {
    exception = u.faults.exception;
    if (u.faults.exception_count > 0 && --u.faults.exception_count == 0) {
      u.faults.exception = 0;
    }
  }
  auto delay = u.faults.delay;
  if (delay.count() > 0) {
    // The delay is the simulated device's own slowness, not a synchronisation.
    lock.unlock();
    std::this_thread::sleep_for(delay);
    lock.lock();
  }
  if (u.faults.garbage) {
    // Looks like the start of a reply (same unit, a read function) but is cut short and its
    // "CRC" is wrong: the client must detect it, flush and carry on.
    const uint8_t junk[] = {static_cast<uint8_t>(unit_id), 0x03, 0x04, 0xDE, 0xAD, 0xBE};
    (void)::write(modbus_get_socket(ctx_), junk, sizeof junk);
    return;
  }
  if (exception != 0) {
    modbus_reply_exception(ctx_, query, static_cast<unsigned int>(exception));
    return;
  }
  bool write = isWriteFunction(fc);
  RegisterTable table = RegisterTable::Holding;
  uint16_t address = length >= hl + 3 ? be16(query + hl + 1) : 0;
  uint16_t count = 1;
  if (fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_MULTIPLE_COILS) {
    table = RegisterTable::Coil;
  }
  if ((fc == MODBUS_FC_WRITE_MULTIPLE_COILS || fc == MODBUS_FC_WRITE_MULTIPLE_REGISTERS) &&
      length >= hl + 5) {
    count = be16(query + hl + 3);
  }
  if (fc == MODBUS_FC_WRITE_AND_READ_REGISTERS && length >= hl + 9) {
    address = be16(query + hl + 5);
    count = be16(query + hl + 7);
  }
  // An "ignore writes" device acknowledges normally but keeps its old values: take a copy of the
  // addressed range and put it back after libmodbus applied the write.
  std::vector<uint16_t> saved_regs;
  std::vector<uint8_t> saved_bits;
  const TableRange& range = rangeOf(u.layout, table);
  uint32_t from = std::max<uint32_t>(address, range.start);
  uint32_t to = std::min<uint32_t>(address + count, range.start + range.count);
  if (write && u.faults.ignore_writes && from < to) {
    if (table == RegisterTable::Coil) {
      saved_bits.assign(u.mapping->tab_bits + (from - range.start),
                        u.mapping->tab_bits + (to - range.start));
    } else {
      saved_regs.assign(u.mapping->tab_registers + (from - range.start),
                        u.mapping->tab_registers + (to - range.start));
    }
  }
  int rc = modbus_reply(ctx_, query, length, u.mapping);
  if (!write || rc == -1) {
    return;
  }
  if (u.faults.ignore_writes) {
    if (!saved_bits.empty()) {
      std::copy(saved_bits.begin(), saved_bits.end(), u.mapping->tab_bits + (from - range.start));
    }
    if (!saved_regs.empty()) {
      std::copy(saved_regs.begin(), saved_regs.end(),
                u.mapping->tab_registers + (from - range.start));
    }
    return;
  }
  ++u.writes;
  WriteHook hook = hook_;
  lock.unlock();
  if (hook) {
    hook(unit_id, table, address, count);
  }
}

ModbusSlave::Unit& ModbusSlave::unit(int id) {
  auto it = units_.find(id);
  if (it == units_.end()) {
    throw std::out_of_range("no unit " + std::to_string(id));
  }
  return *it->second;
}

const ModbusSlave::Unit& ModbusSlave::unit(int id) const {
  auto it = units_.find(id);
  if (it == units_.end()) {
    throw std::out_of_range("no unit " + std::to_string(id));
  }
  return *it->second;
}

uint16_t* ModbusSlave::regPtr(Unit& u, RegisterTable table, uint16_t address) const {
  const TableRange& r = rangeOf(u.layout, table);
  if (address < r.start || address >= r.start + r.count) {
    throw std::out_of_range(std::string(drivers::profiles::tableName(table)) + " register " +
                            std::to_string(address) + " outside the unit's layout");
  }
  if (table == RegisterTable::Holding) {
    return u.mapping->tab_registers + (address - r.start);
  }
  if (table == RegisterTable::Input) {
    return u.mapping->tab_input_registers + (address - r.start);
  }
  throw std::out_of_range("not a register table");
}

uint8_t* ModbusSlave::bitPtr(Unit& u, RegisterTable table, uint16_t address) const {
  const TableRange& r = rangeOf(u.layout, table);
  if (address < r.start || address >= r.start + r.count) {
    throw std::out_of_range(std::string(drivers::profiles::tableName(table)) + " bit " +
                            std::to_string(address) + " outside the unit's layout");
  }
  if (table == RegisterTable::Coil) {
    return u.mapping->tab_bits + (address - r.start);
  }
  if (table == RegisterTable::Discrete) {
    return u.mapping->tab_input_bits + (address - r.start);
  }
  throw std::out_of_range("not a bit table");
}

void ModbusSlave::setRegister(int unit_id, RegisterTable table, uint16_t address,
                              uint16_t value) {
  std::lock_guard lock(mu_);
  *regPtr(unit(unit_id), table, address) = value;
}

void ModbusSlave::setRegisters(int unit_id, RegisterTable table, uint16_t address,
                               std::span<const uint16_t> values) {
  std::lock_guard lock(mu_);
  Unit& u = unit(unit_id);
  for (size_t i = 0; i < values.size(); ++i) {
    *regPtr(u, table, static_cast<uint16_t>(address + i)) = values[i];
  }
}

uint16_t ModbusSlave::getRegister(int unit_id, RegisterTable table, uint16_t address) const {
  std::lock_guard lock(mu_);
  return *regPtr(const_cast<Unit&>(unit(unit_id)), table, address);
}

std::vector<uint16_t> ModbusSlave::getRegisters(int unit_id, RegisterTable table,
                                                uint16_t address, uint16_t count) const {
  std::lock_guard lock(mu_);
  Unit& u = const_cast<Unit&>(unit(unit_id));
  std::vector<uint16_t> out;
  for (uint16_t i = 0; i < count; ++i) {
    out.push_back(*regPtr(u, table, static_cast<uint16_t>(address + i)));
  }
  return out;
}

void ModbusSlave::setBit(int unit_id, RegisterTable table, uint16_t address, bool value) {
  std::lock_guard lock(mu_);
  *bitPtr(unit(unit_id), table, address) = value ? 1 : 0;
}

bool ModbusSlave::getBit(int unit_id, RegisterTable table, uint16_t address) const {
  std::lock_guard lock(mu_);
  return *bitPtr(const_cast<Unit&>(unit(unit_id)), table, address) != 0;
}

bool ModbusSlave::setValue(int unit_id, const drivers::profiles::RegisterDef& def,
                           uint16_t address, const model::Value& value, std::string* error) {
  using drivers::profiles::RegisterType;
  std::string why;
  auto fail = [&](std::string reason) {
    if (error != nullptr) {
      *error = std::move(reason);
    }
    return false;
  };
  if (drivers::profiles::isBitTable(def.table)) {
    auto b = model::asBool(value);
    if (!b) {
      return fail("expected a bool");
    }
    setBit(unit_id, def.table, address, *b);
    return true;
  }
  if (def.type == RegisterType::Bool && def.bit >= 0) {
    auto b = model::asBool(value);
    if (!b) {
      return fail("expected a bool");
    }
    std::lock_guard lock(mu_);
    uint16_t* r = regPtr(unit(unit_id), def.table, address);
    *r = static_cast<uint16_t>(*b ? (*r | (1U << def.bit)) : (*r & ~(1U << def.bit)));
    return true;
  }
  drivers::profiles::RegisterDef plain = def;
  model::Value raw = value;
  if (!def.values.empty()) {
    // A mapped status: store the raw value whose text is `value`.
    std::string text = model::toText(value);
    auto it = std::find_if(def.values.begin(), def.values.end(),
                           [&](const auto& kv) { return kv.second == text; });
    std::string key = it != def.values.end() ? it->first : text;
    if (def.type == RegisterType::String) {
      raw = model::Value(key);
    } else {
      char* end = nullptr;
      double n = std::strtod(key.c_str(), &end);
      if (end == key.c_str() || *end != '\0') {
        return fail("\"" + text + "\" is not in the value map");
      }
      raw = model::Value(n * def.scale + def.offset);
    }
    plain.values.clear();
  }
  plain.mask = 0;
  auto regs = drivers::modbus::encodeRegisters(plain, raw, why);
  if (!regs) {
    return fail(why);
  }
  setRegisters(unit_id, def.table, address, *regs);
  return true;
}

bool ModbusSlave::setPoint(int unit_id, const model::Profile& profile, std::string_view point,
                           const model::Value& value, int child, std::string* error) {
  if (!profile.modbus) {
    if (error != nullptr) {
      *error = "profile " + profile.name + " has no modbus section";
    }
    return false;
  }
  const auto& spec = *drivers::profiles::modbusSpec(profile);
  if (child == 0) {
    for (const auto& r : spec.registers) {
      if (r.point_name == point) {
        return setValue(unit_id, r, r.address, value, error);
      }
    }
  } else {
    for (const auto& b : spec.blocks) {
      for (const auto& r : b.registers) {
        if (r.point_name == point) {
          return setValue(unit_id, r,
                          static_cast<uint16_t>(drivers::profiles::blockAddress(b, r, child)),
                          value, error);
        }
      }
    }
  }
  if (error != nullptr) {
    *error = "no register for point " + std::string(point) + " in profile " + profile.name;
  }
  return false;
}

std::optional<model::Value> ModbusSlave::getValue(int unit_id,
                                                  const drivers::profiles::RegisterDef& def,
                                                  uint16_t address) const {
  if (drivers::profiles::isBitTable(def.table)) {
    return model::Value(getBit(unit_id, def.table, address));
  }
  auto regs = getRegisters(unit_id, def.table, address, def.count);
  return drivers::modbus::decodeRegisters(def, regs);
}

void ModbusSlave::setFaults(int unit_id, const UnitFaults& faults) {
  std::lock_guard lock(mu_);
  unit(unit_id).faults = faults;
}

UnitFaults ModbusSlave::faults(int unit_id) const {
  std::lock_guard lock(mu_);
  return unit(unit_id).faults;
}

void ModbusSlave::setSilent(int unit_id, bool silent) {
  std::lock_guard lock(mu_);
  unit(unit_id).faults.silent = silent;
}

void ModbusSlave::setException(int unit_id, int code, int count) {
  std::lock_guard lock(mu_);
  Unit& u = unit(unit_id);
  u.faults.exception = code;
  u.faults.exception_count = count;
}

void ModbusSlave::setIgnoreWrites(int unit_id, bool ignore) {
  std::lock_guard lock(mu_);
  unit(unit_id).faults.ignore_writes = ignore;
}

void ModbusSlave::setDelay(int unit_id, std::chrono::milliseconds delay) {
  std::lock_guard lock(mu_);
  unit(unit_id).faults.delay = delay;
}

void ModbusSlave::setGarbage(int unit_id, bool garbage) {
  std::lock_guard lock(mu_);
  unit(unit_id).faults.garbage = garbage;
}

void ModbusSlave::onWrite(WriteHook hook) {
  std::lock_guard lock(mu_);
  hook_ = std::move(hook);
}

uint64_t ModbusSlave::requests(int unit_id) const {
  std::lock_guard lock(mu_);
  return unit(unit_id).requests;
}

uint64_t ModbusSlave::writes(int unit_id) const {
  std::lock_guard lock(mu_);
  return unit(unit_id).writes;
}

} // namespace hgj::sim

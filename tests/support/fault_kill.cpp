#include "tests/support/fault_kill.h"

#include <csignal>

namespace hgj::test {

uint64_t KillScheduler::freshSeed() {
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

std::chrono::steady_clock::time_point KillScheduler::kill(Process& p) {
  auto at = std::chrono::steady_clock::now();
  p.signal(SIGKILL);
  p.wait(std::chrono::seconds(20));
  return at;
}

} // namespace hgj::test

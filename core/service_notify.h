#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace hgj::core {

/// systemd's service notification protocol (sd_notify(3), "NOTIFY_SOCKET"): one datagram of
/// newline-separated assignments ("READY=1", "WATCHDOG=1", ...) sent to the AF_UNIX socket
/// named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). systemd documents
/// the protocol as stable and meant to be spoken directly; doing so saves the gateway loading
/// libsystemd and the six libraries it pulls in (about 1 MiB of resident memory per process,
/// docs/benchmarks.md "Memory"). Returns true when the datagram was sent; false when not
/// running under a notifying service manager (no $NOTIFY_SOCKET) or on any error (never
/// fatal, as with sd_notify).
bool notifyServiceManager(std::string_view state);

/// The watchdog interval systemd asks for ($WATCHDOG_USEC, for this process when
/// $WATCHDOG_PID is set), as sd_watchdog_enabled(3) reads it; nullopt when none.
std::optional<std::chrono::microseconds> serviceWatchdogInterval();

} // namespace hgj::core

#pragma once

#include <stdexcept>
#include <string>

namespace hgj {

/// Exit statuses of `hgj-gateway run`, one per start-up failure an operator must tell apart
/// (docs/operations.md, troubleshooting). Under systemd they show in `systemctl status` as
/// `status=N`, so a crash loop says what is wrong without the journal.
enum class ExitCode : int {
  Ok = 0,
  Runtime = 1,     ///< anything else: a stage failed at run time
  Config = 2,      ///< configuration problems (one line each), including a malformed broker URL
  HttpPort = 3,    ///< http.bind:http.port cannot be listened on (taken, not an address here)
  Database = 4,    ///< storage.path cannot be opened, created or written
  SerialPort = 5,  ///< a Modbus RTU line's serial port does not exist
};

/// A start-up failure with its exit status. Thrown by App::start() (which has already stopped
/// whatever it had started), caught once in main, printed as one line.
class StartupError : public std::runtime_error {
public:
  StartupError(ExitCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ExitCode code() const { return code_; }

private:
  ExitCode code_;
};

} // namespace hgj

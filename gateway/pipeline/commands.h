#pragma once

#include <cstdint>
#include <future>
#include <string>

#include "model/value.h"

namespace hgj::pipeline {

/// An operator's request from the HTTP API or the upstream platform. It is executed on the
/// pipeline thread (the only owner of state, alerts and actuation); the caller waits on the
/// returned future with a deadline of its own.
struct Command {
  enum class Kind { AckAlert, WritePoint, SummaryNow };
  Kind kind = Kind::AckAlert;
  std::string id;      ///< the caller's request id, echoed in results and logs
  std::string origin;  ///< "api", "upstream"
  /// Who, as authenticated: "api:operator" (the role of the API token used), or
  /// "upstream:<uplink client id>#<command id>". The audit trail records this; empty: `origin`.
  std::string identity;
  std::string by;      ///< the sender's own words for who it is: kept as a note only
  // AckAlert
  int64_t alert_id = 0;
  std::string note;
  // WritePoint
  std::string device;
  std::string point;
  model::Value value;
  /// Needed to re-enable what a safety rule cut; honoured only from writers the local policy
  /// allows (the API's operator; upstream only with uplink.commands.allow_override).
  bool override_safety = false;
};

struct CommandResult {
  bool ok = false;
  int http_status = 200;  ///< 400 bad request, 403 refused, 404 unknown, 409 conflict, 504 timeout
  std::string message;    ///< why it was refused, or what was done
};

/// Where the API and the uplink submit commands. Thread-safe; never blocks for long (the queue is
/// bounded: when full, the future is ready at once with 503).
class CommandSink {
public:
  virtual ~CommandSink() = default;
  virtual std::future<CommandResult> submit(Command command) = 0;
};

} // namespace hgj::pipeline

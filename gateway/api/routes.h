#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/api/handlers.h"

namespace hgj::api {

/// Where a route's handler runs. Inline handlers run on the network thread and must be quick and
/// never block (health, dashboard files); Worker handlers run on the worker pool (snapshots,
/// the database, commands); the event stream opens on the network thread.
enum class RunOn { Inline, Worker, EventStream };

using HandlerFn = void (*)(ApiContext&, const Request&, Response&);

struct Route {
  const char* method;
  RunOn run_on;
  HandlerFn handler; ///< nullptr for the event stream
};

/// The route for a method and decoded path, with the path pieces it captures in `params`.
/// nullptr when nothing matches; then `status` says 404 (no such path) or 405 (the path exists
/// for other methods, listed in `allow`). Pure; any thread.
struct RouteMatch {
  const Route* route = nullptr;
  std::vector<std::string> params;
  int status = 404;
  std::string allow;
};
RouteMatch matchRoute(std::string_view method, std::string_view path);

} // namespace hgj::api

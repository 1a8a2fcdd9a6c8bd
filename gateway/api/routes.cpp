#include "gateway/api/routes.h"

namespace hgj::api {

namespace {

const Route kStatic{"GET", RunOn::Inline, getStatic};
const Route kParking{"GET", RunOn::Worker, getParking};
const Route kSpaces{"GET", RunOn::Worker, getSpaces};
const Route kDevices{"GET", RunOn::Worker, getDevices};
const Route kDevice{"GET", RunOn::Worker, getDevice};
const Route kWrite{"POST", RunOn::Worker, postWrite};
const Route kEv{"GET", RunOn::Worker, getEv};
const Route kEbike{"GET", RunOn::Worker, getEbike};
const Route kAlerts{"GET", RunOn::Worker, getAlerts};
const Route kAck{"POST", RunOn::Worker, postAck};
const Route kEvents{"GET", RunOn::EventStream, nullptr};
const Route kHealth{"GET", RunOn::Inline, getHealth};
const Route kMetrics{"GET", RunOn::Worker, getMetrics};
const Route kHistoryOccupancy{"GET", RunOn::Worker, getHistoryOccupancy};
const Route kHistoryDays{"GET", RunOn::Worker, getHistoryDays};
const Route kHistoryScopes{"GET", RunOn::Worker, getHistoryScopes};
const Route kConfigVersions{"GET", RunOn::Worker, getConfigVersions};
const Route kConfigRollback{"POST", RunOn::Worker, postConfigRollback};

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A dashboard file name: "app.js", letters, digits and "._-" with a known extension.
bool staticName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  for (const char* ext :
       {".html", ".js", ".css", ".svg", ".png", ".ico", ".json", ".webmanifest", ".txt"}) {
    if (endsWith(name, ext) && name.size() > std::string_view(ext).size()) {
      return true;
    }
  }
  return false;
}

// The route of a path regardless of method, with its captures.
const Route* byPath(std::string_view path, std::vector<std::string>& params) {
  if (path == "/") {
    return &kStatic;
  }
  if (path == "/healthz") {
    return &kHealth;
  }
  if (path == "/metrics") {
    return &kMetrics;
  }
  constexpr std::string_view api = "/api/v1/";
  if (!startsWith(path, api)) {
    std::string_view name = path.substr(1);
    if (staticName(name)) {
      params.emplace_back(name);
      return &kStatic;
    }
    return nullptr;
  }
  std::string_view rest = path.substr(api.size());
  if (rest == "parking") {
    return &kParking;
  }
  if (rest == "parking/spaces") {
    return &kSpaces;
  }
  if (rest == "devices") {
    return &kDevices;
  }
  if (rest == "ev") {
    return &kEv;
  }
  if (rest == "ebike") {
    return &kEbike;
  }
  if (rest == "alerts") {
    return &kAlerts;
  }
  if (rest == "events") {
    return &kEvents;
  }
  if (rest == "history/occupancy") {
    return &kHistoryOccupancy;
  }
  if (rest == "config/versions") {
    return &kConfigVersions;
  }
  if (rest == "config/rollback") {
    return &kConfigRollback;
  }
  if (rest == "history/scopes") {
    return &kHistoryScopes;
  }
  if (rest == "history/energy" || rest == "history/sessions" || rest == "history/alerts") {
    params.emplace_back(rest.substr(8));
    return &kHistoryDays;
  }
  if (startsWith(rest, "alerts/") && endsWith(rest, "/ack")) {
    std::string_view id = rest.substr(7, rest.size() - 7 - 4);
    if (!id.empty() && id.find('/') == std::string_view::npos) {
      params.emplace_back(id);
      return &kAck;
    }
    return nullptr;
  }
  if (startsWith(rest, "devices/") && rest.size() > 8) {
    // Child ids contain a slash (S03/P07): taken literally or as S03%2FP07, so the point of a
    // write is what follows the last "/points/".
    std::string_view id = rest.substr(8);
    size_t points = id.rfind("/points/");
    if (points != std::string_view::npos && points > 0 && points + 8 < id.size() &&
        id.find('/', points + 8) == std::string_view::npos) {
      params.emplace_back(id.substr(0, points));
      params.emplace_back(id.substr(points + 8));
      return &kWrite;
    }
    params.emplace_back(id);
    return &kDevice;
  }
  return nullptr;
}

} // namespace

RouteMatch matchRoute(std::string_view method, std::string_view path) {
  RouteMatch m;
  const Route* r = byPath(path, m.params);
  if (r == nullptr) {
    m.params.clear();
    return m;
  }
  // A device path is also read with GET (S03/points/x is a device id then).
  if (r == &kWrite && (method == "GET" || method == "HEAD")) {
    m.params = {std::string(path.substr(std::string_view("/api/v1/devices/").size()))};
    r = &kDevice;
  }
  if (method == r->method || (method == "HEAD" && std::string_view(r->method) == "GET")) {
    m.route = r;
    m.status = 0;
    return m;
  }
  m.params.clear();
  m.status = 405;
  m.allow = std::string_view(r->method) == "GET" ? "GET, HEAD" : r->method;
  return m;
}

} // namespace hgj::api

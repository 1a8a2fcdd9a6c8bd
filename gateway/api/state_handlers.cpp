#include "gateway/api/handlers.h"

#include "gateway/api/views.h"

namespace hgj::api {

void getParking(ApiContext& ctx, const Request&, Response& res) {
  if (auto s = ctx.snapshot(res)) {
    res.setJson(200, parkingView(*s));
  }
}

void getSpaces(ApiContext& ctx, const Request& req, Response& res) {
  auto level_param = req.param("level");
  auto zone_param = req.param("zone");
  std::string level = level_param.value_or("");
  std::string zone = zone_param.value_or("");
  if ((level_param && !validName(level, 32)) || (zone_param && !validName(zone, 32))) {
    res.setError(400, "level and zone must be short names such as B1 and A");
    return;
  }
  auto s = ctx.snapshot(res);
  if (!s) {
    return;
  }
  if (!level.empty()) {
    bool known = false;
    for (const auto& l : s->levels) {
      if (l.level == level) {
        known = true;
        for (const auto& z : l.zones) {
          known = zone.empty() || z.zone == zone;
          if (known) {
            break;
          }
        }
      }
    }
    if (!known) {
      res.setError(404, "unknown level or zone");
      return;
    }
  }
  std::string category = req.paramOr("category");
  if (!category.empty() && (s->compound == nullptr || s->compound->categoryIndex(category) < 0)) {
    res.setError(404, "unknown category");
    return;
  }
  res.setJson(200, spacesView(*s, level, zone, category));
}

void getDevices(ApiContext& ctx, const Request& req, Response& res) {
  DeviceFilter f;
  f.type = req.paramOr("type");
  f.grid = req.paramOr("grid");
  if (auto o = req.param("online")) {
    if (*o == "true" || *o == "1") {
      f.online = true;
    } else if (*o == "false" || *o == "0") {
      f.online = false;
    } else {
      res.setError(400, "online must be true or false");
      return;
    }
  }
  if (f.type.size() > kMaxNameLength || f.grid.size() > kMaxNameLength) {
    res.setError(400, "filter too long");
    return;
  }
  if (auto s = ctx.snapshot(res)) {
    res.setJson(200, devicesView(*s, f));
  }
}

void getDevice(ApiContext& ctx, const Request& req, Response& res) {
  const std::string& id = req.params.at(0);
  if (!validName(id, kMaxIdLength)) {
    res.setError(400, "bad device id");
    return;
  }
  auto s = ctx.snapshot(res);
  if (!s) {
    return;
  }
  auto j = deviceView(*s, id);
  if (!j) {
    res.setError(404, "unknown device \"" + id + "\"");
    return;
  }
  res.setJson(200, *j);
}

void getEv(ApiContext& ctx, const Request&, Response& res) {
  if (auto s = ctx.snapshot(res)) {
    res.setJson(200, evView(*s));
  }
}

void getEbike(ApiContext& ctx, const Request&, Response& res) {
  if (auto s = ctx.snapshot(res)) {
    res.setJson(200, ebikeView(*s));
  }
}

} // namespace hgj::api

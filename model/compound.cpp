#include "model/compound.h"

#include <algorithm>

namespace hgj::model {

const PointDef* Profile::point(PointId id) const {
  for (const auto& p : points) {
    if (p.id == id) {
      return &p;
    }
  }
  return nullptr;
}

const PointDef* Profile::point(std::string_view name) const {
  for (const auto& p : points) {
    if (p.name == name) {
      return &p;
    }
  }
  return nullptr;
}

int Profile::slot(PointId id) const {
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].id == id) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::string Location::text() const {
  std::string out;
  auto add = [&](const std::string& part, const char* suffix) {
    if (part.empty()) {
      return;
    }
    if (!out.empty()) {
      out += ' ';
    }
    out += part;
    out += suffix;
  };
  add(building, "");
  add(level, "");
  add(zone, "区");
  add(space, "");
  return out;
}

std::vector<SpaceCategory> Compound::defaultSpaceCategories() {
  return {{"leased", "固定车位"}, {"visitor", "临时车位"}, {"ev", "充电车位"}};
}

int Compound::categoryIndex(std::string_view id) const {
  for (size_t i = 0; i < space_categories.size(); ++i) {
    if (space_categories[i].id == id) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

const std::string& Compound::levelName(const std::string& level) const {
  for (const auto& l : levels) {
    if (l.id == level && !l.name.empty()) {
      return l.name;
    }
  }
  return level;
}

std::string Compound::placeOf(const Device& device) const {
  Location loc = device.location;
  if (device.parent != kNoDevice && device.parent < devices.size() && loc.building.empty() &&
      loc.level.empty() && loc.zone.empty()) {
    loc = devices[device.parent].location;
  }
  // A space that is the tail of the id ("0042" of P-B1-0042, "S05" of S05, "P07" of S03/P07)
  // adds nothing beside the id.
  const std::string& id = device.id;
  if (!loc.space.empty() && id.size() >= loc.space.size() &&
      id.compare(id.size() - loc.space.size(), loc.space.size(), loc.space) == 0) {
    loc.space.clear();
  }
  if (device.parent != kNoDevice && device.parent < devices.size()) {
    const std::string& shed = devices[device.parent].id;
    if (loc.space == shed) {
      loc.space.clear();
    }
  }
  return loc.text();
}

const Device* Compound::device(std::string_view id) const {
  DeviceIndex i = deviceIndex(id);
  return i == kNoDevice ? nullptr : &devices[i];
}

DeviceIndex Compound::deviceIndex(std::string_view id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? kNoDevice : it->second;
}

DeviceIndex Compound::deviceByDevEui(std::string_view dev_eui) const {
  std::string key(dev_eui);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto it = by_dev_eui_.find(key);
  return it == by_dev_eui_.end() ? kNoDevice : it->second;
}

const Grid* Compound::grid(std::string_view id) const {
  for (const auto& g : grids) {
    if (g.id == id) {
      return &g;
    }
  }
  return nullptr;
}

const Profile* Compound::profile(std::string_view name) const {
  for (const auto& p : profiles) {
    if (p->name == name) {
      return p.get();
    }
  }
  return nullptr;
}

PointId Compound::internPoint(std::string_view name) {
  auto it = point_ids_.find(name);
  if (it != point_ids_.end()) {
    return it->second;
  }
  auto id = static_cast<PointId>(point_names_.size());
  point_names_.emplace_back(name);
  point_ids_.emplace(std::string(name), id);
  return id;
}

std::optional<PointId> Compound::pointId(std::string_view name) const {
  auto it = point_ids_.find(name);
  if (it == point_ids_.end()) {
    return std::nullopt;
  }
  return it->second;
}

void Compound::buildIndexes() {
  by_id_.clear();
  by_dev_eui_.clear();
  for (DeviceIndex i = 0; i < devices.size(); ++i) {
    devices[i].index = i;
    by_id_.emplace(devices[i].id, i);
    if (!devices[i].dev_eui.empty()) {
      std::string key = devices[i].dev_eui;
      std::transform(key.begin(), key.end(), key.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      by_dev_eui_.emplace(key, i);
    }
  }
  for (auto& d : devices) {
    d.linked = d.linked_id.empty() ? kNoDevice : deviceIndex(d.linked_id);
  }
}

} // namespace hgj::model

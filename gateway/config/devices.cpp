#include "gateway/config/devices.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>

#include "gateway/config/config.h"

namespace hgj::config {

std::vector<std::string> categoryIds(const model::Compound& compound) {
  std::vector<std::string> ids;
  for (const auto& c : compound.space_categories) {
    ids.push_back(c.id);
  }
  return ids;
}

namespace {

bool validId(const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/' || c >= 0x80;
  });
}

bool validEui(const std::string& eui) {
  return eui.size() == 16 && std::all_of(eui.begin(), eui.end(), [](unsigned char c) {
           return std::isxdigit(c);
         });
}

std::vector<std::string> gridIds(const model::Compound& c) {
  std::vector<std::string> ids;
  for (const auto& g : c.grids) {
    ids.push_back(g.id);
  }
  return ids;
}

std::vector<std::string> profileNames(const model::Compound& c) {
  std::vector<std::string> names;
  for (const auto& p : c.profiles) {
    names.push_back(p->name);
  }
  return names;
}

/// What one entry of the list says, checked; it stands for `to - from + 1` devices (and their
/// ports). Templates ({n}) are still unexpanded.
struct DeviceEntry {
  explicit DeviceEntry(const core::ConfigNode& e) : node(&e), location(e.child("location")) {}
  const core::ConfigNode* node;
  std::string id_template;
  const model::Profile* profile = nullptr;
  std::string grid;
  bool ranged = false;
  int64_t from = 1;
  int64_t to = 1;
  int64_t ports = 0;
  core::ConfigNode location;  ///< `location:` (its fields may hold templates)
  model::ModbusBinding binding;
  std::string dev_eui;
  std::map<std::string, std::string> tags;
  std::string category;
  int64_t expected_interval_ms = 0;
  std::string source;  ///< FILE:LINE of the entry
};

const model::Profile* lookUpProfile(const core::ConfigNode& e, const std::string& name,
                                    const model::Compound& compound) {
  const model::Profile* profile = compound.profile(name);
  if (profile == nullptr) {
    std::string msg = "unknown profile \"" + name + "\"";
    if (auto m = core::closestMatch(name, profileNames(compound))) {
      msg += " (did you mean \"" + *m + "\"?)";
    } else {
      msg += " (no conf/profiles/" + name + ".yaml)";
    }
    e.errorAt("profile", msg);
  }
  return profile;
}

bool knownGrid(const core::ConfigNode& e, const std::string& grid,
               const model::Compound& compound) {
  if (compound.grid(grid) != nullptr || compound.grids.empty()) {
    return true;
  }
  std::string msg = "unknown grid \"" + grid + "\"";
  if (auto m = core::closestMatch(grid, gridIds(compound))) {
    msg += " (did you mean \"" + *m + "\"?)";
  }
  e.errorAt("grid", msg);
  return false;
}

/// `range: [from, to]`; false (reported) when the entry is unusable.
bool parseRange(const core::ConfigNode& e, DeviceEntry& d) {
  core::ConfigNode range = e.child("range");
  d.ranged = range.defined();
  if (!d.ranged) {
    return true;
  }
  auto items = range.items();
  std::optional<double> a = items.size() == 2 ? items[0].asNumber() : std::nullopt;
  std::optional<double> b = items.size() == 2 ? items[1].asNumber() : std::nullopt;
  if (!a || !b || *a < 0 || *b < *a || *b - *a > 100'000) {
    range.error("expected [from, to] with 0 <= from <= to (at most 100000 devices)");
    return false;
  }
  d.from = static_cast<int64_t>(*a);
  d.to = static_cast<int64_t>(*b);
  if (d.id_template.find("{n") == std::string::npos) {
    e.errorAt("id", "a ranged device id needs {n} (e.g. \"P-B1-{n:04}\")");
    return false;
  }
  return true;
}

/// The `modbus:` binding a Modbus profile needs (and an MQTT one must not have); false
/// (reported) when a Modbus device has none.
bool parseBinding(const core::ConfigNode& e, DeviceEntry& d) {
  core::ConfigNode mb = e.child("modbus");
  if (d.profile->transport != "modbus") {
    if (mb.defined()) {
      mb.error("profile \"" + d.profile->name +
               "\" is an MQTT profile; remove the modbus binding");
    }
    return true;
  }
  if (!mb.defined()) {
    e.errorAt("modbus", "required for a Modbus device (expected {line, unit}, got nothing)");
    return false;
  }
  if (mb.allowKeys({"line", "unit", "poll_interval", "timeout", "retries"})) {
    auto& b = d.binding;
    b.line = mb.requiredStr("line");
    b.unit_id = static_cast<int>(mb.integer("unit", 1, 0, 255));
    b.poll_interval_ms = mb.duration("poll_interval", std::chrono::seconds(1),
                                     std::chrono::milliseconds(50), std::chrono::hours(24))
                             .count();
    b.timeout_ms = mb.duration("timeout", std::chrono::milliseconds(500),
                               std::chrono::milliseconds(10), std::chrono::seconds(30))
                       .count();
    b.retries = static_cast<int>(mb.integer("retries", 1, 0, 10));
  }
  return true;
}

void parseDevEui(const core::ConfigNode& e, DeviceEntry& d) {
  d.dev_eui = e.str("dev_eui", "");
  if (!d.dev_eui.empty() && !validEui(expandTemplate(d.dev_eui, d.from))) {
    e.errorAt("dev_eui",
              "expected 16 hex digits, got \"" + expandTemplate(d.dev_eui, d.from) + "\"");
    d.dev_eui.clear();
  }
  if (!d.dev_eui.empty() && d.ranged && d.dev_eui.find("{n") == std::string::npos &&
      d.from != d.to) {
    e.errorAt("dev_eui", "a ranged entry cannot share one dev_eui");
  }
}

void parseTags(const core::ConfigNode& e, DeviceEntry& d) {
  core::ConfigNode tags = e.child("tags");
  if (!tags.defined() || !tags.requireMap()) {
    return;
  }
  for (const auto& [k, v] : tags.entries()) {
    auto s = v.asStr();
    if (!s) {
      v.error("expected a string tag value");
      continue;
    }
    d.tags[k] = *s;
  }
}

/// One category per space: the key names it; the older `ev_space` tag means `ev` and may not
/// contradict it. Without either, the parking section's default.
void parseCategory(const core::ConfigNode& e, const model::Compound& compound, DeviceEntry& d) {
  auto ev = d.tags.find("ev_space");
  const bool ev_tag = ev != d.tags.end() && ev->second == "true";
  std::string category = e.str("category", "");
  if (!category.empty() && compound.categoryIndex(category) < 0) {
    std::string msg = "unknown category \"" + category + "\" (expected one of parking.categories";
    if (auto m = core::closestMatch(category, categoryIds(compound))) {
      msg += "; did you mean \"" + *m + "\"?";
    }
    e.errorAt("category", msg + ")");
    category.clear();
  } else if (!category.empty() && ev_tag && category != "ev") {
    e.errorAt("category", "a space has one category: \"" + category +
                              "\" contradicts tags.ev_space (which means \"ev\")");
  }
  d.category = !category.empty() ? category : ev_tag ? "ev" : compound.default_category;
}

/// One entry, checked in the order its problems are reported; nullopt when it yields no device.
std::optional<DeviceEntry> parseEntry(const core::ConfigNode& e, const model::Compound& compound) {
  if (!e.allowKeys({"id", "name", "profile", "grid", "location", "tags", "linked", "dev_eui",
                    "modbus", "ports", "range", "expected_interval", "category"})) {
    return std::nullopt;
  }
  DeviceEntry d(e);
  d.id_template = e.requiredStr("id");
  std::string profile_name = e.requiredStr("profile");
  d.grid = e.requiredStr("grid");
  if (d.id_template.empty() || profile_name.empty() || d.grid.empty()) {
    return std::nullopt;
  }
  d.profile = lookUpProfile(e, profile_name, compound);
  if (d.profile == nullptr || !knownGrid(e, d.grid, compound) || !parseRange(e, d)) {
    return std::nullopt;
  }
  d.ports = e.integer("ports", 0, 0, 64);
  if (d.ports > 0 && d.profile->child_profile.empty()) {
    e.errorAt("ports", "profile \"" + d.profile->name + "\" has no children");
  }
  d.location.allowKeys({"building", "level", "zone", "space"});
  if (!parseBinding(e, d)) {
    return std::nullopt;
  }
  parseDevEui(e, d);
  parseTags(e, d);
  parseCategory(e, compound, d);
  d.expected_interval_ms = e.duration("expected_interval", std::chrono::milliseconds(0),
                                      std::chrono::milliseconds(0), std::chrono::hours(24 * 30))
                               .count();
  d.source = e.file() + ":" + std::to_string(e.location().line);
  return d;
}

/// The devices in file order, each with the entry it came from and, for a port, its parent's
/// id (indexes are known only once every device is in).
class DeviceList {
public:
  explicit DeviceList(model::Compound& compound) : compound_(compound) {}

  /// The devices of one entry: numbers from..to, each followed by its ports.
  void expand(const DeviceEntry& entry) {
    const core::ConfigNode& e = *entry.node;
    for (int64_t n = entry.from; n <= entry.to; ++n) {
      model::Device d = device(entry, n);
      const std::string parent_id = d.id;
      add(d, e);
      if (entry.ports > 0 && !entry.profile->child_profile.empty()) {
        addPorts(entry, d, parent_id);
      }
    }
  }

  /// Moves the devices into the compound and links parents, children and linked devices.
  void finish() {
    // Reserved: a compound has thousands of devices and growing the vector would hold two
    // copies.
    compound_.devices.reserve(pending_.size());
    for (auto& p : pending_) {
      compound_.devices.push_back(std::move(p.device));
    }
    compound_.buildIndexes();
    linkParents();
    linkPairs();
  }

private:
  struct Pending {
    model::Device device;
    core::ConfigNode node;
    std::string parent;
  };

  static model::Device device(const DeviceEntry& entry, int64_t n) {
    const core::ConfigNode& e = *entry.node;
    const core::ConfigNode& loc = entry.location;
    model::Device d;
    d.id = entry.ranged ? expandTemplate(entry.id_template, n) : entry.id_template;
    d.name = expandTemplate(e.str("name", ""), n);
    d.profile = entry.profile;
    d.grid = entry.grid;
    d.location.building = expandTemplate(loc.str("building", ""), n);
    d.location.level = expandTemplate(loc.str("level", ""), n);
    d.location.zone = expandTemplate(loc.str("zone", ""), n);
    d.location.space = expandTemplate(loc.str("space", ""), n);
    d.tags = entry.tags;
    d.category = entry.category;
    d.linked_id = expandTemplate(e.str("linked", ""), n);
    d.dev_eui = expandTemplate(entry.dev_eui, n);
    d.modbus = entry.binding;
    d.expected_interval_ms = entry.expected_interval_ms;
    d.source = entry.source;
    if (!entry.binding.line.empty() && entry.ranged) {
      d.modbus.unit_id = static_cast<int>(entry.binding.unit_id + (n - entry.from));
    }
    return d;
  }

  void addPorts(const DeviceEntry& entry, const model::Device& parent,
                const std::string& parent_id) {
    const core::ConfigNode& e = *entry.node;
    const model::Profile* cp = compound_.profile(entry.profile->child_profile);
    if (cp == nullptr) {
      e.errorAt("ports", "child profile \"" + entry.profile->child_profile + "\" of profile \"" +
                             entry.profile->name + "\" is not defined");
      return;
    }
    for (int64_t k = 1; k <= entry.ports; ++k) {
      model::Device c;
      c.id = expandTemplate(entry.profile->child_id_template, k, parent_id);
      c.profile = cp;
      c.grid = entry.grid;
      c.location = parent.location;
      c.location.space = c.id.substr(c.id.rfind('/') + 1);
      c.tags = entry.tags;
      c.modbus = parent.modbus;
      c.child_number = static_cast<int>(k);
      c.source = entry.source;
      c.name = parent.name.empty() ? "" : parent.name + " " + c.location.space;
      add(std::move(c), e, parent_id);
    }
  }

  void add(model::Device d, const core::ConfigNode& node, std::string parent = {}) {
    if (!validId(d.id)) {
      node.errorAt("id", "device id \"" + d.id +
                             "\" must be 1-64 letters, digits, '-', '_', '.', '/' (no spaces or "
                             "MQTT wildcards)");
      return;
    }
    if (!seen_.insert(d.id).second) {
      node.errorAt("id", "duplicate device id \"" + d.id + "\"");
      return;
    }
    pending_.push_back({std::move(d), node, std::move(parent)});
  }

  void linkParents() {
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (pending_[i].parent.empty()) {
        continue;
      }
      auto& d = compound_.devices[i];
      d.parent = compound_.deviceIndex(pending_[i].parent);
      if (d.parent != model::kNoDevice) {
        compound_.devices[d.parent].children.push_back(d.index);
      }
    }
  }

  // A link names the other device; the other side gets the link back unless it names one.
  void linkPairs() {
    for (size_t i = 0; i < compound_.devices.size(); ++i) {
      auto& d = compound_.devices[i];
      if (d.linked_id.empty()) {
        continue;
      }
      if (d.linked == model::kNoDevice) {
        pending_[i].node.errorAt("linked", "linked device \"" + d.linked_id + "\" of \"" + d.id +
                                               "\" is not defined");
        continue;
      }
      auto& other = compound_.devices[d.linked];
      if (other.linked_id.empty()) {
        other.linked_id = d.id;
        other.linked = d.index;
      }
    }
  }

  model::Compound& compound_;
  std::set<std::string> seen_;
  std::deque<Pending> pending_;  // not a vector: no doubling copies of thousands of devices
};

} // namespace

void parseDevices(const core::ConfigNode& root, model::Compound& compound) {
  if (!root.allowKeys({"devices"})) {
    return;
  }
  core::ConfigNode devices = root.child("devices");
  if (!devices.defined()) {
    root.errorAt("devices", "required (expected a list of devices, got nothing)");
    return;
  }
  if (!devices.requireSeq()) {
    return;
  }
  DeviceList list(compound);
  for (const auto& e : devices.items()) {
    if (auto entry = parseEntry(e, compound)) {
      list.expand(*entry);
    }
  }
  list.finish();
}

} // namespace hgj::config

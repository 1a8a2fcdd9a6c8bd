#include "rules/rule_parse.h"

#include <algorithm>
#include <set>

#include "core/enum_names.h"

namespace hgj::rules {

const std::vector<std::string> kDeviceTypes = {"parking_sensor", "ebike_port", "ebike_shed",
                                               "ev_pile",        "co_sensor",  "fan",
                                               "display",        "meter"};

const std::vector<std::string> kSelectKeys = {"type", "id",   "grid",       "tag",
                                              "level", "zone", "linked_type"};

bool globMatch(std::string_view pattern, std::string_view text) {
  size_t p = 0;
  size_t t = 0;
  size_t star_p = std::string_view::npos;
  size_t star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_t = t;
    } else if (star_p != std::string_view::npos) {
      p = star_p + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

std::vector<model::DeviceIndex> parseSelect(const core::ConfigNode& sel,
                                            const model::Compound& compound) {
  std::vector<model::DeviceIndex> out;
  if (!sel.defined()) {
    sel.error("required: which devices the rule watches (select: {type: ..., id: ...})");
    return out;
  }
  if (!sel.allowKeys(kSelectKeys)) {
    return out;
  }
  std::vector<std::string> types = sel.strList("type");
  std::vector<std::string> ids = sel.strList("id");
  std::string grid = sel.str("grid", "");
  std::string tag = sel.str("tag", "");
  std::string level = sel.str("level", "");
  std::string zone = sel.str("zone", "");
  std::string linked_type = sel.str("linked_type", "");

  // The documented device types are accepted even when this compound has none of them (a rule
  // set shared by compounds without CO sensors); anything else must be a profile's type.
  std::set<std::string> known_types(kDeviceTypes.begin(), kDeviceTypes.end());
  for (const auto& p : compound.profiles) {
    known_types.insert(p->device_type);
  }
  std::vector<std::string> known_list(known_types.begin(), known_types.end());
  for (const auto& t : types) {
    if (!known_types.count(t)) {
      std::string msg = "unknown device type \"" + t + "\" (no profile has it)";
      if (auto m = core::closestMatch(t, known_list)) {
        msg += " (did you mean \"" + *m + "\"?)";
      }
      sel.errorAt("type", msg);
    }
  }
  if (!grid.empty() && compound.grid(grid) == nullptr) {
    std::vector<std::string> grid_ids;
    for (const auto& g : compound.grids) {
      grid_ids.push_back(g.id);
    }
    std::string msg = "unknown grid \"" + grid + "\"";
    if (auto m = core::closestMatch(grid, grid_ids)) {
      msg += " (did you mean \"" + *m + "\"?)";
    }
    sel.errorAt("grid", msg);
  }
  std::string tag_key = tag;
  std::string tag_value;
  bool tag_has_value = false;
  if (auto eq = tag.find('='); eq != std::string::npos) {
    tag_key = tag.substr(0, eq);
    tag_value = tag.substr(eq + 1);
    tag_has_value = true;
  }

  for (const auto& d : compound.devices) {
    if (!types.empty() && std::find(types.begin(), types.end(), d.type()) == types.end()) {
      continue;
    }
    if (!ids.empty() && std::none_of(ids.begin(), ids.end(), [&](const std::string& pat) {
          return globMatch(pat, d.id);
        })) {
      continue;
    }
    if (!grid.empty() && d.grid != grid) {
      continue;
    }
    if (!tag_key.empty()) {
      auto it = d.tags.find(tag_key);
      if (it == d.tags.end() || (tag_has_value && it->second != tag_value)) {
        continue;
      }
    }
    if (!level.empty() && d.location.level != level) {
      continue;
    }
    if (!zone.empty() && d.location.zone != zone) {
      continue;
    }
    if (!linked_type.empty() &&
        (d.linked == model::kNoDevice || compound.devices[d.linked].type() != linked_type)) {
      continue;
    }
    out.push_back(d.index);
  }
  return out;
}

std::vector<model::DeviceIndex> relatedDevices(const model::Compound& compound,
                                               model::DeviceIndex device, Relation on) {
  const model::Device& d = compound.devices[device];
  switch (on) {
  case Relation::Self:
    return {device};
  case Relation::Linked:
    return d.linked == model::kNoDevice ? std::vector<model::DeviceIndex>{}
                                        : std::vector<model::DeviceIndex>{d.linked};
  case Relation::Parent:
    return d.parent == model::kNoDevice ? std::vector<model::DeviceIndex>{}
                                        : std::vector<model::DeviceIndex>{d.parent};
  case Relation::ChildrenAny:
  case Relation::ChildrenAll:
    return d.children;
  }
  return {};
}

std::optional<model::PointId> resolvePoint(const core::ConfigNode& node, std::string_view key,
                                           const model::Compound& compound,
                                           const std::vector<model::DeviceIndex>& devices,
                                           Relation on) {
  std::string name = node.requiredStr(key);
  if (name.empty()) {
    return std::nullopt;
  }
  std::set<const model::Profile*> profiles;
  for (auto d : devices) {
    for (auto r : relatedDevices(compound, d, on)) {
      profiles.insert(compound.devices[r].profile);
    }
  }
  auto id = compound.pointId(name);
  for (const auto* p : profiles) {
    if (id && p->point(*id) != nullptr) {
      continue;
    }
    std::vector<std::string> names;
    for (const auto& pd : p->points) {
      names.push_back(pd.name);
    }
    std::string msg = "profile \"" + p->name + "\" (type " + p->device_type +
                      ") has no point \"" + name + "\"";
    if (auto m = core::closestMatch(name, names)) {
      msg += " (did you mean \"" + *m + "\"?)";
    }
    node.errorAt(key, msg);
    return std::nullopt;
  }
  if (!id && profiles.empty()) {
    // No device selected (a documented type this compound does not have): nothing to check the
    // name against, and nothing will be evaluated.
    return std::nullopt;
  }
  if (!id) {
    std::vector<std::string> names;
    for (size_t i = 0; i < compound.pointCount(); ++i) {
      names.push_back(compound.pointName(static_cast<model::PointId>(i)));
    }
    std::string msg = "unknown point \"" + name + "\"";
    if (auto m = core::closestMatch(name, names)) {
      msg += " (did you mean \"" + *m + "\"?)";
    }
    node.errorAt(key, msg);
    return std::nullopt;
  }
  return id;
}

std::optional<model::Value> scalarValue(const core::ConfigNode& node) {
  if (!node.isScalar()) {
    node.error("expected a value (true, false, a number or a text)");
    return std::nullopt;
  }
  if (auto b = node.asBool()) {
    return model::Value(*b);
  }
  if (auto n = node.asNumber()) {
    return model::Value(*n);
  }
  return model::Value(*node.asStr());
}

namespace {

// The comparisons an `op:` may name; the set forms (in, not_in) have keys of their own.
constexpr core::EnumNames<CmpOp, 6> kOps{{{CmpOp::Gt, ">"},
                                          {CmpOp::Ge, ">="},
                                          {CmpOp::Lt, "<"},
                                          {CmpOp::Le, "<="},
                                          {CmpOp::Eq, "=="},
                                          {CmpOp::Ne, "!="}}};

} // namespace

const char* cmpOpText(CmpOp op) {
  if (op == CmpOp::In) {
    return "in";
  }
  if (op == CmpOp::NotIn) {
    return "not in";
  }
  return kOps.name(op, "?");
}

std::string comparisonText(const Predicate& p) {
  std::string out = cmpOpText(p.op);
  out += ' ';
  if (!p.timedByState()) {
    out += model::toText(model::Value(p.number));
    return out;
  }
  if (p.op == CmpOp::Eq || p.op == CmpOp::Ne) {
    out += p.values.empty() ? "" : model::toText(p.values.front());
    return out;
  }
  out += '[';
  for (size_t i = 0; i < p.values.size(); ++i) {
    out += (i ? ", " : "") + model::toText(p.values[i]);
  }
  out += ']';
  return out;
}

std::optional<Predicate> parseComparison(const core::ConfigNode& node, Predicate base,
                                         bool allow_numeric, bool allow_sets) {
  int forms = 0;
  for (const char* k : {"op", "equals", "in", "not_in"}) {
    forms += node.has(k) ? 1 : 0;
  }
  if (forms != 1) {
    std::string expected = allow_numeric && allow_sets
                               ? "one of op+value, equals, in, not_in"
                               : (allow_numeric ? "op and value" : "one of equals, in, not_in");
    node.error("expected " + expected + " to say what the point is compared with");
    return std::nullopt;
  }
  Predicate p = std::move(base);
  if (node.has("op")) {
    std::string op = node.str("op", "");
    const auto parsed = kOps.parse(op);
    if (parsed) {
      p.op = *parsed;
    } else {
      node.errorAt("op", "expected one of >, >=, <, <=, ==, !=, got \"" + op + "\"");
      return std::nullopt;
    }
    core::ConfigNode v = node.child("value");
    if (!v.defined()) {
      node.errorAt("value", "required (the value the point is compared with)");
      return std::nullopt;
    }
    if (p.op == CmpOp::Eq || p.op == CmpOp::Ne) {
      auto val = scalarValue(v);
      if (!val) {
        return std::nullopt;
      }
      p.values.push_back(*val);
    } else {
      if (!allow_numeric) {
        node.errorAt("op", "this rule kind compares values with equals, in or not_in");
        return std::nullopt;
      }
      auto n = v.asNumber();
      if (!n) {
        v.error("expected a number");
        return std::nullopt;
      }
      p.number = *n;
    }
    return p;
  }
  if (!allow_sets && !node.has("equals")) {
    node.error("this rule kind compares with op and value");
    return std::nullopt;
  }
  if (node.has("equals")) {
    p.op = CmpOp::Eq;
    auto val = scalarValue(node.child("equals"));
    if (!val) {
      return std::nullopt;
    }
    p.values.push_back(*val);
    return p;
  }
  bool is_in = node.has("in");
  core::ConfigNode list = node.child(is_in ? "in" : "not_in");
  p.op = is_in ? CmpOp::In : CmpOp::NotIn;
  if (!list.requireSeq()) {
    return std::nullopt;
  }
  for (const auto& item : list.items()) {
    auto val = scalarValue(item);
    if (!val) {
      return std::nullopt;
    }
    p.values.push_back(*val);
  }
  if (p.values.empty()) {
    list.error("expected at least one value");
    return std::nullopt;
  }
  return p;
}

std::vector<WriteSpec> parseWrites(const core::ConfigNode& list, const model::Compound& compound,
                                   const std::vector<model::DeviceIndex>& devices) {
  std::vector<WriteSpec> out;
  if (!list.defined()) {
    return out;
  }
  if (!list.requireSeq()) {
    return out;
  }
  for (const auto& item : list.items()) {
    if (!item.allowKeys({"target", "type", "device", "point", "value", "safety", "note"})) {
      continue;
    }
    WriteSpec w;
    std::string target = item.choice(
        "target", item.has("device") ? "devices" : "self",
        {"self", "parent", "children", "linked", "devices", "same_level", "same_zone"});
    if (target == "self") {
      w.target = TargetKind::Self;
    } else if (target == "parent") {
      w.target = TargetKind::Parent;
    } else if (target == "children") {
      w.target = TargetKind::Children;
    } else if (target == "linked") {
      w.target = TargetKind::Linked;
    } else if (target == "devices") {
      w.target = TargetKind::Devices;
    } else if (target == "same_level") {
      w.target = TargetKind::SameLevel;
    } else {
      w.target = TargetKind::SameZone;
    }
    w.target_type = item.str("type", "");
    if ((w.target == TargetKind::SameLevel || w.target == TargetKind::SameZone) &&
        w.target_type.empty()) {
      item.errorAt("type", "required with target " + target + " (the device type to write, e.g. fan)");
      continue;
    }
    if (w.target == TargetKind::Devices) {
      auto ids = item.strList("device");
      if (ids.empty()) {
        item.errorAt("device", "required with target devices (one id or a list)");
        continue;
      }
      for (const auto& id : ids) {
        auto idx = compound.deviceIndex(id);
        if (idx == model::kNoDevice) {
          item.errorAt("device", "unknown device \"" + id + "\"");
          continue;
        }
        w.devices.push_back(idx);
      }
    }
    w.point_name = item.requiredStr("point");
    w.safety = item.boolean("safety", false);
    w.note = item.str("note", "");
    core::ConfigNode vn = item.child("value");
    if (!vn.defined()) {
      item.errorAt("value", "required (the value to write)");
      continue;
    }
    auto raw = scalarValue(vn);
    if (!raw || w.point_name.empty()) {
      continue;
    }
    auto pid = compound.pointId(w.point_name);
    if (devices.empty()) {
      // Nothing selected, nothing to write: the point cannot be checked against any profile.
      continue;
    }
    // Every device this write can address must have the point, writable, and take the value.
    std::set<model::DeviceIndex> targets;
    for (auto d : devices) {
      for (auto t : writeTargets(compound, w, d)) {
        targets.insert(t);
      }
    }
    bool ok = true;
    std::optional<model::Value> coerced;
    for (auto t : targets) {
      const model::Profile* prof = compound.devices[t].profile;
      const model::PointDef* pd = pid ? prof->point(*pid) : nullptr;
      if (pd == nullptr) {
        std::vector<std::string> names;
        for (const auto& p : prof->points) {
          names.push_back(p.name);
        }
        std::string msg = "device " + compound.devices[t].id + " (profile " + prof->name +
                          ") has no point \"" + w.point_name + "\"";
        if (auto m = core::closestMatch(w.point_name, names)) {
          msg += " (did you mean \"" + *m + "\"?)";
        }
        item.errorAt("point", msg);
        ok = false;
        break;
      }
      if (!pd->writable) {
        item.errorAt("point", "point \"" + w.point_name + "\" of profile " + prof->name +
                                  " is not writable");
        ok = false;
        break;
      }
      coerced = model::coerce(*raw, pd->type);
      if (!coerced) {
        vn.error(std::string("expected a ") + model::pointTypeName(pd->type) + " for point " +
                 w.point_name + ", got \"" + model::toText(*raw) + "\"");
        ok = false;
        break;
      }
    }
    if (!ok) {
      continue;
    }
    if (!pid) {
      item.errorAt("point", "unknown point \"" + w.point_name + "\"");
      continue;
    }
    w.point = *pid;
    w.value = coerced ? *coerced : *raw;
    out.push_back(std::move(w));
  }
  return out;
}

std::vector<model::DeviceIndex> writeTargets(const model::Compound& compound, const WriteSpec& w,
                                             model::DeviceIndex device) {
  const model::Device& d = compound.devices[device];
  switch (w.target) {
  case TargetKind::Self:
    return {device};
  case TargetKind::Parent:
    return relatedDevices(compound, device, Relation::Parent);
  case TargetKind::Children:
    return d.children;
  case TargetKind::Linked:
    return relatedDevices(compound, device, Relation::Linked);
  case TargetKind::Devices:
    return w.devices;
  case TargetKind::SameLevel:
  case TargetKind::SameZone: {
    std::vector<model::DeviceIndex> out;
    for (const auto& o : compound.devices) {
      if (o.type() != w.target_type || o.location.level != d.location.level) {
        continue;
      }
      if (w.target == TargetKind::SameZone && o.location.zone != d.location.zone) {
        continue;
      }
      out.push_back(o.index);
    }
    return out;
  }
  }
  return {};
}

} // namespace hgj::rules

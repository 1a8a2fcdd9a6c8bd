#include "drivers/profiles/modbus_profile.h"

#include <array>
#include <memory>

namespace hgj::drivers::profiles {

namespace {

struct TableName {
  RegisterTable table;
  const char* name;
};
constexpr std::array<TableName, 4> kTables{{{RegisterTable::Coil, "coil"},
                                             {RegisterTable::Discrete, "discrete"},
                                             {RegisterTable::Holding, "holding"},
                                             {RegisterTable::Input, "input"}}};

struct TypeName {
  RegisterType type;
  const char* name;
  uint16_t registers;
};
constexpr std::array<TypeName, 9> kTypes{{{RegisterType::Bool, "bool", 1},
                                           {RegisterType::U16, "u16", 1},
                                           {RegisterType::I16, "i16", 1},
                                           {RegisterType::U32, "u32", 2},
                                           {RegisterType::I32, "i32", 2},
                                           {RegisterType::F32, "f32", 2},
                                           {RegisterType::U64, "u64", 4},
                                           {RegisterType::F64, "f64", 4},
                                           {RegisterType::String, "string", 0}}};

struct OrderName {
  ByteOrder order;
  const char* name;
};
constexpr std::array<OrderName, 4> kOrders{{{ByteOrder::ABCD, "ABCD"},
                                             {ByteOrder::CDAB, "CDAB"},
                                             {ByteOrder::BADC, "BADC"},
                                             {ByteOrder::DCBA, "DCBA"}}};

// Parses one register entry; `in_block` makes the address an offset from the block base.
std::optional<RegisterDef> parseRegister(const core::ConfigNode& n, model::Compound& compound,
                                         const model::Profile* points_of, bool in_block) {
  if (!n.requireMap()) {
    return std::nullopt;
  }
  size_t problems_before = n.diag().problems().size();
  n.allowKeys({"point", "table", "address", "type", "order", "count", "bit", "mask", "scale",
               "offset", "values"});
  RegisterDef r;
  r.where = n.location();
  r.key_path = n.path();
  r.point_name = n.requiredStr("point");
  std::string table = n.choice("table", "holding", {"coil", "discrete", "holding", "input"});
  r.table = *parseTable(table);
  if (!n.has("address")) {
    n.errorAt("address", "required (expected a register address 0..65535, got nothing)");
  }
  r.address = static_cast<uint16_t>(n.integer("address", 0, 0, 65535));
  std::string def_type = isBitTable(r.table) ? "bool" : "u16";
  r.type = *parseType(
      n.choice("type", def_type, {"bool", "u16", "i16", "u32", "i32", "f32", "u64", "f64",
                                  "string"}));
  r.order = *parseOrder(n.choice("order", "ABCD", {"ABCD", "CDAB", "BADC", "DCBA"}));
  if (isBitTable(r.table) && r.type != RegisterType::Bool) {
    n.errorAt("type", std::string("a ") + table + " holds single bits (expected bool, got " +
                          typeName(r.type) + ")");
  }
  if (r.type == RegisterType::String) {
    if (!n.has("count")) {
      n.errorAt("count", "required for a string (expected the number of registers 1..125)");
    }
    r.count = static_cast<uint16_t>(n.integer("count", 1, 1, 125));
  } else {
    if (n.has("count")) {
      n.errorAt("count", "only strings take a count (the type fixes the size)");
    }
    r.count = registerCount(r.type);
  }
  if (n.has("bit")) {
    if (r.type != RegisterType::Bool || isBitTable(r.table)) {
      n.errorAt("bit", "only a bool in a holding or input register takes a bit");
    }
    r.bit = static_cast<int>(n.integer("bit", 0, 0, 15));
  }
  if (n.has("mask")) {
    if (r.type != RegisterType::U16 && r.type != RegisterType::U32 &&
        r.type != RegisterType::U64) {
      n.errorAt("mask", std::string("a mask applies to u16, u32 or u64, not to ") +
                            typeName(r.type));
    }
    r.mask = static_cast<uint64_t>(n.integer("mask", 0, 1, int64_t{1} << 53));
  }
  core::ConfigNode values = n.child("values");
  if (values.defined() && values.requireMap()) {
    if (r.type == RegisterType::Bool) {
      values.error("a bool cannot be mapped to texts");
    }
    for (const auto& [raw, text] : values.entries()) {
      auto t = text.asStr();
      if (!t) {
        text.error("expected a text");
        continue;
      }
      r.values.emplace_back(raw, *t);
    }
  }
  r.scale = n.number("scale", 1.0, -1e12, 1e12);
  if (r.scale == 0.0) {
    n.errorAt("scale", "must not be 0");
    r.scale = 1.0;
  }
  r.offset = n.number("offset", 0.0, -1e15, 1e15);
  if ((r.scale != 1.0 || r.offset != 0.0) &&
      (r.type == RegisterType::Bool || r.type == RegisterType::String)) {
    n.error(std::string("scale and offset apply to numbers, not to ") + typeName(r.type));
  }
  if (!in_block && static_cast<uint32_t>(r.address) + r.count > 65536) {
    n.errorAt("address", "the value runs past register 65535");
  }
  if (!r.point_name.empty()) {
    r.point = compound.internPoint(r.point_name);
    if (points_of != nullptr) {
      const model::PointDef* p = points_of->point(r.point_name);
      if (p == nullptr) {
        std::vector<std::string> names;
        for (const auto& pd : points_of->points) {
          names.push_back(pd.name);
        }
        std::string msg = "unknown point \"" + r.point_name + "\" (not in the points of profile " +
                          points_of->name + ")";
        if (auto m = core::closestMatch(r.point_name, names)) {
          msg += " (did you mean \"" + *m + "\"?)";
        }
        n.errorAt("point", msg);
      } else {
        bool text_point = p->type == model::PointType::String;
        bool text_register = r.type == RegisterType::String || !r.values.empty();
        if (text_point != text_register) {
          n.errorAt("type", std::string("point ") + r.point_name + " is a " +
                                model::pointTypeName(p->type) + ", register type " +
                                typeName(r.type) + " does not fit");
        }
        if (p->writable && r.table != RegisterTable::Coil && r.table != RegisterTable::Holding) {
          n.errorAt("table", "point " + r.point_name +
                                 " is writable, so it must be a coil or a holding register");
        }
        if (p->writable && r.bit >= 0) {
          n.errorAt("bit", "point " + r.point_name +
                               " is writable: a single bit of a register cannot be written");
        }
        if (p->writable && (r.mask != 0 || !r.values.empty())) {
          n.errorAt(r.mask != 0 ? "mask" : "values",
                    "point " + r.point_name + " is writable: masked or mapped values cannot be "
                                              "written");
        }
      }
    }
  }
  if (n.diag().problems().size() != problems_before) {
    return std::nullopt;
  }
  return r;
}

std::vector<RegisterDef> parseRegisterList(const core::ConfigNode& list, model::Compound& compound,
                                           const model::Profile* points_of, bool in_block,
                                           bool& ok) {
  std::vector<RegisterDef> out;
  if (!list.defined()) {
    return out;
  }
  if (!list.requireSeq()) {
    ok = false;
    return out;
  }
  for (const auto& item : list.items()) {
    auto r = parseRegister(item, compound, points_of, in_block);
    if (!r) {
      ok = false;
      continue;
    }
    for (const auto& prev : out) {
      if (prev.point == r->point) {
        item.errorAt("point", "point " + r->point_name + " is mapped twice (first at line " +
                                  std::to_string(prev.where.line) + ")");
        ok = false;
      }
    }
    out.push_back(std::move(*r));
  }
  return out;
}

} // namespace

const char* tableName(RegisterTable t) { return kTables[static_cast<size_t>(t)].name; }
const char* typeName(RegisterType t) { return kTypes[static_cast<size_t>(t)].name; }
const char* orderName(ByteOrder o) { return kOrders[static_cast<size_t>(o)].name; }

std::optional<RegisterTable> parseTable(std::string_view s) {
  for (const auto& t : kTables) {
    if (s == t.name) {
      return t.table;
    }
  }
  return std::nullopt;
}

std::optional<RegisterType> parseType(std::string_view s) {
  for (const auto& t : kTypes) {
    if (s == t.name) {
      return t.type;
    }
  }
  return std::nullopt;
}

std::optional<ByteOrder> parseOrder(std::string_view s) {
  for (const auto& o : kOrders) {
    if (s == o.name) {
      return o.order;
    }
  }
  return std::nullopt;
}

bool isBitTable(RegisterTable t) {
  return t == RegisterTable::Coil || t == RegisterTable::Discrete;
}

uint16_t registerCount(RegisterType type) { return kTypes[static_cast<size_t>(type)].registers; }

const RegisterDef* ModbusSpec::reg(model::PointId point) const {
  for (const auto& r : registers) {
    if (r.point == point) {
      return &r;
    }
  }
  return nullptr;
}

const RegisterDef* ModbusSpec::blockReg(model::PointId point, const RegisterBlock** block) const {
  for (const auto& b : blocks) {
    for (const auto& r : b.registers) {
      if (r.point == point) {
        if (block != nullptr) {
          *block = &b;
        }
        return &r;
      }
    }
  }
  return nullptr;
}

uint32_t blockAddress(const RegisterBlock& block, const RegisterDef& reg, int child_number) {
  return static_cast<uint32_t>(block.base) +
         static_cast<uint32_t>(child_number - 1) * block.stride + reg.address;
}

bool parseModbusSpec(const core::ConfigNode& modbus_section, model::Compound& compound,
                     model::Profile& profile) {
  const core::ConfigNode& n = modbus_section;
  if (!n.defined()) {
    // A child profile (a shed's port) has no map of its own: its parent's blocks read it.
    return true;
  }
  if (!n.requireMap()) {
    return false;
  }
  size_t problems_before = n.diag().problems().size();
  n.allowKeys({"registers", "blocks", "max_gap", "max_gap_bits", "max_read"});
  auto spec = std::make_shared<ModbusSpec>();
  spec->max_gap_registers = static_cast<uint16_t>(n.integer("max_gap", 8, 0, 124));
  spec->max_gap_bits = static_cast<uint16_t>(n.integer("max_gap_bits", 64, 0, 1999));
  spec->max_read_registers = static_cast<uint16_t>(n.integer("max_read", 125, 1, 125));
  bool ok = true;
  spec->registers = parseRegisterList(n.child("registers"), compound, &profile, false, ok);
  for (const auto& r : spec->registers) {
    if (r.type == RegisterType::String && r.count > spec->max_read_registers) {
      n.child("registers").error("string of point " + r.point_name + " is longer than max_read");
      ok = false;
    }
  }

  core::ConfigNode blocks = n.child("blocks");
  if (blocks.defined() && blocks.requireSeq()) {
    if (profile.child_profile.empty()) {
      blocks.error("blocks describe child devices, so the profile needs children: {profile, id}");
      ok = false;
    }
    const model::Profile* child = compound.profile(profile.child_profile);
    for (const auto& b : blocks.items()) {
      if (!b.requireMap()) {
        ok = false;
        continue;
      }
      ok = b.allowKeys({"base", "stride", "count", "registers"}) && ok;
      RegisterBlock block;
      if (!b.has("stride")) {
        b.errorAt("stride", "required (expected the address distance between two children)");
      }
      block.base = static_cast<uint16_t>(b.integer("base", 0, 0, 65535));
      block.stride = static_cast<uint16_t>(b.integer("stride", 1, 0, 65535));
      block.count = static_cast<int>(b.integer("count", 1, 1, 250));
      block.checked = child != nullptr;
      block.registers = parseRegisterList(b.child("registers"), compound, child, true, ok);
      if (block.registers.empty()) {
        b.errorAt("registers", "a block needs at least one register");
      }
      for (const auto& r : block.registers) {
        if (blockAddress(block, r, block.count) + r.count > 65536) {
          b.errorAt("count", "child " + std::to_string(block.count) + "'s " + r.point_name +
                                 " runs past register 65535");
          break;
        }
      }
      spec->blocks.push_back(std::move(block));
    }
  } else if (blocks.defined()) {
    ok = false;
  }
  if (spec->registers.empty() && spec->blocks.empty() && ok) {
    n.error("no registers (expected registers: or blocks:)");
  }
  if (!ok || n.diag().problems().size() != problems_before) {
    return false;
  }
  profile.modbus = std::move(spec);
  return true;
}

bool checkModbusBlocks(const model::Profile& profile, const model::Compound& compound,
                       core::Diagnostics& diag) {
  if (!profile.modbus) {
    return true;
  }
  size_t before = diag.problems().size();
  const model::Profile* child = compound.profile(profile.child_profile);
  for (const auto& b : modbusSpec(profile)->blocks) {
    if (b.checked) {
      continue;
    }
    for (const auto& r : b.registers) {
      if (child == nullptr) {
        diag.error(r.where, r.key_path + ".point",
                   "the blocks read children of profile \"" + profile.child_profile +
                       "\", which is not defined");
        return false;
      }
      const model::PointDef* p = child->point(r.point_name);
      if (p == nullptr) {
        diag.error(r.where, r.key_path + ".point",
                   "unknown point \"" + r.point_name + "\" (not in the points of profile " +
                       child->name + ")");
      } else if (p->writable && r.table != RegisterTable::Coil &&
                 r.table != RegisterTable::Holding) {
        diag.error(r.where, r.key_path + ".table",
                   "point " + r.point_name +
                       " is writable, so it must be a coil or a holding register");
      }
    }
  }
  return diag.problems().size() == before;
}

} // namespace hgj::drivers::profiles

//===- Sharding.cpp - how a value is laid out over the mesh ---------------===//

#include "trainopt/Runtime/Sharding.h"

#include <algorithm>
#include <cstring>

using namespace trainopt::rt;

namespace {

/// A count of 1 to `most` digits, as a number; nothing otherwise.
std::optional<int64_t> number(const std::string &t, size_t most) {
  if (t.empty() || t.size() > most ||
      !std::all_of(t.begin(), t.end(),
                   [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(t);
}

bool isAxisName(const std::string &t) {
  return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

} // namespace

std::optional<Sharding> Sharding::parse(const std::string &text,
                                        std::string &why) {
  Sharding s;
  if (text.empty())
    return s;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    ShardLevel level;
    size_t eq = item.find('='), colon = item.find(':');
    bool ok = false;
    if (eq != std::string::npos && colon == std::string::npos) {
      level.kind = ShardLevel::Kind::Stage;
      level.axis = item.substr(0, eq);
      std::optional<int64_t> stage = number(item.substr(eq + 1), 9);
      level.stage = stage.value_or(-1);
      ok = stage.has_value();
    } else if (colon != std::string::npos && eq == std::string::npos) {
      level.axis = item.substr(0, colon);
      std::string how = item.substr(colon + 1);
      if (how == "flat" || how == "mean") {
        level.kind =
            how == "flat" ? ShardLevel::Kind::Flat : ShardLevel::Kind::Mean;
        ok = true;
      } else {
        size_t slash = how.find('/');
        std::optional<int64_t> dim = number(how.substr(0, slash), 2);
        std::optional<int64_t> blocks = slash == std::string::npos
                                            ? std::optional<int64_t>(1)
                                            : number(how.substr(slash + 1), 2);
        ok = dim && blocks && *blocks >= 1;
        level.dim = dim.value_or(0);
        level.blocks = blocks.value_or(1);
      }
    }
    if (!ok || !isAxisName(level.axis)) {
      why = "level '" + item +
            "' is not AXIS=S, AXIS:DIM[/BLOCKS], AXIS:flat or AXIS:mean";
      return std::nullopt;
    }
    s.levels.push_back(level);
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  for (size_t k = 0; k < s.levels.size(); ++k) {
    const ShardLevel &l = s.levels[k];
    if (l.kind == ShardLevel::Kind::Stage && k > 0 &&
        s.levels[k - 1].kind != ShardLevel::Kind::Stage) {
      why = "a stage level (" + l.axis + "=S) comes after a split";
      return std::nullopt;
    }
    if (l.kind == ShardLevel::Kind::Flat && k + 1 != s.levels.size()) {
      why = l.axis + ":flat is not the last level";
      return std::nullopt;
    }
    if (l.kind == ShardLevel::Kind::Mean && s.levels.size() != 1) {
      why = l.axis + ":mean is not the only level";
      return std::nullopt;
    }
    for (size_t j = 0; j < k; ++j)
      if (s.levels[j].axis == l.axis) {
        why = "axis '" + l.axis + "' appears twice";
        return std::nullopt;
      }
  }
  return s;
}

std::string Sharding::str() const {
  std::string out;
  for (const ShardLevel &l : levels) {
    if (!out.empty())
      out += ',';
    out += l.axis;
    switch (l.kind) {
    case ShardLevel::Kind::Stage:
      out += "=" + std::to_string(l.stage);
      break;
    case ShardLevel::Kind::Flat:
      out += ":flat";
      break;
    case ShardLevel::Kind::Mean:
      out += ":mean";
      break;
    case ShardLevel::Kind::Dim:
      out += ":" + std::to_string(l.dim);
      if (l.blocks > 1)
        out += "/" + std::to_string(l.blocks);
      break;
    }
  }
  return out;
}

std::vector<std::string> Sharding::splitAxes() const {
  std::vector<std::string> out;
  for (const ShardLevel &l : levels)
    if (l.kind == ShardLevel::Kind::Dim || l.kind == ShardLevel::Kind::Flat)
      out.push_back(l.axis);
  return out;
}

std::optional<std::vector<int64_t>>
Sharding::shapeAt(size_t k, const std::vector<int64_t> &whole,
                  const std::function<int64_t(const std::string &)> &size,
                  std::string &why) const {
  std::vector<int64_t> shape = whole;
  for (size_t i = 0; i < k && i < levels.size(); ++i) {
    const ShardLevel &l = levels[i];
    int64_t n = size(l.axis);
    if (n < 1) {
      why = "the mesh has no axis '" + l.axis + "'";
      return std::nullopt;
    }
    if (l.kind == ShardLevel::Kind::Flat) {
      shape = {(product(shape) + n - 1) / n};
    } else if (l.kind == ShardLevel::Kind::Dim) {
      if (l.dim >= static_cast<int64_t>(shape.size()) ||
          shape[l.dim] % (n * l.blocks)) {
        why = "level " + l.axis + ":" + std::to_string(l.dim) +
              " does not split a dim of " + std::to_string(shape.size()) +
              "-d shape into " + std::to_string(n * l.blocks) + " parts";
        return std::nullopt;
      }
      shape[l.dim] /= n;
    }
  }
  return shape;
}

std::vector<uint8_t> trainopt::rt::takePart(const ShardLevel &level,
                                            const std::vector<int64_t> &shape,
                                            DType dtype, const uint8_t *value,
                                            int64_t ranks, int64_t index) {
  size_t element = dtypeSize(dtype);
  uint64_t bytes = static_cast<uint64_t>(product(shape)) * element;
  switch (level.kind) {
  case ShardLevel::Kind::Stage:
  case ShardLevel::Kind::Mean:
    return std::vector<uint8_t>(value, value + bytes);
  case ShardLevel::Kind::Flat: {
    // ceil(n / N) elements, zero past the last.
    uint64_t chunk = (product(shape) + ranks - 1) / ranks * element;
    std::vector<uint8_t> part(chunk, 0);
    uint64_t first = chunk * static_cast<uint64_t>(index);
    if (first < bytes)
      std::memcpy(part.data(), value + first,
                  std::min<uint64_t>(chunk, bytes - first));
    return part;
  }
  case ShardLevel::Kind::Dim: {
    std::vector<uint8_t> part(bytes / ranks);
    copyPart(const_cast<uint8_t *>(value), shape, level.dim, ranks, index,
             element, part.data(), /*toWhole=*/false, level.blocks);
    return part;
  }
  }
  return {};
}

std::optional<std::vector<uint8_t>> trainopt::rt::partOfWhole(
    const Sharding &sharding, std::vector<uint8_t> whole,
    const std::vector<int64_t> &shape, DType dtype,
    const std::function<int64_t(const std::string &)> &size,
    const std::function<int64_t(const std::string &)> &coordinate,
    std::string &why) {
  whole.resize(static_cast<size_t>(product(shape)) * dtypeSize(dtype), 0);
  for (size_t k = 0; k < sharding.levels.size(); ++k) {
    const ShardLevel &level = sharding.levels[k];
    std::optional<std::vector<int64_t>> at =
        sharding.shapeAt(k, shape, size, why);
    if (!at)
      return std::nullopt;
    whole = takePart(level, *at, dtype, whole.data(), size(level.axis),
                     coordinate(level.axis));
  }
  return whole;
}

bool trainopt::rt::joinParts(const ShardLevel &level,
                             const std::vector<int64_t> &shape, DType dtype,
                             const std::vector<const uint8_t *> &parts,
                             const std::vector<uint64_t> &partBytes,
                             std::vector<uint8_t> &out, std::string &why) {
  size_t element = dtypeSize(dtype);
  int64_t n = product(shape);
  uint64_t bytes = static_cast<uint64_t>(n) * element;
  uint64_t ranks = parts.size();
  uint64_t expect = bytes;
  if (level.kind == ShardLevel::Kind::Flat)
    expect = (n + ranks - 1) / ranks * element;
  else if (level.kind == ShardLevel::Kind::Dim)
    expect = bytes / ranks;
  for (uint64_t b : partBytes)
    if (b != expect) {
      why = "a part of " + std::to_string(b) + " bytes where " +
            std::to_string(expect) + " were expected";
      return false;
    }
  switch (level.kind) {
  case ShardLevel::Kind::Stage:
    out.assign(parts[0], parts[0] + bytes);
    return true;
  case ShardLevel::Kind::Flat:
    out.clear();
    for (const uint8_t *p : parts)
      out.insert(out.end(), p, p + expect);
    out.resize(bytes);
    return true;
  case ShardLevel::Kind::Dim:
    out.assign(bytes, 0);
    for (uint64_t r = 0; r < ranks; ++r)
      copyPart(out.data(), shape, level.dim, ranks, r, element,
               const_cast<uint8_t *>(parts[r]), /*toWhole=*/true, level.blocks);
    return true;
  case ShardLevel::Kind::Mean: {
    std::vector<double> sum(n, 0.0);
    for (const uint8_t *p : parts)
      for (int64_t i = 0; i < n; ++i)
        sum[i] += elementAsDouble(p, dtype, i);
    out.assign(bytes, 0);
    for (int64_t i = 0; i < n; ++i)
      storeElement(out.data(), dtype, i, sum[i] / static_cast<double>(ranks));
    return true;
  }
  }
  return false;
}

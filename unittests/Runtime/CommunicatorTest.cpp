//===- CommunicatorTest.cpp - collectives between the ranks of mpirun -----===//
//
/// \file
/// The MPI communicator (Communicator.h) checked from every rank of an
/// mpirun job; a plain program rather than GoogleTest because mpirun starts
/// each rank as a process of its own. Run by test/Runtime/communicator.test.
///
///   trainopt-communicator-test sum [MESH]     (MESH like dp=2,tp=2; the
///                                             default is dp=<ranks>)
///   trainopt-communicator-test launch         (launchInfo, no MPI)
///   trainopt-communicator-test timeout [SECONDS]
///   trainopt-communicator-test mismatch
///   trainopt-communicator-test nompi          (with TRAINOPT_MPI_LIBRARY
///                                             naming a missing file)
///
/// `sum` compares every rank-order all-reduce bit for bit with the
/// contributions summed one after another in rank order here, with this
/// file's own arithmetic; each rank computes every other rank's
/// contribution from the same formula. Rank 0 prints one PASS or FAIL line
/// per group of checks for all ranks; a failing rank prints the details.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Communicator.h"

#include "trainopt/Runtime/NarrowFloat.h"

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

using namespace trainopt::rt;

namespace {

std::unique_ptr<Communicator> comm;

/// Ends the job from any rank after a communicator error.
[[noreturn]] void fatal(const std::string &error) {
  std::fprintf(stderr, "FAIL: %s\n", error.c_str());
  std::fflush(stderr);
  if (comm)
    comm->abort(2);
  std::exit(2);
}

bool parseMesh(const std::string &text, Mesh &mesh) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos)
      end = text.size();
    std::string item = text.substr(start, end - start);
    size_t eq = item.find('=');
    if (eq == std::string::npos)
      return false;
    mesh.axes.push_back(
        {item.substr(0, eq), std::atoll(item.c_str() + eq + 1)});
    start = end + 1;
  }
  return !mesh.axes.empty();
}

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::vector<uint8_t> &bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes)
    h = (h ^ b) * 0x100000001b3ull;
  return h;
}

unsigned sizeOf(DType t) {
  return t == DType::F64 || t == DType::I64   ? 8
         : t == DType::F32 || t == DType::I32 ? 4
                                              : 2;
}

const char *nameOf(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  default:
    return "?";
  }
}

const char *nameOf(ReduceKind k) {
  return k == ReduceKind::Sum ? "sum" : k == ReduceKind::Max ? "max" : "min";
}

/// What `rank` contributes to case `seed`: values of both signs whose
/// exponents span 2^-10 to 2^5, so the order of a sum shows in its bits;
/// integers over their whole range, so sums wrap.
std::vector<uint8_t> contribution(int rank, int64_t count, DType dtype,
                                  uint64_t seed) {
  std::vector<uint8_t> out(count * sizeOf(dtype));
  for (int64_t i = 0; i < count; ++i) {
    uint64_t h = mix(seed * 0x100000001b3ull ^ mix(uint64_t(rank) << 40 ^ i));
    double x = std::ldexp(double(h >> 11) * 0x1p-53 - 0.5, int(h & 15) - 9);
    uint8_t *p = out.data() + i * sizeOf(dtype);
    auto store = [&](auto v) { std::memcpy(p, &v, sizeof(v)); };
    switch (dtype) {
    case DType::F32:
      store(float(x));
      break;
    case DType::F64:
      store(x);
      break;
    case DType::BF16:
      store(floatToBf16(float(x)));
      break;
    case DType::F16:
      store(floatToHalf(float(x)));
      break;
    case DType::I32:
      store(uint32_t(h));
      break;
    default:
      store(h);
      break;
    }
  }
  return out;
}

template <typename T> T apply(T a, T b, ReduceKind kind) {
  if (kind == ReduceKind::Max)
    return a < b ? b : a;
  if (kind == ReduceKind::Min)
    return b < a ? b : a;
  return a + b;
}

/// acc = acc (op) in, element by element, in the element type: f32 adds in
/// f32, bf16 and f16 round to themselves after every operation, integers
/// wrap.
void reduceInto(std::vector<uint8_t> &acc, const std::vector<uint8_t> &in,
                DType dtype, ReduceKind kind) {
  int64_t n = acc.size() / sizeOf(dtype);
  for (int64_t i = 0; i < n; ++i) {
    uint8_t *a = acc.data() + i * sizeOf(dtype);
    const uint8_t *b = in.data() + i * sizeOf(dtype);
    auto combine = [&](auto zero, auto op) {
      decltype(zero) x, y;
      std::memcpy(&x, a, sizeof(x));
      std::memcpy(&y, b, sizeof(y));
      x = op(x, y);
      std::memcpy(a, &x, sizeof(x));
    };
    switch (dtype) {
    case DType::F32:
      combine(0.0f, [&](float x, float y) { return apply(x, y, kind); });
      break;
    case DType::F64:
      combine(0.0, [&](double x, double y) { return apply(x, y, kind); });
      break;
    case DType::BF16:
      combine(uint16_t(), [&](uint16_t x, uint16_t y) {
        return floatToBf16(apply(bf16ToFloat(x), bf16ToFloat(y), kind));
      });
      break;
    case DType::F16:
      combine(uint16_t(), [&](uint16_t x, uint16_t y) {
        return floatToHalf(apply(halfToFloat(x), halfToFloat(y), kind));
      });
      break;
    case DType::I32:
      combine(int32_t(), [&](int32_t x, int32_t y) {
        return kind == ReduceKind::Sum ? int32_t(uint32_t(x) + uint32_t(y))
                                       : apply(x, y, kind);
      });
      break;
    default:
      combine(int64_t(), [&](int64_t x, int64_t y) {
        return kind == ReduceKind::Sum ? int64_t(uint64_t(x) + uint64_t(y))
                                       : apply(x, y, kind);
      });
      break;
    }
  }
}

double elementValue(const std::vector<uint8_t> &bytes, DType dtype, int64_t i) {
  const uint8_t *p = bytes.data() + i * sizeOf(dtype);
  auto load = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (dtype) {
  case DType::F32:
    return load(float());
  case DType::F64:
    return load(double());
  case DType::BF16:
    return bf16ToFloat(load(uint16_t()));
  case DType::F16:
    return halfToFloat(load(uint16_t()));
  case DType::I32:
    return load(int32_t());
  default:
    return double(load(int64_t()));
  }
}

/// The world ranks of this rank's group along `axis` ("" the world), in
/// group order.
std::vector<int> members(const Mesh &mesh, int rank, const std::string &axis) {
  std::vector<int> out;
  if (axis.empty()) {
    for (int r = 0; r < mesh.size(); ++r)
      out.push_back(r);
    return out;
  }
  int64_t stride = 1;
  for (size_t i = mesh.axes.size(); i-- > 0;) {
    int64_t n = mesh.axes[i].second;
    if (mesh.axes[i].first == axis) {
      int64_t coord = (rank / stride) % n;
      for (int64_t c = 0; c < n; ++c)
        out.push_back(int(rank + (c - coord) * stride));
      return out;
    }
    stride *= n;
  }
  return out;
}

/// The contributions of `group` reduced one after another in rank order.
std::vector<uint8_t> reference(const std::vector<int> &group, int64_t count,
                               DType dtype, ReduceKind kind, uint64_t seed) {
  std::vector<uint8_t> acc = contribution(group[0], count, dtype, seed);
  for (size_t j = 1; j < group.size(); ++j)
    reduceInto(acc, contribution(group[j], count, dtype, seed), dtype, kind);
  return acc;
}

/// Counts failures and reports them once per group of checks.
struct Checks {
  int failures = 0, total = 0;

  void expect(bool ok, const std::string &what) {
    if (ok)
      return;
    ++failures;
    std::fprintf(stderr, "FAIL rank %d: %s\n", comm->rank(), what.c_str());
    std::fflush(stderr);
  }

  /// Rank 0 prints PASS `name` when no rank failed since the last call.
  void agree(const std::string &name) {
    std::vector<uint64_t> counts;
    std::string error;
    if (!comm->allGather(uint64_t(failures), counts, "check " + name, error))
      fatal(error);
    uint64_t failed = 0;
    for (uint64_t c : counts)
      failed += c;
    total += int(failed);
    failures = 0;
    if (comm->rank() == 0) {
      if (failed)
        std::printf("FAIL %s: %" PRIu64 " failures\n", name.c_str(), failed);
      else
        std::printf("PASS %s\n", name.c_str());
      std::fflush(stdout);
    }
  }
};

/// The first element where `got` and `want` differ, for messages.
std::string firstDifference(const std::vector<uint8_t> &got,
                            const std::vector<uint8_t> &want, DType dtype) {
  for (size_t i = 0; i < got.size() / sizeOf(dtype); ++i)
    if (std::memcmp(got.data() + i * sizeOf(dtype),
                    want.data() + i * sizeOf(dtype), sizeOf(dtype)))
      return "element " + std::to_string(i) + " is " +
             std::to_string(elementValue(got, dtype, i)) + ", expected " +
             std::to_string(elementValue(want, dtype, i));
  return "same";
}

/// One deterministic all-reduce against the reference, and the hash of its
/// result, which every member of the group must share.
void checkRankOrder(Checks &checks, const std::string &axis, DType dtype,
                    int64_t count, ReduceKind kind, uint64_t seed) {
  const Mesh &mesh = comm->mesh();
  std::vector<int> group = members(mesh, comm->rank(), axis);
  std::vector<uint8_t> data = contribution(comm->rank(), count, dtype, seed);
  std::string error, what = std::string(nameOf(kind)) + " " + nameOf(dtype) +
                            " x" + std::to_string(count) + " over '" + axis +
                            "'";
  if (!comm->allReduce(data.data(), count, dtype, kind, axis, what, error))
    fatal(error);
  std::vector<uint8_t> want = reference(group, count, dtype, kind, seed);
  checks.expect(data == want, what + ": " + firstDifference(data, want, dtype));
  std::vector<uint64_t> hashes;
  if (!comm->allGather(fnv1a(data), hashes, what, error))
    fatal(error);
  for (int r : group)
    checks.expect(hashes[r] == hashes[comm->rank()],
                  what + ": rank " + std::to_string(r) +
                      " has other bits than this rank");
}

int runSum(const Mesh &mesh) {
  CommunicatorOptions options;
  options.timeoutSeconds = 120;
  std::string error;
  comm = createMPICommunicator(mesh, options, error);
  if (!comm) {
    std::fprintf(stderr, "FAIL: %s\n", error.c_str());
    return 1;
  }
  Checks checks;
  int rank = comm->rank(), size = comm->size();

  LaunchInfo launch = launchInfo();
  checks.expect((launch.underMpirun || size == 1) && launch.size == size &&
                    launch.rank == rank && launch.coresPerRank >= 1,
                "launchInfo: rank " + std::to_string(launch.rank) + " of " +
                    std::to_string(launch.size));
  if (rank == 0)
    std::printf(
        "launch: %d ranks, mesh %s, cores per rank %d\n", size,
        [&] {
          std::string s;
          for (const auto &[n, k] : mesh.axes)
            s += (s.empty() ? "" : ",") + n + "=" + std::to_string(k);
          return s;
        }()
            .c_str(),
        launch.coresPerRank);
  checks.agree("launch");

  // Groups: the coordinates of every rank, gathered, follow the row-major
  // layout, and a group's ranks are its members in coordinate order.
  std::vector<std::string> axes = {""};
  for (const auto &axis : mesh.axes)
    axes.push_back(axis.first);
  checks.expect(comm->groupSize("") == size && comm->coordinate("") == rank,
                "world group");
  for (size_t a = 1; a < axes.size(); ++a) {
    std::vector<int> group = members(mesh, rank, axes[a]);
    checks.expect(comm->groupSize(axes[a]) == int(group.size()),
                  "group size of " + axes[a]);
    checks.expect(group[comm->coordinate(axes[a])] == rank,
                  "coordinate along " + axes[a]);
  }
  checks.agree("groups");

  const DType dtypes[] = {DType::F32, DType::F64, DType::BF16,
                          DType::F16, DType::I32, DType::I64};
  uint64_t seed = 1;
  for (const std::string &axis : axes) {
    int n = comm->groupSize(axis);
    for (DType dtype : dtypes)
      for (int64_t count :
           {int64_t(1), int64_t(7), int64_t(n * 5), int64_t(1000003)})
        checkRankOrder(checks, axis, dtype, count, ReduceKind::Sum, seed++);
    checks.agree("rank-order sum over '" + axis + "'");
    for (DType dtype : dtypes)
      for (ReduceKind kind : {ReduceKind::Max, ReduceKind::Min})
        for (int64_t count : {int64_t(1), int64_t(7), int64_t(1003)})
          checkRankOrder(checks, axis, dtype, count, kind, seed++);
    checks.agree("rank-order max and min over '" + axis + "'");
  }

  // A NaN or inf of one rank reaches every rank, whatever the operation.
  {
    std::vector<float> v = {1.0f, 2.0f, 3.0f};
    if (rank == size - 1)
      v[0] = std::numeric_limits<float>::quiet_NaN();
    if (rank == 0)
      v[1] = std::numeric_limits<float>::infinity();
    for (ReduceKind kind :
         {ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min}) {
      std::vector<float> r = v;
      if (!comm->allReduce(r.data(), 3, DType::F32, kind, "", "nan", error))
        fatal(error);
      checks.expect(std::isnan(r[0]) &&
                        (kind == ReduceKind::Min || std::isinf(r[1])),
                    std::string("NaN and inf through ") + nameOf(kind));
    }
  }
  checks.agree("nan and inf");

  // Several all-reduces in flight, two on the same group, waited for in
  // different orders; one rank runs progress between the starts so its
  // all-gathers start at other times than the other ranks'.
  {
    struct Case {
      std::string axis;
      DType dtype;
      int64_t count;
      ReduceKind kind;
      uint64_t seed;
      std::vector<uint8_t> data;
      Communicator::Handle handle = 0;
    };
    std::string last = axes.back();
    std::vector<Case> cases = {
        {"", DType::F32, 1000003, ReduceKind::Sum, 9001, {}},
        {axes[1], DType::F64, 7, ReduceKind::Max, 9002, {}},
        {last, DType::BF16, 1001, ReduceKind::Sum, 9003, {}},
        {"", DType::I64, 3, ReduceKind::Min, 9004, {}},
        {"", DType::F16, 5, ReduceKind::Sum, 9005, {}},
        {last, DType::F32, 70001, ReduceKind::Sum, 9006, {}}};
    for (Case &c : cases) {
      c.data = contribution(rank, c.count, c.dtype, c.seed);
      if (!comm->startAllReduce(c.data.data(), c.count, c.dtype, c.kind, c.axis,
                                "in flight " + std::to_string(c.seed), c.handle,
                                error))
        fatal(error);
      if (rank == 0) {
        comm->progress();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        comm->progress();
      }
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      Case &c = cases[rank % 2 ? cases.size() - 1 - i : i];
      if (!comm->wait(c.handle, error))
        fatal(error);
    }
    for (Case &c : cases) {
      std::vector<uint8_t> want = reference(members(mesh, rank, c.axis),
                                            c.count, c.dtype, c.kind, c.seed);
      checks.expect(c.data == want, "in flight " + std::to_string(c.seed) +
                                        ": " +
                                        firstDifference(c.data, want, c.dtype));
    }
    // A handle is waited for once.
    checks.expect(!comm->wait(cases[0].handle, error) &&
                      error.find("no collective has handle") !=
                          std::string::npos,
                  "second wait: " + error);
  }
  checks.agree("in flight, waited out of order");

  // Many all-reduces of one group in flight, big and small alternating,
  // each rank pausing and progressing at its own times: each rank finishes
  // their all-to-alls in its own order, yet every rank must start the
  // all-gathers in the order of the all-reduces, or MPI pairs one rank's
  // all-gather with another's.
  {
    std::vector<std::vector<uint8_t>> data(24);
    std::vector<Communicator::Handle> handles(data.size());
    uint64_t rng = mix(uint64_t(rank) + 77);
    for (size_t k = 0; k < data.size(); ++k) {
      int64_t count = k % 2 ? 3 + k : 200003;
      data[k] = contribution(rank, count, DType::F32, 7000 + k);
      if (!comm->startAllReduce(data[k].data(), count, DType::F32,
                                ReduceKind::Sum, "", "stress", handles[k],
                                error))
        fatal(error);
      rng = mix(rng);
      if (rng % 3 == 0)
        comm->progress();
      if (rng % 5 == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(rng % 7));
    }
    for (size_t k = 0; k < data.size(); ++k) {
      size_t j = rank % 2 ? data.size() - 1 - k : k;
      if (!comm->wait(handles[j], error))
        fatal(error);
    }
    for (size_t k = 0; k < data.size(); ++k) {
      int64_t count = k % 2 ? 3 + k : 200003;
      std::vector<uint8_t> want =
          reference(members(mesh, rank, ""), count, DType::F32, ReduceKind::Sum,
                    7000 + k);
      checks.expect(data[k] == want,
                    "stress " + std::to_string(k) + ": " +
                        firstDifference(data[k], want, DType::F32));
    }
  }
  checks.agree("many in flight, all-gathers in order");

  // Reduce-scatters (ZeRO-2) started between all-reduces of the same group
  // and waited for in either order: each rank's part is, bit for bit, its
  // part of the rank-order all-reduce; parts of one element work too.
  {
    struct Case {
      std::string axis;
      DType dtype;
      int64_t part;
      uint64_t seed;
      bool scatter;
      std::vector<uint8_t> data, out;
      Communicator::Handle handle = 0;
    };
    std::string last = axes.back();
    std::vector<Case> cases = {
        {"", DType::F32, 100003, 9101, true, {}, {}},
        {"", DType::F32, 1001, 9102, false, {}, {}},
        {last, DType::BF16, 1, 9103, true, {}, {}},
        {"", DType::F64, 17, 9104, true, {}, {}},
        {last, DType::F32, 7, 9105, false, {}, {}}};
    for (Case &c : cases) {
      int64_t n = comm->groupSize(c.axis);
      int64_t count = c.scatter ? c.part * n : c.part;
      c.data = contribution(rank, count, c.dtype, c.seed);
      c.out.assign(size_t(c.part) * dtypeSize(c.dtype), 0xAB);
      bool ok = c.scatter
                    ? comm->startReduceScatter(c.data.data(), c.out.data(),
                                               c.part, c.dtype, ReduceKind::Sum,
                                               c.axis, "scatter", c.handle,
                                               error)
                    : comm->startAllReduce(c.data.data(), c.part, c.dtype,
                                           ReduceKind::Sum, c.axis, "between",
                                           c.handle, error);
      if (!ok)
        fatal(error);
      if (rank == 1)
        comm->progress();
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      Case &c = cases[rank % 2 ? cases.size() - 1 - i : i];
      if (!comm->wait(c.handle, error))
        fatal(error);
    }
    for (Case &c : cases) {
      int64_t n = comm->groupSize(c.axis);
      std::vector<uint8_t> whole =
          reference(members(mesh, rank, c.axis), c.scatter ? c.part * n : c.part,
                    c.dtype, ReduceKind::Sum, c.seed);
      size_t bytes = size_t(c.part) * dtypeSize(c.dtype);
      std::vector<uint8_t> want(whole.begin() + (c.scatter
                                                     ? comm->coordinate(c.axis) *
                                                           bytes
                                                     : 0),
                                whole.begin() +
                                    (c.scatter ? comm->coordinate(c.axis) + 1
                                               : 1) *
                                        bytes);
      const std::vector<uint8_t> &got = c.scatter ? c.out : c.data;
      checks.expect(got == want, "reduce-scatter case " +
                                     std::to_string(c.seed) + ": " +
                                     firstDifference(got, want, c.dtype));
    }
  }
  checks.agree("reduce-scatters between all-reduces");

  // MPI's own all-reduce: a second communicator (MPI is initialized once).
  {
    CommunicatorOptions fast = options;
    fast.deterministic = false;
    std::unique_ptr<Communicator> mpiOrder =
        createMPICommunicator(mesh, fast, error);
    if (!mpiOrder)
      fatal(error);
    std::vector<int> world = members(mesh, rank, "");
    for (DType dtype : dtypes)
      for (int64_t count : {int64_t(7), int64_t(1000003)}) {
        uint64_t s = seed++;
        std::vector<uint8_t> data = contribution(rank, count, dtype, s);
        if (!mpiOrder->allReduce(data.data(), count, dtype, ReduceKind::Sum, "",
                                 "mpi order", error))
          fatal(error);
        std::vector<uint8_t> want =
            reference(world, count, dtype, ReduceKind::Sum, s);
        if (dtype == DType::F32 || dtype == DType::F64) {
          // Any order: within n ulps of the magnitudes summed.
          double eps = dtype == DType::F32 ? 0x1p-24 : 0x1p-53;
          int64_t bad = -1;
          for (int64_t i = 0; i < count && bad < 0; ++i) {
            double magnitude = 0;
            for (int r : world)
              magnitude += std::fabs(
                  elementValue(contribution(r, 1 + i, dtype, s), dtype, i));
            if (std::fabs(elementValue(data, dtype, i) -
                          elementValue(want, dtype, i)) >
                2 * size * eps * magnitude)
              bad = i;
            if (i == 100) // the magnitudes cost size * i: a prefix suffices
              break;
          }
          checks.expect(bad < 0, std::string("mpi order ") + nameOf(dtype) +
                                     ": element " + std::to_string(bad));
        } else {
          // Integers in any order, 16-bit floats in rank order (MPI has
          // no such type): exact.
          checks.expect(data == want, std::string("mpi order ") +
                                          nameOf(dtype) + ": " +
                                          firstDifference(data, want, dtype));
        }
      }
    // MPI's own reduce-scatter, of integers (exact in any order).
    {
      int64_t part = 1001;
      uint64_t s = seed++;
      std::vector<uint8_t> data =
          contribution(rank, part * size, DType::I64, s);
      std::vector<uint8_t> out(size_t(part) * 8);
      Communicator::Handle handle;
      if (!mpiOrder->startReduceScatter(data.data(), out.data(), part,
                                        DType::I64, ReduceKind::Sum, "",
                                        "mpi scatter", handle, error) ||
          !mpiOrder->wait(handle, error))
        fatal(error);
      std::vector<uint8_t> whole =
          reference(world, part * size, DType::I64, ReduceKind::Sum, s);
      std::vector<uint8_t> want(whole.begin() + rank * part * 8,
                                whole.begin() + (rank + 1) * part * 8);
      checks.expect(out == want, "mpi reduce-scatter: " +
                                     firstDifference(out, want, DType::I64));
    }
    std::vector<float> big(1000), small(1000);
    for (int i = 0; i < 1000; ++i)
      big[i] = small[i] = float(mix(rank * 1000 + i) % 1000);
    if (!mpiOrder->allReduce(big.data(), 1000, DType::F32, ReduceKind::Max, "",
                             "mpi max", error) ||
        !mpiOrder->allReduce(small.data(), 1000, DType::F32, ReduceKind::Min,
                             "", "mpi min", error))
      fatal(error);
    for (int i = 0; i < 1000; ++i) {
      float hi = 0, lo = 1e9f;
      for (int r = 0; r < size; ++r) {
        hi = std::max(hi, float(mix(r * 1000 + i) % 1000));
        lo = std::min(lo, float(mix(r * 1000 + i) % 1000));
      }
      checks.expect(big[i] == hi && small[i] == lo,
                    "mpi max/min element " + std::to_string(i));
    }
  }
  checks.agree("mpi order within tolerance");

  // Broadcast, all-gather, barrier.
  {
    std::vector<uint8_t> bytes(100003, 0);
    int root = size - 1;
    if (rank == root)
      for (size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = uint8_t(mix(i));
    if (!comm->broadcast(bytes.data(), int64_t(bytes.size()), root, "params",
                         error))
      fatal(error);
    bool same = true;
    for (size_t i = 0; i < bytes.size(); ++i)
      same &= bytes[i] == uint8_t(mix(i));
    checks.expect(same, "broadcast from rank " + std::to_string(root));
    std::vector<uint64_t> values;
    if (!comm->allGather(uint64_t(rank) * 1000003 + 7, values, "ranks", error))
      fatal(error);
    checks.expect(int(values.size()) == size, "all-gather size");
    for (int r = 0; r < int(values.size()); ++r)
      checks.expect(values[r] == uint64_t(r) * 1000003 + 7,
                    "all-gather value of rank " + std::to_string(r));
    if (!comm->barrier("end", error))
      fatal(error);
  }
  checks.agree("broadcast, all-gather, barrier");

  // Started broadcasts over each mesh axis, two in flight, waited for in
  // the other order: every rank of a group receives its root's bytes (the
  // root: the rank at that coordinate with this rank's other coordinates).
  {
    const Mesh &axes = comm->mesh();
    std::vector<int64_t> stride(axes.axes.size(), 1);
    for (size_t k = axes.axes.size(); k-- > 1;)
      stride[k - 1] = stride[k] * axes.axes[k].second;
    bool same = true;
    for (size_t k = 0; k < axes.axes.size(); ++k) {
      const std::string &axis = axes.axes[k].first;
      int64_t last = comm->groupSize(axis) - 1, here = comm->coordinate(axis);
      int64_t lastRank = rank + (last - here) * stride[k];
      int64_t firstRank = rank - here * stride[k];
      std::vector<uint8_t> a(1001), b(77);
      for (size_t i = 0; i < a.size(); ++i)
        a[i] = uint8_t(mix(i + 7919 * uint64_t(rank)));
      for (size_t i = 0; i < b.size(); ++i)
        b[i] = uint8_t(mix(3 * i + 7919 * uint64_t(rank)));
      Communicator::Handle ha = 0, hb = 0;
      if (!comm->startBroadcast(a.data(), int64_t(a.size()), last, axis, "a",
                                ha, error) ||
          !comm->startBroadcast(b.data(), int64_t(b.size()), 0, axis, "b", hb,
                                error) ||
          !comm->wait(hb, error) || !comm->wait(ha, error))
        fatal(error);
      for (size_t i = 0; i < a.size(); ++i)
        same &= a[i] == uint8_t(mix(i + 7919 * uint64_t(lastRank)));
      for (size_t i = 0; i < b.size(); ++i)
        same &= b[i] == uint8_t(mix(3 * i + 7919 * uint64_t(firstRank)));
    }
    Communicator::Handle h = 0;
    std::vector<uint8_t> one(4);
    checks.expect(!comm->startBroadcast(one.data(), 4, comm->size(),
                                        axes.axes[0].first, "far", h, error),
                  "a root outside the group is refused");
    checks.expect(error.find("root") != std::string::npos,
                  "the error names the root: " + error);
    checks.expect(same, "broadcasts over each axis");
  }
  checks.agree("broadcasts over each axis");

  // Errors name the collective and what is wrong.
  {
    float x = 0;
    Communicator::Handle h;
    bool started = comm->startAllReduce(&x, 1, DType::F32, ReduceKind::Sum,
                                        "nope", "bucket 3", h, error);
    checks.expect(!started &&
                      error.find("has no axis 'nope'") != std::string::npos,
                  "unknown axis: " + error);
    if (rank == 0)
      std::printf("unknown axis: %s\n", error.c_str());
    checks.expect(!comm->wait(12345, error) &&
                      error.find("no collective has handle 12345") !=
                          std::string::npos,
                  "unknown handle: " + error);
    if (rank == 0)
      std::printf("unknown handle: %s\n", error.c_str());
    uint8_t b = 0;
    started = comm->startAllReduce(&b, 1, DType::U8, ReduceKind::Sum, "",
                                   "bytes", h, error);
    checks.expect(!started &&
                      error.find("cannot reduce uint8") != std::string::npos,
                  "uint8: " + error);
    if (rank == 0)
      std::printf("uint8: %s\n", error.c_str());
    checks.expect(!comm->broadcast(&b, 1, size, "bad root", error),
                  "broadcast from a rank outside the job");
  }
  checks.agree("errors");

  int failed = checks.total;
  comm.reset(); // MPI_Finalize
  if (rank == 0)
    std::printf("%s sum: %d ranks\n", failed ? "FAIL" : "PASS", size);
  return failed ? 1 : 0;
}

/// Rank 1 skips the all-reduce; rank 0 must give up within the timeout
/// with a message naming it, and ends the job.
int runTimeout(double seconds) {
  LaunchInfo launch = launchInfo();
  Mesh mesh{{{"dp", launch.size}}};
  CommunicatorOptions options;
  options.timeoutSeconds = seconds;
  std::string error;
  comm = createMPICommunicator(mesh, options, error);
  if (!comm) {
    std::fprintf(stderr, "FAIL: %s\n", error.c_str());
    return 1;
  }
  if (comm->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  std::vector<float> grads(1000, 1.0f);
  auto begin = std::chrono::steady_clock::now();
  if (comm->allReduce(grads.data(), 1000, DType::F32, ReduceKind::Sum, "dp",
                      "bucket 0", error)) {
    std::printf("FAIL timeout: the all-reduce finished\n");
    return 1;
  }
  double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin)
          .count();
  std::printf("error: %s\n", error.c_str());
  std::printf("%s timeout: gave up after %.1f s\n",
              waited >= seconds && waited < seconds + 5 ? "PASS" : "FAIL",
              waited);
  std::fflush(stdout);
  comm->abort(3);
  return 3; // not reached: GCC does not trust [[noreturn]] on a virtual
}

/// A job whose size is not the mesh's fails on every rank, before MPI
/// starts.
int runMismatch() {
  LaunchInfo launch = launchInfo();
  Mesh mesh{{{"dp", launch.size + 1}}};
  std::string error;
  comm = createMPICommunicator(mesh, CommunicatorOptions(), error);
  if (comm) {
    std::printf("FAIL mismatch: a communicator was created\n");
    return 1;
  }
  if (launch.rank == 0)
    std::printf("mismatch: %s\n", error.c_str());
  return 0;
}

/// Without Open MPI, the error says what to install.
int runNoMPI() {
  std::string error;
  comm = createMPICommunicator(Mesh{{{"dp", 2}}}, CommunicatorOptions(), error);
  if (comm) {
    std::printf("FAIL nompi: a communicator was created\n");
    return 1;
  }
  std::printf("nompi: %s\n", error.c_str());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "sum") {
    Mesh mesh;
    std::string text =
        argc > 2 ? argv[2] : "dp=" + std::to_string(launchInfo().size);
    if (!parseMesh(text, mesh)) {
      std::fprintf(stderr, "bad mesh '%s'\n", text.c_str());
      return 2;
    }
    return runSum(mesh);
  }
  if (mode == "launch") {
    LaunchInfo launch = launchInfo();
    std::printf("launch: rank %d of %d, %s mpirun, cores per rank %d\n",
                launch.rank, launch.size,
                launch.underMpirun ? "under" : "not under",
                launch.coresPerRank);
    return 0;
  }
  if (mode == "timeout")
    return runTimeout(argc > 2 ? std::atof(argv[2]) : 2);
  if (mode == "mismatch")
    return runMismatch();
  if (mode == "nompi")
    return runNoMPI();
  std::fprintf(stderr,
               "usage: %s sum [MESH] | launch | timeout [SECONDS] | mismatch "
               "| nompi\n",
               argv[0]);
  return 2;
}

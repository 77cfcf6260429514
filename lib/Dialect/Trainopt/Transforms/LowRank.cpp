//===- LowRank.cpp - low-rank factorization of weights --------------------===//
//
/// \file
/// `trainopt-low-rank` (Passes.td): replaces a matmul's weight W (m x n) by
/// two trainable factors U (m x r) and V (r x n) from the SVD of W's
/// initial values, and a convolution by a k x k convolution to r channels
/// followed by a 1 x 1 one.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Evaluator/HostTensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/Support/GlobPattern.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTLOWRANK
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// A thin SVD, M = U diag(S) V^T, singular values in decreasing order.
struct SVD {
  int64_t m = 0, n = 0, k = 0; // k = min(m, n)
  std::vector<double> u;       // m x k, row-major
  std::vector<double> s;       // k
  std::vector<double> vt;      // k x n, row-major
};

/// One-sided Jacobi (Hestenes) on the columns of the taller orientation:
/// rotations orthogonalize the columns pairwise until no pair's cosine
/// exceeds 1e-15 (at most 100 sweeps). Accurate to the last bits of small
/// singular values; cost about 6 m n^2 per sweep for m >= n. Deterministic.
SVD svd(int64_t m, int64_t n, const std::vector<double> &rowMajor) {
  bool flip = m < n;
  int64_t rows = flip ? n : m, cols = flip ? m : n;
  // Columns of A (rows x cols), A = M or M^T.
  std::vector<std::vector<double>> a(cols, std::vector<double>(rows));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      (flip ? a[i][j] : a[j][i]) = rowMajor[i * n + j];
  std::vector<std::vector<double>> v(cols, std::vector<double>(cols, 0.0));
  for (int64_t j = 0; j < cols; ++j)
    v[j][j] = 1.0;
  auto dot = [rows](const std::vector<double> &x,
                    const std::vector<double> &y) {
    double t = 0;
    for (int64_t i = 0; i < rows; ++i)
      t += x[i] * y[i];
    return t;
  };
  for (int sweep = 0; sweep < 100; ++sweep) {
    bool rotated = false;
    for (int64_t p = 0; p < cols; ++p)
      for (int64_t q = p + 1; q < cols; ++q) {
        double alpha = dot(a[p], a[p]), beta = dot(a[q], a[q]);
        double gamma = dot(a[p], a[q]);
        if (gamma == 0.0 || std::fabs(gamma) <= 1e-15 * std::sqrt(alpha * beta))
          continue;
        rotated = true;
        double zeta = (beta - alpha) / (2.0 * gamma);
        double t = (zeta >= 0 ? 1.0 : -1.0) /
                   (std::fabs(zeta) + std::sqrt(1.0 + zeta * zeta));
        double c = 1.0 / std::sqrt(1.0 + t * t), s = c * t;
        auto rotate = [&](std::vector<double> &x, std::vector<double> &y) {
          for (size_t i = 0; i < x.size(); ++i) {
            double xi = x[i], yi = y[i];
            x[i] = c * xi - s * yi;
            y[i] = s * xi + c * yi;
          }
        };
        rotate(a[p], a[q]);
        rotate(v[p], v[q]);
      }
    if (!rotated)
      break;
  }
  // A V = U S: the columns' norms are the singular values.
  std::vector<double> norms(cols);
  for (int64_t j = 0; j < cols; ++j)
    norms[j] = std::sqrt(dot(a[j], a[j]));
  std::vector<int64_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return norms[x] > norms[y]; });
  SVD r;
  r.m = m, r.n = n, r.k = cols;
  r.u.assign(m * cols, 0.0);
  r.s.resize(cols);
  r.vt.assign(cols * n, 0.0);
  for (int64_t c = 0; c < cols; ++c) {
    int64_t j = order[c];
    double sv = norms[j];
    r.s[c] = sv;
    // Left vectors of A are columns of a / s; right ones are v's columns.
    // For M^T = A: M = V S U_A^T, so the roles swap.
    for (int64_t i = 0; i < rows; ++i) {
      double left = sv > 0 ? a[j][i] / sv : 0.0;
      if (flip)
        r.vt[c * n + i] = left;
      else
        r.u[i * cols + c] = left;
    }
    for (int64_t i = 0; i < cols; ++i) {
      double right = v[j][i];
      if (flip)
        r.u[i * cols + c] = right;
      else
        r.vt[c * n + i] = right;
    }
  }
  return r;
}

/// One factored weight.
struct Site {
  Operation *op;
  /// The transpose between the weight and a matmul, if any.
  TransposeOp transpose;
  BlockArgument weight;
  StringAttr name;
  /// A matmul computing x W^T.
  bool transposed;
};

struct TrainoptLowRankPass
    : public mlir::trainopt::impl::TrainoptLowRankBase<TrainoptLowRankPass> {
  using TrainoptLowRankBase::TrainoptLowRankBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return lowRank; }

  void runOnOperation() override;

private:
  LogicalResult parse(ModuleOp module);
  /// The rank that keeps `energy` of the squared singular values, or the
  /// fixed rank.
  int64_t rankOf(ArrayRef<double> s) const;

  double energy = 0;
  int64_t fixedRank = 0;
};

} // namespace

LogicalResult TrainoptLowRankPass::parse(ModuleOp module) {
  auto bad = [&](StringRef flag, const Twine &why) {
    return module.emitError() << "--" << flag << ": " << why;
  };
  if (lowRank == "off") {
    if (!layers.empty())
      return bad("low-rank-layers", "needs --low-rank");
    return success();
  }
  StringRef spec = lowRank;
  if (spec.consume_front("energy:")) {
    if (spec.getAsDouble(energy) || !(energy > 0.0 && energy <= 1.0))
      return bad("low-rank",
                 "energy:E needs 0 < E <= 1, got '" + lowRank + "'");
  } else if (spec.consume_front("rank:")) {
    if (spec.getAsInteger(10, fixedRank) || fixedRank < 1)
      return bad("low-rank", "rank:R needs R >= 1, got '" + lowRank + "'");
  } else {
    return bad("low-rank",
               "must be off, energy:E or rank:R, got '" + lowRank + "'");
  }
  for (const std::string &p : layers)
    if (!llvm::GlobPattern::create(p))
      return bad("low-rank-layers", "'" + p + "' is not a valid glob");
  for (StringRef axis : {"tp", "pp"})
    if (meshAxis(module, axis).second > 1)
      return bad("low-rank", "low-rank factorization with " + axis +
                                 " > 1 in --mesh is not supported yet");
  return success();
}

int64_t TrainoptLowRankPass::rankOf(ArrayRef<double> s) const {
  if (fixedRank)
    return std::min<int64_t>(fixedRank, s.size());
  double total = 0, kept = 0;
  for (double x : s)
    total += x * x;
  for (size_t r = 0; r < s.size(); ++r) {
    kept += s[r] * s[r];
    if (kept >= energy * total)
      return static_cast<int64_t>(r) + 1;
  }
  return static_cast<int64_t>(s.size());
}

void TrainoptLowRankPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (failed(parse(module)))
    return signalPassFailure();
  if (lowRank == "off")
    return;
  auto func = module.lookupSymbol<func::FuncOp>(funcName);
  if (!func || func.isExternal()) {
    module.emitError() << getArgument() << ": no function @" << funcName;
    return signalPassFailure();
  }
  SmallVector<llvm::GlobPattern> chosen;
  for (const std::string &p : layers)
    chosen.push_back(*llvm::GlobPattern::create(p));

  // Matmuls with a 2-d weight and ungrouped convolutions (weightUseOf)
  // whose weight they alone read.
  SmallVector<Site> sites;
  func.walk([&](Operation *op) {
    std::optional<WeightUse> use = weightUseOf(op);
    if (!use)
      return;
    auto conv = dyn_cast<ConvOp>(op);
    auto mm = dyn_cast<MatmulOp>(op);
    if ((conv && conv.getGroups() != 1) ||
        (mm && (mm.getTransposeLhs() ||
                TensorBuilder::type(mm.getRhs()).getRank() != 2)))
      return;
    Value w = use->operand->get();
    StringAttr name = trainableParameterOf(module, func, w);
    if (!name || !w.hasOneUse() ||
        (!chosen.empty() && llvm::none_of(chosen, [&](auto &g) {
          return g.match(name.getValue());
        })))
      return;
    // A 2-d weight summed over its axis 1 is read transposed (x W^T).
    sites.push_back({op, use->transpose, cast<BlockArgument>(w), name,
                     mm && use->reductionAxes[0] == 1});
  });
  if (sites.empty()) {
    func.emitError() << "--low-rank: the model has no convolution or matmul "
                        "with a trainable weight of its own to factor";
    return signalPassFailure();
  }

  OpBuilder b(&getContext());
  SmallVector<Attribute> records;
  llvm::BitVector erase(func.getNumArguments());
  for (const Site &site : sites) {
    auto param = module.lookupSymbol<ParameterOp>(site.name);
    if (!param.getInitialValueAttr()) {
      site.op->emitError() << "--low-rank: weight '" << site.name.getValue()
                           << "' has no initial values to factor";
      return signalPassFailure();
    }
    llvm::Expected<HostTensor> initial =
        tensorFromAttr(param.getInitialValueAttr());
    if (!initial) {
      site.op->emitError() << "--low-rank: weight '" << site.name.getValue()
                           << "': " << llvm::toString(initial.takeError());
      return signalPassFailure();
    }
    RankedTensorType type = param.getTensorType();
    Type elt = type.getElementType();
    // The stored weight as a matrix: a filter [F, C k...] as F x (C k...).
    int64_t m = type.getDimSize(0), n = type.getNumElements() / m;
    SVD d = svd(m, n, initial->floats);
    int64_t r = rankOf(d.s);
    // FLOPs of one forward (multiply-adds), before and after.
    Value out = site.op->getResult(0);
    int64_t outputs = TensorBuilder::type(out).getNumElements();
    bool conv = isa<ConvOp>(site.op);
    // Per output element: n multiply-adds (conv, and a matmul with W[N, K]
    // read transposed) or m (a matmul's W[K, N]).
    bool transposed = site.transposed;
    int64_t reduce = conv || transposed ? n : m;
    int64_t width = conv || transposed ? m : n; // outputs per row
    int64_t before = 2 * outputs * reduce;
    int64_t after = 2 * (outputs / width) * r * (reduce + width);
    auto record = [&](bool factored) {
      records.push_back(b.getDictionaryAttr(
          {b.getNamedAttr("weight", site.name),
           b.getNamedAttr("rank", b.getI64IntegerAttr(r)),
           b.getNamedAttr("factored", b.getBoolAttr(factored)),
           b.getNamedAttr("kind", b.getStringAttr(conv ? "conv" : "matmul")),
           b.getNamedAttr("params_before", b.getI64IntegerAttr(m * n)),
           b.getNamedAttr("params_after",
                          b.getI64IntegerAttr(factored ? r * (m + n) : m * n)),
           b.getNamedAttr("flops_before", b.getI64IntegerAttr(before)),
           b.getNamedAttr("flops_after",
                          b.getI64IntegerAttr(factored ? after : before))}));
    };
    // Factoring pays only below the break-even rank.
    if (r * (m + n) >= m * n) {
      record(false);
      continue;
    }
    // U sqrt(S) (m x r) and sqrt(S) V^T (r x n), in the weight's type.
    SmallVector<APFloat> uValues, vValues;
    auto value = [&](double x) {
      return cast<FloatAttr>(b.getFloatAttr(elt, x)).getValue();
    };
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < r; ++c)
        uValues.push_back(value(d.u[i * d.k + c] * std::sqrt(d.s[c])));
    for (int64_t c = 0; c < r; ++c)
      for (int64_t j = 0; j < n; ++j)
        vValues.push_back(value(std::sqrt(d.s[c]) * d.vt[c * n + j]));
    // Stored as the ops read them: a matmul's U [m, r] and V [r, n]; a
    // convolution's V as the k x k filter [r, C, k...] and U as the 1 x 1
    // filter [F, r, 1...].
    SmallVector<int64_t> uShape{m, r}, vShape{r, n};
    if (conv) {
      uShape.append(type.getRank() - 2, 1);
      vShape.assign({r});
      vShape.append(type.getShape().begin() + 1, type.getShape().end());
    }
    auto addFactor = [&](StringRef suffix, ArrayRef<int64_t> shape,
                         ArrayRef<APFloat> values) {
      auto t = RankedTensorType::get(shape, elt);
      return addModelState(module, func, (site.name.getValue() + suffix).str(),
                           DenseElementsAttr::get(t, values), "low-rank",
                           /*trainable=*/true);
    };
    FailureOr<BlockArgument> u = addFactor(".u", uShape, uValues);
    FailureOr<BlockArgument> v = addFactor(".v", vShape, vValues);
    if (failed(u) || failed(v))
      return signalPassFailure();
    erase.resize(func.getNumArguments());

    b.setInsertionPoint(site.op);
    Location loc = site.op->getLoc();
    Value replacement;
    if (auto c = dyn_cast<ConvOp>(site.op)) {
      Value first = ConvOp::create(b, loc, c.getInput(), *v, Value(),
                                   c.getStridesAttr(), c.getPaddingAttr(),
                                   c.getDilationsAttr(), c.getGroupsAttr());
      int64_t spatial = type.getRank() - 2;
      replacement = ConvOp::create(
          b, loc, first, *u, c.getBias(),
          b.getDenseI64ArrayAttr(SmallVector<int64_t>(spatial, 1)),
          b.getDenseI64ArrayAttr(SmallVector<int64_t>(2 * spatial, 0)),
          b.getDenseI64ArrayAttr(SmallVector<int64_t>(spatial, 1)),
          c.getGroupsAttr());
    } else {
      auto mm = cast<MatmulOp>(site.op);
      // x W = (x U) V; x W^T = (x V^T) U^T.
      Value x = mm.getLhs();
      if (transposed) {
        Value first = MatmulOp::create(b, loc, x, *v, false, true);
        replacement = MatmulOp::create(b, loc, first, *u, false, true);
      } else {
        Value first = MatmulOp::create(b, loc, x, *u, false, false);
        replacement = MatmulOp::create(b, loc, first, *v, false, false);
      }
    }
    site.op->getResult(0).replaceAllUsesWith(replacement);
    site.op->erase();
    if (site.transpose)
      site.transpose->erase();
    erase.set(site.weight.getArgNumber());
    param->erase();
    record(true);
  }
  erase.resize(func.getNumArguments());
  if (failed(func.eraseArguments(erase))) {
    func.emitError() << "--low-rank: cannot remove the factored weights";
    return signalPassFailure();
  }
  module->setAttr(TrainoptDialect::kLowRankAttrName, b.getArrayAttr(records));
}

std::vector<TrainingOption> mlir::trainopt::stage_options::lowRankOptions() {
  TrainoptLowRankPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}

//===- Quantize.cpp - quantization-aware training -------------------------===//
//
/// \file
/// `trainopt-quantize` (Passes.td): fake-quantizes the weights of
/// convolutions and matmuls and the activations they multiply, with
/// PyTorch's moving-average min/max observers kept as model state that the
/// model updates itself (`trainopt.assign`).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Evaluator/HostTensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/GlobPattern.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTQUANTIZE
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// How one tensor is quantized.
struct QuantSpec {
  int64_t quantMin, quantMax;
  bool symmetric;
  /// The axis with one scale per index, or -1 for one scale.
  int64_t axis;
};

/// The observer counter's parameter name.
constexpr llvm::StringLiteral kObservationsName = "qat.observations";

struct TrainoptQuantizePass
    : public mlir::trainopt::impl::TrainoptQuantizeBase<TrainoptQuantizePass> {
  using TrainoptQuantizeBase::TrainoptQuantizeBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return quantize; }

  void runOnOperation() override;

private:
  LogicalResult validate(ModuleOp module);
  /// A new frozen parameter `name` of `type`, zero-initialized, bound to a
  /// new argument of `func`; returns the argument.
  FailureOr<Value> addState(ModuleOp module, func::FuncOp func, StringRef name,
                            RankedTensorType type);
  /// `x` fake-quantized by `spec` with an observer named `name`; the
  /// observer's assigns go to `assigns`.
  FailureOr<Value> quantizeValue(ModuleOp module, func::FuncOp func, Value x,
                                 const QuantSpec &spec, StringRef name,
                                 Location loc,
                                 SmallVectorImpl<std::pair<Value, Value>> &assigns);

  /// Weight sharing: share each weight's values among this many
  /// centroids (`kmeans:K`); 0 for fake quantization.
  int64_t clusters = 0;
  /// Logarithmic quantization to this many bits (`log:BITS`); 0 otherwise.
  int64_t logBits = 0;
  /// A weight to quantize, with its output-channel axis.
  struct Weight {
    Value value;
    StringAttr name;
    int64_t channelAxis;
  };
  LogicalResult logQuantize(ModuleOp module, func::FuncOp func,
                            ArrayRef<Weight> weights);
  LogicalResult shareWeights(ModuleOp module, func::FuncOp func,
                             ArrayRef<std::pair<Value, StringAttr>> weights);

  Value observations;
  /// Whether observers still move: count < freeze step (or always).
  Value live;
  Value first;
  OpBuilder *builder = nullptr;
};

} // namespace

LogicalResult TrainoptQuantizePass::validate(ModuleOp module) {
  auto bad = [&](StringRef flag, const Twine &why) {
    return module.emitError() << "--" << flag << ": " << why;
  };
  if (quantize == "off") {
    // The other options mean nothing without it: say so rather than ignore.
    const llvm::cl::Option *given[] = {&granularity, &weightScheme,
                                       &activations, &outputs,
                                       &reduceRange,  &averaging,
                                       &freezeStep};
    for (const llvm::cl::Option *o : given)
      if (o->getNumOccurrences())
        return bad(o->ArgStr, "needs --quantize=int8 or --quantize=int4");
    if (!exclude.empty())
      return bad("quantize-exclude", "needs --quantize");
    return success();
  }
  StringRef spec = quantize;
  if (spec.consume_front("kmeans:")) {
    if (spec.getAsInteger(10, clusters) || clusters < 2 || clusters > 65536)
      return bad("quantize", "kmeans:K needs 2 <= K <= 65536 clusters, got '" +
                                 quantize + "'");
    // The fake-quant options do not apply to weight sharing.
    const llvm::cl::Option *given[] = {&granularity, &weightScheme,
                                       &activations, &outputs,
                                       &reduceRange,  &averaging,
                                       &freezeStep};
    for (const llvm::cl::Option *o : given)
      if (o->getNumOccurrences())
        return bad(o->ArgStr,
                   "applies to --quantize=int8 and int4, not " + quantize);
  } else if (spec.consume_front("log:")) {
    if (spec.getAsInteger(10, logBits) || logBits < 2 || logBits > 8)
      return bad("quantize",
                 "log:BITS needs 2 <= BITS <= 8, got '" + quantize + "'");
    const llvm::cl::Option *given[] = {&weightScheme, &activations,
                                       &outputs,      &reduceRange,
                                       &averaging,    &freezeStep};
    for (const llvm::cl::Option *o : given)
      if (o->getNumOccurrences())
        return bad(o->ArgStr,
                   "applies to --quantize=int8 and int4, not " + quantize);
  } else if (quantize != "int8" && quantize != "int4") {
    return bad("quantize", "must be off, int8, int4, log:BITS or kmeans:K, "
                           "got '" +
                               quantize + "'");
  }
  if (outputs.getNumOccurrences() && outputs && !activations)
    return bad("quantize-outputs", "needs --quantize-activations");
  if (reduceRange && quantize != "int8")
    return bad("quantize-reduce-range",
               "applies to --quantize=int8, not " + quantize);
  if (granularity != "per-channel" && granularity != "per-tensor")
    return bad("quantize-granularity",
               "must be per-channel or per-tensor, got '" + granularity + "'");
  if (weightScheme != "symmetric" && weightScheme != "affine")
    return bad("quantize-weight-scheme",
               "must be symmetric or affine, got '" + weightScheme + "'");
  if (!(averaging > 0.0 && averaging <= 1.0))
    return bad("observer-averaging",
               "must be in (0, 1], got " + llvm::formatv("{0}", averaging.getValue()));
  if (freezeStep < 0)
    return bad("observer-freeze-step",
               "must be 0 (never) or a positive count, got " +
                   std::to_string(freezeStep));
  for (const std::string &p : exclude)
    if (!llvm::GlobPattern::create(p))
      return bad("quantize-exclude", "'" + p + "' is not a valid glob");
  for (StringRef axis : {"tp", "pp"})
    if (meshAxis(module, axis).second > 1)
      return bad("quantize", "quantization-aware training with " + axis +
                                 " > 1 in --mesh is not supported yet");
  if (!clusters && module->hasAttr(TrainoptDialect::kLowRankAttrName))
    return bad("quantize", "quantization of low-rank factors "
                           "(--low-rank) is not supported yet");
  return success();
}

FailureOr<Value> TrainoptQuantizePass::addState(ModuleOp module,
                                                func::FuncOp func,
                                                StringRef name,
                                                RankedTensorType type) {
  Builder b(func.getContext());
  Attribute zero = isa<FloatType>(type.getElementType())
                       ? Attribute(b.getFloatAttr(type.getElementType(), 0.0))
                       : Attribute(b.getIntegerAttr(type.getElementType(), 0));
  FailureOr<BlockArgument> arg = addModelState(
      module, func, name, DenseElementsAttr::get(type, zero), "quantize");
  if (failed(arg))
    return failure();
  return Value(*arg);
}

FailureOr<Value> TrainoptQuantizePass::quantizeValue(
    ModuleOp module, func::FuncOp func, Value x, const QuantSpec &spec,
    StringRef name, Location loc,
    SmallVectorImpl<std::pair<Value, Value>> &assigns) {
  auto xType = cast<RankedTensorType>(x.getType());
  Type elt = xType.getElementType();
  int64_t rank = xType.getRank();
  SmallVector<int64_t> stateShape, keptShape(rank, 1), axes;
  for (int64_t d = 0; d < rank; ++d) {
    if (d == spec.axis) {
      stateShape.push_back(xType.getDimSize(d));
      keptShape[d] = xType.getDimSize(d);
    } else {
      axes.push_back(d);
    }
  }
  auto stateType = RankedTensorType::get(stateShape, elt);
  FailureOr<Value> oldMin = addState(module, func, (name + ".observer_min").str(),
                                     stateType);
  if (failed(oldMin))
    return failure();
  FailureOr<Value> oldMax = addState(module, func, (name + ".observer_max").str(),
                                     stateType);
  if (failed(oldMax))
    return failure();

  TensorBuilder m(*builder, loc);
  // The observation: this batch's range, moved into the running one
  // (MovingAverageMinMaxObserver.forward).
  auto observe = [&](Value current, Value old) {
    Value moved = m.add(old, m.mul(m.sub(current, old), averaging));
    Value updated = m.where(first, current, moved);
    return live ? m.where(live, updated, old) : updated;
  };
  Value curMin = ReduceMinOp::create(m.b, stateType, x, axes, false);
  Value curMax = ReduceMaxOp::create(m.b, stateType, x, axes, false);
  Value newMin = observe(curMin, *oldMin);
  Value newMax = observe(curMax, *oldMax);
  assigns.push_back({*oldMin, newMin});
  assigns.push_back({*oldMax, newMax});

  // The scale and zero point (ObserverBase._calculate_qparams).
  auto qmin = static_cast<double>(spec.quantMin);
  auto qmax = static_cast<double>(spec.quantMax);
  Value zero = m.scalar(elt, 0.0);
  Value eps = m.scalar(elt, std::numeric_limits<float>::epsilon());
  Value minNeg = m.min(newMin, zero), maxPos = m.max(newMax, zero);
  Value scale, zeroPoint;
  if (spec.symmetric) {
    scale = m.div(m.max(m.neg(minNeg), maxPos), m.scalar(elt, (qmax - qmin) / 2));
    scale = m.max(scale, eps);
    zeroPoint = m.zerosLike(scale);
  } else {
    scale = m.div(m.sub(maxPos, minNeg), m.scalar(elt, qmax - qmin));
    scale = m.max(scale, eps);
    zeroPoint = m.sub(m.scalar(elt, qmin), m.roundHalfEven(m.div(minNeg, scale)));
    zeroPoint = m.min(m.max(zeroPoint, m.scalar(elt, qmin)), m.scalar(elt, qmax));
  }
  if (spec.axis >= 0) {
    auto kept = RankedTensorType::get(keptShape, elt);
    scale = m.reshape(scale, kept);
    zeroPoint = m.reshape(zeroPoint, kept);
  }
  return Value(FakeQuantOp::create(m.b, xType, x, scale, zeroPoint,
                                   static_cast<uint64_t>(spec.quantMin),
                                   static_cast<uint64_t>(spec.quantMax)));
}

/// One-dimensional k-means (Lloyd's algorithm) of `values` into `k`
/// clusters, from centroids spread linearly over [min, max] (linear
/// initialization, which Han et al.'s Deep Compression found best: the
/// few large weights keep centroids of their own), until no assignment
/// changes or 300 rounds. Ties go to the lower centroid; sums run in index
/// order, so the result is the same on every machine.
static void kmeans1d(ArrayRef<double> values, int64_t k,
                     std::vector<double> &centroids,
                     std::vector<int32_t> &codes) {
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  centroids.resize(k);
  for (int64_t j = 0; j < k; ++j)
    centroids[j] =
        *lo + (*hi - *lo) * static_cast<double>(j) / static_cast<double>(k - 1);
  codes.assign(values.size(), -1);
  for (int round = 0;; ++round) {
    bool changed = false;
    for (size_t i = 0; i < values.size(); ++i) {
      double v = values[i];
      auto at = std::lower_bound(centroids.begin(), centroids.end(), v);
      int32_t j = static_cast<int32_t>(at - centroids.begin());
      if (j == k || (j > 0 && v - centroids[j - 1] <= centroids[j] - v))
        --j;
      changed |= codes[i] != j;
      codes[i] = j;
    }
    if (!changed || round == 300)
      return;
    std::vector<double> sum(k, 0.0);
    std::vector<int64_t> count(k, 0);
    for (size_t i = 0; i < values.size(); ++i)
      sum[codes[i]] += values[i], ++count[codes[i]];
    for (int64_t j = 0; j < k; ++j)
      if (count[j])
        centroids[j] = sum[j] / static_cast<double>(count[j]);
    // An empty cluster keeps its place; keep the centroids sorted for the
    // search (the next round reassigns every value).
    std::sort(centroids.begin(), centroids.end());
  }
}

/// The weights that weight sharing and log quantization made state: each
/// (state, value) stored before `func`'s return, marked trainopt.derived
/// (a function of parameters, which inference computes anew), and their
/// records in module attribute `attr`.
static void storeDerived(ModuleOp module, func::FuncOp func,
                         ArrayRef<std::pair<Value, Value>> assigns,
                         StringRef attr, ArrayRef<Attribute> records) {
  OpBuilder b(func.getBody().front().getTerminator());
  for (auto [state, value] : assigns)
    AssignOp::create(b, func.getLoc(), state, value)
        ->setAttr(kDerivedAttrName, b.getUnitAttr());
  module->setAttr(attr, b.getArrayAttr(records));
}

LogicalResult TrainoptQuantizePass::shareWeights(
    ModuleOp module, func::FuncOp func,
    ArrayRef<std::pair<Value, StringAttr>> weights) {
  OpBuilder b(&getContext());
  Block &body = func.getBody().front();
  SmallVector<std::pair<Value, Value>> assigns;
  SmallVector<Attribute> records;
  for (auto [w, name] : weights) {
    auto param = module.lookupSymbol<ParameterOp>(name);
    auto type = cast<RankedTensorType>(w.getType());
    Type elt = type.getElementType();
    if (!param.getInitialValueAttr())
      return func.emitError()
             << "--quantize=" << quantize << ": weight '" << name.getValue()
             << "' has no initial values to cluster";
    llvm::Expected<HostTensor> initial =
        tensorFromAttr(param.getInitialValueAttr());
    if (!initial)
      return func.emitError()
             << "--quantize=" << quantize << ": weight '" << name.getValue()
             << "': " << llvm::toString(initial.takeError());
    std::vector<double> centroids;
    std::vector<int32_t> codes;
    kmeans1d(initial->floats, clusters, centroids, codes);
    // The codebook in the weight's type; the weight's value decoded from it.
    SmallVector<APFloat> book, decoded;
    for (double c : centroids)
      book.push_back(cast<FloatAttr>(b.getFloatAttr(elt, c)).getValue());
    for (int32_t j : codes)
      decoded.push_back(book[j]);
    auto bookType = RankedTensorType::get({clusters}, elt);
    FailureOr<BlockArgument> codebook = addModelState(
        module, func, (name.getValue() + ".codebook").str(),
        DenseElementsAttr::get(bookType, book), "quantize", /*trainable=*/true);
    if (failed(codebook))
      return failure();
    FailureOr<BlockArgument> indices = addModelState(
        module, func, (name.getValue() + ".codes").str(),
        DenseElementsAttr::get(type.clone(b.getI32Type()), ArrayRef(codes)),
        "quantize");
    if (failed(indices))
      return failure();
    // The weight becomes state: the shared values, stored back every step
    // (so checkpoints, --save-params and the export hold them).
    param.setTrainable(false);
    param.setInitialValueAttr(DenseElementsAttr::get(type, decoded));
    b.setInsertionPointToStart(&body);
    Value shared = GatherOp::create(b, w.getLoc(), *codebook, *indices, 0);
    w.replaceAllUsesWith(shared);
    assigns.push_back({w, shared});
    records.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("weight", name),
         b.getNamedAttr("codebook",
                        b.getStringAttr(name.getValue() + ".codebook")),
         b.getNamedAttr("clusters", b.getI64IntegerAttr(clusters))}));
  }
  storeDerived(module, func, assigns, TrainoptDialect::kWeightSharingAttrName,
               records);
  return success();
}

/// The power-of-two level of `v` (`log:BITS`): the sign of v times
/// 2^round(log2 |v|), the exponent at most `hi`; 0 below 2^lo. log2 is
/// log(x) * (1 / ln 2) and round is half to even, as the model computes
/// them (logQuantize).
static double logLevel(double v, double hi, double lo) {
  double k = std::nearbyint(std::log(std::fabs(v)) * (1.0 / std::log(2.0)));
  if (!(k >= lo))
    return 0.0;
  return std::copysign(std::pow(2.0, std::min(k, hi)), v);
}

LogicalResult TrainoptQuantizePass::logQuantize(ModuleOp module,
                                                func::FuncOp func,
                                                ArrayRef<Weight> weights) {
  OpBuilder b(&getContext());
  Block &body = func.getBody().front();
  SmallVector<std::pair<Value, Value>> assigns;
  SmallVector<Attribute> records;
  // Exponents hi - span .. hi and zero: 2 (span + 1) + 1 = 2^BITS - 1 values
  // with the sign.
  double span = static_cast<double>((int64_t{1} << (logBits - 1)) - 2);
  double invLn2 = 1.0 / std::log(2.0);
  for (const Weight &w : weights) {
    auto param = module.lookupSymbol<ParameterOp>(w.name);
    auto type = cast<RankedTensorType>(w.value.getType());
    Type elt = type.getElementType();
    int64_t axis = granularity == "per-channel" ? w.channelAxis : -1;
    if (!param.getInitialValueAttr())
      return func.emitError() << "--quantize=" << quantize << ": weight '"
                              << w.name.getValue() << "' has no initial values";
    llvm::Expected<HostTensor> initial =
        tensorFromAttr(param.getInitialValueAttr());
    if (!initial)
      return func.emitError()
             << "--quantize=" << quantize << ": weight '" << w.name.getValue()
             << "': " << llvm::toString(initial.takeError());
    // The latent weight the optimizer trains: the initial values.
    FailureOr<BlockArgument> latent =
        addModelState(module, func, (w.name.getValue() + ".latent").str(),
                      param.getInitialValueAttr(), "quantize",
                      /*trainable=*/true);
    if (failed(latent))
      return failure();
    // The weight becomes state holding its levels (for checkpoints,
    // --save-params and the export), starting at those of its initial
    // values.
    ArrayRef<int64_t> shape = type.getShape();
    int64_t inner = 1, channels = axis < 0 ? 1 : shape[axis];
    for (int64_t d = axis + 1; axis >= 0 && d < type.getRank(); ++d)
      inner *= shape[d];
    std::vector<double> top(channels, 0.0);
    const std::vector<double> &v = initial->floats;
    auto channelOf = [&](size_t i) {
      return axis < 0 ? 0 : static_cast<int64_t>(i / inner) % channels;
    };
    for (size_t i = 0; i < v.size(); ++i)
      top[channelOf(i)] = std::max(top[channelOf(i)], std::fabs(v[i]));
    SmallVector<APFloat> levels;
    for (size_t i = 0; i < v.size(); ++i) {
      double hi = std::nearbyint(std::log(top[channelOf(i)]) * invLn2);
      levels.push_back(
          cast<FloatAttr>(b.getFloatAttr(elt, logLevel(v[i], hi, hi - span)))
              .getValue());
    }
    param.setTrainable(false);
    param.setInitialValueAttr(DenseElementsAttr::get(type, levels));

    // In the model: q = sign(l) 2^min(k, hi) where k >= hi - span, else 0,
    // with k = round(log2 |l|) and hi that of the largest |l| (per channel
    // or tensor); the weight read is q + (l - stop(l)), whose value is q
    // and whose gradient is the latent's (the straight-through estimator).
    b.setInsertionPointToStart(&body);
    TensorBuilder m(b, param.getLoc());
    Value l = *latent;
    Value a = AbsOp::create(m.b, type, l);
    SmallVector<int64_t> axes;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (d != axis)
        axes.push_back(d);
    SmallVector<int64_t> kept(shape);
    for (int64_t d : axes)
      kept[d] = 1;
    Value top2 =
        ReduceMaxOp::create(m.b, type.clone(kept), a, axes, /*keepdims=*/true);
    auto log2 = [&](Value x) {
      return m.roundHalfEven(m.mul(LogOp::create(m.b, x.getType(), x), invLn2));
    };
    Value hi = log2(top2);
    Value k = log2(a);
    Value keep = m.greaterEqual(k, m.broadcast(m.add(hi, -span), type));
    Value level = m.mul(m.sign(l), m.pow(m.broadcast(m.scalar(elt, 2.0), type),
                                         m.min(k, m.broadcast(hi, type))));
    auto q = WhereOp::create(m.b, keep, level, m.zerosLike(l));
    Value stopped = m.mul(l, 1.0);
    q->setAttr(kStopGradientAttrName, b.getUnitAttr());
    stopped.getDefiningOp()->setAttr(kStopGradientAttrName, b.getUnitAttr());
    Value read = m.add(q, m.sub(l, stopped));
    Value weight = w.value;
    weight.replaceAllUsesWith(read);
    assigns.push_back({weight, q});
    records.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("weight", w.name),
         b.getNamedAttr("latent",
                        b.getStringAttr(w.name.getValue() + ".latent")),
         b.getNamedAttr("bits", b.getI64IntegerAttr(logBits)),
         b.getNamedAttr("axis", b.getI64IntegerAttr(axis))}));
  }
  storeDerived(module, func, assigns, TrainoptDialect::kLogQuantizationAttrName,
               records);
  return success();
}

void TrainoptQuantizePass::runOnOperation() {
  ModuleOp module = getOperation();
  if (failed(validate(module)))
    return signalPassFailure();
  if (quantize == "off")
    return;
  auto func = module.lookupSymbol<func::FuncOp>(funcName);
  if (!func || func.isExternal()) {
    module.emitError() << getArgument() << ": no function @" << funcName;
    return signalPassFailure();
  }
  if (module.lookupSymbol(kObservationsName)) {
    func.emitError() << "--quantize: the model is already quantized (it has "
                        "a parameter @"
                     << kObservationsName << ")";
    return signalPassFailure();
  }
  int bits = quantize == "int8" ? 8 : 4;
  int weightBits = bits - (reduceRange ? 1 : 0);
  QuantSpec weightSpec{-(int64_t{1} << (weightBits - 1)),
                       (int64_t{1} << (weightBits - 1)) - 1,
                       weightScheme == "symmetric", -1};
  QuantSpec activationSpec{0, (int64_t{1} << bits) - 1, false, -1};
  SmallVector<llvm::GlobPattern> excluded;
  for (const std::string &p : exclude)
    excluded.push_back(*llvm::GlobPattern::create(p));

  auto weightName = [&](Value v) {
    return trainableParameterOf(module, func, v);
  };

  // The ops to quantize: the operand that reads the weight (the op's own,
  // or that of a transpose only it reads, as PyTorch exports a Linear on a
  // 3-d input), the weight's name and its output-channel axis.
  struct Site {
    Operation *op;
    OpOperand *weightUse;
    StringAttr weight;
    int64_t channelAxis;
  };
  SmallVector<Site> sites;
  func.walk([&](Operation *op) {
    std::optional<WeightUse> use = weightUseOf(op);
    if (!use)
      return;
    StringAttr name = weightName(use->operand->get());
    if (!name || llvm::any_of(excluded, [&](const llvm::GlobPattern &g) {
          return g.match(name.getValue());
        }))
      return;
    sites.push_back({op, use->operand, name, use->channelAxis});
  });
  if (sites.empty()) {
    func.emitError() << "--quantize: the model has no convolution or matmul "
                        "with a trainable weight to quantize";
    return signalPassFailure();
  }
  if (logBits) {
    SmallVector<Weight> weights;
    for (const Site &site : sites)
      if (llvm::none_of(weights, [&](const Weight &w) {
            return w.value == site.weightUse->get();
          }))
        weights.push_back(
            {site.weightUse->get(), site.weight, site.channelAxis});
    if (failed(logQuantize(module, func, weights)))
      return signalPassFailure();
    return;
  }
  if (clusters) {
    SmallVector<std::pair<Value, StringAttr>> weights;
    for (const Site &site : sites)
      if (llvm::none_of(weights, [&](auto &w) {
            return w.first == site.weightUse->get();
          }))
        weights.push_back({site.weightUse->get(), site.weight});
    if (failed(shareWeights(module, func, weights)))
      return signalPassFailure();
    return;
  }

  OpBuilder b(&getContext());
  builder = &b;
  b.setInsertionPointToStart(&func.getBody().front());
  auto i64 = RankedTensorType::get({}, b.getI64Type());
  FailureOr<Value> count = addState(module, func, kObservationsName, i64);
  if (failed(count))
    return signalPassFailure();
  observations = *count;
  {
    TensorBuilder m(b, func.getLoc());
    first = m.equal(observations, m.scalar(i64.getElementType(), 0));
    live = freezeStep > 0
               ? m.less(observations,
                        m.scalar(i64.getElementType(),
                                 static_cast<double>(freezeStep)))
               : Value();
  }

  SmallVector<std::pair<Value, Value>> assigns;
  DenseMap<Value, Value> quantized;
  // What the QDQ export needs (artifact.proto's QuantizedTensor).
  SmallVector<Attribute> points;
  // Each fake-quantized activation's point (the name of its observer).
  DenseMap<Value, std::string> pointOf;
  auto record = [&](StringRef point, StringAttr weight, bool input,
                    const QuantSpec &spec, bool output = false) {
    points.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("point", b.getStringAttr(point)),
         b.getNamedAttr("weight", weight),
         b.getNamedAttr("input", b.getBoolAttr(input)),
         b.getNamedAttr("output", b.getBoolAttr(output)),
         b.getNamedAttr("axis", b.getI64IntegerAttr(spec.axis)),
         b.getNamedAttr("quant_min", b.getI64IntegerAttr(spec.quantMin)),
         b.getNamedAttr("quant_max", b.getI64IntegerAttr(spec.quantMax)),
         b.getNamedAttr("symmetric", b.getBoolAttr(spec.symmetric))}));
  };
  for (const Site &site : sites) {
    b.setInsertionPoint(site.weightUse->getOwner());
    Value w = site.weightUse->get();
    Value &wq = quantized[w];
    if (!wq) {
      QuantSpec spec = weightSpec;
      spec.axis = granularity == "per-channel" ? site.channelAxis : -1;
      FailureOr<Value> q = quantizeValue(module, func, w, spec,
                                         site.weight.getValue(),
                                         site.op->getLoc(), assigns);
      if (failed(q))
        return signalPassFailure();
      wq = *q;
      record(site.weight.getValue(), site.weight, false, spec);
    }
    site.weightUse->set(wq);
    if (!activations)
      continue;
    // The input: its own point, or that of the quantized value it comes
    // from through ops that keep values on the grid.
    b.setInsertionPoint(site.op);
    Value x = site.op->getOperand(0);
    if (!TensorBuilder::isFloatTensor(x.getType()))
      continue;
    Value source = x;
    while (!pointOf.count(source) && source.getDefiningOp() &&
           isa<MaxPoolOp, ReshapeOp, ReluOp, SliceOp, TransposeOp>(
               source.getDefiningOp()))
      source = source.getDefiningOp()->getOperand(0);
    if (auto it = pointOf.find(source); it != pointOf.end()) {
      record(it->second, site.weight, /*input=*/true, activationSpec);
    } else if (!x.getDefiningOp<FakeQuantOp>()) {
      Value &xq = quantized[x];
      if (!xq) {
        std::string point = (site.weight.getValue() + ":input").str();
        FailureOr<Value> q = quantizeValue(module, func, x, activationSpec,
                                           point, site.op->getLoc(), assigns);
        if (failed(q))
          return signalPassFailure();
        xq = *q;
        pointOf[xq] = point;
      }
      record(pointOf.lookup(xq), site.weight, /*input=*/true, activationSpec);
      site.op->setOperand(0, xq);
    }
    if (!outputs)
      continue;
    // The output, after a matmul's bias and a ReLU only it feeds, for every
    // reader; not one a BatchNorm reads, nor one the model returns (the
    // logits stay in float).
    Value y = site.op->getResult(0);
    auto only = [](Value v) -> Operation * {
      return v.hasOneUse() ? *v.getUsers().begin() : nullptr;
    };
    if (auto add = dyn_cast_or_null<AddOp>(only(y));
        add && isa<MatmulOp>(site.op) &&
        isa<BlockArgument>(add.getRhs() == y ? add.getLhs() : add.getRhs()))
      y = add.getResult();
    if (auto relu = dyn_cast_or_null<ReluOp>(only(y)))
      y = relu.getResult();
    if (llvm::any_of(y.getUsers(), [](Operation *user) {
          return isa<BatchNormTrainOp, BatchNormInferenceOp, func::ReturnOp>(
              user);
        }))
      continue;
    SmallVector<OpOperand *> readers;
    for (OpOperand &use : y.getUses())
      readers.push_back(&use);
    b.setInsertionPointAfterValue(y);
    std::string point = (site.weight.getValue() + ":output").str();
    FailureOr<Value> yq = quantizeValue(module, func, y, activationSpec, point,
                                        site.op->getLoc(), assigns);
    if (failed(yq))
      return signalPassFailure();
    for (OpOperand *use : readers)
      use->set(*yq);
    pointOf[*yq] = point;
    record(point, site.weight, /*input=*/false, activationSpec,
           /*output=*/true);
  }

  // The observers' updates, before the return.
  Operation *ret = func.getBody().front().getTerminator();
  b.setInsertionPoint(ret);
  TensorBuilder m(b, func.getLoc());
  for (auto [state, value] : assigns)
    AssignOp::create(b, func.getLoc(), state, value);
  AssignOp::create(b, func.getLoc(), observations,
                   m.add(observations, m.scalar(i64.getElementType(), 1)));
  module->setAttr(TrainoptDialect::kQuantizationAttrName, b.getArrayAttr(points));
}

std::vector<TrainingOption> mlir::trainopt::stage_options::quantizeOptions() {
  TrainoptQuantizePass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}

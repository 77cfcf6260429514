//===- Evaluator.cpp - reference evaluator of the trainopt dialect --------===//
//
/// \file
/// Every op is a direct loop nest over its definition in the op's ODS
/// description: computed in double, rounded to the result element type.
/// Integer elements are int64 values; integer arithmetic through doubles is
/// exact below 2^53, which covers shapes, labels and indices.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Evaluator/Evaluator.h"

#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"
#include "trainopt/Support/Random.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

using namespace mlir;
using namespace mlir::trainopt;

namespace {

using Index = SmallVector<int64_t>;

SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

Index unravel(int64_t linear, ArrayRef<int64_t> shape) {
  Index idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] ? linear % shape[d] : 0;
    linear = shape[d] ? linear / shape[d] : 0;
  }
  return idx;
}

int64_t ravel(ArrayRef<int64_t> idx, ArrayRef<int64_t> shape) {
  int64_t linear = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    linear = linear * shape[d] + idx[d];
  return linear;
}

/// Linear index into `shape` of the element that broadcasts to `idx` of a
/// larger result (trailing dims aligned, size-1 dims repeated).
int64_t broadcastIndex(ArrayRef<int64_t> idx, ArrayRef<int64_t> shape) {
  size_t offset = idx.size() - shape.size();
  int64_t linear = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    linear = linear * shape[d] + (shape[d] == 1 ? 0 : idx[offset + d]);
  return linear;
}

/// Where kernel tap `kidx` of the window of output element `out`
/// ([N, C, o...]) reads an input of `inputShape`, for input channel
/// `channel`: the input index, whether it is inside the input, and whether
/// it is inside the padded extent (for count_include_pad).
struct Tap {
  Index index;
  bool inside = true, inPadded = true;
};
Tap windowTap(ArrayRef<int64_t> out, int64_t channel, ArrayRef<int64_t> kidx,
              ArrayRef<int64_t> strides, ArrayRef<int64_t> dilations,
              ArrayRef<int64_t> padding, ArrayRef<int64_t> inputShape) {
  int64_t n = kidx.size();
  Tap t;
  t.index = {out[0], channel};
  for (int64_t d = 0; d < n; ++d) {
    int64_t pos = out[d + 2] * strides[d] + kidx[d] * dilations[d] - padding[d];
    t.inside &= pos >= 0 && pos < inputShape[d + 2];
    t.inPadded &= pos < inputShape[d + 2] + padding[d + n];
    t.index.push_back(pos);
  }
  return t;
}

HostTensor like(Value result) {
  return HostTensor::zeros(cast<RankedTensorType>(result.getType()));
}

double gelu(double x, GeluApproximation kind) {
  if (kind == GeluApproximation::tanh)
    return 0.5 * x *
           (1.0 +
            std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

class Interpreter {
public:
  explicit Interpreter(ModuleOp module) : module(module) {}

  FailureOr<SmallVector<HostTensor>> call(func::FuncOp func,
                                          ArrayRef<HostTensor> args);

private:
  LogicalResult evaluate(Operation *op);
  const HostTensor &get(Value v) { return env.find(v)->second; }
  void bind(Value v, HostTensor t) { env[v] = std::move(t); }

  LogicalResult unary(Operation *op, llvm::function_ref<double(double)> fn);
  LogicalResult binary(Operation *op,
                       llvm::function_ref<double(double, double)> fn);
  LogicalResult reduce(Operation *op, ArrayRef<int64_t> axes, bool keepdims,
                       double init,
                       llvm::function_ref<double(double, double)> combine,
                       bool mean);
  LogicalResult matmul(MatmulOp op);
  LogicalResult conv(ConvOp op);
  LogicalResult pool(Operation *op, bool isMax);
  LogicalResult convGrad(Operation *op, bool wrtInput);
  LogicalResult poolGrad(Operation *op, bool isMax);
  LogicalResult batchNorm(Operation *op, bool train);
  LogicalResult layerNorm(LayerNormOp op);
  LogicalResult softmax(Operation *op, int64_t axis, bool log);
  LogicalResult labelLoss(Operation *op, Value scores, Value labels,
                          Value weight, int64_t classAxis, Reduction reduction,
                          std::optional<int64_t> ignoreIndex, double smoothing,
                          bool fromLogits);

  ModuleOp module;
  /// Node-based, so references from get() stay valid while results of the
  /// same op are bound (a DenseMap would move its elements when it grows).
  struct ValueHash {
    size_t operator()(Value v) const { return hash_value(v); }
  };
  std::unordered_map<Value, HostTensor, ValueHash> env;
};

} // namespace

FailureOr<SmallVector<HostTensor>>
Interpreter::call(func::FuncOp func, ArrayRef<HostTensor> args) {
  Block &body = func.getBody().front();
  if (args.size() != body.getNumArguments())
    return func.emitError() << "expects " << body.getNumArguments()
                            << " arguments, got " << args.size();
  for (auto [arg, value] : llvm::zip(body.getArguments(), args)) {
    if (value.getType() != arg.getType())
      return func.emitError()
             << "argument " << arg.getArgNumber() << " has type "
             << arg.getType() << ", got a value of type " << value.getType();
    bind(arg, value);
  }
  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      SmallVector<HostTensor> results;
      for (Value v : ret.getOperands())
        results.push_back(get(v));
      return results;
    }
    if (failed(evaluate(&op)))
      return failure();
  }
  return func.emitError() << "has no return";
}

LogicalResult Interpreter::unary(Operation *op,
                                 llvm::function_ref<double(double)> fn) {
  const HostTensor &x = get(op->getOperand(0));
  HostTensor y = like(op->getResult(0));
  for (int64_t i = 0, e = y.numElements(); i < e; ++i)
    y.set(i, fn(x.at(i)));
  bind(op->getResult(0), std::move(y));
  return success();
}

LogicalResult
Interpreter::binary(Operation *op,
                    llvm::function_ref<double(double, double)> fn) {
  const HostTensor &a = get(op->getOperand(0));
  const HostTensor &b = get(op->getOperand(1));
  HostTensor y = like(op->getResult(0));
  for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
    Index idx = unravel(i, y.shape);
    y.set(i, fn(a.at(broadcastIndex(idx, a.shape)),
                b.at(broadcastIndex(idx, b.shape))));
  }
  bind(op->getResult(0), std::move(y));
  return success();
}

LogicalResult Interpreter::reduce(
    Operation *op, ArrayRef<int64_t> axesIn, bool keepdims, double init,
    llvm::function_ref<double(double, double)> combine, bool mean) {
  const HostTensor &x = get(op->getOperand(0));
  SmallVector<int64_t> axes = expandReducedAxes(axesIn, x.shape.size());
  HostTensor y = like(op->getResult(0));
  std::vector<double> acc(y.numElements(), init);
  std::vector<int64_t> count(y.numElements(), 0);
  for (int64_t i = 0, e = x.numElements(); i < e; ++i) {
    Index idx = unravel(i, x.shape);
    Index out;
    for (size_t d = 0; d < idx.size(); ++d) {
      if (!llvm::is_contained(axes, static_cast<int64_t>(d)))
        out.push_back(idx[d]);
      else if (keepdims)
        out.push_back(0);
    }
    int64_t o = ravel(out, y.shape);
    acc[o] = combine(acc[o], x.at(i));
    ++count[o];
  }
  for (int64_t o = 0, e = y.numElements(); o < e; ++o)
    y.set(o, mean ? acc[o] / count[o] : acc[o]);
  bind(op->getResult(0), std::move(y));
  return success();
}

LogicalResult Interpreter::matmul(MatmulOp op) {
  const HostTensor &a = get(op.getLhs()), &b = get(op.getRhs());
  HostTensor y = like(op.getResult());
  int64_t ar = a.shape.size(), br = b.shape.size(), yr = y.shape.size();
  bool ta = op.getTransposeLhs(), tb = op.getTransposeRhs();
  int64_t k = ta ? a.shape[ar - 2] : a.shape[ar - 1];
  ArrayRef<int64_t> aBatch = ArrayRef<int64_t>(a.shape).drop_back(2);
  ArrayRef<int64_t> bBatch = ArrayRef<int64_t>(b.shape).drop_back(2);
  SmallVector<int64_t> aMat(a.shape.end() - 2, a.shape.end());
  SmallVector<int64_t> bMat(b.shape.end() - 2, b.shape.end());
  for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
    Index idx = unravel(i, y.shape);
    ArrayRef<int64_t> batch = ArrayRef<int64_t>(idx).drop_back(2);
    int64_t m = idx[yr - 2], n = idx[yr - 1];
    int64_t aBase = broadcastIndex(batch, aBatch) * aMat[0] * aMat[1];
    int64_t bBase = broadcastIndex(batch, bBatch) * bMat[0] * bMat[1];
    double sum = 0.0;
    for (int64_t kk = 0; kk < k; ++kk) {
      double av = a.at(aBase + (ta ? kk * aMat[1] + m : m * aMat[1] + kk));
      double bv = b.at(bBase + (tb ? n * bMat[1] + kk : kk * bMat[1] + n));
      sum += av * bv;
    }
    y.set(i, sum);
  }
  (void)br;
  bind(op.getResult(), std::move(y));
  return success();
}

LogicalResult Interpreter::conv(ConvOp op) {
  const HostTensor &x = get(op.getInput()), &w = get(op.getFilter());
  HostTensor y = like(op.getResult());
  int64_t groups = op.getGroups();
  int64_t cinPerGroup = w.shape[1], coutPerGroup = w.shape[0] / groups;
  ArrayRef<int64_t> kernel = ArrayRef<int64_t>(w.shape).drop_front(2);
  int64_t kernelSize = 1;
  for (int64_t k : kernel)
    kernelSize *= k;
  for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
    Index idx = unravel(i, y.shape);
    int64_t f = idx[1], g = f / coutPerGroup;
    double sum = op.getBias() ? get(op.getBias()).at(f) : 0.0;
    for (int64_t c = 0; c < cinPerGroup; ++c) {
      for (int64_t kl = 0; kl < kernelSize; ++kl) {
        Index kidx = unravel(kl, kernel);
        Tap tap = windowTap(idx, g * cinPerGroup + c, kidx, op.getStrides(),
                            op.getDilations(), op.getPadding(), x.shape);
        if (!tap.inside)
          continue;
        Index widx{f, c};
        widx.append(kidx.begin(), kidx.end());
        sum += x.at(ravel(tap.index, x.shape)) * w.at(ravel(widx, w.shape));
      }
    }
    y.set(i, sum);
  }
  bind(op.getResult(), std::move(y));
  return success();
}

LogicalResult Interpreter::pool(Operation *op, bool isMax) {
  ArrayRef<int64_t> kernel, strides, padding, dilations;
  bool includePad = false;
  if (auto m = dyn_cast<MaxPoolOp>(op)) {
    kernel = m.getKernelShape(), strides = m.getStrides(),
    padding = m.getPadding(), dilations = m.getDilations();
  } else {
    auto a = cast<AvgPoolOp>(op);
    kernel = a.getKernelShape(), strides = a.getStrides(),
    padding = a.getPadding(), dilations = a.getDilations();
    includePad = a.getCountIncludePad();
  }
  const HostTensor &x = get(op->getOperand(0));
  HostTensor y = like(op->getResult(0));
  int64_t kernelSize = 1;
  for (int64_t k : kernel)
    kernelSize *= k;
  for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
    Index idx = unravel(i, y.shape);
    double acc = isMax ? -std::numeric_limits<double>::infinity() : 0.0;
    int64_t count = 0;
    for (int64_t kl = 0; kl < kernelSize; ++kl) {
      Tap tap = windowTap(idx, idx[1], unravel(kl, kernel), strides, dilations,
                          padding, x.shape);
      if (tap.inside) {
        double v = x.at(ravel(tap.index, x.shape));
        acc = isMax ? std::max(acc, v) : acc + v;
        ++count;
      } else if (includePad && tap.inPadded) {
        ++count;
      }
    }
    y.set(i, isMax ? acc : acc / std::max<int64_t>(count, 1));
  }
  bind(op->getResult(0), std::move(y));
  return success();
}

/// The gradients of conv by their definition: every (output, kernel tap)
/// pair of the forward loop nest contributes dy * w to dx and dy * x to dw.
LogicalResult Interpreter::convGrad(Operation *op, bool wrtInput) {
  ArrayRef<int64_t> strides, padding, dilations;
  int64_t groups;
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  if (auto o = dyn_cast<ConvGradInputOp>(op))
    strides = o.getStrides(), padding = o.getPadding(),
    dilations = o.getDilations(), groups = o.getGroups();
  else {
    auto f = cast<ConvGradFilterOp>(op);
    strides = f.getStrides(), padding = f.getPadding(),
    dilations = f.getDilations(), groups = f.getGroups();
  }
  HostTensor result = like(op->getResult(0));
  const HostTensor &dy = get(rhs);
  const HostTensor *x = wrtInput ? nullptr : &get(lhs);
  const HostTensor *w = wrtInput ? &get(lhs) : nullptr;
  ArrayRef<int64_t> xShape =
      wrtInput ? ArrayRef<int64_t>(result.shape) : ArrayRef<int64_t>(x->shape);
  ArrayRef<int64_t> wShape =
      wrtInput ? ArrayRef<int64_t>(w->shape) : ArrayRef<int64_t>(result.shape);
  int64_t cinPerGroup = wShape[1], coutPerGroup = wShape[0] / groups;
  ArrayRef<int64_t> kernel = wShape.drop_front(2);
  int64_t kernelSize = 1;
  for (int64_t k : kernel)
    kernelSize *= k;
  std::vector<double> acc(result.numElements(), 0.0);
  for (int64_t i = 0, e = dy.numElements(); i < e; ++i) {
    Index idx = unravel(i, dy.shape);
    int64_t f = idx[1], g = f / coutPerGroup;
    for (int64_t c = 0; c < cinPerGroup; ++c) {
      for (int64_t kl = 0; kl < kernelSize; ++kl) {
        Index kidx = unravel(kl, kernel);
        Tap tap = windowTap(idx, g * cinPerGroup + c, kidx, strides, dilations,
                            padding, xShape);
        if (!tap.inside)
          continue;
        Index widx{f, c};
        widx.append(kidx.begin(), kidx.end());
        if (wrtInput)
          acc[ravel(tap.index, xShape)] +=
              dy.at(i) * w->at(ravel(widx, wShape));
        else
          acc[ravel(widx, wShape)] +=
              dy.at(i) * x->at(ravel(tap.index, xShape));
      }
    }
  }
  for (int64_t i = 0, e = result.numElements(); i < e; ++i)
    result.set(i, acc[i]);
  bind(op->getResult(0), std::move(result));
  return success();
}

/// The gradients of the pools by their definition: max routes each output
/// cotangent to the first maximum of its window, avg spreads it evenly.
LogicalResult Interpreter::poolGrad(Operation *op, bool isMax) {
  ArrayRef<int64_t> kernel, strides, padding, dilations;
  bool includePad = false;
  const HostTensor *x = nullptr;
  Value grad;
  if (auto m = dyn_cast<MaxPoolGradOp>(op)) {
    kernel = m.getKernelShape(), strides = m.getStrides(),
    padding = m.getPadding(), dilations = m.getDilations();
    x = &get(m.getInput());
    grad = m.getGrad();
  } else {
    auto a = cast<AvgPoolGradOp>(op);
    kernel = a.getKernelShape(), strides = a.getStrides(),
    padding = a.getPadding(), dilations = a.getDilations();
    includePad = a.getCountIncludePad();
    grad = a.getGrad();
  }
  const HostTensor &dy = get(grad);
  HostTensor result = like(op->getResult(0));
  std::vector<double> acc(result.numElements(), 0.0);
  int64_t kernelSize = 1;
  for (int64_t k : kernel)
    kernelSize *= k;
  for (int64_t i = 0, e = dy.numElements(); i < e; ++i) {
    Index idx = unravel(i, dy.shape);
    SmallVector<int64_t> positions;
    int64_t count = 0, best = -1;
    for (int64_t kl = 0; kl < kernelSize; ++kl) {
      Tap tap = windowTap(idx, idx[1], unravel(kl, kernel), strides, dilations,
                          padding, result.shape);
      if (tap.inside) {
        int64_t linear = ravel(tap.index, result.shape);
        positions.push_back(linear);
        ++count;
        if (isMax && (best < 0 || x->at(linear) > x->at(best)))
          best = linear;
      } else if (includePad && tap.inPadded) {
        ++count;
      }
    }
    if (isMax) {
      if (best >= 0)
        acc[best] += dy.at(i);
    } else {
      for (int64_t p : positions)
        acc[p] += dy.at(i) / std::max<int64_t>(count, 1);
    }
  }
  for (int64_t i = 0, e = result.numElements(); i < e; ++i)
    result.set(i, acc[i]);
  bind(op->getResult(0), std::move(result));
  return success();
}

LogicalResult Interpreter::batchNorm(Operation *op, bool train) {
  const HostTensor &x = get(op->getOperand(0));
  const HostTensor &scale = get(op->getOperand(1)),
                   &bias = get(op->getOperand(2));
  const HostTensor &mean = get(op->getOperand(3)),
                   &var = get(op->getOperand(4));
  int64_t channels = x.shape[1];
  int64_t perChannel = x.numElements() / std::max<int64_t>(channels, 1);
  std::vector<double> mu(channels), sigma2(channels);
  double eps;
  if (train) {
    auto bn = cast<BatchNormTrainOp>(op);
    eps = bn.getEpsilon().convertToDouble();
    std::vector<double> sum(channels, 0.0), sq(channels, 0.0);
    for (int64_t i = 0, e = x.numElements(); i < e; ++i)
      sum[unravel(i, x.shape)[1]] += x.at(i);
    for (int64_t c = 0; c < channels; ++c)
      mu[c] = sum[c] / perChannel;
    for (int64_t i = 0, e = x.numElements(); i < e; ++i) {
      int64_t c = unravel(i, x.shape)[1];
      sq[c] += (x.at(i) - mu[c]) * (x.at(i) - mu[c]);
    }
    double momentum = bn.getMomentum().convertToDouble();
    HostTensor newMean = like(bn.getNewRunningMean());
    HostTensor newVar = like(bn.getNewRunningVar());
    for (int64_t c = 0; c < channels; ++c) {
      sigma2[c] = sq[c] / perChannel;
      double folded = bn.getUnbiasedRunningVar() && perChannel > 1
                          ? sq[c] / (perChannel - 1)
                          : sigma2[c];
      newMean.set(c, momentum * mean.at(c) + (1.0 - momentum) * mu[c]);
      newVar.set(c, momentum * var.at(c) + (1.0 - momentum) * folded);
    }
    bind(bn.getNewRunningMean(), std::move(newMean));
    bind(bn.getNewRunningVar(), std::move(newVar));
  } else {
    eps = cast<BatchNormInferenceOp>(op).getEpsilon().convertToDouble();
    for (int64_t c = 0; c < channels; ++c)
      mu[c] = mean.at(c), sigma2[c] = var.at(c);
  }
  HostTensor y = like(op->getResult(0));
  for (int64_t i = 0, e = x.numElements(); i < e; ++i) {
    int64_t c = unravel(i, x.shape)[1];
    y.set(i, scale.at(c) * (x.at(i) - mu[c]) / std::sqrt(sigma2[c] + eps) +
                 bias.at(c));
  }
  bind(op->getResult(0), std::move(y));
  return success();
}

LogicalResult Interpreter::layerNorm(LayerNormOp op) {
  const HostTensor &x = get(op.getX()), &scale = get(op.getScale());
  int64_t inner = 1;
  for (size_t d = op.getAxis(); d < x.shape.size(); ++d)
    inner *= x.shape[d];
  int64_t outer = x.numElements() / std::max<int64_t>(inner, 1);
  double eps = op.getEpsilon().convertToDouble();
  HostTensor y = like(op.getY());
  for (int64_t o = 0; o < outer; ++o) {
    double sum = 0.0, sq = 0.0;
    for (int64_t j = 0; j < inner; ++j)
      sum += x.at(o * inner + j);
    double mu = sum / inner;
    for (int64_t j = 0; j < inner; ++j)
      sq += (x.at(o * inner + j) - mu) * (x.at(o * inner + j) - mu);
    double inv = 1.0 / std::sqrt(sq / inner + eps);
    for (int64_t j = 0; j < inner; ++j) {
      double v = (x.at(o * inner + j) - mu) * inv * scale.at(j);
      if (op.getBias())
        v += get(op.getBias()).at(j);
      y.set(o * inner + j, v);
    }
  }
  bind(op.getY(), std::move(y));
  return success();
}

LogicalResult Interpreter::softmax(Operation *op, int64_t axis, bool log) {
  const HostTensor &x = get(op->getOperand(0));
  HostTensor y = like(op->getResult(0));
  int64_t dim = x.shape[axis];
  int64_t inner = stridesOf(x.shape)[axis];
  for (int64_t i = 0, e = x.numElements(); i < e; ++i) {
    if (unravel(i, x.shape)[axis] != 0)
      continue;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < dim; ++j)
      mx = std::max(mx, x.at(i + j * inner));
    double sum = 0.0;
    for (int64_t j = 0; j < dim; ++j)
      sum += std::exp(x.at(i + j * inner) - mx);
    for (int64_t j = 0; j < dim; ++j) {
      double z = x.at(i + j * inner) - mx;
      y.set(i + j * inner, log ? z - std::log(sum) : std::exp(z) / sum);
    }
  }
  bind(op->getResult(0), std::move(y));
  return success();
}

LogicalResult Interpreter::labelLoss(Operation *op, Value scoresV,
                                     Value labelsV, Value weightV,
                                     int64_t classAxis, Reduction reduction,
                                     std::optional<int64_t> ignoreIndex,
                                     double smoothing, bool fromLogits) {
  const HostTensor &scores = get(scoresV), &labels = get(labelsV);
  int64_t rank = scores.shape.size();
  int64_t axis = classAxis < 0 ? classAxis + rank : classAxis;
  int64_t classes = scores.shape[axis];
  int64_t inner = stridesOf(scores.shape)[axis];
  HostTensor perPosition = HostTensor::zeros(RankedTensorType::get(
      labels.shape,
      cast<RankedTensorType>(op->getResult(0).getType()).getElementType()));
  double total = 0.0, weightSum = 0.0;
  for (int64_t p = 0, e = labels.numElements(); p < e; ++p) {
    int64_t label = labels.ints[p];
    if (ignoreIndex && label == *ignoreIndex)
      continue;
    if (label < 0 || label >= classes)
      return op->emitError() << "label " << label << " at position " << p
                             << " is outside [0, " << classes << ")";
    // Position p of labels is the scores index with the class axis removed.
    Index lidx = unravel(p, labels.shape);
    Index sidx(lidx.begin(), lidx.end());
    sidx.insert(sidx.begin() + axis, 0);
    int64_t base = ravel(sidx, scores.shape);
    std::vector<double> logp(classes);
    if (fromLogits) {
      double mx = -std::numeric_limits<double>::infinity(), sum = 0.0;
      for (int64_t c = 0; c < classes; ++c)
        mx = std::max(mx, scores.at(base + c * inner));
      for (int64_t c = 0; c < classes; ++c)
        sum += std::exp(scores.at(base + c * inner) - mx);
      for (int64_t c = 0; c < classes; ++c)
        logp[c] = scores.at(base + c * inner) - mx - std::log(sum);
    } else {
      for (int64_t c = 0; c < classes; ++c)
        logp[c] = scores.at(base + c * inner);
    }
    double w = weightV ? get(weightV).at(label) : 1.0;
    double loss = -(1.0 - smoothing) * logp[label];
    if (smoothing != 0.0) {
      // PyTorch: the smoothing term weights every class by its own weight.
      double smooth = 0.0;
      for (int64_t c = 0; c < classes; ++c)
        smooth += (weightV ? get(weightV).at(c) : 1.0) * logp[c];
      loss = w * loss - smoothing / classes * smooth;
    } else {
      loss *= w;
    }
    perPosition.set(p, loss);
    total += loss;
    weightSum += w;
  }
  HostTensor y = like(op->getResult(0));
  if (reduction == Reduction::none)
    y = std::move(perPosition);
  else if (reduction == Reduction::sum)
    y.set(0, total);
  else
    y.set(0, weightSum == 0.0 ? std::nan("") : total / weightSum);
  bind(op->getResult(0), std::move(y));
  return success();
}

LogicalResult Interpreter::evaluate(Operation *op) {
  // Copies elements of `x` picked by `source(resultIndex)` into a result.
  auto gatherInto = [&](Value result, const HostTensor &x,
                        llvm::function_ref<int64_t(const Index &)> source) {
    HostTensor y = like(result);
    for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
      int64_t s = source(unravel(i, y.shape));
      if (y.isFloat())
        y.floats[i] = x.floats[s];
      else
        y.ints[i] = x.ints[s];
    }
    bind(result, std::move(y));
    return success();
  };
  auto isFloat = [](Value v) {
    return isa<FloatType>(cast<RankedTensorType>(v.getType()).getElementType());
  };

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](ConstantOp c) -> LogicalResult {
        llvm::Expected<HostTensor> t = tensorFromAttr(c.getValue());
        if (!t)
          return c.emitError() << llvm::toString(t.takeError());
        bind(c.getResult(), std::move(*t));
        return success();
      })
      .Case([&](NegOp o) { return unary(o, [](double x) { return -x; }); })
      .Case([&](AbsOp o) {
        return unary(o, [](double x) { return std::fabs(x); });
      })
      .Case([&](ExpOp o) {
        return unary(o, [](double x) { return std::exp(x); });
      })
      .Case([&](LogOp o) {
        return unary(o, [](double x) { return std::log(x); });
      })
      .Case([&](SqrtOp o) {
        return unary(o, [](double x) { return std::sqrt(x); });
      })
      .Case([&](RsqrtOp o) {
        return unary(o, [](double x) { return 1.0 / std::sqrt(x); });
      })
      .Case([&](ReciprocalOp o) {
        return unary(o, [](double x) { return 1.0 / x; });
      })
      .Case([&](TanhOp o) {
        return unary(o, [](double x) { return std::tanh(x); });
      })
      .Case([&](SigmoidOp o) {
        return unary(o, [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
      })
      .Case([&](ReluOp o) {
        // NaN propagates, as in PyTorch.
        return unary(
            o, [](double x) { return x > 0.0 || std::isnan(x) ? x : 0.0; });
      })
      .Case([&](ErfOp o) {
        return unary(o, [](double x) { return std::erf(x); });
      })
      .Case([&](SinOp o) {
        return unary(o, [](double x) { return std::sin(x); });
      })
      .Case([&](CosOp o) {
        return unary(o, [](double x) { return std::cos(x); });
      })
      .Case([&](TanOp o) {
        return unary(o, [](double x) { return std::tan(x); });
      })
      .Case([&](AsinOp o) {
        return unary(o, [](double x) { return std::asin(x); });
      })
      .Case([&](AcosOp o) {
        return unary(o, [](double x) { return std::acos(x); });
      })
      .Case([&](AtanOp o) {
        return unary(o, [](double x) { return std::atan(x); });
      })
      .Case([&](SinhOp o) {
        return unary(o, [](double x) { return std::sinh(x); });
      })
      .Case([&](CoshOp o) {
        return unary(o, [](double x) { return std::cosh(x); });
      })
      .Case([&](FloorOp o) {
        return unary(o, [](double x) { return std::floor(x); });
      })
      .Case([&](CeilOp o) {
        return unary(o, [](double x) { return std::ceil(x); });
      })
      .Case(
          [&](NotOp o) { return unary(o, [](double x) { return x == 0.0; }); })
      .Case([&](GeluOp o) {
        GeluApproximation kind = o.getApproximation();
        return unary(o, [kind](double x) { return gelu(x, kind); });
      })
      .Case([&](ClipOp o) {
        double lo = o.getMin() ? o.getMin()->convertToDouble()
                               : -std::numeric_limits<double>::infinity();
        double hi = o.getMax() ? o.getMax()->convertToDouble()
                               : std::numeric_limits<double>::infinity();
        return unary(o, [lo, hi](double x) {
          return std::isnan(x) ? x : std::min(std::max(x, lo), hi);
        });
      })
      .Case([&](AddOp o) {
        return binary(o, [](double a, double b) { return a + b; });
      })
      .Case([&](SubOp o) {
        return binary(o, [](double a, double b) { return a - b; });
      })
      .Case([&](MulOp o) {
        return binary(o, [](double a, double b) { return a * b; });
      })
      .Case([&](DivOp o) -> LogicalResult {
        if (!isFloat(o.getResult())) {
          const HostTensor &b = get(o.getRhs());
          if (llvm::is_contained(b.ints, 0))
            return o.emitError() << "integer division by zero";
          return binary(o,
                        [](double a, double b) { return std::trunc(a / b); });
        }
        return binary(o, [](double a, double b) { return a / b; });
      })
      .Case([&](PowOp o) {
        return binary(o, [](double a, double b) { return std::pow(a, b); });
      })
      .Case([&](MaxOp o) {
        return binary(o, [](double a, double b) {
          return std::isnan(a) || std::isnan(b) ? std::nan("") : std::max(a, b);
        });
      })
      .Case([&](MinOp o) {
        return binary(o, [](double a, double b) {
          return std::isnan(a) || std::isnan(b) ? std::nan("") : std::min(a, b);
        });
      })
      .Case([&](EqualOp o) {
        return binary(o, [](double a, double b) { return double(a == b); });
      })
      .Case([&](LessOp o) {
        return binary(o, [](double a, double b) { return double(a < b); });
      })
      .Case([&](LessEqualOp o) {
        return binary(o, [](double a, double b) { return double(a <= b); });
      })
      .Case([&](GreaterOp o) {
        return binary(o, [](double a, double b) { return double(a > b); });
      })
      .Case([&](GreaterEqualOp o) {
        return binary(o, [](double a, double b) { return double(a >= b); });
      })
      .Case([&](AndOp o) {
        return binary(o, [](double a, double b) { return double(a && b); });
      })
      .Case([&](OrOp o) {
        return binary(o, [](double a, double b) { return double(a || b); });
      })
      .Case([&](XorOp o) {
        return binary(
            o, [](double a, double b) { return double((a != 0) != (b != 0)); });
      })
      .Case([&](WhereOp o) {
        const HostTensor &c = get(o.getCondition()), &a = get(o.getOnTrue()),
                         &b = get(o.getOnFalse());
        HostTensor y = like(o.getResult());
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          Index idx = unravel(i, y.shape);
          const HostTensor &src = c.ints[broadcastIndex(idx, c.shape)] ? a : b;
          int64_t s = broadcastIndex(idx, src.shape);
          if (y.isFloat())
            y.floats[i] = src.floats[s];
          else
            y.ints[i] = src.ints[s];
        }
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](AssignOp) {
        // The model function run alone: the state is the caller's (the
        // training step returns the new value instead).
        return success();
      })
      .Case([&](FakeQuantOp o) {
        // In the element type step by step, as the compiled kernel and
        // PyTorch compute it: 1/s, x * (1/s), round half to even, + z,
        // clamp, (q - z) * s.
        const HostTensor &x = get(o.getX()), &s = get(o.getScale()),
                         &z = get(o.getZeroPoint());
        HostTensor y = like(o.getY());
        Type t = o.getY().getType().getElementType();
        auto qmin = static_cast<double>(static_cast<int64_t>(o.getQuantMin()));
        auto qmax = static_cast<double>(static_cast<int64_t>(o.getQuantMax()));
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          Index idx = unravel(i, y.shape);
          double scale = s.floats[broadcastIndex(idx, s.shape)];
          double zero = z.floats[broadcastIndex(idx, z.shape)];
          double inverse = roundToType(1.0 / scale, t);
          double v = roundToType(x.floats[i] * inverse, t);
          double q =
              std::clamp(roundToType(std::nearbyint(v) + zero, t), qmin, qmax);
          y.set(i, roundToType(roundToType(q - zero, t) * scale, t));
        }
        bind(o.getY(), std::move(y));
        return success();
      })
      .Case([&](CastOp o) {
        const HostTensor &x = get(o.getX());
        HostTensor y = like(o.getY());
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          if (x.isFloat())
            y.set(i, x.floats[i]);
          else
            y.setInt(i, x.ints[i]);
        }
        bind(o.getY(), std::move(y));
        return success();
      })
      .Case([&](ReduceSumOp o) {
        return reduce(
            o, o.getAxes(), o.getKeepdims(), 0.0,
            [](double a, double b) { return a + b; }, false);
      })
      .Case([&](ReduceMeanOp o) {
        return reduce(
            o, o.getAxes(), o.getKeepdims(), 0.0,
            [](double a, double b) { return a + b; }, true);
      })
      .Case([&](ReduceMaxOp o) {
        return reduce(
            o, o.getAxes(), o.getKeepdims(),
            -std::numeric_limits<double>::infinity(),
            [](double a, double b) {
              return std::isnan(a) || std::isnan(b) ? std::nan("")
                                                    : std::max(a, b);
            },
            false);
      })
      .Case([&](ReduceMinOp o) {
        return reduce(
            o, o.getAxes(), o.getKeepdims(),
            std::numeric_limits<double>::infinity(),
            [](double a, double b) {
              return std::isnan(a) || std::isnan(b) ? std::nan("")
                                                    : std::min(a, b);
            },
            false);
      })
      .Case([&](ArgMaxOp o) {
        const HostTensor &x = get(o.getX());
        int64_t axis = o.getAxis(), dim = x.shape[axis];
        int64_t inner = stridesOf(x.shape)[axis];
        HostTensor y = like(o.getResult());
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          Index idx = unravel(i, y.shape);
          if (!o.getKeepdims())
            idx.insert(idx.begin() + axis, 0);
          idx[axis] = 0;
          int64_t base = ravel(idx, x.shape), best = 0;
          for (int64_t j = 1; j < dim; ++j)
            if (x.at(base + j * inner) > x.at(base + best * inner))
              best = j;
          y.ints[i] = best;
        }
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](KthSmallestOp o) {
        // Sorted in IEEE total order (signed zeros and NaNs by their sign),
        // the element at k - 1.
        const HostTensor &x = get(o.getX());
        int64_t k = get(o.getK()).ints[0], n = x.numElements();
        HostTensor y = like(o.getResult());
        double inf = std::numeric_limits<double>::infinity();
        if (k <= 0 || k > n) {
          y.floats[0] = k <= 0 ? -inf : inf;
        } else {
          std::vector<double> sorted = x.floats;
          auto key = [inf](double v) {
            return std::make_pair(std::signbit(v) ? 0 : 1,
                                  std::isnan(v) ? inf : std::fabs(v));
          };
          std::sort(sorted.begin(), sorted.end(), [&](double a, double b) {
            auto ka = key(a), kb = key(b);
            if (ka.first != kb.first)
              return ka.first < kb.first;
            // Negative: the larger magnitude first.
            return ka.first == 0 ? ka.second > kb.second
                                 : ka.second < kb.second;
          });
          y.floats[0] = sorted[k - 1];
        }
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](MatmulOp o) { return matmul(o); })
      .Case([&](ConvOp o) { return conv(o); })
      .Case([&](MaxPoolOp o) { return pool(o, true); })
      .Case([&](AvgPoolOp o) { return pool(o, false); })
      .Case([&](BatchNormInferenceOp o) { return batchNorm(o, false); })
      .Case([&](BatchNormTrainOp o) { return batchNorm(o, true); })
      .Case([&](LayerNormOp o) { return layerNorm(o); })
      .Case([&](SoftmaxOp o) { return softmax(o, o.getAxis(), false); })
      .Case([&](LogSoftmaxOp o) { return softmax(o, o.getAxis(), true); })
      .Case([&](DropoutOp o) {
        const HostTensor &x = get(o.getX());
        int64_t seed = get(o.getSeed()).ints[0];
        double ratio = o.getRatio().convertToDouble();
        HostTensor y = like(o.getY()), mask = like(o.getMask());
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          bool keep = ::trainopt::dropoutKeeps(seed, i, ratio);
          mask.ints[i] = keep;
          y.set(i, keep ? x.floats[i] / (1.0 - ratio) : 0.0);
        }
        bind(o.getY(), std::move(y));
        bind(o.getMask(), std::move(mask));
        return success();
      })
      .Case([&](RandomOp o) {
        int64_t seed = get(o.getSeed()).ints[0];
        double a = o.getA().convertToDouble(), b = o.getB().convertToDouble();
        bool normal = o.getDistribution() == Distribution::normal;
        HostTensor y = like(o.getResult());
        for (int64_t i = 0, e = y.numElements(); i < e; ++i)
          y.set(i, normal ? a + b * ::trainopt::normalDraw(seed, i)
                          : a + (b - a) * ::trainopt::dropoutUniform(seed, i));
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](GradSyncOp o) {
        bind(o.getResult(), get(o.getGradient()));
        return success();
      })
      .Case([&](CopyToGroupOp o) {
        bind(o.getResult(), get(o.getInput()));
        return success();
      })
      .Case<SendOp, RecvOp>([](auto o) -> LogicalResult {
        return o.emitOpError("passes a tensor between pipeline stages; the "
                             "evaluator runs one process (evaluate the "
                             "program compiled without --mesh)");
      })
      .Case<AllGatherOp, RankSliceOp>([&](auto o) -> LogicalResult {
        // A group of one: the whole is the part.
        HostTensor y = get(o.getInput());
        y.shape.assign(o.getType().getShape().begin(),
                       o.getType().getShape().end());
        if (o.getInput().getType().getDimSize(0) != o.getType().getDimSize(0))
          return o.emitOpError("runs over more than one rank; the evaluator "
                               "runs one process (evaluate the program "
                               "compiled without --mesh)");
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case<AllReduceOp, ReduceScatterOp, BroadcastOp>([&](auto o)
                                                           -> LogicalResult {
        // The evaluator is one process: a group of one rank only.
        auto grid = SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(
            o, o.getGridAttr());
        if (!grid)
          return o.emitOpError("names no shard.grid");
        for (int16_t a : o.getGridAxes())
          if (grid.getShape()[a] != 1)
            return o.emitOpError("runs over ")
                   << grid.getShape()[a]
                   << " ranks; the evaluator runs one process (evaluate the "
                      "program compiled without --mesh)";
        for (auto [in, r] : llvm::zip(o->getOperands(), o->getResults())) {
          HostTensor y = get(in);
          auto t = cast<RankedTensorType>(r.getType());
          y.shape.assign(t.getShape().begin(), t.getShape().end());
          bind(r, std::move(y));
        }
        return success();
      })
      .Case([&](ReshapeOp o) {
        HostTensor y = get(o.getX());
        y.shape.assign(o.getType().getShape().begin(),
                       o.getType().getShape().end());
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](TransposeOp o) {
        const HostTensor &x = get(o.getX());
        ArrayRef<int64_t> perm = o.getPermutation();
        return gatherInto(o.getResult(), x, [&](const Index &idx) {
          Index src(idx.size());
          for (size_t d = 0; d < perm.size(); ++d)
            src[perm[d]] = idx[d];
          return ravel(src, x.shape);
        });
      })
      .Case([&](BroadcastToOp o) {
        const HostTensor &x = get(o.getX());
        return gatherInto(o.getResult(), x, [&](const Index &idx) {
          return broadcastIndex(idx, x.shape);
        });
      })
      .Case([&](SliceOp o) {
        const HostTensor &x = get(o.getX());
        return gatherInto(o.getResult(), x, [&](const Index &idx) {
          Index src(idx.size());
          for (size_t d = 0; d < idx.size(); ++d)
            src[d] = o.getStart()[d] + idx[d] * o.getStride()[d];
          return ravel(src, x.shape);
        });
      })
      .Case([&](ConcatOp o) {
        HostTensor y = like(o.getResult());
        int64_t axis = o.getAxis();
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          Index idx = unravel(i, y.shape);
          for (Value in : o.getInputs()) {
            const HostTensor &x = get(in);
            if (idx[axis] < x.shape[axis]) {
              int64_t s = ravel(idx, x.shape);
              if (y.isFloat())
                y.floats[i] = x.floats[s];
              else
                y.ints[i] = x.ints[s];
              break;
            }
            idx[axis] -= x.shape[axis];
          }
        }
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](SplitOp o) {
        const HostTensor &x = get(o.getX());
        int64_t axis = o.getAxis(), offset = 0;
        for (auto [result, size] : llvm::zip(o.getResults(), o.getSizes())) {
          (void)gatherInto(result, x, [&](const Index &idx) {
            Index src = idx;
            src[axis] += offset;
            return ravel(src, x.shape);
          });
          offset += size;
        }
        return success();
      })
      .Case([&](GatherOp o) -> LogicalResult {
        const HostTensor &data = get(o.getData()),
                         &indices = get(o.getIndices());
        int64_t axis = o.getAxis(), dim = data.shape[axis];
        int64_t irank = indices.shape.size();
        for (int64_t v : indices.ints)
          if (v < -dim || v >= dim)
            return o.emitError() << "index " << v << " is outside [" << -dim
                                 << ", " << dim << ")";
        return gatherInto(o.getResult(), data, [&](const Index &idx) {
          Index iidx(idx.begin() + axis, idx.begin() + axis + irank);
          int64_t v = indices.ints[ravel(iidx, indices.shape)];
          Index src(idx.begin(), idx.begin() + axis);
          src.push_back(v < 0 ? v + dim : v);
          src.append(idx.begin() + axis + irank, idx.end());
          return ravel(src, data.shape);
        });
      })
      .Case([&](TriluOp o) {
        HostTensor y = get(o.getX());
        int64_t r = y.shape.size(),
                diag = static_cast<int64_t>(o.getDiagonal());
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          Index idx = unravel(i, y.shape);
          int64_t off = idx[r - 1] - idx[r - 2];
          bool keep = o.getUpper() ? off >= diag : off <= diag;
          if (!keep)
            y.setInt(i, 0);
        }
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](PadOp o) {
        const HostTensor &x = get(o.getX());
        HostTensor y = like(o.getResult());
        double value = o.getValue().convertToDouble();
        for (int64_t i = 0, e = y.numElements(); i < e; ++i) {
          Index idx = unravel(i, y.shape);
          bool inside = true;
          for (size_t d = 0; d < idx.size(); ++d) {
            int64_t step = o.getInterior() ? (*o.getInterior())[d] + 1 : 1;
            int64_t pos = idx[d] - o.getLow()[d];
            inside &= pos >= 0 && pos % step == 0 && pos / step < x.shape[d];
            idx[d] = pos / step;
          }
          y.set(i, inside ? x.at(ravel(idx, x.shape)) : value);
        }
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](CrossEntropyOp o) {
        return labelLoss(o, o.getLogits(), o.getLabels(), o.getWeight(),
                         o.getClassAxis(), o.getReduction(), o.getIgnoreIndex(),
                         o.getLabelSmoothing().convertToDouble(), true);
      })
      .Case([&](NllLossOp o) {
        return labelLoss(o, o.getLogProbs(), o.getLabels(), o.getWeight(),
                         o.getClassAxis(), o.getReduction(), o.getIgnoreIndex(),
                         0.0, false);
      })
      .Case([&](MseLossOp o) {
        const HostTensor &a = get(o.getInput()), &b = get(o.getTarget());
        HostTensor y = like(o.getLoss());
        double total = 0.0;
        for (int64_t i = 0, e = a.numElements(); i < e; ++i) {
          double d = (a.at(i) - b.at(i)) * (a.at(i) - b.at(i));
          total += d;
          if (o.getReduction() == Reduction::none)
            y.set(i, d);
        }
        if (o.getReduction() == Reduction::sum)
          y.set(0, total);
        else if (o.getReduction() == Reduction::mean)
          y.set(0, total / std::max<int64_t>(a.numElements(), 1));
        bind(o.getLoss(), std::move(y));
        return success();
      })
      .Case([&](ConvGradInputOp o) { return convGrad(o, true); })
      .Case([&](ConvGradFilterOp o) { return convGrad(o, false); })
      .Case([&](MaxPoolGradOp o) { return poolGrad(o, true); })
      .Case([&](AvgPoolGradOp o) { return poolGrad(o, false); })
      .Case([&](ScatterAddOp o) -> LogicalResult {
        const HostTensor &indices = get(o.getIndices()),
                         &u = get(o.getUpdates());
        HostTensor y = like(o.getResult());
        int64_t axis = o.getAxis(), dim = y.shape[axis];
        int64_t irank = indices.shape.size();
        for (int64_t i = 0, e = u.numElements(); i < e; ++i) {
          Index idx = unravel(i, u.shape);
          Index iidx(idx.begin() + axis, idx.begin() + axis + irank);
          int64_t v = indices.ints[ravel(iidx, indices.shape)];
          if (v < -dim || v >= dim)
            return o.emitError() << "index " << v << " is outside [" << -dim
                                 << ", " << dim << ")";
          Index dst(idx.begin(), idx.begin() + axis);
          dst.push_back(v < 0 ? v + dim : v);
          dst.append(idx.begin() + axis + irank, idx.end());
          int64_t d = ravel(dst, y.shape);
          y.set(d, y.at(d) + u.at(i));
        }
        bind(o.getResult(), std::move(y));
        return success();
      })
      .Case([&](func::CallOp c) -> LogicalResult {
        auto callee = module.lookupSymbol<func::FuncOp>(c.getCallee());
        if (!callee)
          return c.emitError() << "calls unknown function " << c.getCallee();
        SmallVector<HostTensor> args;
        for (Value v : c.getOperands())
          args.push_back(get(v));
        Interpreter inner(module);
        FailureOr<SmallVector<HostTensor>> results = inner.call(callee, args);
        if (failed(results))
          return failure();
        for (auto [r, t] : llvm::zip(c.getResults(), *results))
          bind(r, std::move(t));
        return success();
      })
      .Default([](Operation *op) {
        return op->emitError() << "the reference evaluator does not support '"
                               << op->getName() << "'";
      });
}

FailureOr<SmallVector<HostTensor>>
mlir::trainopt::evaluateFunction(func::FuncOp func,
                                 ArrayRef<HostTensor> arguments) {
  Interpreter interpreter(func->getParentOfType<ModuleOp>());
  return interpreter.call(func, arguments);
}

std::optional<HostTensor>
mlir::trainopt::parameterInitialValue(func::FuncOp func, unsigned index) {
  ElementsAttr value = func.getArgAttrOfType<DenseElementsAttr>(
      index, TrainoptDialect::kInitAttrName);
  if (auto ref = func.getArgAttrOfType<FlatSymbolRefAttr>(
          index, TrainoptDialect::kParamAttrName)) {
    auto param = SymbolTable::lookupNearestSymbolFrom<ParameterOp>(func, ref);
    if (param && param.getInitialValue())
      value = *param.getInitialValue();
  }
  if (!value)
    return std::nullopt;
  llvm::Expected<HostTensor> t = tensorFromAttr(value);
  if (!t) {
    llvm::consumeError(t.takeError());
    return std::nullopt;
  }
  return std::move(*t);
}

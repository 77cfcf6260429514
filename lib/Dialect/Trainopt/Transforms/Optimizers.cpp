//===- Optimizers.cpp - the optimizers, each defined once -----------------===//
//
/// \file
/// The update rules, with PyTorch's semantics and defaults (torch.optim;
/// LAMB as in the paper with PyTorch-style bias correction; Lion as
/// published, Chen et al. 2023, with lion-pytorch's defaults).
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Optimizers.h"

using namespace mlir;
using namespace mlir::trainopt;

namespace {

/// Coupled (L2) weight decay: the gradient plus wd * p.
Value coupledDecay(OptimizerStep &s, Value g) {
  return s.weightDecay != 0.0 ? s.m.add(g, s.m.mul(s.param, s.weightDecay))
                              : g;
}

/// Decoupled weight decay: p * (1 - lr * wd).
Value decoupledDecay(OptimizerStep &s) {
  if (s.weightDecay == 0.0)
    return s.param;
  TensorBuilder &m = s.m;
  return m.mul(s.param,
               m.sub(m.scalar(s.param, 1.0), m.mul(s.lr, s.weightDecay)));
}

//===- SGD ----------------------------------------------------------------===//

const Hyperparameter sgdHyper[] = {
    {"momentum", 0.0}, {"dampening", 0.0}, {"nesterov", 0.0}, {"weight-decay", 0.0}};

SmallVector<StringRef> sgdSlots(const Hyperparameters &hp) {
  if (hp("momentum") > 0.0)
    return {"momentum_buffer"};
  return {};
}

std::string sgdCheck(const Hyperparameters &hp) {
  if (hp("nesterov") != 0.0 && (hp("momentum") <= 0.0 || hp("dampening") != 0.0))
    return "nesterov: needs --momentum > 0 and --dampening=0";
  return "";
}

OptimizerUpdate sgdUpdate(OptimizerStep &s) {
  TensorBuilder &m = s.m;
  Value g = coupledDecay(s, s.grad);
  OptimizerUpdate out;
  double momentum = s.hp("momentum");
  if (momentum > 0.0) {
    // PyTorch starts the buffer at the first gradient.
    Value buf = m.add(m.mul(s.slots[0], momentum),
                      m.mul(g, 1.0 - s.hp("dampening")));
    buf = m.where(m.equal(s.updates, m.scalar(s.updates, 0.0)), g, buf);
    out.slots.push_back(buf);
    g = s.hp("nesterov") != 0.0 ? m.add(g, m.mul(buf, momentum)) : buf;
  }
  out.param = m.sub(s.param, m.mul(g, s.lr));
  return out;
}

//===- Adam, AdamW, LAMB --------------------------------------------------===//

const Hyperparameter adamHyper[] = {
    {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight-decay", 0.0}};
const Hyperparameter adamwHyper[] = {
    {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight-decay", 1e-2}};
const Hyperparameter lambHyper[] = {
    {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-6}, {"weight-decay", 0.0}};

SmallVector<StringRef> adamSlots(const Hyperparameters &) {
  return {"exp_avg", "exp_avg_sq"};
}

/// The moments and the bias-corrected step direction m̂ / (sqrt(v̂) + eps)
/// as PyTorch computes it: m / bc1 / (sqrt(v) / sqrt(bc2) + eps).
Value adamDirection(OptimizerStep &s, Value g, OptimizerUpdate &out) {
  TensorBuilder &m = s.m;
  double beta1 = s.hp("beta1"), beta2 = s.hp("beta2");
  Value mt = m.add(m.mul(s.slots[0], beta1), m.mul(g, 1.0 - beta1));
  Value vt = m.add(m.mul(s.slots[1], beta2), m.mul(m.mul(g, g), 1.0 - beta2));
  out.slots = {mt, vt};
  Value one = m.scalar(s.count, 1.0);
  Value bc1 = m.sub(one, m.pow(m.scalar(s.count, beta1), s.count));
  Value bc2 = m.sub(one, m.pow(m.scalar(s.count, beta2), s.count));
  Value denom = m.add(m.div(m.sqrt(vt), m.sqrt(bc2)), s.hp("eps"));
  return m.div(m.div(mt, bc1), denom);
}

OptimizerUpdate adamUpdate(OptimizerStep &s) {
  OptimizerUpdate out;
  Value dir = adamDirection(s, coupledDecay(s, s.grad), out);
  out.param = s.m.sub(s.param, s.m.mul(dir, s.lr));
  return out;
}

OptimizerUpdate adamwUpdate(OptimizerStep &s) {
  OptimizerUpdate out;
  Value dir = adamDirection(s, s.grad, out);
  out.param = s.m.sub(decoupledDecay(s), s.m.mul(dir, s.lr));
  return out;
}

OptimizerUpdate lambUpdate(OptimizerStep &s) {
  TensorBuilder &m = s.m;
  OptimizerUpdate out;
  Value update = coupledDecay(s, adamDirection(s, s.grad, out));
  // The layer-wise trust ratio ||p|| / ||update||, 1 where either is 0;
  // the norms are the whole parameter's, also when tp splits it.
  Value pn = m.sqrt(s.sumOverParameter(m.sumSquares(s.param)));
  Value un = m.sqrt(s.sumOverParameter(m.sumSquares(update)));
  Value zero = m.scalar(s.param, 0.0);
  Value trust = m.where(m.logicalAnd(m.greater(pn, zero), m.greater(un, zero)),
                        m.div(pn, un), m.scalar(s.param, 1.0));
  out.param = m.sub(s.param, m.mul(update, m.mul(s.lr, trust)));
  return out;
}

//===- Adagrad, RMSprop ---------------------------------------------------===//

const Hyperparameter adagradHyper[] = {
    {"lr-decay", 0.0}, {"eps", 1e-10}, {"weight-decay", 0.0}};

SmallVector<StringRef> adagradSlots(const Hyperparameters &) { return {"sum"}; }

OptimizerUpdate adagradUpdate(OptimizerStep &s) {
  TensorBuilder &m = s.m;
  Value g = coupledDecay(s, s.grad);
  OptimizerUpdate out;
  Value sum = m.add(s.slots[0], m.mul(g, g));
  out.slots.push_back(sum);
  // clr = lr / (1 + (count - 1) * lr_decay)
  Value clr = m.div(s.lr, m.add(m.mul(m.add(s.count, -1.0), s.hp("lr-decay")),
                                1.0));
  out.param =
      m.sub(s.param, m.mul(m.div(g, m.add(m.sqrt(sum), s.hp("eps"))), clr));
  return out;
}

const Hyperparameter rmspropHyper[] = {
    {"alpha", 0.99}, {"eps", 1e-8}, {"momentum", 0.0}, {"weight-decay", 0.0}};

SmallVector<StringRef> rmspropSlots(const Hyperparameters &hp) {
  if (hp("momentum") > 0.0)
    return {"square_avg", "momentum_buffer"};
  return {"square_avg"};
}

OptimizerUpdate rmspropUpdate(OptimizerStep &s) {
  TensorBuilder &m = s.m;
  Value g = coupledDecay(s, s.grad);
  double alpha = s.hp("alpha");
  OptimizerUpdate out;
  Value sq = m.add(m.mul(s.slots[0], alpha), m.mul(m.mul(g, g), 1.0 - alpha));
  out.slots.push_back(sq);
  Value step = m.div(g, m.add(m.sqrt(sq), s.hp("eps")));
  if (double momentum = s.hp("momentum"); momentum > 0.0) {
    step = m.add(m.mul(s.slots[1], momentum), step);
    out.slots.push_back(step);
  }
  out.param = m.sub(s.param, m.mul(step, s.lr));
  return out;
}

//===- Lion ---------------------------------------------------------------===//

// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):
//   c = beta1 * m + (1 - beta1) * g
//   p = p * (1 - lr * wd) - lr * sign(c)
//   m = beta2 * m + (1 - beta2) * g
// Defaults of lion-pytorch: betas (0.9, 0.99), no weight decay.
const Hyperparameter lionHyper[] = {
    {"beta1", 0.9}, {"beta2", 0.99}, {"weight-decay", 0.0}};

SmallVector<StringRef> lionSlots(const Hyperparameters &) { return {"exp_avg"}; }

OptimizerUpdate lionUpdate(OptimizerStep &s) {
  TensorBuilder &m = s.m;
  double beta1 = s.hp("beta1"), beta2 = s.hp("beta2");
  Value c = m.add(m.mul(s.slots[0], beta1), m.mul(s.grad, 1.0 - beta1));
  OptimizerUpdate out;
  out.param = m.sub(decoupledDecay(s), m.mul(m.sign(c), s.lr));
  out.slots.push_back(
      m.add(m.mul(s.slots[0], beta2), m.mul(s.grad, 1.0 - beta2)));
  return out;
}

std::string noCheck(const Hyperparameters &) { return ""; }

const OptimizerDef defs[] = {
    {"sgd", "stochastic gradient descent with momentum, dampening, Nesterov",
     sgdHyper, sgdSlots, sgdCheck, sgdUpdate},
    {"adam", "Adam (L2 weight decay added to the gradient)", adamHyper,
     adamSlots, noCheck, adamUpdate},
    {"adamw", "AdamW (decoupled weight decay)", adamwHyper, adamSlots, noCheck,
     adamwUpdate},
    {"adagrad", "Adagrad with learning-rate decay", adagradHyper, adagradSlots,
     noCheck, adagradUpdate},
    {"rmsprop", "RMSprop (uncentered) with momentum", rmspropHyper,
     rmspropSlots, noCheck, rmspropUpdate},
    {"lamb", "LAMB: Adam's direction scaled by the layer-wise trust ratio",
     lambHyper, adamSlots, noCheck, lambUpdate},
    {"lion", "Lion: the sign of an interpolated momentum, decoupled weight "
             "decay",
     lionHyper, lionSlots, noCheck, lionUpdate},
};

} // namespace

ArrayRef<OptimizerDef> mlir::trainopt::optimizerDefs() { return defs; }

const OptimizerDef *mlir::trainopt::lookupOptimizer(StringRef name) {
  for (const OptimizerDef &d : defs)
    if (d.name == name)
      return &d;
  return nullptr;
}

//===- RecurrentHandlers.cpp - ONNX RNN, GRU and LSTM ---------------------===//
//
/// \file
/// RNN, GRU and LSTM, unrolled over the (static) sequence in the importer.
/// The input projection of every time step is one matmul ([T B, I] x
/// [I, G H]) with its biases folded in; each step then adds the recurrent
/// matmul and applies the gate equations of the ONNX spec, and the steps'
/// hidden states are concatenated into Y. Unrolling, not a loop op: the
/// dialect is region-free so every pass (autodiff, the memory plan, fusion,
/// the evaluator) handles the steps as ordinary ops, and sequence lengths
/// are static. The cost is IR linear in the sequence length.
//
//===----------------------------------------------------------------------===//

#include "ImportContext.h"

using namespace mlir;
using namespace mlir::trainopt;
using namespace mlir::trainopt::onnx_import;

namespace {

enum class Cell { RNN, GRU, LSTM };

constexpr int64_t gatesOf(Cell k) {
  return k == Cell::RNN ? 1 : k == Cell::GRU ? 3 : 4;
}

/// The recurrent layer being unrolled: attributes, operands, one direction
/// at a time.
template <Cell Kind> class Unroller {
public:
  explicit Unroller(NodeContext &n) : n(n), c(n) {}

  LogicalResult run() {
    FailureOr<Value> x = n.required(0), w = n.required(1), r = n.required(2);
    auto direction = n.check(n.attrs.getString("direction", std::string("forward")));
    auto layout = n.check(n.attrs.getInt("layout", 0));
    auto hidden = n.check(n.attrs.getInt("hidden_size", -1));
    if (failed(x) || failed(w) || failed(r) || failed(direction) ||
        failed(layout) || failed(hidden))
      return failure();
    if (*direction != "forward" && *direction != "reverse" &&
        *direction != "bidirectional")
      return n.fail("direction '" + *direction +
                    "' is not forward, reverse or bidirectional");
    int64_t dirs = *direction == "bidirectional" ? 2 : 1;
    auto xt = n.inputType(0), wt = n.inputType(1), rt = n.inputType(2);
    if (xt.getRank() != 3 || wt.getRank() != 3 || rt.getRank() != 3)
      return n.fail("X, W and R must be 3-D");
    H = wt.getDimSize(1) / G;
    if (*hidden >= 0 && *hidden != H)
      return n.fail("hidden_size " + Twine(*hidden) + " does not match W's " +
                    Twine(wt.getDimSize(1)) + " rows (" + Twine(G) +
                    " gates)");
    Value seq = *layout ? c.transpose(*x, {1, 0, 2}) : *x;
    T = Composer::type(seq).getDimSize(0);
    B = Composer::type(seq).getDimSize(1);
    int64_t I = xt.getDimSize(2);
    if (wt.getShape() != ArrayRef<int64_t>{dirs, G * H, I} ||
        rt.getShape() != ArrayRef<int64_t>{dirs, G * H, H})
      return n.fail("W must be [" + Twine(dirs) + ", " + Twine(G * H) + ", " +
                    Twine(I) + "] and R [" + Twine(dirs) + ", " + Twine(G * H) +
                    ", " + Twine(H) + "]");
    batchMajor = *layout != 0;
    if (failed(checkOptionalShapes(dirs)) || failed(readAttributes(dirs)) ||
        failed(checkSequenceLengths()))
      return failure();
    elt = xt.getElementType();
    SmallVector<Value> ys, hs, cs;
    for (int64_t d = 0; d < dirs; ++d) {
      bool reverse = *direction == "reverse" || d == 1;
      auto [y, h, cell] = direction_(seq, *w, *r, d, reverse, I);
      ys.push_back(c.reshape(y, {T, 1, B, H}));
      hs.push_back(c.reshape(h, {1, B, H}));
      cs.push_back(c.reshape(cell, {1, B, H}));
    }
    Value y = c.concat(ys, 1), yh = c.concat(hs, 0);
    Value yc = Kind == Cell::LSTM ? c.concat(cs, 0) : Value();
    if (*layout) {
      y = c.transpose(y, {2, 0, 1, 3});
      yh = c.transpose(yh, {1, 0, 2});
      yc = Kind == Cell::LSTM ? c.transpose(yc, {1, 0, 2}) : Value();
    }
    if (!c.ok())
      return failure();
    n.setOutput(0, y);
    n.setOutput(1, yh);
    if (Kind == Cell::LSTM)
      n.setOutput(2, yc);
    return success();
  }

private:
  /// layout = 1: X, Y and the states are batch-major.
  bool batchMajor = false;
  static constexpr int64_t G = gatesOf(Kind);
  /// Activations per direction: f (gates), g (candidate), h (LSTM output).
  static constexpr unsigned kActivations =
      Kind == Cell::RNN ? 1 : Kind == Cell::GRU ? 2 : 3;

  LogicalResult readAttributes(int64_t dirs) {
    SmallVector<std::string> defaults;
    if (Kind == Cell::RNN)
      defaults = {"Tanh"};
    else
      defaults = {"Sigmoid", "Tanh", "Tanh"};
    defaults.resize(kActivations);
    activations.clear();
    if (const onnx::AttributeProto *a = n.attrs.get("activations")) {
      for (const std::string &s : a->strings())
        activations.push_back(s);
      if (activations.size() != static_cast<size_t>(kActivations * dirs))
        return n.fail("activations lists " + Twine(activations.size()) +
                      " functions; expected " + Twine(kActivations * dirs));
    } else {
      for (int64_t d = 0; d < dirs; ++d)
        llvm::append_range(activations, defaults);
    }
    for (const std::string &a : activations)
      if (a != "Sigmoid" && a != "Tanh" && a != "Relu")
        return n.fail("activation '" + a +
                      "' is not supported (Sigmoid, Tanh and Relu are)");
    auto clipValue = n.check(n.attrs.getFloat("clip", -1.0));
    auto lbr = n.check(n.attrs.getInt("linear_before_reset", 0));
    auto inputForget = n.check(n.attrs.getInt("input_forget", 0));
    if (failed(clipValue) || failed(lbr) || failed(inputForget))
      return failure();
    if (*inputForget)
      return n.fail("input_forget = 1 (coupled input and forget gates) is "
                    "not supported");
    clip = n.attrs.has("clip") ? std::optional<double>(*clipValue)
                               : std::nullopt;
    linearBeforeReset = *lbr != 0;
    return success();
  }

  /// B, initial_h, initial_c and P, when given, have ONNX's shapes (the
  /// initial states batch-major under layout = 1).
  LogicalResult checkOptionalShapes(int64_t dirs) {
    SmallVector<int64_t> state = batchMajor ? SmallVector<int64_t>{B, dirs, H}
                                            : SmallVector<int64_t>{dirs, B, H};
    SmallVector<std::tuple<unsigned, StringRef, SmallVector<int64_t>>>
        expected = {{3, "B", {dirs, 2 * G * H}}, {5, "initial_h", state}};
    if (Kind == Cell::LSTM) {
      expected.push_back({6, "initial_c", state});
      expected.push_back({7, "P", {dirs, 3 * H}});
    }
    auto text = [](ArrayRef<int64_t> shape) {
      std::string s;
      for (int64_t d : shape)
        s += (s.empty() ? "" : ", ") + std::to_string(d);
      return "[" + s + "]";
    };
    for (const auto &[index, name, shape] : expected)
      if (n.input(index) &&
          n.inputType(index).getShape() != ArrayRef<int64_t>(shape))
        return n.fail(name + " must be " + text(shape) + ", not " +
                      text(n.inputType(index).getShape()));
    return success();
  }

  /// sequence_lens must be absent or all T: lengths are static.
  LogicalResult checkSequenceLengths() {
    if (!n.input(4))
      return success();
    FailureOr<SmallVector<int64_t>> lens = n.constantInts(4, "sequence_lens");
    if (failed(lens))
      return failure();
    for (int64_t l : *lens)
      if (l != T)
        return n.fail("sequence_lens holds " + Twine(l) + " for a sequence "
                      "of " + Twine(T) + " steps; only full-length (static) "
                      "sequences are supported");
    return success();
  }

  Value activate(StringRef name, Value v) {
    if (clip)
      v = c.op<ClipOp>({v}, {n.named("min", n.builder.getF64FloatAttr(-*clip)),
                             n.named("max", n.builder.getF64FloatAttr(*clip))});
    if (name == "Sigmoid")
      return c.op<SigmoidOp>({v});
    if (name == "Tanh")
      return c.op<TanhOp>({v});
    return c.op<ReluOp>({v});
  }

  /// Rows [from, to) of a per-direction [G H, K] matrix or [k G H] vector.
  Value rows(Value v, int64_t from, int64_t to, int64_t axis = 0) {
    return c.slice(v, axis, from * H, to * H);
  }

  /// Operand `i` ([dirs, rest...]) for direction `d`, without the first dim.
  Value ofDirection(Value v, int64_t d) {
    auto shape = Composer::type(v).getShape().drop_front();
    return c.reshape(c.slice(v, 0, d, d + 1), shape);
  }

  Value initial(unsigned input, int64_t d) {
    if (Value v = n.input(input))
      return ofDirection(batchMajor ? c.transpose(v, {1, 0, 2}) : v, d);
    return c.broadcast(c.scalar(elt, 0.0), {B, H});
  }

  std::tuple<Value, Value, Value> direction_(Value seq, Value w, Value r,
                                             int64_t d, bool reverse,
                                             int64_t I) {
    ArrayRef<std::string> act =
        ArrayRef<std::string>(activations).slice(d * kActivations, kActivations);
    Value wd = ofDirection(w, d), rd = ofDirection(r, d);
    // Input projection of all steps, [T, B, G H], with the foldable biases.
    Value proj = c.matmul(c.reshape(seq, {T * B, I}), wd, false, true);
    Value hiddenBias; // GRU with linear_before_reset: R's bias of h.
    if (Value bias = n.input(3)) {
      Value bd = ofDirection(bias, d);
      Value wb = c.slice(bd, 0, 0, G * H), rb = c.slice(bd, 0, G * H, 2 * G * H);
      if (Kind == Cell::GRU && linearBeforeReset) {
        hiddenBias = rows(rb, 2, 3);
        rb = c.concat({rows(rb, 0, 2), c.broadcast(c.scalar(elt, 0.0), {H})}, 0);
      }
      proj = c.add(proj, c.add(wb, rb));
    }
    proj = c.reshape(proj, {T, B, G * H});
    Value h = initial(5, d);
    Value cell = Kind == Cell::LSTM ? initial(6, d) : Value();
    Value peep = Kind == Cell::LSTM && n.input(7) ? ofDirection(n.input(7), d)
                                                  : Value();
    SmallVector<Value> outputs(T);
    for (int64_t s = 0; s < T && c.ok(); ++s) {
      int64_t t = reverse ? T - 1 - s : s;
      Value xt = c.reshape(c.slice(proj, 0, t, t + 1), {B, G * H});
      if (Kind == Cell::RNN) {
        h = activate(act[0], c.add(xt, c.matmul(h, rd, false, true)));
      } else if (Kind == Cell::LSTM) {
        Value a = c.add(xt, c.matmul(h, rd, false, true));
        Value i = rows(a, 0, 1, 1), o = rows(a, 1, 2, 1), f = rows(a, 2, 3, 1),
              g = rows(a, 3, 4, 1);
        if (peep) {
          i = c.add(i, c.mul(rows(peep, 0, 1), cell));
          f = c.add(f, c.mul(rows(peep, 2, 3), cell));
        }
        cell = c.add(c.mul(activate(act[0], f), cell),
                     c.mul(activate(act[0], i), activate(act[1], g)));
        if (peep)
          o = c.add(o, c.mul(rows(peep, 1, 2), cell));
        h = c.mul(activate(act[0], o), activate(act[2], cell));
      } else {
        Value zr = c.add(rows(xt, 0, 2, 1),
                         c.matmul(h, rows(rd, 0, 2), false, true));
        Value z = activate(act[0], rows(zr, 0, 1, 1));
        Value rg = activate(act[0], rows(zr, 1, 2, 1));
        Value rh = rows(rd, 2, 3);
        Value recurrent;
        if (linearBeforeReset) {
          Value hr = c.matmul(h, rh, false, true);
          if (hiddenBias)
            hr = c.add(hr, hiddenBias);
          recurrent = c.mul(rg, hr);
        } else {
          recurrent = c.matmul(c.mul(rg, h), rh, false, true);
        }
        Value candidate = activate(act[1], c.add(rows(xt, 2, 3, 1), recurrent));
        Value keep = c.sub(c.scalar(elt, 1.0), z);
        h = c.add(c.mul(keep, candidate), c.mul(z, h));
      }
      outputs[t] = c.reshape(h, {1, B, H});
    }
    if (!c.ok())
      return {};
    Value y = T > 0 ? c.concat(outputs, 0) : Value();
    return {y, h, Kind == Cell::LSTM ? cell : h};
  }

  NodeContext &n;
  Composer c;
  int64_t H = 0, T = 0, B = 0;
  Type elt;
  SmallVector<std::string> activations;
  std::optional<double> clip;
  bool linearBeforeReset = false;
};

template <Cell Kind> LogicalResult recurrent(NodeContext &n) {
  return Unroller<Kind>(n).run();
}

} // namespace

void onnx_import::registerRecurrentHandlers(HandlerTable &t) {
  t.on("RNN", 14, recurrent<Cell::RNN>);
  t.on("GRU", 14, recurrent<Cell::GRU>);
  t.on("LSTM", 14, recurrent<Cell::LSTM>);
}

//===- Distill.cpp - knowledge distillation in the training step ----------===//
//
/// \file
/// `trainopt-distill` (Passes.td): the teacher that `attachTeacher` moved
/// into the student's module is inlined into the student's model function,
/// frozen, and its logits and features become terms of the training loss.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Distill.h"

#include "trainopt/Dialect/Trainopt/IR/TensorBuilder.h"
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainStep.h"
#include "trainopt/Dialect/Trainopt/Transforms/TrainingPipeline.h"
#include "trainopt/Support/Random.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/BitVector.h"

#include <cmath>

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTDISTILL
#include "trainopt/Dialect/Trainopt/Transforms/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

bool mlir::trainopt::parseFeatureSpec(StringRef spec, std::string &teacher,
                                      std::string &student) {
  // ':' separates; "::" (PyTorch's "onnx::Add_3") belongs to a name.
  SmallVector<StringRef> parts;
  size_t begin = 0;
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] != ':')
      continue;
    if ((i + 1 < spec.size() && spec[i + 1] == ':') ||
        (i > 0 && spec[i - 1] == ':'))
      continue;
    parts.push_back(spec.slice(begin, i));
    begin = i + 1;
  }
  parts.push_back(spec.substr(begin));
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() ||
      parts[1].empty() || (parts.size() == 3 && parts[2] != "mse"))
    return false;
  teacher = parts[0].str();
  student = parts[1].str();
  return true;
}

/// The index of `f`'s result named `name` (`trainopt.output`), if any.
static std::optional<unsigned> resultNamed(func::FuncOp f, StringRef name) {
  for (unsigned i = 0; i < f.getNumResults(); ++i)
    if (auto n = f.getResultAttrOfType<StringAttr>(
            i, TrainoptDialect::kOutputAttrName);
        n && n.getValue() == name)
      return i;
  return std::nullopt;
}

/// The names of `f`'s results (`trainopt.output`) that are not features,
/// quoted, for messages.
static std::string outputNames(func::FuncOp f) {
  std::string names;
  for (unsigned i = 0; i < f.getNumResults(); ++i) {
    if (f.getResultAttr(i, TrainoptDialect::kFeatureAttrName))
      continue;
    auto n =
        f.getResultAttrOfType<StringAttr>(i, TrainoptDialect::kOutputAttrName);
    names += (names.empty() ? "'" : ", '") +
             (n ? n.getValue().str() : "#" + std::to_string(i)) + "'";
  }
  return names;
}

LogicalResult mlir::trainopt::attachTeacher(ModuleOp student, ModuleOp teacher,
                                            StringRef teacherPath) {
  auto fail = [&]() {
    return emitError(student.getLoc()) << "--teacher=" << teacherPath << ": ";
  };
  auto forward = teacher.lookupSymbol<func::FuncOp>("forward");
  if (!forward || forward.isExternal())
    return fail() << "the teacher has no model function @forward";
  for (Operation &op : teacher.getBody()->getOperations())
    if (!isa<ParameterOp>(op) && &op != forward.getOperation())
      return fail() << "the teacher holds '" << op.getName()
                    << "' besides its parameters and @forward: give the "
                       "model, not a compiled training module";
  for (auto f : student.getOps<func::FuncOp>())
    if (f->hasAttr(TrainoptDialect::kTeacherAttrName))
      return fail() << "the student already has a teacher (@" << f.getSymName()
                    << ")";
  if (student.lookupSymbol("teacher"))
    return fail() << "the student already has a symbol @teacher";
  for (ParameterOp p : teacher.getOps<ParameterOp>())
    if (student.lookupSymbol((kTeacherPrefix + p.getSymName()).str()))
      return fail() << "the student already has a parameter '" << kTeacherPrefix
                    << p.getSymName() << "'";

  // The parameters, frozen, after the student's own.
  Operation *firstFunc = nullptr;
  for (Operation &op : student.getBody()->getOperations())
    if (isa<func::FuncOp>(op)) {
      firstFunc = &op;
      break;
    }
  llvm::StringMap<std::string> renamed;
  for (ParameterOp p :
       llvm::make_early_inc_range(teacher.getOps<ParameterOp>())) {
    std::string name = (kTeacherPrefix + p.getSymName()).str();
    renamed[p.getSymName()] = name;
    p->remove();
    if (firstFunc)
      student.getBody()->getOperations().insert(firstFunc->getIterator(), p);
    else
      student.push_back(p);
    p.setSymName(name);
    p.setTrainable(false);
  }
  for (unsigned i = 0; i < forward.getNumArguments(); ++i)
    if (auto ref = forward.getArgAttrOfType<FlatSymbolRefAttr>(
            i, TrainoptDialect::kParamAttrName))
      forward.setArgAttr(
          i, TrainoptDialect::kParamAttrName,
          FlatSymbolRefAttr::get(student.getContext(),
                                 renamed.lookup(ref.getValue())));
  forward->remove();
  student.push_back(forward);
  forward.setSymName("teacher");
  forward->setAttr(TrainoptDialect::kTeacherAttrName,
                   UnitAttr::get(student.getContext()));
  toInferenceMode(forward);
  forward.walk([](BatchNormInferenceOp bn) {
    bn->setAttr(kFrozenStatsAttrName, UnitAttr::get(bn.getContext()));
  });
  return success();
}

namespace {

/// What `distill` asks for.
struct Response {
  bool on = false;
  double temperature = 4.0, alpha = 0.7;
};

/// One `distill-feature`.
struct Feature {
  std::string spec, teacher, student;
};

struct TrainoptDistillPass
    : public mlir::trainopt::impl::TrainoptDistillBase<TrainoptDistillPass> {
  using TrainoptDistillBase::TrainoptDistillBase;
  /// One option, to list all (TrainingPipeline.h).
  const llvm::cl::Option &anyOption() const { return distill; }

  void runOnOperation() override;

private:
  LogicalResult parse(ModuleOp module);
  /// Clones `teacher`'s ops into `forward` on the student's inputs; its
  /// results, or failure.
  FailureOr<SmallVector<Value>> inlineTeacher(func::FuncOp forward,
                                              func::FuncOp teacher);
  /// The KL term between the teacher's output and the logits of the
  /// student's cross-entropy `task` loss.
  FailureOr<Value> responseTerm(TensorBuilder &m, func::FuncOp forward,
                                func::FuncOp teacher, ArrayRef<Value> outputs,
                                Value task);
  /// The MSE term of feature `f`.
  FailureOr<Value> featureTerm(TensorBuilder &m, func::FuncOp forward,
                               func::FuncOp teacher, ArrayRef<Value> outputs,
                               const Feature &f, unsigned index);

  Response response;
  SmallVector<Feature> parsed;
};

} // namespace

LogicalResult TrainoptDistillPass::parse(ModuleOp module) {
  auto bad = [&](StringRef flag, const Twine &why) {
    return module.emitError() << "--" << flag << ": " << why;
  };
  if (distill != "off") {
    auto [kind, params] = StringRef(distill).split(':');
    if (kind != "kl")
      return bad("distill", "expected off or kl[:T=TEMPERATURE,alpha=WEIGHT], "
                            "got '" +
                                distill + "'");
    response.on = true;
    SmallVector<StringRef> items;
    if (!params.empty())
      params.split(items, ',');
    for (StringRef item : items) {
      auto [key, text] = item.split('=');
      double v;
      if (text.trim().getAsDouble(v))
        return bad("distill", "'" + item + "' is not KEY=NUMBER");
      if (key.trim() == "T") {
        if (!(v > 0.0 && std::isfinite(v)))
          return bad("distill",
                     "the temperature T must be positive, got '" + text + "'");
        response.temperature = v;
      } else if (key.trim() == "alpha") {
        if (!(v >= 0.0 && v <= 1.0))
          return bad("distill",
                     "alpha (the weight of the teacher's term) must be in "
                     "[0, 1], got '" +
                         text + "'");
        response.alpha = v;
      } else {
        return bad("distill", "unknown parameter '" + key + "' (T or alpha)");
      }
    }
  }
  for (const std::string &spec : features) {
    Feature f;
    f.spec = spec;
    if (!parseFeatureSpec(spec, f.teacher, f.student))
      return bad("distill-feature",
                 "expected TEACHER_TENSOR:STUDENT_TENSOR[:mse], got '" + spec +
                     "'");
    parsed.push_back(std::move(f));
  }
  if (featureWeight.getNumOccurrences() && parsed.empty())
    return bad("distill-feature-weight", "needs --distill-feature");
  if (!(featureWeight >= 0.0 && std::isfinite(featureWeight)))
    return bad("distill-feature-weight",
               "must be a finite number >= 0, got " +
                   std::to_string(static_cast<double>(featureWeight)));
  return success();
}

FailureOr<SmallVector<Value>>
TrainoptDistillPass::inlineTeacher(func::FuncOp forward, func::FuncOp teacher) {
  Block &body = forward.getBody().front();
  // The student's inputs, by name.
  SmallVector<BlockArgument> inputs;
  for (BlockArgument a : body.getArguments())
    if (!forward.getArgAttr(a.getArgNumber(),
                            TrainoptDialect::kParamAttrName) &&
        argumentRole(forward, a.getArgNumber()) != ValueRole::labels)
      inputs.push_back(a);
  auto nameOf = [](func::FuncOp f, unsigned i) {
    auto n = f.getArgAttrOfType<StringAttr>(i, TrainoptDialect::kInputAttrName);
    return n ? n.getValue().str() : "#" + std::to_string(i);
  };
  unsigned teacherInputs = 0;
  for (unsigned i = 0; i < teacher.getNumArguments(); ++i)
    teacherInputs +=
        !teacher.getArgAttr(i, TrainoptDialect::kParamAttrName) ? 1 : 0;

  OpBuilder b = OpBuilder::atBlockBegin(&body);
  TensorBuilder m(b, teacher.getLoc());
  IRMapping map;
  for (unsigned i = 0; i < teacher.getNumArguments(); ++i) {
    BlockArgument arg = teacher.getArgument(i);
    if (teacher.getArgAttr(i, TrainoptDialect::kParamAttrName)) {
      unsigned index = forward.getNumArguments();
      if (failed(forward.insertArgument(index, arg.getType(),
                                        teacher.getArgAttrDict(i),
                                        teacher.getLoc())))
        return failure();
      map.map(arg, forward.getArgument(index));
      continue;
    }
    std::string name = nameOf(teacher, i);
    BlockArgument match;
    for (BlockArgument a : inputs)
      if (nameOf(forward, a.getArgNumber()) == name)
        match = a;
    if (!match && teacherInputs == 1 && inputs.size() == 1)
      match = inputs.front();
    if (!match) {
      std::string names;
      for (BlockArgument a : inputs)
        names += (names.empty() ? "'" : ", '") +
                 nameOf(forward, a.getArgNumber()) + "'";
      return forward.emitError()
             << "--teacher: the teacher's input '" << name
             << "' is not an input of the student (its inputs: " << names
             << ")";
    }
    auto want = cast<RankedTensorType>(arg.getType());
    auto have = cast<RankedTensorType>(match.getType());
    Value v = match;
    if (want != have) {
      if (want.getShape() != have.getShape() ||
          !isa<FloatType>(want.getElementType()) ||
          !isa<FloatType>(have.getElementType()))
        return forward.emitError()
               << "--teacher: the teacher's input '" << name << "' is " << want
               << " but the student's is " << have
               << " (same batch size and sample shape needed)";
      v = m.cast(match, want.getElementType());
    }
    map.map(arg, v);
  }
  for (Operation &op : teacher.getBody().front().without_terminator())
    b.clone(op, map);
  SmallVector<Value> outputs;
  for (Value v : teacher.getBody().front().getTerminator()->getOperands())
    outputs.push_back(map.lookupOrDefault(v));
  return outputs;
}

FailureOr<Value> TrainoptDistillPass::responseTerm(TensorBuilder &m,
                                                   func::FuncOp forward,
                                                   func::FuncOp teacher,
                                                   ArrayRef<Value> outputs,
                                                   Value task) {
  auto ce = task.getDefiningOp<CrossEntropyOp>();
  if (!ce)
    return forward.emitError()
           << "--distill=kl needs a cross-entropy loss (the model's own or "
              "--loss=cross_entropy); this model's loss is "
           << (task.getDefiningOp()
                   ? "'" +
                         task.getDefiningOp()->getName().getStringRef().str() +
                         "'"
                   : std::string("an argument"));
  Value s = ce.getLogits();
  // The teacher's output of the student's logits' name, or its only one.
  std::optional<unsigned> which;
  auto ret = cast<func::ReturnOp>(forward.getBody().front().getTerminator());
  for (OpOperand &use : ret->getOpOperands())
    if (use.get() == s)
      if (auto n = forward.getResultAttrOfType<StringAttr>(
              use.getOperandNumber(), TrainoptDialect::kOutputAttrName))
        if (auto t = resultNamed(teacher, n.getValue());
            t && !teacher.getResultAttr(*t, TrainoptDialect::kFeatureAttrName))
          which = t;
  if (!which) {
    SmallVector<unsigned> plain;
    for (unsigned i = 0; i < teacher.getNumResults(); ++i)
      if (!teacher.getResultAttr(i, TrainoptDialect::kFeatureAttrName))
        plain.push_back(i);
    if (plain.size() != 1)
      return forward.emitError()
             << "--distill=kl: the teacher has " << plain.size() << " outputs ("
             << outputNames(teacher)
             << ") and none has the name of the student's logits";
    which = plain.front();
  }
  Value t = outputs[*which];
  auto st = TensorBuilder::type(s);
  auto tt = TensorBuilder::type(t);
  if (st.getShape() != tt.getShape() || !isa<FloatType>(tt.getElementType())) {
    auto n = teacher.getResultAttrOfType<StringAttr>(
        *which, TrainoptDialect::kOutputAttrName);
    return forward.emitError()
           << "--teacher: the teacher's output '"
           << (n ? n.getValue() : StringRef("#0")) << "' is " << tt
           << " but the student's logits are " << st
           << "; --distill=kl compares them class by class";
  }
  t = m.cast(t, st.getElementType());
  int64_t axis = ce.getClassAxis();
  if (axis < 0)
    axis += st.getRank();
  double invT = 1.0 / response.temperature;
  auto logSoftmax = [&](Value x) -> Value {
    return LogSoftmaxOp::create(m.b, x.getType(), m.mul(x, invT),
                                m.b.getI64IntegerAttr(axis));
  };
  Value ls = logSoftmax(s);
  Value lt = logSoftmax(t);
  Value pt = ExpOp::create(m.b, lt.getType(), lt);
  // KL summed over the classes, averaged over the positions.
  int64_t positions =
      st.getNumElements() / std::max<int64_t>(1, st.getDimSize(axis));
  Value kl = m.mul(m.sumAll(m.mul(pt, m.sub(lt, ls))),
                   1.0 / static_cast<double>(positions));
  double T = response.temperature;
  return m.mul(kl, response.alpha * T * T);
}

FailureOr<Value>
TrainoptDistillPass::featureTerm(TensorBuilder &m, func::FuncOp forward,
                                 func::FuncOp teacher, ArrayRef<Value> outputs,
                                 const Feature &f, unsigned index) {
  auto flag = "--distill-feature=" + f.spec;
  std::optional<unsigned> ti = resultNamed(teacher, f.teacher);
  if (!ti)
    return forward.emitError()
           << flag << ": the teacher has no tensor '" << f.teacher << "'";
  std::optional<unsigned> si = resultNamed(forward, f.student);
  if (!si)
    return forward.emitError()
           << flag << ": the student has no tensor '" << f.student << "'";
  Value sv = cast<func::ReturnOp>(forward.getBody().front().getTerminator())
                 .getOperand(*si);
  Value tv = outputs[*ti];
  auto st = TensorBuilder::type(sv);
  auto tt = TensorBuilder::type(tv);
  int64_t rank = st.getRank();
  int64_t c = rank >= 4 ? 1 : rank - 1;
  bool fits = isa<FloatType>(st.getElementType()) &&
              isa<FloatType>(tt.getElementType()) && rank >= 2 &&
              tt.getRank() == rank;
  for (int64_t d = 0; fits && d < rank; ++d)
    fits = d == c || st.getDimSize(d) == tt.getDimSize(d);
  if (!fits)
    return forward.emitError()
           << flag << ": the teacher's '" << f.teacher << "' is " << tt
           << " and the student's '" << f.student << "' is " << st
           << "; float tensors of rank 2 or more that differ at most in the "
              "channel axis (1 for rank 4 and 5, the last for rank 2 and 3)";
  tv = m.cast(tv, st.getElementType());
  int64_t cs = st.getDimSize(c), ct = tt.getDimSize(c);
  if (cs != ct) {
    // A learned projection from the student's width to the teacher's,
    // drawn as PyTorch draws a Linear's or a Conv's weight.
    SmallVector<int64_t> shape{ct, cs};
    if (rank >= 4)
      shape.append(rank - 2, 1);
    auto wt = RankedTensorType::get(shape, st.getElementType());
    const llvm::fltSemantics &semantics =
        cast<FloatType>(st.getElementType()).getFloatSemantics();
    double bound = 1.0 / std::sqrt(static_cast<double>(cs));
    SmallVector<APFloat> values;
    for (int64_t i = 0; i < wt.getNumElements(); ++i) {
      APFloat v((2.0 * ::trainopt::dropoutUniform(0x5eed + index, i) - 1.0) *
                bound);
      bool lost;
      v.convert(semantics, APFloat::rmNearestTiesToEven, &lost);
      values.push_back(v);
    }
    FailureOr<BlockArgument> w =
        addModelState(getOperation(), forward, "distill.proj." + f.student,
                      DenseElementsAttr::get(wt, values), "distill-feature",
                      /*trainable=*/true);
    if (failed(w))
      return failure();
    if (rank >= 4) {
      int64_t spatial = rank - 2;
      sv = ConvOp::create(
          m.b, sv, *w, Value(),
          m.b.getDenseI64ArrayAttr(SmallVector<int64_t>(spatial, 1)),
          m.b.getDenseI64ArrayAttr(SmallVector<int64_t>(2 * spatial, 0)),
          m.b.getDenseI64ArrayAttr(SmallVector<int64_t>(spatial, 1)),
          m.b.getI64IntegerAttr(1));
    } else {
      sv = MatmulOp::create(m.b, sv, *w, false, true);
    }
  }
  Value mse = MseLossOp::create(
      m.b, sv, tv, ReductionAttr::get(m.b.getContext(), Reduction::mean));
  return m.mul(mse, static_cast<double>(featureWeight));
}

void TrainoptDistillPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (failed(parse(module)))
    return signalPassFailure();
  func::FuncOp teacher;
  for (auto f : module.getOps<func::FuncOp>())
    if (f->hasAttr(TrainoptDialect::kTeacherAttrName))
      teacher = f;
  bool requested = response.on || !parsed.empty();
  if (!teacher) {
    if (requested) {
      module.emitError() << "--"
                         << (response.on ? "distill" : "distill-feature")
                         << " needs a teacher: trainopt-compile "
                            "--teacher=TEACHER.onnx";
      return signalPassFailure();
    }
    return;
  }
  if (!requested) {
    teacher.emitError() << "--teacher needs --distill=kl[:T=...,alpha=...] "
                           "and/or --distill-feature=TEACHER_TENSOR:"
                           "STUDENT_TENSOR";
    return signalPassFailure();
  }
  for (StringRef axis : {"tp", "pp"})
    if (meshAxis(module, axis).second > 1) {
      module.emitError() << "--teacher: distillation with " << axis
                         << " in the mesh is not supported (the teacher "
                            "would need the student's partitioning); use dp";
      return signalPassFailure();
    }
  auto forward = module.lookupSymbol<func::FuncOp>(funcName);
  if (!forward || forward.isExternal()) {
    module.emitError() << getArgument() << ": no function @" << funcName;
    return signalPassFailure();
  }
  std::optional<unsigned> lossIndex;
  for (unsigned i = 0; i < forward.getNumResults(); ++i)
    if (resultRole(forward, i) == ValueRole::loss)
      lossIndex = i;
  if (!lossIndex) {
    forward.emitError() << getArgument()
                        << ": the model has no loss yet (trainopt-attach-loss "
                           "runs first)";
    return signalPassFailure();
  }
  int64_t teacherElements = 0;
  for (unsigned i = 0; i < teacher.getNumArguments(); ++i)
    if (teacher.getArgAttr(i, TrainoptDialect::kParamAttrName))
      teacherElements +=
          cast<RankedTensorType>(teacher.getArgument(i).getType())
              .getNumElements();

  FailureOr<SmallVector<Value>> outputs = inlineTeacher(forward, teacher);
  if (failed(outputs))
    return signalPassFailure();
  auto ret = cast<func::ReturnOp>(forward.getBody().front().getTerminator());
  Value task = ret.getOperand(*lossIndex);
  OpBuilder b(ret);
  TensorBuilder m(b,
                  NameLoc::get(b.getStringAttr("distill"), forward.getLoc()));
  Value added, loss = task;
  if (response.on) {
    FailureOr<Value> term = responseTerm(m, forward, teacher, *outputs, task);
    if (failed(term))
      return signalPassFailure();
    added = *term;
    loss = m.add(m.mul(task, 1.0 - response.alpha), added);
  }
  SmallVector<Attribute> featureRecords;
  for (auto [k, f] : llvm::enumerate(parsed)) {
    FailureOr<Value> term =
        featureTerm(m, forward, teacher, *outputs, f, static_cast<unsigned>(k));
    if (failed(term))
      return signalPassFailure();
    Value t = m.cast(*term, TensorBuilder::elementType(task));
    added = added ? m.add(added, t) : t;
    loss = m.add(loss, t);
    std::string proj = "distill.proj." + f.student;
    featureRecords.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("teacher", b.getStringAttr(f.teacher)),
         b.getNamedAttr("student", b.getStringAttr(f.student)),
         b.getNamedAttr(
             "projection",
             b.getStringAttr(module.lookupSymbol(proj) ? proj : ""))}));
  }
  ret->setOperand(*lossIndex, loss);
  // The task loss and the added terms as metrics; evaluation's loss is
  // the task's.
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"task_loss", task},
        std::pair<StringRef, Value>{"distill_loss", added}}) {
    unsigned n = ret.getNumOperands();
    ret->insertOperands(n, value);
    (void)forward.insertResult(
        n, value.getType(),
        b.getDictionaryAttr({b.getNamedAttr(TrainoptDialect::kOutputAttrName,
                                            b.getStringAttr(name)),
                             roleAttr(&getContext(), ValueRole::metric)}));
  }
  forward->setAttr(TrainoptDialect::kEvalLossAttrName,
                   b.getStringAttr("task_loss"));
  // The features were returned for this pass only.
  llvm::BitVector features(forward.getNumResults());
  for (unsigned i = 0; i < forward.getNumResults(); ++i)
    if (forward.getResultAttr(i, TrainoptDialect::kFeatureAttrName))
      features.set(i);
  ret->eraseOperands(features);
  (void)forward.eraseResults(features);
  teacher.erase();

  SmallVector<NamedAttribute> record{
      b.getNamedAttr("teacher_elements", b.getI64IntegerAttr(teacherElements)),
      b.getNamedAttr("features", b.getArrayAttr(featureRecords))};
  if (response.on) {
    record.push_back(
        b.getNamedAttr("temperature", b.getF64FloatAttr(response.temperature)));
    record.push_back(
        b.getNamedAttr("alpha", b.getF64FloatAttr(response.alpha)));
  }
  module->setAttr(TrainoptDialect::kDistillationAttrName,
                  b.getDictionaryAttr(record));
}

std::vector<TrainingOption> mlir::trainopt::stage_options::distillOptions() {
  TrainoptDistillPass pass;
  return passOptionsOf(pass.anyOption(), pass.getArgument());
}

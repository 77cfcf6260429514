//===- trainopt-eval.cpp - run a trainopt function on host tensors --------===//
//
/// \file
/// `trainopt-eval IN.mlir [--function=forward] [--inputs=IN.npz] -o OUT.npz`
/// runs one function of a module with the reference evaluator. Arguments are
/// looked up in the input archive by their `trainopt.input` name, their
/// parameter's symbol name, or `argN`; a parameter argument not given takes
/// the parameter's initial value. Results are written as `result0`,
/// `result1`, ... and, where a result has a `trainopt.output` name, under that
/// name too.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Dialect/Trainopt/Transforms/Passes.h"
#include "trainopt/Evaluator/Evaluator.h"
#include "trainopt/InitAllDialects.h"
#include "llvm/ADT/StringExtras.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"

#include <cmath>
#include <random>

using namespace llvm;
using namespace mlir;

static cl::OptionCategory category("trainopt-eval options");
static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<module.mlir>"),
                                      cl::Required, cl::cat(category));
static cl::opt<std::string> functionName("function",
                                         cl::desc("Function to run"),
                                         cl::init("forward"),
                                         cl::cat(category));
static cl::opt<std::string> inputsPath("inputs",
                                       cl::desc("Arguments as a .npz archive"),
                                       cl::value_desc("file.npz"),
                                       cl::cat(category));
static cl::opt<std::string> outputPath("o",
                                       cl::desc("Results as a .npz archive"),
                                       cl::value_desc("file.npz"),
                                       cl::cat(category));
static cl::opt<bool> gradcheck(
    "gradcheck",
    cl::desc("Check trainopt-autodiff against central finite differences: "
             "for every function (or --function), differentiate its 0-d "
             "float result with respect to every float argument, evaluate on "
             "random inputs, and compare"),
    cl::init(false), cl::cat(category));
static cl::opt<double> tolerance(
    "tolerance",
    cl::desc("--gradcheck passes when |AD - FD| <= tolerance * max(1, |FD|)"),
    cl::init(1e-6), cl::cat(category));
static cl::opt<unsigned> repeat(
    "repeat",
    cl::desc("Run the function this many times, feeding each result tagged "
             "trainopt.updates back into its argument (a training loop); "
             "inputs NAME.K override NAME for run K, named outputs are "
             "written as NAME.K"),
    cl::init(1), cl::cat(category));
static cl::opt<unsigned> seed("seed", cl::desc("Seed of the random inputs"),
                              cl::init(0), cl::cat(category));

/// The index of the only 0-d floating-point result of `func`.
static std::optional<unsigned> lossResult(func::FuncOp func) {
  std::optional<unsigned> found;
  for (auto [i, t] : llvm::enumerate(func.getResultTypes())) {
    auto r = dyn_cast<RankedTensorType>(t);
    if (r && r.getRank() == 0 && isa<FloatType>(r.getElementType())) {
      if (found)
        return std::nullopt;
      found = i;
    }
  }
  return found;
}

/// Gradient check of one function; prints one line and returns whether it
/// passed.
static bool checkGradients(func::FuncOp func) {
  std::optional<unsigned> loss = lossResult(func);
  if (!loss) {
    func.emitError() << "--gradcheck needs exactly one 0-d float result";
    return false;
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  SmallVector<trainopt::HostTensor> args;
  for (BlockArgument arg : func.getArguments()) {
    auto type = cast<RankedTensorType>(arg.getType());
    if (!isa<FloatType>(type.getElementType())) {
      func.emitError() << "--gradcheck: argument " << arg.getArgNumber()
                       << " is not floating point; put labels and indices "
                          "in constants";
      return false;
    }
    trainopt::HostTensor t = trainopt::HostTensor::zeros(type);
    for (int64_t i = 0, e = t.numElements(); i < e; ++i)
      t.set(i, uniform(rng));
    args.push_back(std::move(t));
  }
  FailureOr<func::FuncOp> grad =
      trainopt::differentiate(func, *loss, trainopt::GradientArguments::Float);
  if (failed(grad))
    return false;
  FailureOr<SmallVector<trainopt::HostTensor>> analytic =
      trainopt::evaluateFunction(*grad, args);
  if (failed(analytic))
    return false;
  // A straight-through estimator is no derivative of its function: its
  // finite differences are taken of the surrogate the function names
  // (`trainopt.fd_surrogate = @other`, of the same signature).
  func::FuncOp fdFunc = func;
  if (auto surrogate =
          func->getAttrOfType<FlatSymbolRefAttr>("trainopt.fd_surrogate")) {
    fdFunc =
        SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(func, surrogate);
    if (!fdFunc || fdFunc.getFunctionType() != func.getFunctionType()) {
      func.emitError() << "--gradcheck: trainopt.fd_surrogate " << surrogate
                       << " names no function of the same type";
      return false;
    }
  }
  auto lossAt =
      [&](ArrayRef<trainopt::HostTensor> at) -> std::optional<double> {
    FailureOr<SmallVector<trainopt::HostTensor>> r =
        trainopt::evaluateFunction(fdFunc, at);
    if (failed(r))
      return std::nullopt;
    return (*r)[*loss].at(0);
  };
  const double h = 1e-6;
  double worst = 0.0;
  int64_t checked = 0;
  for (unsigned a = 0; a < args.size(); ++a) {
    const trainopt::HostTensor &g = (*analytic)[1 + a];
    for (int64_t i = 0, e = args[a].numElements(); i < e; ++i) {
      SmallVector<trainopt::HostTensor> plus(args), minus(args);
      plus[a].floats[i] += h;
      minus[a].floats[i] -= h;
      std::optional<double> lp = lossAt(plus), lm = lossAt(minus);
      if (!lp || !lm)
        return false;
      double fd = (*lp - *lm) / (2 * h);
      double error = std::fabs(g.at(i) - fd) / std::max(1.0, std::fabs(fd));
      worst = std::max(worst, error);
      ++checked;
    }
  }
  bool pass = worst <= tolerance;
  outs() << "@" << func.getSymName() << ": " << checked
         << " partial derivatives"
         << (fdFunc != func
                 ? " (finite differences of @" + fdFunc.getSymName().str() + ")"
                 : std::string())
         << ", max error " << llvm::format("%.3g", worst)
         << (pass ? ": PASS" : ": FAIL") << "\n";
  return pass;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv, "trainopt reference evaluator\n");
  auto error = [](const Twine &message) {
    WithColor::error(errs(), "trainopt-eval") << message << "\n";
    return 1;
  };

  DialectRegistry registry;
  trainopt::registerAllDialects(registry);
  MLIRContext context(registry);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(inputPath, sourceMgr, &context);
  if (!module)
    return 1;
  if (gradcheck) {
    SmallVector<func::FuncOp> funcs;
    for (auto f : module->getOps<func::FuncOp>())
      if (functionName.getNumOccurrences() == 0 ||
          f.getSymName() == functionName)
        funcs.push_back(f);
    if (funcs.empty())
      return error("no function to check in '" + inputPath + "'");
    bool ok = true;
    for (func::FuncOp f : funcs)
      ok &= checkGradients(f);
    return ok ? 0 : 1;
  }
  if (outputPath.empty())
    return error("no output; pass -o FILE.npz");
  auto func = module->lookupSymbol<func::FuncOp>(functionName);
  if (!func)
    return error("no function @" + functionName + " in '" + inputPath + "'");

  llvm::StringMap<trainopt::HostTensor> given;
  if (!inputsPath.empty()) {
    auto arrays = trainopt::readNpz(inputsPath, &context);
    if (!arrays)
      return error(toString(arrays.takeError()));
    for (auto &[name, tensor] : *arrays)
      given[name] = std::move(tensor);
  }

  // Resolves argument i from the archive: `<name>.<run>` first (per-run
  // data under --repeat), then `<name>`; parameters default to their
  // initial values and training state (optimizer slots, step) to zeros.
  auto argNames = [&](unsigned i) {
    SmallVector<std::string> names{"arg" + std::to_string(i)};
    if (auto name = func.getArgAttrOfType<StringAttr>(
            i, trainopt::TrainoptDialect::kInputAttrName))
      names.insert(names.begin(), name.str());
    if (auto ref = func.getArgAttrOfType<FlatSymbolRefAttr>(
            i, trainopt::TrainoptDialect::kParamAttrName))
      names.insert(names.begin(), ref.getValue().str());
    return names;
  };
  auto convert =
      [&](const trainopt::HostTensor &from, RankedTensorType type,
          const std::string &name) -> std::optional<trainopt::HostTensor> {
    if (ArrayRef<int64_t>(from.shape) != type.getShape()) {
      (void)error("argument '" + name + "' has a different shape than " +
                  "declared in the function");
      return std::nullopt;
    }
    trainopt::HostTensor t = trainopt::HostTensor::zeros(type);
    for (int64_t k = 0, e = t.numElements(); k < e; ++k) {
      if (from.isFloat())
        t.set(k, from.floats[k]);
      else
        t.setInt(k, from.ints[k]);
    }
    return t;
  };
  SmallVector<trainopt::HostTensor> args;
  SmallVector<std::string> missing;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto type = cast<RankedTensorType>(func.getArgument(i).getType());
    SmallVector<std::string> names = argNames(i);
    trainopt::HostTensor *found = nullptr;
    for (const std::string &n : names)
      if (!found && given.count(n))
        found = &given[n];
    for (const std::string &n : names)
      if (!found && given.count(n + ".0"))
        found = &given[n + ".0"];
    if (found) {
      std::optional<trainopt::HostTensor> t =
          convert(*found, type, names.front());
      if (!t)
        return 1;
      args.push_back(std::move(*t));
      continue;
    }
    if (std::optional<trainopt::HostTensor> init =
            trainopt::parameterInitialValue(func, i)) {
      args.push_back(std::move(*init));
      continue;
    }
    args.push_back(trainopt::HostTensor::zeros(type));
    if (!func.getArgAttr(i, trainopt::TrainoptDialect::kStateAttrName))
      missing.push_back(names.front());
  }
  if (!missing.empty())
    return error("missing arguments: " + join(missing, ", "));

  // Runs the function --repeat times; results tagged trainopt.updates feed
  // the arguments they replace, as the runtime's training loop does.
  std::vector<std::pair<std::string, trainopt::HostTensor>> out;
  FailureOr<SmallVector<trainopt::HostTensor>> results;
  for (unsigned run = 0; run < repeat; ++run) {
    if (run > 0)
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        for (const std::string &n : argNames(i)) {
          auto it = given.find(n + "." + std::to_string(run));
          if (it == given.end())
            continue;
          std::optional<trainopt::HostTensor> t =
              convert(it->second,
                      cast<RankedTensorType>(func.getArgument(i).getType()), n);
          if (!t)
            return 1;
          args[i] = std::move(*t);
          break;
        }
    results = trainopt::evaluateFunction(func, args);
    if (failed(results))
      return 1;
    for (auto [i, t] : llvm::enumerate(*results)) {
      if (auto replaces = func.getResultAttrOfType<IntegerAttr>(
              i, trainopt::TrainoptDialect::kUpdatesAttrName))
        args[replaces.getInt()] = t;
      if (repeat > 1)
        if (auto name = func.getResultAttrOfType<StringAttr>(
                i, trainopt::TrainoptDialect::kOutputAttrName))
          out.push_back({name.str() + "." + std::to_string(run), t});
    }
  }
  for (auto [i, t] : llvm::enumerate(*results)) {
    out.push_back({"result" + std::to_string(i), t});
    if (auto name = func.getResultAttrOfType<StringAttr>(
            i, trainopt::TrainoptDialect::kOutputAttrName))
      out.push_back({name.str(), t});
    if (auto of = func.getResultAttrOfType<FlatSymbolRefAttr>(
            i, trainopt::TrainoptDialect::kGradOfAttrName))
      out.push_back({"grad." + of.getValue().str(), t});
  }
  // The final value of every parameter, under its symbol name.
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (auto ref = func.getArgAttrOfType<FlatSymbolRefAttr>(
            i, trainopt::TrainoptDialect::kParamAttrName))
      out.push_back({"final." + ref.getValue().str(), args[i]});
  if (Error e = trainopt::writeNpz(outputPath, out))
    return error(toString(std::move(e)));
  return 0;
}

//===- KernelCodegen.cpp - kernels to a native shared object --------------===//
//
/// \file
/// Compiles the outlined kernel functions (tensor form) into one native
/// shared object through upstream MLIR: each kernel is rewritten in
/// destination-passing style over memrefs (inputs read through
/// `to_tensor`, results written with `materialize_in_destination`),
/// bufferized in place; then the kernels are split into groups that are
/// compiled side by side on as many threads as the context's pool has,
/// each lowered linalg -> loops -> LLVM dialect with bare pointers,
/// translated to LLVM IR (its own LLVM context), optimized and emitted as
/// an object file; the C driver links the objects into one shared object. Every
/// kernel gets a
/// `<name>_packed(void **)` wrapper, the one calling convention the runtime
/// knows.
///
/// Three rewrites between bufferization and lowering shape the loops for
/// LLVM's vectorizer and for threads:
/// - consecutive loops that every operand walks contiguously fold into one
///   (an elementwise kernel over NCHW becomes one loop over all elements,
///   so the innermost loop is long and unit-stride);
/// - float additions that accumulate a reduction may be reassociated, so
///   the vectorizer keeps several partial sums (the order is fixed by the
///   binary, so results stay deterministic run to run);
/// - a kernel made of one generic op whose first loop is parallel and
///   indexes only the first dim of the operands that use it takes a row
///   range (`<name>_range_packed(void **, begin, end)`), so the runtime can
///   split its rows over threads.
//
//===----------------------------------------------------------------------===//

#include "KernelCodegen.h"

#include "trainopt/Target/KernelModule.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <atomic>

using namespace mlir;
using mlir::trainopt::buildBufferizedKernels;
using mlir::trainopt::CompiledKernels;
using mlir::trainopt::CPUTargetOptions;
using mlir::trainopt::ParallelKernel;

namespace {

/// Kernels with fewer loop iterations get no row ranges.
constexpr int64_t kMinRowSplitWork = 1 << 15;

/// The function argument `v` views (through collapse and expand), if any.
Value viewedArgument(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (auto c = dyn_cast<memref::CollapseShapeOp>(def))
      v = c.getSrc();
    else if (auto e = dyn_cast<memref::ExpandShapeOp>(def))
      v = e.getSrc();
    else
      return Value();
  }
  return v;
}

/// The loop of `generic` that its rows split: the first loop if it is
/// parallel; otherwise the first parallel loop of at least two iterations
/// that every output indexes. The second case is a per-channel reduction
/// over [N, C, ...] (BatchNorm's statistics, a bias gradient): each thread
/// then takes a range of channels and still walks the samples outermost, so
/// every channel's sum is added in the same order as on one thread.
std::optional<unsigned> rowLoop(linalg::GenericOp generic) {
  SmallVector<utils::IteratorType> iterators = generic.getIteratorTypesArray();
  if (linalg::isParallelIterator(iterators[0]))
    return 0u;
  SmallVector<int64_t> ranges = generic.getStaticLoopRanges();
  for (unsigned d = 1; d < iterators.size(); ++d) {
    if (!linalg::isParallelIterator(iterators[d]) || ranges[d] < 2)
      continue;
    AffineExpr dim = getAffineDimExpr(d, generic.getContext());
    if (llvm::all_of(generic.getDpsInitsMutable(), [&](OpOperand &init) {
          return llvm::is_contained(
              generic.getMatchingIndexingMap(&init).getResults(), dim);
        }))
      return d;
  }
  return std::nullopt;
}

/// If `func` computes one linalg.generic (plus views, and fills of its
/// outputs) with a loop that rowLoop splits, indexed by each operand in at
/// most one dim and by each output, gives it two trailing index arguments
/// (begin, end) and makes it compute rows [begin, end) of that loop through
/// subviews (the fills too fill only those rows).
std::optional<ParallelKernel> takeRowRange(func::FuncOp func) {
  linalg::GenericOp generic;
  SmallVector<linalg::FillOp> fills;
  for (Operation &op : func.getBody().front()) {
    if (auto g = dyn_cast<linalg::GenericOp>(op)) {
      if (generic)
        return std::nullopt;
      generic = g;
      continue;
    }
    if (auto f = dyn_cast<linalg::FillOp>(op); f && !generic) {
      fills.push_back(f);
      continue;
    }
    if (!isa<memref::CollapseShapeOp, memref::ExpandShapeOp,
             arith::ConstantOp, func::ReturnOp>(op))
      return std::nullopt;
  }
  if (!generic || generic.getNumLoops() == 0)
    return std::nullopt;
  std::optional<unsigned> loop = rowLoop(generic);
  if (!loop)
    return std::nullopt;
  SmallVector<int64_t> ranges = generic.getStaticLoopRanges();
  ParallelKernel info{ranges[*loop], 1};
  for (int64_t r : ranges) {
    if (ShapedType::isDynamic(r))
      return std::nullopt;
    info.work *= r;
  }
  bool indexesRows = false;
  generic.getRegion().walk(
      [&](linalg::IndexOp i) { indexesRows |= i.getDim() == *loop; });
  // Small kernels stay whole: waking threads would cost more than they save.
  if (indexesRows || info.rows < 2 || info.work < kMinRowSplitWork)
    return std::nullopt;
  AffineExpr rowDim = getAffineDimExpr(*loop, func.getContext());
  // Each operand the rows cut, with the dim of it that they cut.
  SmallVector<std::pair<OpOperand *, unsigned>> rowOperands;
  for (OpOperand &operand : generic->getOpOperands()) {
    AffineMap map = generic.getMatchingIndexingMap(&operand);
    std::optional<unsigned> at;
    for (unsigned r = 0; r < map.getNumResults(); ++r) {
      if (map.getResult(r) == rowDim && !at)
        at = r;
      else if (map.getResult(r).isFunctionOfDim(*loop))
        return std::nullopt;
    }
    if (!at && generic.isDpsInit(&operand))
      return std::nullopt;
    if (at)
      rowOperands.push_back({&operand, *at});
  }
  // A fill must write exactly what an output of the generic views.
  SmallVector<Value> initArguments;
  for (OpOperand &init : generic.getDpsInitsMutable())
    initArguments.push_back(viewedArgument(init.get()));
  for (linalg::FillOp fill : fills) {
    Value filled = fill.getDpsInitOperand(0)->get();
    if (!isa<BlockArgument>(filled) || llvm::count(initArguments, filled) != 1)
      return std::nullopt;
  }

  Block &entry = func.getBody().front();
  Location loc = func.getLoc();
  IndexType indexType = IndexType::get(func.getContext());
  Value begin = entry.addArgument(indexType, loc);
  Value end = entry.addArgument(indexType, loc);
  SmallVector<Type> argTypes(func.getArgumentTypes());
  argTypes.append({indexType, indexType});
  func.setType(FunctionType::get(func.getContext(), argTypes, {}));
  OpBuilder b(generic);
  Value rows = arith::SubIOp::create(b, loc, end, begin);
  for (auto [operand, dim] : rowOperands) {
    auto type = cast<MemRefType>(operand->get().getType());
    SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
    SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
    SmallVector<OpFoldResult> sizes;
    for (int64_t d : type.getShape())
      sizes.push_back(b.getIndexAttr(d));
    offsets[dim] = begin;
    sizes[dim] = rows;
    Value view = memref::SubViewOp::create(b, loc, operand->get(), offsets,
                                           sizes, strides);
    // The fill of this output now fills the same rows, just before.
    if (generic.isDpsInit(operand))
      for (linalg::FillOp &fill : fills)
        if (fill && viewedArgument(operand->get()) ==
                        fill.getDpsInitOperand(0)->get()) {
          linalg::FillOp::create(b, loc, fill.getInputs(), ValueRange{view});
          fill.erase();
          fill = nullptr;
        }
    operand->set(view);
  }
  return info;
}

/// Folds loops, marks reductions reassociable (KernelModule.h) and gives
/// row ranges to the kernels that split by rows; records the latter in
/// `parallel`.
LogicalResult shapeLoops(ModuleOp kmod,
                         llvm::StringMap<ParallelKernel> &parallel) {
  if (failed(mlir::trainopt::foldKernelLoops(kmod)))
    return failure();
  for (auto func : kmod.getOps<func::FuncOp>())
    if (std::optional<ParallelKernel> info = takeRowRange(func))
      parallel[func.getSymName()] = *info;
  return success();
}

/// Adds `<f>_packed(ptr args)` for every defined function: loads each
/// pointer argument from the array and calls `f` (a row-range kernel over
/// all its rows). A row-range kernel also gets
/// `<f>_range_packed(ptr args, i64 begin, i64 end)`.
void addPackedWrappers(llvm::Module &module,
                       const llvm::StringMap<ParallelKernel> &parallel) {
  SmallVector<llvm::Function *> kernels;
  for (llvm::Function &f : module)
    if (!f.isDeclaration())
      kernels.push_back(&f);
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptrTy = llvm::PointerType::get(ctx, 0);
  auto *i64Ty = llvm::Type::getInt64Ty(ctx);
  auto *voidTy = llvm::Type::getVoidTy(ctx);
  for (llvm::Function *f : kernels) {
    auto ranged = parallel.find(f->getName());
    bool isRanged = ranged != parallel.end();
    unsigned numBuffers = f->arg_size() - (isRanged ? 2 : 0);
    auto wrap = [&](const Twine &name, bool withRange) {
      SmallVector<llvm::Type *> params = {ptrTy};
      if (withRange)
        params.append({i64Ty, i64Ty});
      auto *wrapper = llvm::Function::Create(
          llvm::FunctionType::get(voidTy, params, false),
          llvm::Function::ExternalLinkage, name, module);
      llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", wrapper));
      SmallVector<llvm::Value *> args;
      for (unsigned i = 0; i < numBuffers; ++i) {
        llvm::Value *slot =
            b.CreateConstInBoundsGEP1_64(ptrTy, wrapper->getArg(0), i);
        args.push_back(b.CreateLoad(ptrTy, slot));
      }
      if (withRange) {
        args.append({wrapper->getArg(1), wrapper->getArg(2)});
      } else if (isRanged) {
        args.append({b.getInt64(0), b.getInt64(ranged->second.rows)});
      }
      b.CreateCall(f, args);
      b.CreateRetVoid();
    };
    wrap(f->getName() + "_packed", false);
    if (isRanged)
      wrap(f->getName() + "_range_packed", true);
    // Buffers of a kernel never overlap, except an output written over an
    // input it reads elementwise at the same index (in-place reuse), which
    // noalias code still computes correctly: each element is read before
    // it is written and no other element depends on it.
    for (unsigned i = 0; i < numBuffers; ++i)
      f->addParamAttr(i, llvm::Attribute::NoAlias);
    // The kernels themselves are internal: the wrappers are the interface.
    // They stay out of line: inlined, a kernel's body was simplified twice
    // (before and after inlining) and, with row ranges, vectorized once per
    // wrapper, for a third of LLVM's time and no faster steps; a wrapper
    // calling it costs one call per launch.
    f->setLinkage(llvm::GlobalValue::InternalLinkage);
    f->addFnAttr(llvm::Attribute::NoInline);
  }
}

LogicalResult fail(ModuleOp module, const Twine &message) {
  return module.emitError() << "CPU code generation: " << message;
}

/// LLVM's default pipeline at `optLevel`, vectorizing but without loop
/// unrolling: the kernels' inner loops have constant trip counts, and full
/// unrolling turns a 256-element reduction into a 3000-instruction block
/// whose scheduling (quadratic in the block) dominated compile time (31 s
/// of 34 for a small U-Net; 3.4 s without). Step times did not get worse
/// (A/B, 2 threads: MobileNetV3-small 41.6-44.8 ms against 45.5-77.3,
/// ResNet-18 148-169 ms against 149-174): the vectorizer's interleaving
/// already gives the loops their parallelism, and the code is smaller.
void optimizeKernels(llvm::Module &module, llvm::TargetMachine &machine,
                     unsigned optLevel) {
  llvm::PipelineTuningOptions tuning;
  tuning.LoopUnrolling = false;
  tuning.LoopInterleaving = true;
  tuning.LoopVectorization = optLevel > 1;
  tuning.SLPVectorization = optLevel > 1;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&machine, tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = optLevel == 0   ? llvm::OptimizationLevel::O0
                                  : optLevel == 1 ? llvm::OptimizationLevel::O1
                                  : optLevel == 2 ? llvm::OptimizationLevel::O2
                                                  : llvm::OptimizationLevel::O3;
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(level);
  mpm.run(module, mam);
}

/// Moves bf16 through the kernels as i16. The lowering computes in f32 and
/// keeps bf16 only in memory (its conversions are integer code), but the
/// loads, stores, selects and constants of bf16 values remain, and x86
/// without AVX-512 BF16 holds a bfloat value in a register as f32: storing
/// it then rounds with a libcall (`__truncsfbf2`, which libgcc 12 lacks).
/// With opaque pointers a load or store may take any type, so each of
/// these ops is retyped to i16 behind bitcasts, and the pairs of bitcasts
/// fold away; no bfloat value is left for LLVM to promote.
void moveBF16AsI16(ModuleOp module) {
  auto isBF16 = [](Type t) {
    return isa<BFloat16Type>(getElementTypeOrSelf(t));
  };
  auto asI16 = [](Type t) {
    Type i16 = IntegerType::get(t.getContext(), 16);
    if (auto v = dyn_cast<VectorType>(t))
      return Type(v.clone(i16));
    return i16;
  };
  SmallVector<Operation *> work;
  module.walk([&](Operation *op) {
    if (isa<LLVM::LoadOp, LLVM::StoreOp, LLVM::SelectOp, LLVM::ConstantOp>(
            op) &&
        (llvm::any_of(op->getResultTypes(), isBF16) ||
         llvm::any_of(op->getOperandTypes(), isBF16)))
      work.push_back(op);
  });
  OpBuilder b(module.getContext());
  auto toInt = [&](Value v) -> Value {
    if (!isBF16(v.getType()))
      return v;
    if (auto back = v.getDefiningOp<LLVM::BitcastOp>())
      if (back.getArg().getType() == asI16(v.getType()))
        return back.getArg();
    return LLVM::BitcastOp::create(b, v.getLoc(), asI16(v.getType()), v);
  };
  for (Operation *op : work) {
    b.setInsertionPoint(op);
    Value intResult;
    if (auto load = dyn_cast<LLVM::LoadOp>(op)) {
      auto i =
          LLVM::LoadOp::create(b, load.getLoc(), asI16(load.getType()),
                               load.getAddr(), load.getAlignment().value_or(0),
                               load.getVolatile_(), load.getNontemporal());
      intResult = i.getResult();
    } else if (auto store = dyn_cast<LLVM::StoreOp>(op)) {
      store.getValueMutable().assign(toInt(store.getValue()));
      continue;
    } else if (auto sel = dyn_cast<LLVM::SelectOp>(op)) {
      intResult = LLVM::SelectOp::create(b, sel.getLoc(), sel.getCondition(),
                                         toInt(sel.getTrueValue()),
                                         toInt(sel.getFalseValue()));
    } else {
      auto c = cast<LLVM::ConstantOp>(op);
      Attribute value = c.getValue();
      Type it = asI16(c.getType());
      Attribute intValue;
      if (auto f = dyn_cast<FloatAttr>(value))
        intValue = IntegerAttr::get(it, f.getValue().bitcastToAPInt());
      else if (auto d = dyn_cast<DenseFPElementsAttr>(value))
        intValue = d.bitcast(IntegerType::get(c.getContext(), 16));
      else
        continue;
      intResult = LLVM::ConstantOp::create(b, c.getLoc(), it,
                                           cast<TypedAttr>(intValue));
    }
    Value back = LLVM::BitcastOp::create(b, op->getLoc(),
                                         op->getResultTypes()[0], intResult);
    op->getResult(0).replaceAllUsesWith(back);
    op->erase();
  }
  // bitcast(bitcast(x : i16 -> bf16) : bf16 -> i16) is x.
  module.walk([&](LLVM::BitcastOp cast) {
    auto inner = cast.getArg().getDefiningOp<LLVM::BitcastOp>();
    if (inner && inner.getArg().getType() == cast.getType()) {
      cast.replaceAllUsesWith(inner.getArg());
      cast.erase();
      if (inner->use_empty())
        inner.erase();
    }
  });
}

/// The LLVM target of the kernels, and how each function is marked.
struct NativeTarget {
  const llvm::Target *target = nullptr;
  std::string triple, cpu, features;
};

/// The kernels' lowering from bufferized linalg to the LLVM dialect, in
/// two parts around the 16-bit float passes (kNarrowFloatPasses).
constexpr llvm::StringLiteral kLoweringHead =
    "canonicalize,func.func(convert-linalg-to-loops),lower-affine,"
    "convert-scf-to-cf,expand-strided-metadata,lower-affine,"
    "finalize-memref-to-llvm,";
constexpr llvm::StringLiteral kLoweringTail =
    "convert-math-to-llvm,"
    "convert-math-to-libm,convert-arith-to-llvm,convert-index-to-llvm,"
    "convert-func-to-llvm{use-bare-ptr-memref-call-conv=1},"
    "convert-cf-to-llvm,reconcile-unrealized-casts";
/// bf16 and f16 are storage types: their arithmetic runs in f32, and the
/// conversions are integer code (round to nearest even), so no libgcc
/// soft-float routine and no AVX-512 BF16 instruction is needed. Only for
/// groups that have 16-bit floats (mixed precision): the passes cost
/// compile time, and arith-expand would also rewrite f32 min/max.
constexpr llvm::StringLiteral kNarrowFloatPasses =
    "func.func(math-extend-to-supported-types{target-type=f32},"
    "arith-emulate-unsupported-floats{source-types=bf16,f16 target-type=f32}),"
    "arith-expand{include-bf16=true},";

/// The lowering pipeline, with the 16-bit float passes when `narrow`.
std::string loweringPipeline(bool narrow) {
  return (kLoweringHead + (narrow ? kNarrowFloatPasses : "") + kLoweringTail)
      .str();
}

/// Whether any value or argument of `module` has bf16 or f16 elements.
bool hasNarrowFloats(ModuleOp module) {
  auto narrow = [](Type t) {
    Type e = getElementTypeOrSelf(t);
    return isa<BFloat16Type, Float16Type>(e);
  };
  WalkResult r = module.walk([&](Operation *op) {
    if (llvm::any_of(op->getResultTypes(), narrow))
      return WalkResult::interrupt();
    for (Region &region : op->getRegions())
      for (Block &block : region)
        if (llvm::any_of(block.getArgumentTypes(), narrow))
          return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return r.wasInterrupted();
}

/// At most this many groups, whatever the model: enough to keep a large
/// machine's threads busy and to even out the groups' unequal costs.
constexpr int64_t kMaxGroups = 32;

/// Splits the kernels of `kmod` into modules of contiguous runs of about
/// equal size (counted in operations), each of at least `minOps`. Small
/// groups even out the threads' loads (DenseNet-121, 31,000 operations on
/// 2 threads: 3 groups 9.2 s, 8 groups 7.9 s, 31 groups 7.3 s) and cost
/// little each (a target machine, a pass pipeline, an object file). The split
/// depends on the kernels alone, not on the thread count, so every machine
/// compiles the same groups into the same shared object.
SmallVector<OwningOpRef<ModuleOp>> splitIntoGroups(ModuleOp kmod,
                                                   int64_t minOps) {
  SmallVector<std::pair<func::FuncOp, int64_t>> funcs;
  int64_t total = 0;
  for (func::FuncOp f : kmod.getOps<func::FuncOp>()) {
    int64_t n = 0;
    f.walk([&](Operation *) { ++n; });
    funcs.push_back({f, n});
    total += n;
  }
  int64_t count =
      std::clamp<int64_t>(total / std::max<int64_t>(minOps, 1), 1,
                          std::min<int64_t>(kMaxGroups, funcs.size()));
  SmallVector<OwningOpRef<ModuleOp>> groups;
  if (funcs.empty()) // still one object, so the shared object links
    groups.push_back(ModuleOp::create(kmod.getLoc()));
  int64_t done = 0;
  for (auto [f, n] : funcs) {
    // Group g takes the kernels that start in [g, g + 1) * total / count.
    size_t g = done * count / std::max<int64_t>(total, 1);
    while (groups.size() <= g)
      groups.push_back(ModuleOp::create(kmod.getLoc()));
    f->moveBefore(groups.back()->getBody(), groups.back()->getBody()->end());
    done += n;
  }
  return groups;
}

/// f32 erf, tanh and exp as MLIR's polynomial approximations (Eigen's and
/// Cephes' coefficients) in arith ops that LLVM vectorizes, instead of a
/// libm call per element: GPT's GELU kernel over 16x64x1024 elements took
/// 4.1 ms with erff, its gradient 2.3 ms with expf. f64 and the 16-bit
/// types keep libm (f64 is the differential tester's strict oracle).
LogicalResult approximateMath(ModuleOp group) {
  RewritePatternSet patterns(group.getContext());
  populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
    return name == math::ErfOp::getOperationName() ||
           name == math::TanhOp::getOperationName() ||
           name == math::ExpOp::getOperationName();
  });
  return applyPatternsGreedily(group, std::move(patterns));
}

/// Lowers one group of kernels to an object file at `objPath`: to the LLVM
/// dialect, to LLVM IR (plus the packed wrappers), optimized, to machine
/// code. Runs on a worker thread: everything it creates (pass manager,
/// LLVM context, target machine) is its own.
LogicalResult compileGroup(ModuleOp group, unsigned index,
                           const llvm::StringMap<ParallelKernel> &parallel,
                           const NativeTarget &native,
                           const CPUTargetOptions &options,
                           const std::string &objPath, TimingScope &timing) {
  auto fail = [&](const Twine &message) {
    return ::fail(group, "kernel group " + Twine(index) + ": " + message);
  };
  TimingScope phase = timing.nest("lower to the LLVM dialect");
  PassManager pm(group.getContext(), ModuleOp::getOperationName());
  bool narrow = hasNarrowFloats(group);
  if (failed(approximateMath(group)))
    return fail("approximating erf, tanh and exp failed");
  if (failed(parsePassPipeline(loweringPipeline(narrow), pm)))
    return fail("cannot build the lowering pipeline");
  if (failed(pm.run(group)))
    return fail("lowering the kernels to the LLVM dialect failed");
  if (narrow)
    moveBF16AsI16(group);

  phase = timing.nest("translate to LLVM IR");
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule = translateModuleToLLVMIR(
      group, llvmContext, "trainopt_kernels_" + std::to_string(index));
  if (!llvmModule)
    return fail("translation to LLVM IR failed");
  addPackedWrappers(*llvmModule, parallel);
  std::unique_ptr<llvm::TargetMachine> machine(
      native.target->createTargetMachine(
          llvm::Triple(native.triple), native.cpu, native.features,
          llvm::TargetOptions(), llvm::Reloc::PIC_, std::nullopt,
          llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return fail("cannot create an LLVM target machine for " + native.cpu);
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(llvm::Triple(native.triple));
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", native.cpu);
    if (!native.features.empty())
      f.addFnAttr("target-features", native.features);
  }

  phase = timing.nest("LLVM optimization");
  optimizeKernels(*llvmModule, *machine, options.optLevel);

  phase = timing.nest("LLVM machine code");
  std::error_code ec;
  llvm::raw_fd_ostream os(objPath, ec);
  if (ec)
    return fail("cannot write " + objPath + ": " + ec.message());
  llvm::legacy::PassManager emit;
  if (machine->addPassesToEmitFile(emit, os, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
    return fail("the target cannot emit object files");
  emit.run(*llvmModule);
  os.close();
  if (os.has_error())
    return fail("cannot write " + objPath + ": " + os.error().message());
  if (!options.keepDir.empty()) {
    llvm::raw_fd_ostream ll(
        options.keepDir + "/kernels." + std::to_string(index) + ".ll", ec);
    if (!ec)
      llvmModule->print(ll, nullptr);
  }
  return success();
}

} // namespace

FailureOr<CompiledKernels>
mlir::trainopt::compileKernels(ModuleOp module, ArrayRef<func::FuncOp> kernels,
                               const CPUTargetOptions &options,
                               TimingScope &timing) {
  MLIRContext *ctx = module.getContext();
  ctx->loadDialect<arith::ArithDialect, bufferization::BufferizationDialect,
                   linalg::LinalgDialect, memref::MemRefDialect,
                   func::FuncDialect>();
  CompiledKernels compiled;
  TimingScope phase = timing.nest("bufferize");
  FailureOr<OwningOpRef<ModuleOp>> bufferized =
      buildBufferizedKernels(module, kernels);
  if (failed(bufferized))
    return failure();
  OwningOpRef<ModuleOp> kmod = std::move(*bufferized);
  phase = timing.nest("shape loops");
  if (failed(shapeLoops(*kmod, compiled.parallel)))
    return fail(module, "folding the kernel loops failed");
  if (!options.keepDir.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(options.keepDir + "/kernels.mlir", ec);
    if (!ec)
      kmod->print(os);
  }

  // What the worker threads share is set up here, before they start:
  // the dialects the lowering loads, the translations, the LLVM target.
  {
    PassManager pm(ctx, ModuleOp::getOperationName());
    if (failed(parsePassPipeline(loweringPipeline(/*narrow=*/true), pm)))
      return fail(module, "cannot build the lowering pipeline");
    DialectRegistry dependencies;
    pm.getDependentDialects(dependencies);
    ctx->appendDialectRegistry(dependencies);
    for (StringRef name : dependencies.getDialectNames())
      ctx->getOrLoadDialect(name);
  }
  registerBuiltinDialectTranslation(*ctx);
  registerLLVMDialectTranslation(*ctx);
  ctx->getOrLoadDialect<LLVM::LLVMDialect>();
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  NativeTarget native;
  native.triple = llvm::sys::getDefaultTargetTriple();
  std::string error;
  native.target =
      llvm::TargetRegistry::lookupTarget(llvm::Triple(native.triple), error);
  if (!native.target)
    return fail(module, "no LLVM target for " + native.triple + ": " + error);
  native.cpu =
      options.cpu.empty() ? llvm::sys::getHostCPUName().str() : options.cpu;
  if (options.cpu.empty()) {
    SmallVector<std::string> feats;
    for (const auto &[name, on] : llvm::sys::getHostCPUFeatures())
      feats.push_back((on ? "+" : "-") + name.str());
    native.features = llvm::join(feats, ",");
  }

  SmallString<128> dir;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("trainopt-kernels", dir))
    return fail(module, "cannot create a temporary directory: " + ec.message());
  SmallVector<std::string> objects;
  std::string soPath = (dir + "/kernels.so").str();
  llvm::scope_exit cleanup([&] {
    for (const std::string &path : objects)
      llvm::sys::fs::remove(path);
    llvm::sys::fs::remove(soPath);
    llvm::sys::fs::remove(dir);
  });

  // The groups compile side by side (one after another when threading is
  // off); times below are summed over threads.
  phase = timing.nest("compile kernel groups (summed over threads)");
  SmallVector<OwningOpRef<ModuleOp>> groups =
      splitIntoGroups(*kmod, options.groupOps);
  compiled.groups = groups.size();
  for (size_t i = 0; i < groups.size(); ++i)
    objects.push_back((dir + "/kernels." + Twine(i) + ".o").str());
  // Workers of their own, not the context's pool: a group's pass manager
  // runs nested pipelines on that pool, and a pool worker waiting for those
  // could leave the other groups to one thread (2 runs in 8 took twice as
  // long, all groups on one thread). Diagnostics keep the groups' order.
  size_t threads =
      ctx->isMultithreadingEnabled()
          ? std::min<size_t>(groups.size(),
                             ctx->getThreadPool().getMaxConcurrency())
          : 1;
  ParallelDiagnosticHandler diagnostics(ctx);
  std::atomic<size_t> next(0);
  std::atomic<bool> anyFailed(false);
  auto work = [&] {
    for (size_t i; !anyFailed && (i = next++) < groups.size();) {
      diagnostics.setOrderIDForThread(i);
      if (failed(compileGroup(*groups[i], i, compiled.parallel, native, options,
                              objects[i], phase)))
        anyFailed = true;
      diagnostics.eraseOrderIDForThread();
    }
  };
  if (threads <= 1) {
    work();
  } else {
    llvm::StdThreadPool pool(llvm::hardware_concurrency(threads));
    for (size_t t = 0; t < threads; ++t)
      pool.async(work);
    pool.wait();
  }
  if (anyFailed)
    return failure();

  phase = timing.nest("link");
  llvm::ErrorOr<std::string> driver =
      llvm::sys::findProgramByName(options.linker);
  if (!driver)
    return fail(module, "cannot find the linker driver '" + options.linker +
                            "' on PATH (needed to link the kernels)");
  SmallVector<StringRef> argv = {*driver, "-shared", "-o", soPath};
  argv.append(objects.begin(), objects.end());
  argv.push_back("-lm");
  std::string linkError;
  int rc = llvm::sys::ExecuteAndWait(*driver, argv, std::nullopt, {}, 0, 0,
                                     &linkError);
  if (rc != 0)
    return fail(module, "linking the kernels failed (" + options.linker +
                            " exit " + Twine(rc) + "): " + linkError);
  auto buffer = llvm::MemoryBuffer::getFile(soPath);
  if (!buffer)
    return fail(module, "cannot read " + soPath);
  compiled.object = (*buffer)->getBuffer().str();
  return compiled;
}

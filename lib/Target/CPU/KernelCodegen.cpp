//===- KernelCodegen.cpp - kernels to a native shared object --------------===//
//
/// \file
/// Compiles the outlined kernel functions (tensor form) into one native
/// shared object through upstream MLIR: each kernel is rewritten in
/// destination-passing style over memrefs (inputs read through
/// `to_tensor`, results written with `materialize_in_destination`),
/// bufferized in place, lowered linalg -> loops -> LLVM dialect with bare
/// pointers, translated to LLVM IR, optimized, emitted as an object file and
/// linked with the C driver. Every kernel gets a `<name>_packed(void **)`
/// wrapper, the one calling convention the runtime knows.
//
//===----------------------------------------------------------------------===//

#include "KernelCodegen.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;

namespace {

/// Rewrites tensor kernel `kernel` as a memref function in `into`.
void buildDestinationPassingKernel(func::FuncOp kernel, ModuleOp into) {
  OpBuilder b(into.getContext());
  b.setInsertionPointToEnd(into.getBody());
  SmallVector<Type> argTypes;
  auto toMemref = [](Type t) {
    auto tt = cast<RankedTensorType>(t);
    return MemRefType::get(tt.getShape(), tt.getElementType());
  };
  for (Type t : kernel.getArgumentTypes())
    argTypes.push_back(toMemref(t));
  for (Type t : kernel.getResultTypes())
    argTypes.push_back(toMemref(t));
  auto func = func::FuncOp::create(b, kernel.getLoc(), kernel.getSymName(),
                                   b.getFunctionType(argTypes, {}));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);
  IRMapping map;
  unsigned numInputs = kernel.getNumArguments();
  for (unsigned i = 0; i < numInputs; ++i) {
    Value t = bufferization::ToTensorOp::create(
        b, kernel.getLoc(), kernel.getArgumentTypes()[i], body->getArgument(i),
        b.getUnitAttr(), UnitAttr());
    map.map(kernel.getArgument(i), t);
  }
  for (Operation &op : kernel.getBody().front()) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
        auto m = bufferization::MaterializeInDestinationOp::create(
            b, ret.getLoc(), TypeRange{}, map.lookup(v),
            body->getArgument(numInputs + i));
        m.setRestrict(true);
        m.setWritable(true);
      }
      func::ReturnOp::create(b, ret.getLoc());
      continue;
    }
    b.clone(op, map);
  }
}

/// Adds `<f>_packed(ptr args)` for every defined function: loads each
/// pointer argument from the array and calls `f`.
void addPackedWrappers(llvm::Module &module) {
  SmallVector<llvm::Function *> kernels;
  for (llvm::Function &f : module)
    if (!f.isDeclaration())
      kernels.push_back(&f);
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptrTy = llvm::PointerType::get(ctx, 0);
  for (llvm::Function *f : kernels) {
    auto *type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptrTy},
                                         false);
    auto *wrapper = llvm::Function::Create(type, llvm::Function::ExternalLinkage,
                                           f->getName() + "_packed", module);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", wrapper));
    SmallVector<llvm::Value *> args;
    for (unsigned i = 0; i < f->arg_size(); ++i) {
      llvm::Value *slot = b.CreateConstInBoundsGEP1_64(ptrTy, wrapper->getArg(0), i);
      args.push_back(b.CreateLoad(ptrTy, slot));
    }
    b.CreateCall(f, args);
    b.CreateRetVoid();
    // Buffers of a kernel never overlap, except an output written over an
    // input it reads elementwise at the same index (in-place reuse), which
    // noalias code still computes correctly: each element is read before
    // it is written and no other element depends on it.
    for (unsigned i = 0; i < f->arg_size(); ++i)
      if (f->getArg(i)->getType()->isPointerTy())
        f->addParamAttr(i, llvm::Attribute::NoAlias);
    // The kernels themselves are internal: the wrappers are the interface,
    // and the optimizer may inline each kernel into its wrapper.
    f->setLinkage(llvm::GlobalValue::InternalLinkage);
  }
}

LogicalResult fail(ModuleOp module, const Twine &message) {
  return module.emitError() << "CPU code generation: " << message;
}

} // namespace

FailureOr<std::string>
mlir::trainopt::compileKernels(ModuleOp module,
                               ArrayRef<func::FuncOp> kernels,
                               const CPUTargetOptions &options) {
  MLIRContext *ctx = module.getContext();
  ctx->loadDialect<bufferization::BufferizationDialect, memref::MemRefDialect,
                   func::FuncDialect>();
  OwningOpRef<ModuleOp> kmod = ModuleOp::create(UnknownLoc::get(ctx));
  for (func::FuncOp k : kernels)
    buildDestinationPassingKernel(k, *kmod);

  PassManager pm(ctx, ModuleOp::getOperationName());
  std::string pipeline =
      "eliminate-empty-tensors,one-shot-bufferize,canonicalize,"
      "func.func(convert-linalg-to-loops),lower-affine,convert-scf-to-cf,"
      "expand-strided-metadata,finalize-memref-to-llvm,convert-math-to-llvm,"
      "convert-math-to-libm,convert-arith-to-llvm,convert-index-to-llvm,"
      "convert-func-to-llvm{use-bare-ptr-memref-call-conv=1},"
      "convert-cf-to-llvm,reconcile-unrealized-casts";
  if (failed(parsePassPipeline(pipeline, pm)))
    return fail(module, "cannot build the lowering pipeline");
  if (!options.keepDir.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(options.keepDir + "/kernels.mlir", ec);
    if (!ec)
      kmod->print(os);
  }
  if (failed(pm.run(*kmod)))
    return fail(module, "lowering the kernels to the LLVM dialect failed");

  registerBuiltinDialectTranslation(*ctx);
  registerLLVMDialectTranslation(*ctx);
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*kmod, llvmContext, "trainopt_kernels");
  if (!llvmModule)
    return fail(module, "translation to LLVM IR failed");
  addPackedWrappers(*llvmModule);

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  std::string triple = llvm::sys::getDefaultTargetTriple();
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return fail(module, "no LLVM target for " + triple + ": " + error);
  std::string cpu =
      options.cpu.empty() ? llvm::sys::getHostCPUName().str() : options.cpu;
  std::string features;
  if (options.cpu.empty()) {
    SmallVector<std::string> feats;
    for (const auto &[name, on] : llvm::sys::getHostCPUFeatures())
      feats.push_back((on ? "+" : "-") + name.str());
    features = llvm::join(feats, ",");
  }
  llvm::TargetOptions targetOptions;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      llvm::Triple(triple), cpu, features, targetOptions, llvm::Reloc::PIC_,
      std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return fail(module, "cannot create an LLVM target machine for " + cpu);
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(llvm::Triple(triple));
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", cpu);
    if (!features.empty())
      f.addFnAttr("target-features", features);
  }
  auto optimize =
      makeOptimizingTransformer(options.optLevel, 0, machine.get());
  if (llvm::Error err = optimize(llvmModule.get()))
    return fail(module, "LLVM optimization failed: " +
                            llvm::toString(std::move(err)));

  // Object file, then a shared object through the C driver.
  SmallString<128> dir;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("trainopt-kernels", dir))
    return fail(module, "cannot create a temporary directory: " + ec.message());
  std::string objPath = (dir + "/kernels.o").str();
  std::string soPath = (dir + "/kernels.so").str();
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objPath, ec);
    if (ec)
      return fail(module, "cannot write " + objPath + ": " + ec.message());
    llvm::legacy::PassManager emit;
    if (machine->addPassesToEmitFile(emit, os, nullptr,
                                     llvm::CodeGenFileType::ObjectFile))
      return fail(module, "the target cannot emit object files");
    emit.run(*llvmModule);
  }
  if (!options.keepDir.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(options.keepDir + "/kernels.ll", ec);
    if (!ec)
      llvmModule->print(os, nullptr);
  }
  llvm::ErrorOr<std::string> driver =
      llvm::sys::findProgramByName(options.linker);
  if (!driver)
    return fail(module, "cannot find the linker driver '" + options.linker +
                            "' on PATH (needed to link the kernels)");
  SmallVector<StringRef> argv = {*driver, "-shared", "-o", soPath, objPath,
                                 "-lm"};
  std::string linkError;
  int rc = llvm::sys::ExecuteAndWait(*driver, argv, std::nullopt, {}, 0, 0,
                                     &linkError);
  if (rc != 0)
    return fail(module, "linking the kernels failed (" + options.linker +
                            " exit " + Twine(rc) + "): " + linkError);
  auto buffer = llvm::MemoryBuffer::getFile(soPath);
  if (!buffer)
    return fail(module, "cannot read " + soPath);
  std::string bytes = (*buffer)->getBuffer().str();
  llvm::sys::fs::remove(objPath);
  llvm::sys::fs::remove(soPath);
  llvm::sys::fs::remove(dir);
  return bytes;
}

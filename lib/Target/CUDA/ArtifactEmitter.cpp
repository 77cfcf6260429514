//===- ArtifactEmitter.cpp - the CUDA artifact ----------------------------===//
//
/// \file
/// Implements emitCUDAArtifact and assemblePTX (CUDATarget.h): the
/// target-independent plan with `cuda.*` library calls, each outlined
/// kernel's launch replaced by its GPU launches, and the kernels as one PTX
/// module plus its cubin when the toolkit has ptxas.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Target/CUDA/CUDATarget.h"

#include "trainopt/Artifact/artifact.pb.h"
#include "trainopt/Target/ArtifactPlan.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

using namespace mlir;
using namespace mlir::trainopt;
namespace art = ::trainopt::artifact;

FailureOr<std::string>
mlir::trainopt::assemblePTX(ModuleOp module, const std::string &ptx,
                            const CUDATargetOptions &options) {
  std::string ptxas = options.cudaPath + "/bin/ptxas";
  if (!llvm::sys::fs::can_execute(ptxas))
    return std::string();
  SmallString<128> dir;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("trainopt-ptx", dir))
    return module.emitError("CUDA code generation: cannot create a temporary "
                            "directory: " + ec.message());
  std::string in = (dir + "/kernels.ptx").str();
  std::string out = (dir + "/kernels.cubin").str();
  std::string log = (dir + "/ptxas.log").str();
  auto cleanup = [&] {
    for (const std::string &f : {in, out, log})
      llvm::sys::fs::remove(f);
    llvm::sys::fs::remove(dir);
  };
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(in, ec);
    if (ec) {
      cleanup();
      return module.emitError("CUDA code generation: cannot write " + in);
    }
    os << ptx;
  }
  std::string arch = "-arch=" + options.arch;
  SmallVector<StringRef> argv = {ptxas, arch, "-O3", in, "-o", out};
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log),
                                          StringRef(log)};
  std::string error;
  int rc = llvm::sys::ExecuteAndWait(ptxas, argv, std::nullopt, redirects, 0,
                                     0, &error);
  if (rc != 0) {
    auto text = llvm::MemoryBuffer::getFile(log);
    std::string message =
        text ? (*text)->getBuffer().take_front(2000).str() : error;
    cleanup();
    return module.emitError("CUDA code generation: ptxas (" + options.arch +
                            ") rejected the kernels: " + message);
  }
  auto cubin = llvm::MemoryBuffer::getFile(out);
  if (!cubin) {
    cleanup();
    return module.emitError("CUDA code generation: ptxas wrote no cubin");
  }
  std::string bytes = (*cubin)->getBuffer().str();
  cleanup();
  return bytes;
}

LogicalResult mlir::trainopt::emitCUDAArtifact(
    ModuleOp module, const CUDATargetOptions &options,
    art::Artifact &artifact, llvm::json::Object &report) {
  FailureOr<SmallVector<func::FuncOp>> planned =
      emitArtifactPlan(module, "cuda", "cuda", artifact, report);
  if (failed(planned))
    return failure();
  FailureOr<GPUKernels> compiled = compileKernelsToPTX(module, options);
  if (failed(compiled))
    return failure();
  llvm::StringMap<const GPUKernel *> byName;
  for (const GPUKernel &k : compiled->kernels)
    byName[k.name] = &k;

  // Each outlined kernel's launch becomes its GPU launches.
  int64_t gpuLaunches = 0;
  for (art::EntryPoint &ep : *artifact.mutable_entry_points()) {
    google::protobuf::RepeatedPtrField<art::Command> commands;
    commands.Swap(ep.mutable_commands());
    for (art::Command &c : commands) {
      if (!c.has_launch()) {
        *ep.add_commands() = std::move(c);
        continue;
      }
      const art::KernelLaunch &outlined = c.launch();
      auto it = byName.find(outlined.kernel());
      if (it == byName.end())
        return module.emitError("CUDA code generation: kernel '" +
                                outlined.kernel() + "' was not compiled");
      for (const GPULaunch &l : it->second->launches) {
        art::KernelLaunch *launch = ep.add_commands()->mutable_launch();
        launch->set_kernel(l.entry);
        for (int64_t b : l.buffers) {
          if (b < 0 || b >= outlined.buffers_size())
            return module.emitError("CUDA code generation: launch of '" +
                                    l.entry + "' names no buffer of '" +
                                    outlined.kernel() + "'");
          launch->add_buffers(outlined.buffers(b));
        }
        launch->add_grid(static_cast<uint32_t>(l.grid));
        launch->add_block(static_cast<uint32_t>(l.block));
        ++gpuLaunches;
      }
    }
  }

  art::KernelBinary *ptx = artifact.add_kernels();
  ptx->set_name("trainopt_kernels");
  ptx->set_format(art::KernelBinary::PTX);
  ptx->set_target(options.arch);
  ptx->set_binary(compiled->ptx);
  FailureOr<std::string> cubin = assemblePTX(module, compiled->ptx, options);
  if (failed(cubin))
    return failure();
  int64_t cubinBytes = static_cast<int64_t>(cubin->size());
  if (!cubin->empty()) {
    art::KernelBinary *bin = artifact.add_kernels();
    bin->set_name("trainopt_kernels");
    bin->set_format(art::KernelBinary::CUBIN);
    bin->set_target(options.arch);
    bin->set_binary(std::move(*cubin));
  }
  report["cuda_arch"] = options.arch;
  report["gpu_launches"] = gpuLaunches;
  report["ptx_bytes"] = static_cast<int64_t>(compiled->ptx.size());
  report["cubin_bytes"] = cubinBytes;
  return success();
}

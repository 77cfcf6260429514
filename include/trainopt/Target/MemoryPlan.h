//===- MemoryPlan.h - the memory plan of an entry point ---------*- C++ -*-===//
//
/// \file
/// The memory plan as an analysis of an entry point at the kernel level
/// (after `trainopt-cpu-kernel-pipeline`): the schedule (program order),
/// each value's storage and lifetime, in-place reuse of dying elementwise
/// inputs, donation of an updated value's buffer, the end-of-step copies,
/// greedy-by-size first-fit placement of the scratch storages, and the
/// max-live lower bound. The artifact writer (ArtifactPlan.cpp) only
/// serializes it; `-trainopt-print-memory-plan` prints it for lit tests;
/// rematerialization and sharding will query it.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_TARGET_MEMORYPLAN_H
#define TRAINOPT_TARGET_MEMORYPLAN_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace mlir::trainopt {

enum class StorageKind { Persistent, Constant, Input, Scratch };

struct Storage {
  StorageKind kind = StorageKind::Scratch;
  /// The artifact buffer (persistent, input and constant storages; scratch
  /// storages get theirs from the writer).
  std::string buffer;
  uint64_t bytes = 0;
  /// Schedule positions: defined at `def` (-1: before the step), last read
  /// at `last` (the return's position when returned).
  int64_t def = 0, last = -1;
  /// Folded into another storage (a donated update).
  bool merged = false;
  /// Scratch: offset in the entry's scratch region.
  uint64_t offset = 0;
};

struct MemoryPlan {
  std::vector<Storage> storages;
  llvm::DenseMap<Value, int64_t> storageOf;
  /// Ops in program order; the return is last.
  SmallVector<Operation *> schedule;
  /// End-of-step copies, in order: outputs that read an updated value first,
  /// then updates that could not be donated.
  struct Copy {
    int64_t from, to;
  };
  SmallVector<Copy> copies;
  /// Per result of the entry point: the storage the runtime reads it from
  /// (an update: the argument's storage it is written back to).
  SmallVector<int64_t> resultStorage;
  /// Results written over an input they read, and updates computed in the
  /// buffer of the value they replace.
  int64_t inPlace = 0, donated = 0;
  /// Scratch storages placed, largest first; the region's size; the
  /// largest sum of live scratch bytes at one position.
  SmallVector<int64_t> scratch;
  uint64_t scratchSize = 0, lowerBound = 0;

  /// A readable dump, one line per storage and copy (lit tests).
  void print(raw_ostream &os, func::FuncOp func) const;
};

/// Alignment of every buffer in the arena.
inline constexpr uint64_t kBufferAlignment = 64;

/// The plan of `func`: `arguments[i]` is argument i's storage kind and
/// buffer; `constantBuffer` names the buffer of a constant. Fails (with a
/// diagnostic) on an op the plan cannot place.
FailureOr<MemoryPlan> planMemory(
    func::FuncOp func,
    ArrayRef<std::pair<StorageKind, std::string>> arguments,
    function_ref<FailureOr<std::string>(arith::ConstantOp)> constantBuffer);

/// The bytes of a ranked tensor type.
uint64_t tensorBytes(Type t);

} // namespace mlir::trainopt

#endif // TRAINOPT_TARGET_MEMORYPLAN_H

//===- MemoryPlan.cpp - the memory plan of an entry point -----------------===//
//
/// \file
/// Storages, lifetimes, in-place reuse, donation, copies and placement of
/// one entry point (MemoryPlan.h), and `-trainopt-print-memory-plan`.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Target/MemoryPlan.h"
#include "trainopt/Target/TargetPasses.h"

#include "trainopt/Conversion/Passes.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/Pass.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SmallPtrSet.h"

using namespace mlir;
using namespace mlir::trainopt;

uint64_t mlir::trainopt::tensorBytes(Type t) {
  auto tt = cast<RankedTensorType>(t);
  Type et = tt.getElementType();
  uint64_t bytes = et.isInteger(1) ? 1 : (et.getIntOrFloatBitWidth() + 7) / 8;
  return tt.getNumElements() * bytes;
}

namespace {

uint64_t alignUp(uint64_t v) {
  return (v + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

/// Input operands an elementwise kernel (one generic) reads with the
/// identity map at the type of its result `result`: that result may be
/// written over them, since every iteration reads its elements before it
/// writes the same index of each output.
SmallVector<unsigned> inPlaceOperands(func::FuncOp kernel, unsigned result) {
  SmallVector<unsigned> out;
  if (!kernel->hasAttr("trainopt.elementwise") ||
      result >= kernel.getNumResults())
    return out;
  linalg::GenericOp generic;
  int64_t generics = 0;
  kernel.walk([&](linalg::GenericOp g) {
    generic = g;
    ++generics;
  });
  if (!generic || generics != 1)
    return out;
  Type resultType = kernel.getResultTypes()[result];
  // The body's block arguments the result's value is computed from. The
  // kernels are compiled with noalias buffers (KernelCodegen.cpp), so LLVM
  // keeps a load before a store to the same address only when the stored
  // value depends on it: an output may take over an input's buffer only if
  // it is computed from that input (with two in-place outputs, one not
  // depending on its buffer's input, the other's load could move after
  // its store).
  llvm::SmallPtrSet<Value, 8> reads;
  {
    Block &body = generic.getRegion().front();
    SmallVector<Value> work{body.getTerminator()->getOperand(result)};
    llvm::SmallPtrSet<Operation *, 16> seen;
    while (!work.empty()) {
      Value v = work.pop_back_val();
      if (auto arg = dyn_cast<BlockArgument>(v)) {
        reads.insert(arg);
        continue;
      }
      Operation *def = v.getDefiningOp();
      if (!def || def->getBlock() != &body || !seen.insert(def).second)
        continue;
      llvm::append_range(work, def->getOperands());
    }
  }
  for (OpOperand *in : generic.getDpsInputOperands()) {
    auto arg = dyn_cast<BlockArgument>(in->get());
    if (!arg || arg.getOwner() != &kernel.getBody().front())
      continue;
    // Its only read: this identity-mapped input, which the result is
    // computed from. A second read (the same argument as another input
    // with a broadcast or transposed map, or a tensor.extract in the body)
    // would see elements already overwritten.
    if (arg.getType() == resultType && arg.hasOneUse() &&
        generic.getMatchingIndexingMap(in).isIdentity() &&
        reads.contains(generic.getMatchingBlockArgument(in)))
      out.push_back(arg.getArgNumber());
  }
  return out;
}


} // namespace

FailureOr<MemoryPlan> mlir::trainopt::planMemory(
    func::FuncOp func,
    ArrayRef<std::pair<StorageKind, std::string>> arguments,
    function_ref<FailureOr<std::string>(arith::ConstantOp)> constantBuffer) {
  MemoryPlan plan;
  std::vector<Storage> &storages = plan.storages;
  llvm::DenseMap<Value, int64_t> &storageOf = plan.storageOf;
  SmallVector<Operation *> &schedule = plan.schedule;
  Block &body = func.front();
  for (Operation &op : body)
    schedule.push_back(&op);
  int64_t end = schedule.size() - 1; // the return
  llvm::DenseMap<Operation *, int64_t> position;
  for (auto [i, op] : llvm::enumerate(schedule))
    position[op] = i;
  auto lastUse = [&](Value v) {
    int64_t last = -1;
    for (Operation *user : v.getUsers())
      last = std::max(last, position.lookup(user));
    return last;
  };
  auto newStorage = [&](StorageKind kind, std::string buffer, uint64_t bytes,
                        int64_t def) {
    Storage s;
    s.kind = kind;
    s.buffer = std::move(buffer);
    s.bytes = bytes;
    s.def = def;
    // A result nothing reads is still written when its kernel runs: it is
    // live at least at its definition, or placement would put live values
    // under it.
    s.last = def;
    storages.push_back(s);
    return static_cast<int64_t>(storages.size() - 1);
  };
  auto assign = [&](Value v, int64_t id) {
    storageOf[v] = id;
    storages[id].last = std::max(storages[id].last, lastUse(v));
  };

  // Arguments.
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    assign(func.getArgument(i),
           newStorage(arguments[i].first, arguments[i].second,
                      tensorBytes(func.getArgument(i).getType()), -1));

  // Storages of op results, with in-place reuse.
  SymbolTable symbols(func->getParentOfType<ModuleOp>());
  // The argument each returned update replaces: a kernel that computes an
  // update from the old value at the same index is better donated the old
  // value's buffer (below) than a dying scratch input, which would cost a
  // copy at the end.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  llvm::DenseMap<Value, Value> updateTarget;
  for (auto [i, v] : llvm::enumerate(ret.getOperands()))
    if (auto updates = func.getResultAttrOfType<IntegerAttr>(
            i, TrainoptDialect::kUpdatesAttrName))
      updateTarget[v] = func.getArgument(updates.getInt());
  for (auto [t, op] : llvm::enumerate(schedule)) {
    int64_t time = t;
    if (auto c = dyn_cast<arith::ConstantOp>(op)) {
      if (!isa<RankedTensorType>(c.getType()))
        continue;
      FailureOr<std::string> name = constantBuffer(c);
      if (failed(name))
        return failure();
      assign(c.getResult(), newStorage(StorageKind::Constant, *name,
                                       tensorBytes(c.getType()), -1));
      continue;
    }
    if (auto r = dyn_cast<ReshapeOp>(op)) {
      assign(r.getResult(), storageOf.lookup(r.getX()));
      continue;
    }
    if (auto call = dyn_cast<func::CallOp>(op)) {
      auto kernel = symbols.lookup<func::FuncOp>(call.getCallee());
      if (!kernel || !kernel->hasAttr("trainopt.kernel"))
        return call.emitOpError("calls something that is not a kernel");
      // Each result may take a dying scratch input it reads in place,
      // unless it updates a value it reads in place (then it is donated
      // that value's buffer below); two results never take the same one.
      llvm::SmallDenseSet<int64_t> taken;
      for (auto [j, result] : llvm::enumerate(call.getResults())) {
        Value r = result; // C++17 lambdas cannot capture bindings
        SmallVector<unsigned> candidates = inPlaceOperands(kernel, j);
        bool donatable = llvm::any_of(candidates, [&](unsigned i) {
          auto it = updateTarget.find(r);
          return it != updateTarget.end() && call.getOperand(i) == it->second;
        });
        std::optional<int64_t> reuse;
        for (unsigned i : donatable ? SmallVector<unsigned>() : candidates) {
          int64_t id = storageOf.lookup(call.getOperand(i));
          Storage &s = storages[id];
          if (s.kind == StorageKind::Scratch && s.last == time &&
              !taken.contains(id) &&
              llvm::count_if(call.getOperands(), [&](Value o) {
                return storageOf.lookup(o) == id;
              }) == 1 &&
              s.bytes == tensorBytes(r.getType())) {
            reuse = id;
            break;
          }
        }
        if (reuse) {
          taken.insert(*reuse);
          assign(r, *reuse);
          ++plan.inPlace;
          continue;
        }
        assign(r, newStorage(StorageKind::Scratch, "", tensorBytes(r.getType()),
                             time));
      }
      continue;
    }
    if (isa<AllReduceOp, ReduceScatterOp>(op)) {
      // The runtime packs the inputs into its own buffer when the
      // collective starts and unpacks the results when it is waited for
      // (before the first reader), so a result may take a dying scratch
      // input's storage; the result's storage is reserved from the start.
      llvm::SmallDenseSet<int64_t> taken;
      for (auto [in, r] : llvm::zip(op->getOperands(), op->getResults())) {
        int64_t id = storageOf.lookup(in);
        Storage &s = storages[id];
        // Not twice: two inputs may be views of one storage.
        // (A reduce-scatter's smaller result has storage of its own: its
        // buffer is its size.)
        if (isa<AllReduceOp>(op) && s.kind == StorageKind::Scratch &&
            s.last == time &&
            llvm::count_if(
                op->getOperands(),
                [&](Value o) { return storageOf.lookup(o) == id; }) == 1 &&
            taken.insert(id).second) {
          assign(r, id);
          ++plan.inPlace;
          continue;
        }
        assign(r, newStorage(StorageKind::Scratch, "", tensorBytes(r.getType()),
                             time));
      }
      continue;
    }
    if (isa<SendOp>(op))
      continue; // the runtime copies the input when the send starts
    if (isa<AllGatherOp, RankSliceOp, RecvOp, BroadcastOp>(op)) {
      // The runtime copies the input when the command runs (an all-gather's
      // into a buffer of its own); the result is written by the wait (or at
      // once), into storage reserved from here. A receive has no input.
      assign(op->getResult(0),
             newStorage(StorageKind::Scratch, "",
                        tensorBytes(op->getResult(0).getType()), time));
      continue;
    }
    if (isLibraryOp(op)) {
      for (Value r : op->getResults())
        assign(r, newStorage(StorageKind::Scratch, "", tensorBytes(r.getType()),
                             time));
      continue;
    }
    if (isa<func::ReturnOp>(op))
      continue;
    return op->emitOpError("cannot be compiled for the CPU");
  }

  // The wait of a collective writes all its results when the first of them
  // is read: each result's storage lives until its siblings' do (a result
  // nobody reads would otherwise be placed over by later values).
  for (Operation *op : schedule) {
    if (!isa<AllReduceOp, ReduceScatterOp>(op))
      continue;
    int64_t last = -1;
    for (Value r : op->getResults())
      last = std::max(last, storages[storageOf.lookup(r)].last);
    for (Value r : op->getResults())
      storages[storageOf.lookup(r)].last = last;
  }

  // Results: donation into the values they replace, or copies at the end.
  SmallVector<MemoryPlan::Copy> pendingCopies, outputCopies;
  llvm::SmallDenseSet<int64_t> donatedTo;
  // Storages that updates overwrite: an output that is (a view of) one of
  // them must be copied out before the updates land, or it would read the
  // new value.
  llvm::SmallDenseSet<int64_t> updated;
  for (unsigned i = 0; i < ret.getNumOperands(); ++i)
    if (auto updates = func.getResultAttrOfType<IntegerAttr>(
            i, TrainoptDialect::kUpdatesAttrName))
      updated.insert(storageOf.lookup(func.getArgument(updates.getInt())));
  llvm::DenseMap<unsigned, int64_t> resultCopy;
  plan.resultStorage.assign(ret.getNumOperands(), -1);
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    int64_t id = storageOf.lookup(v);
    if (auto updates = func.getResultAttrOfType<IntegerAttr>(
            i, TrainoptDialect::kUpdatesAttrName)) {
      int64_t target = storageOf.lookup(func.getArgument(updates.getInt()));
      plan.resultStorage[i] = target;
      if (id == target)
        continue;
      Storage &s = storages[id];
      Storage &p = storages[target];
      bool canDonate = s.kind == StorageKind::Scratch && !s.merged &&
                       !donatedTo.contains(target) && p.last < s.def;
      if (!canDonate && s.kind == StorageKind::Scratch && !s.merged &&
          !donatedTo.contains(target) && p.last == s.def) {
        // The producer reads the old value: fine for an elementwise kernel
        // that reads it with the identity map, once, for this result.
        if (auto call = dyn_cast<func::CallOp>(schedule[s.def])) {
          auto kernel = symbols.lookup<func::FuncOp>(call.getCallee());
          // The call's result this storage holds (the returned value may
          // be a reshape of it).
          unsigned j = 0;
          while (j + 1 < call.getNumResults() &&
                 storageOf.lookup(call.getResult(j)) != id)
            ++j;
          for (unsigned op : inPlaceOperands(kernel, j))
            if (storageOf.lookup(call.getResult(j)) == id &&
                storageOf.lookup(call.getOperand(op)) == target &&
                llvm::count_if(call.getOperands(), [&](Value o) {
                  return storageOf.lookup(o) == target;
                }) == 1)
              canDonate = true;
        }
      }
      if (canDonate) {
        for (auto &[value, sid] : storageOf)
          if (sid == id)
            sid = target;
        s.merged = true;
        donatedTo.insert(target);
        ++plan.donated;
        continue;
      }
      storages[id].last = end;
      pendingCopies.push_back({id, target});
      continue;
    }
    if (updated.contains(id)) {
      int64_t copy = newStorage(StorageKind::Scratch, "",
                                tensorBytes(v.getType()), end);
      outputCopies.push_back({id, copy});
      id = copy;
    }
    storages[id].last = end;
    plan.resultStorage[i] = id;
  }
  plan.copies.append(outputCopies.begin(), outputCopies.end());
  plan.copies.append(pendingCopies.begin(), pendingCopies.end());

  // Place scratch storages: greedy by size, first fit in time and space.
  for (auto [id, s] : llvm::enumerate(storages))
    if (s.kind == StorageKind::Scratch && !s.merged)
      plan.scratch.push_back(id);
  llvm::stable_sort(plan.scratch, [&](int64_t a, int64_t b) {
    return storages[a].bytes > storages[b].bytes;
  });
  struct Placed {
    uint64_t offset, size;
    int64_t def, last;
  };
  std::vector<Placed> placed;
  for (int64_t id : plan.scratch) {
    Storage &s = storages[id];
    uint64_t size = alignUp(std::max<uint64_t>(s.bytes, 1));
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (const Placed &p : placed)
      if (!(p.last < s.def || s.last < p.def))
        busy.push_back({p.offset, p.offset + p.size});
    llvm::sort(busy);
    uint64_t offset = 0;
    for (auto [lo, hi] : busy) {
      if (offset + size <= lo)
        break;
      offset = std::max(offset, hi);
    }
    placed.push_back({offset, size, s.def, s.last});
    s.offset = offset;
    plan.scratchSize = std::max(plan.scratchSize, offset + size);
  }
  for (int64_t t = 0; t <= end; ++t) {
    uint64_t live = 0;
    for (const Placed &p : placed)
      if (p.def <= t && t <= p.last)
        live += p.size;
    plan.lowerBound = std::max(plan.lowerBound, live);
  }
  return plan;
}

void MemoryPlan::print(raw_ostream &os, func::FuncOp func) const {
  static const char *kinds[] = {"persistent", "constant", "input", "scratch"};
  AsmState state(func);
  os << "memory plan of @" << func.getSymName() << ": scratch " << scratchSize
     << " bytes, lower bound " << lowerBound << ", " << inPlace
     << " in place, " << donated << " donated, " << copies.size()
     << " copies\n";
  // Values by storage, in storage order.
  std::vector<SmallVector<std::string>> names(storages.size());
  auto nameOf = [&](Value v) {
    std::string s;
    llvm::raw_string_ostream ss(s);
    v.printAsOperand(ss, state);
    return s;
  };
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    names[storageOf.lookup(func.getArgument(i))].push_back(
        nameOf(func.getArgument(i)));
  for (Operation *op : schedule)
    for (Value r : op->getResults())
      if (storageOf.count(r))
        names[storageOf.lookup(r)].push_back(nameOf(r));
  for (auto [id, s] : llvm::enumerate(storages)) {
    if (s.merged)
      continue;
    os << "  s" << id << " " << kinds[static_cast<int>(s.kind)] << " "
       << s.bytes << " bytes";
    if (s.kind == StorageKind::Scratch)
      os << " at " << s.offset;
    os << " live [" << s.def << ", " << s.last << "]:";
    for (const std::string &n : names[id])
      os << " " << n;
    os << "\n";
  }
  for (const Copy &c : copies)
    os << "  copy s" << c.from << " -> s" << c.to << "\n";
}

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTPRINTMEMORYPLAN
#include "trainopt/Target/TargetPasses.h.inc"
} // namespace mlir::trainopt

namespace {
struct PrintMemoryPlanPass
    : public mlir::trainopt::impl::TrainoptPrintMemoryPlanBase<
          PrintMemoryPlanPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (const char *name : {"train_step", "eval_step"}) {
      auto func = module.lookupSymbol<func::FuncOp>(name);
      if (!func)
        continue;
      SmallVector<std::pair<StorageKind, std::string>> args;
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        args.push_back(
            {func.getArgAttr(i, TrainoptDialect::kInputAttrName)
                 ? StorageKind::Input
                 : StorageKind::Persistent,
             ""});
      FailureOr<MemoryPlan> plan = planMemory(
          func, args, [](arith::ConstantOp) -> FailureOr<std::string> {
            return std::string();
          });
      if (failed(plan))
        return signalPassFailure();
      plan->print(llvm::outs(), func);
    }
    markAllAnalysesPreserved();
  }
};
} // namespace

//===- ScheduleCollectives.cpp - start collectives early -----------------===//
//
/// \file
/// `trainopt-schedule-collectives`: each collective of a step program moves
/// up to just after its inputs' last definition (and the collective before
/// it), so its communication overlaps the commands that follow it.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Conversion/Passes.h"
#include "trainopt/Dialect/Trainopt/IR/TrainoptOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::trainopt {
#define GEN_PASS_DEF_TRAINOPTSCHEDULECOLLECTIVES
#include "trainopt/Conversion/Passes.h.inc"
} // namespace mlir::trainopt

using namespace mlir;
using namespace mlir::trainopt;

namespace {
struct ScheduleCollectivesPass
    : public mlir::trainopt::impl::TrainoptScheduleCollectivesBase<
          ScheduleCollectivesPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      Block &body = func.getBody().front();
      // Those that communicate; rank_slice is a local copy.
      SmallVector<Operation *> collectives;
      for (Operation &op : body)
        if (isa<AllReduceOp, ReduceScatterOp, AllGatherOp, BroadcastOp>(op))
          collectives.push_back(&op);
      // Collectives keep their order: MPI matches a group's collectives by
      // the order each rank starts them, and ranks with different programs
      // (pipeline stages) must agree on it.
      Operation *previous = nullptr;
      for (Operation *op : collectives) {
        // The latest input definition in this block (inputs defined
        // elsewhere are block arguments: available from the start).
        Operation *last = previous;
        for (Value in : op->getOperands()) {
          Operation *def = in.getDefiningOp();
          if (def && def->getBlock() == &body &&
              (!last || last->isBeforeInBlock(def)))
            last = def;
        }
        if (last)
          op->moveAfter(last);
        else
          op->moveBefore(&body.front());
        previous = op;
      }
    }
  }
};
} // namespace

//===- TargetPasses.td - trainopt target passes ------------*- tablegen -*-===//

#ifndef TRAINOPT_TARGET_TARGETPASSES_TD
#define TRAINOPT_TARGET_TARGETPASSES_TD

include "mlir/Pass/PassBase.td"

def TrainoptPrintMemoryPlan : Pass<"trainopt-print-memory-plan", "ModuleOp"> {
  let summary = "Prints the memory plan of @train_step and @eval_step";
  let description = [{
    A test pass: runs the memory-plan analysis (`planMemory`,
    `include/trainopt/Target/MemoryPlan.h`) on each entry point of a module
    after `trainopt-cpu-kernel-pipeline` and prints it to stdout, one line
    per storage: its id, kind, bytes, offset in the scratch region,
    lifetime `[def, last]` in schedule positions (-1: before the step), and
    the values it holds (an in-place result shares its input's storage, a
    donated update the argument's), then the end-of-step copies. The
    artifact writer serializes the same plan. The IR is unchanged.

    Example output:
    ```
    memory plan of @train_step: scratch 256 bytes, lower bound 256, 1 in place, 1 donated, 0 copies
      s0 persistent 24 bytes live [-1, 3]: %arg0
      s4 scratch 96 bytes at 0 live [1, 2]: %0 %1
    ```
  }];
}

#endif // TRAINOPT_TARGET_TARGETPASSES_TD

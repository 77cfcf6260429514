//===- trainopt-opt.cpp - mlir-opt with trainopt registered ---------------===//
//
/// \file
/// The driver compiler engineers use to run one trainopt pass or pipeline on
/// a `.mlir` file, as in lit tests.
//
//===----------------------------------------------------------------------===//

#include "trainopt/InitAllDialects.h"
#include "trainopt/InitAllPasses.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::trainopt::registerAllDialects(registry);
  mlir::trainopt::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "trainopt optimizer driver\n", registry));
}

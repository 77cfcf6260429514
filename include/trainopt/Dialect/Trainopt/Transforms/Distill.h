//===- Distill.h - a distillation teacher in the student's module -*- C++
//-*-===//
//
/// \file
/// What `trainopt-compile --teacher` (and the Python package) call between
/// importing the two models and running the training pipeline, whose
/// `trainopt-distill` stage then inlines the teacher.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_DISTILL_H
#define TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_DISTILL_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::trainopt {

/// The prefix of a teacher's parameters in the student's module.
inline constexpr llvm::StringLiteral kTeacherPrefix = "teacher.";

/// Moves the model of `teacher` (its parameters and its `@forward`, as the
/// importer writes them) into `student`: each parameter becomes the frozen
/// `teacher.NAME`; the function becomes `@teacher` with `trainopt.teacher`,
/// in inference form (TrainStep.h, toInferenceMode), its BatchNorms marked
/// `trainopt.frozen_stats`. Fails with an error naming `teacherPath` when
/// `teacher` is not a model (a compiled training module, no @forward) or a
/// name it needs is taken in `student`.
LogicalResult attachTeacher(ModuleOp student, ModuleOp teacher,
                            StringRef teacherPath);

/// Splits a `--distill-feature` value TEACHER:STUDENT[:mse] into the two
/// tensor names (a "::" belongs to a name, as in "onnx::Add_3"); false when
/// it is not of that form.
bool parseFeatureSpec(StringRef spec, std::string &teacher,
                      std::string &student);

} // namespace mlir::trainopt

#endif // TRAINOPT_DIALECT_TRAINOPT_TRANSFORMS_DISTILL_H

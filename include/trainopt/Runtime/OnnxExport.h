//===- OnnxExport.h - trained model as an inference ONNX model --*- C++ -*-===//
//
/// \file
/// Writes a trained model back as an ONNX model that other runtimes (ONNX
/// Runtime) load for inference. The artifact keeps the user's model without
/// its initializer data; the trained values come from the runtime by name.
/// Trainopt names each parameter and model-state value (BatchNorm running
/// statistics) exactly after its ONNX initializer, with no sanitizing, so an
/// initializer name is the key of its value.
///
/// Part of the runtime: it uses the ONNX protobuf classes but no MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef TRAINOPT_RUNTIME_ONNXEXPORT_H
#define TRAINOPT_RUNTIME_ONNXEXPORT_H

#include "trainopt/Runtime/Data.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace trainopt::rt {

/// A trained value to write back into the model. `data` points to
/// `product(shape) * dtypeSize(dtype)` bytes, row-major, host byte order; the
/// caller keeps it alive for the duration of the call.
struct NamedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void *data;
};

/// `modelBytes`: the serialized ONNX ModelProto stored in the artifact
/// (initializers without data). Replaces every initializer by the value of
/// the same name (dtype and shape must match the initializer; a missing value
/// is an error naming the initializer, unless the stored initializer still
/// holds its data, which is then kept), turns training-only constructs into
/// inference ones (BatchNormalization training_mode=1 -> 0 with the extra
/// running-stat outputs removed and their readers reading the running
/// statistics instead; Dropout training_mode and ratio inputs removed, i.e.
/// training_mode false),
/// removes graph outputs that only existed for training (BatchNormalization
/// running statistics), drops initializers and nodes nothing reads any more,
/// and writes the model to `path` atomically (temp file in the same
/// directory, fsync, rename). Values that name no initializer (optimizer
/// slots, counters) are ignored. Fails with a message naming the file and
/// the initializer or node; `path` is then left as it was.
///
/// With `dtype` BF16 or F16 the float32 initializers are stored in that type
/// and cast back to float32 at the top of the graph (weights at half the
/// size; the ops compute in float32).
enum class ExportDType { F32, BF16, F16 };

/// A tensor trainopt-quantize fake-quantized (artifact.proto's
/// QuantizedTensor): the weight initializer `weight`, or (`input`) the
/// activation input of the Conv, Gemm or MatMul that reads it, or
/// (`output`) that op's output, after a MatMul's bias Add and a Relu only
/// it feeds. Its observer ranges are the values `point.observer_min` and
/// `point.observer_max` (an input's point may be the output point its
/// values come from).
struct QuantizedTensor {
  std::string point;
  std::string weight;
  bool input = false;
  /// The axis with one scale per index; -1: one scale.
  int64_t axis = -1;
  int64_t quantMin = 0, quantMax = 0;
  bool symmetric = false;
  bool output = false;
};

/// A weight trainopt-low-rank factored (artifact.proto's LowRankTensor):
/// the initializer `weight` (read by one MatMul, Gemm, Transpose-then-MatMul
/// or Conv node) is gone from the trained values, which hold `u` and `v`.
struct LowRankTensor {
  std::string weight, u, v;
  /// "matmul": W (m x n) = u (m x r) v (r x n); "conv": the filter is u
  /// [F, r, 1...] applied after v [r, C, k...].
  std::string kind;
};

/// With `lowRank` non-empty, each factored weight's reader becomes two
/// nodes, the factors' initializers replacing the weight's: x W as
/// (x u) v, x W^T as (x v^T) u^T, a Conv as the Conv with filter v then a
/// 1 x 1 Conv with filter u and the bias.
///
/// With `quantized` non-empty, the model is written in QDQ form: each
/// quantized weight as a uint8 initializer (its fake-quantized int8
/// integers shifted by 128, as is its zero point) with a DequantizeLinear, each
/// quantized input through a QuantizeLinear (uint8) and DequantizeLinear pair,
/// with the scales and zero points of the observers' ranges, so ONNX Runtime
/// computes what the eval step computes. 4-bit points (--quantize=int4) are
/// written as INT4 weights and UINT4 activations (two values per byte),
/// which needs a model of opset 21 or later (the model's IR version is
/// raised to 10 if lower); an older opset is refused.
///
/// With `compact` non-empty (weights pruned by output channel, masks
/// folded), each such weight's pruned channels are removed: its slices,
/// its bias's and those of the channel-wise nodes after it (BatchNorm,
/// activations, pools), and the matching inputs of the Conv, Gemm or MatMul
/// that reads them (a Flatten in between maps a channel to its block of
/// columns). A pruned channel still outputs a constant (its bias, through
/// those nodes), whose contribution is folded into the reader's bias,
/// exactly where the reader sees it everywhere (no padding). A weight that
/// cannot be followed so is left whole; `compacted` gets a line per weight
/// saying which.
bool exportOnnx(const std::string &modelBytes,
                const std::vector<NamedTensor> &values, const std::string &path,
                std::string &error, ExportDType dtype = ExportDType::F32,
                const std::vector<QuantizedTensor> &quantized = {},
                const std::vector<LowRankTensor> &lowRank = {},
                const std::vector<std::string> &compact = {},
                std::vector<std::string> *compacted = nullptr);

/// For `trainopt-compile --prune-compact`: zeroes the output channels of
/// each weight in `weights` that trainopt-prune's channel method prunes at
/// step 0 (by L1 norm, the round(fraction * C) smallest, and any tied with
/// the largest of them), then removes them as the `--compact` export does
/// (its bias and channel-wise nodes after it sliced, the reader's inputs
/// sliced and the pruned channels' constant outputs folded into its bias;
/// a training-mode BatchNorm outputs its bias for a constant channel).
/// `out` gets the model; `compacted` the weights whose channels are gone
/// (the others keep every channel, the pruned ones zero); `report` a line
/// per weight. The model's initializers must hold their data.
bool pruneAndCompactChannels(const std::string &modelBytes,
                             const std::vector<std::string> &weights,
                             double fraction, std::string &out,
                             std::vector<std::string> &compacted,
                             std::vector<std::string> &report,
                             std::string &error);

/// Whether `modelBytes` can be exported with `quantized` in QDQ form (an
/// opset with per-axis DequantizeLinear, 8-bit ranges, float32 tensors, no
/// narrowed dtype, every point placed in the graph); false with the reason
/// otherwise. The trainer asks before training, so a refusal costs nothing.
bool canExportQuantized(const std::string &modelBytes,
                        const std::vector<QuantizedTensor> &quantized,
                        ExportDType dtype, std::string &error);

/// Clears initializer data from a serialized model (what the compiler
/// stores): keeps names, dims, types. The data of floating-point
/// initializers (the ones trainopt turns into parameters and model state) is
/// cleared, inline or external; integer and bool initializers, which trainopt
/// folds into constants and so has no runtime value for, keep inline data.
/// With `keep`, initializers for which it returns true keep their inline
/// data too (the compiler keeps those that did not become parameters, such
/// as Clip bounds, so the exported model still has them).
/// Returns false with a message if `modelBytes` does not parse.
bool stripInitializerData(
    const std::string &modelBytes, std::string &out, std::string &error,
    const std::function<bool(const std::string &)> &keep = nullptr);

} // namespace trainopt::rt

#endif // TRAINOPT_RUNTIME_ONNXEXPORT_H

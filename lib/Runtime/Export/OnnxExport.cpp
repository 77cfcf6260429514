//===- OnnxExport.cpp - trained model as an inference ONNX model ----------===//
//
/// \file
/// The export edits the stored ModelProto in place rather than rebuilding it
/// from the compiled program: opsets, metadata, node names and attributes of
/// the user's model survive untouched, and only what inference cannot have
/// changes. That is exactly what trainopt's eval step does to the imported
/// model: BatchNormalization reads its running statistics (and the updated
/// statistics it would return are the running statistics themselves),
/// Dropout is the identity.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/OnnxExport.h"
#include "trainopt/Support/Files.h"

#include "trainopt/Runtime/NarrowFloat.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <limits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace trainopt::rt;

namespace {

/// The runtime dtype of an ONNX element type, or false for one the runtime
/// has no dtype for (strings, complex, ...).
bool dtypeOf(int32_t onnxType, DType &out) {
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    out = DType::F32;
    return true;
  case onnx::TensorProto::DOUBLE:
    out = DType::F64;
    return true;
  case onnx::TensorProto::FLOAT16:
    out = DType::F16;
    return true;
  case onnx::TensorProto::BFLOAT16:
    out = DType::BF16;
    return true;
  case onnx::TensorProto::INT64:
    out = DType::I64;
    return true;
  case onnx::TensorProto::INT32:
    out = DType::I32;
    return true;
  case onnx::TensorProto::INT16:
    out = DType::I16;
    return true;
  case onnx::TensorProto::INT8:
    out = DType::I8;
    return true;
  case onnx::TensorProto::UINT8:
    out = DType::U8;
    return true;
  case onnx::TensorProto::BOOL:
    out = DType::Bool;
    return true;
  default:
    return false;
  }
}

bool isFloatType(int32_t onnxType) {
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
  case onnx::TensorProto::DOUBLE:
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16:
    return true;
  default:
    return false;
  }
}

std::string typeName(int32_t onnxType) {
  DType t;
  if (dtypeOf(onnxType, t))
    return dtypeName(t);
  return onnx::TensorProto::DataType_Name(
      static_cast<onnx::TensorProto::DataType>(onnxType));
}

template <typename Dims> std::string shapeString(const Dims &dims) {
  std::string s = "[";
  bool first = true;
  for (int64_t d : dims) {
    if (!first)
      s += ", ";
    s += std::to_string(d);
    first = false;
  }
  return s + "]";
}

/// Elements of a tensor of `dims`, or -1 for a negative or overflowing shape.
template <typename Dims> int64_t numElements(const Dims &dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d != 0 && n > INT64_MAX / d))
      return -1;
    n *= d;
  }
  return n;
}

/// Whether the initializer carries its values inline (or needs none).
bool hasInlineData(const onnx::TensorProto &t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL ||
      t.external_data_size() > 0)
    return false;
  return numElements(t.dims()) == 0 || !t.raw_data().empty() ||
         t.float_data_size() > 0 || t.int32_data_size() > 0 ||
         t.string_data_size() > 0 || t.int64_data_size() > 0 ||
         t.double_data_size() > 0 || t.uint64_data_size() > 0;
}

void clearData(onnx::TensorProto &t) {
  t.clear_raw_data();
  t.clear_float_data();
  t.clear_int32_data();
  t.clear_string_data();
  t.clear_int64_data();
  t.clear_double_data();
  t.clear_uint64_data();
  t.clear_external_data();
  t.clear_data_location();
}

bool hostIsLittleEndian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

/// `raw_data` is little-endian whatever the host.
std::string littleEndianBytes(const void *data, size_t count,
                              unsigned elementSize) {
  std::string bytes(static_cast<const char *>(data), count * elementSize);
  if (elementSize > 1 && !hostIsLittleEndian())
    for (size_t i = 0; i < count; ++i)
      std::reverse(bytes.begin() + i * elementSize,
                   bytes.begin() + (i + 1) * elementSize);
  return bytes;
}

std::string describeNode(const onnx::NodeProto &node, int index) {
  std::string s = node.op_type() + " node";
  if (!node.name().empty())
    s += " '" + node.name() + "'";
  return s + " (#" + std::to_string(index) + ")";
}

/// Every name a node of `graph` or of its subgraphs reads.
void collectReads(const onnx::GraphProto &graph, std::set<std::string> &out) {
  for (const onnx::NodeProto &node : graph.node()) {
    for (const std::string &in : node.input())
      if (!in.empty())
        out.insert(in);
    for (const onnx::AttributeProto &attr : node.attribute()) {
      if (attr.has_g())
        collectReads(attr.g(), out);
      for (const onnx::GraphProto &g : attr.graphs())
        collectReads(g, out);
    }
  }
  for (const onnx::ValueInfoProto &info : graph.output())
    out.insert(info.name());
}

/// Renames reads of `renames`' keys in `graph` and its subgraphs. A subgraph
/// that defines a renamed name itself shadows it, which ONNX forbids, so
/// there is no scoping to respect.
void renameReads(onnx::GraphProto &graph,
                 const std::map<std::string, std::string> &renames) {
  for (onnx::NodeProto &node : *graph.mutable_node()) {
    for (std::string &in : *node.mutable_input()) {
      auto it = renames.find(in);
      if (it != renames.end())
        in = it->second;
    }
    for (onnx::AttributeProto &attr : *node.mutable_attribute()) {
      if (attr.has_g())
        renameReads(*attr.mutable_g(), renames);
      for (onnx::GraphProto &g : *attr.mutable_graphs())
        renameReads(g, renames);
    }
  }
}

template <typename Field, typename Pred> void eraseIf(Field &field, Pred pred) {
  int kept = 0;
  for (int i = 0; i < field.size(); ++i) {
    if (pred(field.Get(i)))
      continue;
    if (kept != i)
      field.SwapElements(kept, i);
    ++kept;
  }
  while (field.size() > kept)
    field.RemoveLast();
}

/// Rewrites training-only constructs of the main graph into their inference
/// form. Returns false with a message naming the node.
bool toInference(onnx::GraphProto &graph, std::string &error) {
  // Readers of a BatchNormalization's updated statistics read the running
  // statistics instead, as in trainopt's eval step.
  std::map<std::string, std::string> renames;
  std::set<std::string> trainingOutputs;
  for (int i = 0; i < graph.node_size(); ++i) {
    onnx::NodeProto &node = *graph.mutable_node(i);
    if (!node.domain().empty() && node.domain() != "ai.onnx")
      continue;
    if (node.op_type() == "BatchNormalization") {
      for (onnx::AttributeProto &attr : *node.mutable_attribute())
        if (attr.name() == "training_mode")
          attr.set_i(0);
      // Opsets 9 to 13 also have the saved mean and variance outputs.
      for (int k = 1; k < node.output_size(); ++k) {
        const std::string &out = node.output(k);
        if (out.empty())
          continue;
        trainingOutputs.insert(out);
        if (k > 2)
          continue;
        if (node.input_size() <= k + 2 || node.input(k + 2).empty()) {
          error = describeNode(node, i) + ": output " + std::to_string(k) +
                  " ('" + out + "') has no running statistic (input " +
                  std::to_string(k + 2) + ") to read instead";
          return false;
        }
        renames[out] = node.input(k + 2);
      }
      while (node.output_size() > 1)
        node.mutable_output()->RemoveLast();
    } else if (node.op_type() == "Dropout") {
      // An absent training_mode is false (opset 12 on; earlier opsets have
      // no such input), and then the ratio is not read either. Trainopt has
      // no value for a ratio initializer (it folds it), so drop both.
      while (node.input_size() > 1)
        node.mutable_input()->RemoveLast();
    }
  }
  // A statistic of one BatchNormalization may be the running statistic of
  // the next; resolve chains.
  for (auto &[from, to] : renames) {
    std::string target = to;
    for (size_t hops = 0; hops <= renames.size(); ++hops) {
      auto it = renames.find(target);
      if (it == renames.end())
        break;
      target = it->second;
    }
    to = target;
  }
  renameReads(graph, renames);
  // Graph outputs that were training statistics are not inference outputs.
  eraseIf(*graph.mutable_output(), [&](const onnx::ValueInfoProto &info) {
    return trainingOutputs.count(info.name()) > 0;
  });
  eraseIf(*graph.mutable_value_info(), [&](const onnx::ValueInfoProto &info) {
    return trainingOutputs.count(info.name()) > 0;
  });
  return true;
}

/// Drops nodes whose outputs nothing reads (the constant that fed a removed
/// training_mode, say), then initializers nothing reads. Trainopt drops
/// unread parameters too, so the runtime has no value for them.
void removeDead(onnx::GraphProto &graph) {
  std::set<std::string> reads;
  for (bool changed = true; changed;) {
    reads.clear();
    collectReads(graph, reads);
    size_t before = graph.node_size();
    eraseIf(*graph.mutable_node(), [&](const onnx::NodeProto &node) {
      if (node.output_size() == 0)
        return false;
      for (const std::string &out : node.output())
        if (!out.empty() && reads.count(out))
          return false;
      return true;
    });
    changed = graph.node_size() != static_cast<int>(before);
  }
  std::set<std::string> dead;
  for (const onnx::TensorProto &init : graph.initializer())
    if (!reads.count(init.name()))
      dead.insert(init.name());
  eraseIf(*graph.mutable_initializer(), [&](const onnx::TensorProto &init) {
    return dead.count(init.name()) > 0;
  });
  // IR < 4 lists initializers as graph inputs too.
  eraseIf(*graph.mutable_input(), [&](const onnx::ValueInfoProto &info) {
    return dead.count(info.name()) > 0;
  });
  std::set<std::string> defined;
  for (const onnx::ValueInfoProto &info : graph.input())
    defined.insert(info.name());
  for (const onnx::TensorProto &init : graph.initializer())
    defined.insert(init.name());
  for (const onnx::NodeProto &node : graph.node())
    for (const std::string &out : node.output())
      defined.insert(out);
  eraseIf(*graph.mutable_value_info(), [&](const onnx::ValueInfoProto &info) {
    return !defined.count(info.name());
  });
}

/// Writes the trained values into the initializers.
bool fillInitializers(onnx::GraphProto &graph,
                      const std::vector<NamedTensor> &values,
                      std::string &error) {
  std::map<std::string, const NamedTensor *> byName;
  for (const NamedTensor &v : values)
    if (!byName.emplace(v.name, &v).second) {
      error = "two values are named '" + v.name + "'";
      return false;
    }
  for (onnx::TensorProto &init : *graph.mutable_initializer()) {
    std::string what = "initializer '" + init.name() + "'";
    auto it = byName.find(init.name());
    if (it == byName.end()) {
      if (hasInlineData(init))
        continue; // A constant the stored model kept.
      error = what + ": no trained value of that name";
      return false;
    }
    const NamedTensor &v = *it->second;
    DType expected;
    bool known = dtypeOf(init.data_type(), expected);
    bool sameShape = v.shape.size() == static_cast<size_t>(init.dims_size());
    for (size_t d = 0; sameShape && d < v.shape.size(); ++d)
      sameShape = v.shape[d] == init.dims(static_cast<int>(d));
    if (!known || expected != v.dtype || !sameShape) {
      error = what + ": expected " + typeName(init.data_type()) + " " +
              shapeString(init.dims()) + ", got " + dtypeName(v.dtype) + " " +
              shapeString(v.shape);
      return false;
    }
    int64_t count = numElements(v.shape);
    if (count < 0) {
      error = what + ": invalid shape " + shapeString(v.shape);
      return false;
    }
    if (count > 0 && !v.data) {
      error = what + ": the value has no data";
      return false;
    }
    clearData(init);
    if (count > 0)
      init.set_raw_data(littleEndianBytes(v.data, static_cast<size_t>(count),
                                          dtypeSize(v.dtype)));
  }
  return true;
}

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// so a reader sees the old file or the new one, never a part.
bool writeAtomically(const std::string &path, const std::string &bytes,
                     std::string &error) {
  if (!trainopt::mayReplace(path, error))
    return false;
  std::string tmp = path + ".tmp.XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0) {
    error = "cannot create a temporary file next to it: " +
            std::string(std::strerror(errno));
    return false;
  }
  tmp = name.data();
  bool ok = ::fchmod(fd, 0644) == 0;
  size_t done = 0;
  while (ok && done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    ok = n > 0;
    if (ok)
      done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int savedErrno = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok)
      savedErrno = errno;
    error = "cannot write it: " + std::string(std::strerror(savedErrno));
    std::remove(tmp.c_str());
    return false;
  }
  // Make the rename itself durable.
  std::string dir = ".";
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos)
    dir = slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

/// New names for a graph: none that a node, an initializer or a graph
/// output already uses.
class FreshNames {
public:
  explicit FreshNames(const onnx::GraphProto &graph) {
    collectReads(graph, taken);
    for (const onnx::TensorProto &t : graph.initializer())
      taken.insert(t.name());
    for (const onnx::NodeProto &n : graph.node())
      for (const std::string &o : n.output())
        taken.insert(o);
  }
  /// `name`, with underscores appended until it is new.
  std::string operator()(std::string name) {
    while (taken.count(name))
      name += "_";
    taken.insert(name);
    return name;
  }

private:
  std::set<std::string> taken;
};

/// The float32 values of `init` (raw little-endian data or float_data), or
/// false when it keeps them outside the file (external data).
bool floatValues(const onnx::TensorProto &init, std::vector<float> &out) {
  out.clear();
  if (init.has_raw_data()) {
    const std::string &raw = init.raw_data();
    for (size_t i = 0; i + 4 <= raw.size(); i += 4)
      out.push_back(bitsFloat(uint32_t(uint8_t(raw[i])) |
                              uint32_t(uint8_t(raw[i + 1])) << 8 |
                              uint32_t(uint8_t(raw[i + 2])) << 16 |
                              uint32_t(uint8_t(raw[i + 3])) << 24));
    return true;
  }
  if (init.float_data_size() > 0 || numElements(init.dims()) == 0) {
    out.assign(init.float_data().begin(), init.float_data().end());
    return true;
  }
  return false;
}

/// Stores every float32 initializer as `dtype` (FLOAT16 or BFLOAT16, round
/// to nearest even) under a new name, with a Cast back to float32 at the top
/// of the graph under the old one: half the bytes on disk and in memory at
/// load, while every op still computes in float32 (ONNX Runtime's CPU
/// kernels for float16 and bfloat16 are few).
bool narrowInitializers(onnx::GraphProto &graph, int32_t dtype,
                        std::string &error) {
  FreshNames fresh(graph);
  std::vector<onnx::NodeProto> casts;
  bool bf16 = dtype == onnx::TensorProto::BFLOAT16;
  for (onnx::TensorProto &init : *graph.mutable_initializer()) {
    if (init.data_type() != onnx::TensorProto::FLOAT)
      continue;
    // Trained values are raw data (fillInitializers); constants the stored
    // model kept may hold float_data.
    std::vector<float> values;
    if (!floatValues(init, values)) {
      error = "initializer '" + init.name() +
              "' has no inline data to narrow (external data)";
      return false;
    }
    std::string narrow(values.size() * 2, '\0');
    for (size_t i = 0; i < values.size(); ++i) {
      float f = values[i];
      // fp16 ends at 65504: a finite weight beyond it would become inf.
      if (!bf16 && std::isfinite(f) && std::fabs(f) >= 65520.0f) {
        error = "initializer '" + init.name() + "' holds " +
                std::to_string(f) +
                ", beyond fp16's range (65504); export it with "
                "--export-dtype=bf16 or fp32";
        return false;
      }
      uint16_t h = bf16 ? floatToBf16(f) : floatToHalf(f);
      narrow[2 * i] = static_cast<char>(h & 0xff);
      narrow[2 * i + 1] = static_cast<char>(h >> 8);
    }
    std::string original = init.name(),
                stored = fresh(
                    original + "_" +
                    (dtype == onnx::TensorProto::BFLOAT16 ? "bf16" : "fp16"));
    // Before IR version 4 every initializer is also a graph input: that
    // entry follows the initializer.
    for (onnx::ValueInfoProto &input : *graph.mutable_input())
      if (input.name() == original) {
        input.set_name(stored);
        input.mutable_type()->mutable_tensor_type()->set_elem_type(dtype);
      }
    init.set_name(stored);
    init.set_data_type(dtype);
    init.clear_float_data();
    init.set_raw_data(std::move(narrow));
    onnx::NodeProto cast;
    cast.set_op_type("Cast");
    cast.set_name("trainopt_widen_" + original);
    cast.add_input(stored);
    cast.add_output(original);
    onnx::AttributeProto *to = cast.add_attribute();
    to->set_name("to");
    to->set_type(onnx::AttributeProto::INT);
    to->set_i(onnx::TensorProto::FLOAT);
    casts.push_back(std::move(cast));
  }
  // The casts go first, so the graph stays topologically sorted.
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (onnx::NodeProto &c : casts)
    *nodes.Add() = std::move(c);
  for (onnx::NodeProto &n : *graph.mutable_node())
    *nodes.Add() = std::move(n);
  graph.mutable_node()->Swap(&nodes);
  return true;
}

/// The version of the default (ai.onnx) opset `model` imports, 0 if none.
int64_t defaultOpset(const onnx::ModelProto &model) {
  for (const onnx::OperatorSetIdProto &opset : model.opset_import())
    if (opset.domain().empty() || opset.domain() == "ai.onnx")
      return opset.version();
  return 0;
}

/// The index of the node that multiplies by initializer `weight` (a Conv,
/// Gemm or MatMul reading it as input 1, directly or through a Transpose,
/// as trainopt-quantize finds it), or -1. `readers` gets every node that
/// reads `weight` (the Transpose included).
int consumerOf(const onnx::GraphProto &graph, const std::string &weight,
               std::vector<int> &readers) {
  int found = -1;
  std::string via = weight;
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto &n = graph.node(i);
    bool reads = std::find(n.input().begin(), n.input().end(), weight) !=
                 n.input().end();
    if (reads)
      readers.push_back(i);
    if (reads && n.op_type() == "Transpose" && n.input_size() == 1 &&
        n.output_size() == 1)
      via = n.output(0);
    const std::string &op = n.op_type();
    if (found < 0 && (op == "Conv" || op == "Gemm" || op == "MatMul") &&
        n.input_size() > 1 && n.input(1) == via)
      found = i;
  }
  return found;
}

/// Checks `quantized` against the model without touching it.
bool checkQuantized(const onnx::ModelProto &model,
                    const std::vector<QuantizedTensor> &quantized,
                    ExportDType dtype, std::string &error) {
  if (quantized.empty())
    return true;
  if (dtype != ExportDType::F32) {
    error = "--export-dtype with a quantized model (--quantize): the QDQ "
            "export stores its weights as 8-bit integers already";
    return false;
  }
  int64_t opset = defaultOpset(model);
  if (opset < 13) {
    error = "a quantized model (--quantize) is written with "
            "QuantizeLinear/DequantizeLinear per axis, which need opset 13 "
            "or later; the model has opset " +
            std::to_string(opset);
    return false;
  }
  const onnx::GraphProto &graph = model.graph();
  for (const QuantizedTensor &q : quantized) {
    int64_t levels = q.quantMax - q.quantMin + 1;
    // 128: 7-bit weights (--quantize-reduce-range), stored as int8.
    if (levels != 256 && levels != 16 && !(levels == 128 && !q.input && !q.output)) {
      error = "'" + q.point + "' is quantized to " +
              std::to_string(q.quantMin) + ".." + std::to_string(q.quantMax) +
              ": trainopt writes 8-bit and 4-bit QDQ models only";
      return false;
    }
    if (levels == 16 && opset < 21) {
      error = "'" + q.point +
              "' is quantized to 4 bits (--quantize=int4), "
              "and QuantizeLinear/DequantizeLinear take 4-bit tensors "
              "(INT4, UINT4) from ONNX opset 21 on; the model has opset " +
              std::to_string(opset) +
              ": export it from PyTorch at opset 21 (torch.onnx.export(..., "
              "opset_version=21)) before compiling, or quantize to int8";
      return false;
    }
    auto init = std::find_if(
        graph.initializer().begin(), graph.initializer().end(),
        [&](const onnx::TensorProto &t) { return t.name() == q.weight; });
    if (init == graph.initializer().end() ||
        init->data_type() != onnx::TensorProto::FLOAT) {
      error = "the quantized weight '" + q.weight +
              "' is no float32 initializer of the model";
      return false;
    }
    std::vector<int> readers;
    int k = consumerOf(graph, q.weight, readers);
    if (k < 0) {
      error = "no Conv, Gemm or MatMul reads the quantized weight '" +
              q.weight + "'";
      return false;
    }
    for (int r : readers)
      if (r != k && graph.node(r).op_type() != "Transpose") {
        error = "the quantized weight '" + q.weight + "' is also read by " +
                describeNode(graph.node(r), r) +
                ", which reads it unquantized";
        return false;
      }
  }
  return true;
}

/// The scale and zero point of an observer's range [lo, hi], in float32 as
/// trainopt-quantize computes them (PyTorch's _calculate_qparams).
void qparams(float lo, float hi, const QuantizedTensor &q, float &scale,
             float &zero) {
  auto qmin = static_cast<float>(q.quantMin);
  auto qmax = static_cast<float>(q.quantMax);
  float minNeg = std::min(lo, 0.0f), maxPos = std::max(hi, 0.0f);
  const float eps = std::numeric_limits<float>::epsilon();
  if (q.symmetric) {
    scale = std::max(std::max(-minNeg, maxPos) / ((qmax - qmin) / 2), eps);
    zero = 0.0f;
  } else {
    scale = std::max((maxPos - minNeg) / (qmax - qmin), eps);
    zero = std::min(std::max(qmin - std::nearbyint(minNeg / scale), qmin), qmax);
  }
}

/// ONNX's INT4 and UINT4 element types (opset 21, IR version 10), by
/// number: the ONNX schema this is built with may predate them.
constexpr int32_t kOnnxUInt4 = 21, kOnnxInt4 = 22;

/// 4-bit integers packed two per byte, the first in the low nibble (ONNX's
/// INT4/UINT4 raw_data).
std::string packNibbles(const std::vector<int> &values) {
  std::string out((values.size() + 1) / 2, '\0');
  for (size_t i = 0; i < values.size(); ++i)
    out[i / 2] = static_cast<char>(static_cast<uint8_t>(out[i / 2]) |
                                   ((values[i] & 0xF) << (4 * (i % 2))));
  return out;
}

onnx::TensorProto tensorOf(const std::string &name, int32_t type,
                           const std::vector<int64_t> &dims, std::string raw) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (int64_t d : dims)
    t.add_dims(d);
  t.set_raw_data(std::move(raw));
  return t;
}

onnx::NodeProto qdqNode(const std::string &op, const std::string &name,
                        std::vector<std::string> inputs,
                        const std::string &output, int64_t axis) {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(name);
  for (std::string &in : inputs)
    n.add_input(std::move(in));
  n.add_output(output);
  if (axis >= 0) {
    onnx::AttributeProto *a = n.add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(axis);
  }
  return n;
}

/// Rewrites the graph (initializers already trained) into QDQ form
/// (exportOnnx); checkQuantized has passed.
bool writeQDQ(onnx::GraphProto &graph, const std::vector<NamedTensor> &values,
              const std::vector<QuantizedTensor> &quantized,
              std::string &error) {
  std::map<std::string, const NamedTensor *> byName;
  for (const NamedTensor &v : values)
    byName.emplace(v.name, &v);
  FreshNames fresh(graph);
  // An observer's range, as float32 values.
  auto range = [&](const QuantizedTensor &q, std::vector<float> &lo,
                   std::vector<float> &hi) {
    for (auto [suffix, out] : {std::pair{".observer_min", &lo},
                               std::pair{".observer_max", &hi}}) {
      auto it = byName.find(q.point + suffix);
      if (it == byName.end() || it->second->dtype != DType::F32) {
        error = "no float32 value '" + q.point + suffix +
                "' (the observer of a quantized tensor)";
        return false;
      }
      const auto *data = static_cast<const float *>(it->second->data);
      out->assign(data, data + numElements(it->second->shape));
    }
    return true;
  };

  std::vector<onnx::NodeProto> front;
  std::map<int, std::vector<onnx::NodeProto>> before, after;
  std::map<std::string, std::string> dequantized;
  std::vector<int> consumers;
  // Tensors an output point leaves on its grid, under their own names.
  std::set<std::string> onGrid;
  // The weights whose op's activation input is quantized.
  std::set<std::string> withInput;
  for (const QuantizedTensor &q : quantized)
    if (q.input)
      withInput.insert(q.weight);
  // QuantizeLinear of `x` then DequantizeLinear into `out`, at `q`'s
  // activation scale and zero point.
  auto activationQDQ = [&](const std::string &x, const std::string &out,
                           const QuantizedTensor &q,
                           const std::vector<float> &scale,
                           const std::vector<float> &zero,
                           const std::vector<int64_t> &dims) {
    std::string stem = q.output ? out : x;
    std::string s = fresh(stem + "_scale"), z = fresh(stem + "_zero_point"),
                xq = fresh(stem + "_quantized");
    *graph.add_initializer() =
        tensorOf(s, onnx::TensorProto::FLOAT, dims,
                 littleEndianBytes(scale.data(), scale.size(), sizeof(float)));
    bool four = q.quantMax - q.quantMin == 15;
    std::string zeros;
    std::vector<int> nibbles;
    for (float f : zero) {
      zeros.push_back(static_cast<char>(static_cast<uint8_t>(f)));
      nibbles.push_back(static_cast<int>(f));
    }
    *graph.add_initializer() =
        four ? tensorOf(z, kOnnxUInt4, dims, packNibbles(nibbles))
             : tensorOf(z, onnx::TensorProto::UINT8, dims, zeros);
    return std::vector<onnx::NodeProto>{
        qdqNode("QuantizeLinear", "trainopt_quantize_" + stem, {x, s, z}, xq,
                q.axis),
        qdqNode("DequantizeLinear", "trainopt_dequantize_" + stem, {xq, s, z},
                out, q.axis)};
  };
  // Output points first, so that inputs see which tensors are on a grid.
  std::vector<const QuantizedTensor *> ordered;
  for (const QuantizedTensor &q : quantized)
    if (q.output)
      ordered.push_back(&q);
  for (const QuantizedTensor &q : quantized)
    if (!q.output)
      ordered.push_back(&q);
  for (const QuantizedTensor *point : ordered) {
    const QuantizedTensor &q = *point;
    std::vector<int> readers;
    int k = consumerOf(graph, q.weight, readers);
    if (!q.output)
      consumers.push_back(k);
    std::vector<float> lo, hi;
    if (!range(q, lo, hi))
      return false;
    size_t channels = lo.size();
    std::vector<float> scale(channels), zero(channels);
    for (size_t c = 0; c < channels; ++c)
      qparams(lo[c], hi[c], q, scale[c], zero[c]);
    std::vector<int64_t> dims;
    if (q.axis >= 0)
      dims.push_back(static_cast<int64_t>(channels));
    if (q.output) {
      // The op's output, after a MatMul's bias Add and a Relu only it
      // feeds, as trainopt-quantize takes it; renamed, so that its
      // dequantized copy carries the name every reader reads.
      int producer = k;
      auto onlyReader = [&](int node) {
        const std::string &y = graph.node(node).output(0);
        int found = -1, count = 0;
        for (int i = 0; i < graph.node_size(); ++i)
          for (const std::string &in : graph.node(i).input())
            if (in == y) {
              found = i;
              ++count;
            }
        for (const onnx::ValueInfoProto &out : graph.output())
          count += out.name() == y;
        return count == 1 ? found : -1;
      };
      int next = onlyReader(producer);
      if (next >= 0 && graph.node(producer).op_type() == "MatMul" &&
          graph.node(next).op_type() == "Add")
        producer = next, next = onlyReader(producer);
      if (next >= 0 && graph.node(next).op_type() == "Relu")
        producer = next, next = onlyReader(producer);
      // A 4-bit pair goes after the MaxPools, Flattens and Reshapes that
      // follow (max commutes with the monotonic quantization, and the
      // others move values, so the values are the same): ONNX Runtime's
      // optimizer would move a DequantizeLinear past a MaxPool, which
      // cannot take UINT4.
      auto moves = [&](int node) {
        const std::string &op = graph.node(node).op_type();
        return (op == "MaxPool" || op == "Flatten" || op == "Reshape") &&
               graph.node(node).output_size() == 1;
      };
      while (q.quantMax - q.quantMin == 15 && next >= 0 && moves(next))
        producer = next, next = onlyReader(producer);
      std::string y = graph.node(producer).output(0);
      std::string raw = fresh(y + "_float");
      graph.mutable_node(producer)->set_output(0, raw);
      after[producer] = activationQDQ(raw, y, q, scale, zero, dims);
      onGrid.insert(y);
      continue;
    }
    if (q.input) {
      // Inputs read from an output point's grid need no pair of their own;
      // one reached through MaxPool, Flatten or the like gets one at the
      // same scale (exact), for ONNX Runtime's fused integer operators.
      // A 4-bit inherited point gets none: ONNX Runtime dequantizes 4-bit
      // tensors anyway (no integer kernels to fuse).
      const std::string &x = graph.node(k).input(0);
      bool inherited = q.point != q.weight + ":input";
      if (dequantized.count(x) || onGrid.count(x) ||
          (inherited && q.quantMax - q.quantMin == 15))
        continue;
      std::string xd = fresh(x + "_dequantized");
      before[k] = activationQDQ(x, xd, q, scale, zero, dims);
      dequantized[x] = xd;
      continue;
    }
    // The weight: its fake-quantized integers, as the training step rounds
    // them (z + round_half_even(w * (1/s)), clamped), dequantized back
    // under its own name. Met by a full-range uint8 activation, stored as
    // uint8, integers and zero point shifted by 128 (the same dequantized
    // values): ONNX Runtime's u8s8 integer kernels on x86 without VNNI add
    // products pairwise in saturating 16-bit (vpmaddubsw), so int8 weights
    // met by a full-range uint8 activation give wrong sums; u8u8 does not
    // saturate. 7-bit weights (--quantize-reduce-range: 255 * 64 * 2 fits
    // 16 bits), or weights that meet no quantized activation, are stored
    // as int8.
    // A 4-bit weight is stored as INT4 (signed, two per byte), its
    // integers as they are: ONNX Runtime dequantizes 4-bit weights to
    // float before the op, so no integer kernel meets them.
    bool four = q.quantMax - q.quantMin == 15;
    bool shifted = !four && q.quantMax - q.quantMin + 1 > 128 &&
                   withInput.count(q.weight);
    int32_t type = four      ? kOnnxInt4
                   : shifted ? onnx::TensorProto::UINT8
                             : onnx::TensorProto::INT8;
    float shift = shifted ? 128.0f : 0.0f;
    const NamedTensor &w = *byName.at(q.weight);
    int64_t count = numElements(w.shape), inner = 1;
    for (size_t d = q.axis + 1; q.axis >= 0 && d < w.shape.size(); ++d)
      inner *= w.shape[d];
    const auto *data = static_cast<const float *>(w.data);
    std::vector<int> ints(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      size_t c = q.axis >= 0 ? static_cast<size_t>((i / inner) % channels) : 0;
      float v = std::nearbyint(data[i] * (1.0f / scale[c])) + zero[c];
      v = std::min(std::max(v, static_cast<float>(q.quantMin)),
                   static_cast<float>(q.quantMax));
      ints[static_cast<size_t>(i)] = static_cast<int>(v + shift);
    }
    auto bytesOf = [&](const std::vector<int> &v) {
      if (four)
        return packNibbles(v);
      std::string out;
      for (int x : v)
        out.push_back(static_cast<char>(static_cast<uint8_t>(x)));
      return out;
    };
    std::string wq = fresh(q.weight + "_quantized"),
                s = fresh(q.weight + "_scale"),
                z = fresh(q.weight + "_zero_point");
    for (onnx::TensorProto &init : *graph.mutable_initializer())
      if (init.name() == q.weight) {
        init = tensorOf(wq, type, w.shape, bytesOf(ints));
        break;
      }
    // Before IR version 4 an initializer is also a graph input.
    for (onnx::ValueInfoProto &input : *graph.mutable_input())
      if (input.name() == q.weight) {
        input.set_name(wq);
        input.mutable_type()->mutable_tensor_type()->set_elem_type(type);
      }
    *graph.add_initializer() = tensorOf(
        s, onnx::TensorProto::FLOAT, dims,
        littleEndianBytes(scale.data(), channels, sizeof(float)));
    std::vector<int> zeros;
    for (float f : zero)
      zeros.push_back(static_cast<int>(f + shift));
    *graph.add_initializer() = tensorOf(z, type, dims, bytesOf(zeros));
    front.push_back(qdqNode("DequantizeLinear",
                            "trainopt_dequantize_" + q.weight, {wq, s, z},
                            q.weight, q.axis));
  }
  // Every quantized op reads its input's dequantized copy (one per tensor,
  // as trainopt-quantize shares it).
  for (int k : consumers) {
    std::string &x = *graph.mutable_node(k)->mutable_input(0);
    auto it = dequantized.find(x);
    if (it != dequantized.end())
      x = it->second;
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (onnx::NodeProto &n : front)
    *nodes.Add() = std::move(n);
  for (int i = 0; i < graph.node_size(); ++i) {
    for (onnx::NodeProto &n : before[i])
      *nodes.Add() = std::move(n);
    *nodes.Add() = std::move(*graph.mutable_node(i));
    for (onnx::NodeProto &n : after[i])
      *nodes.Add() = std::move(n);
  }
  graph.mutable_node()->Swap(&nodes);
  return true;
}

/// Attribute `name` of `node` as an int, or `otherwise`.
int64_t intAttribute(const onnx::NodeProto &node, const std::string &name,
                     int64_t otherwise) {
  for (const onnx::AttributeProto &a : node.attribute())
    if (a.name() == name)
      return a.i();
  return otherwise;
}

/// Rewrites the reader of each factored weight into two nodes over its
/// factors (exportOnnx); the factors' initializers get their data from the
/// trained values afterwards.
bool writeLowRank(onnx::GraphProto &graph,
                  const std::vector<NamedTensor> &values,
                  const std::vector<LowRankTensor> &lowRank,
                  std::string &error) {
  FreshNames fresh(graph);
  for (const LowRankTensor &f : lowRank) {
    std::string what = "the factored weight '" + f.weight + "'";
    auto init = std::find_if(
        graph.initializer().begin(), graph.initializer().end(),
        [&](const onnx::TensorProto &t) { return t.name() == f.weight; });
    const NamedTensor *u = nullptr, *v = nullptr;
    for (const NamedTensor &t : values) {
      u = t.name == f.u ? &t : u;
      v = t.name == f.v ? &t : v;
    }
    if (init == graph.initializer().end() || !u || !v) {
      error = what + ": its initializer or its factors are missing";
      return false;
    }
    int32_t type = init->data_type();
    // The one node reading it (a Transpose is looked through).
    std::vector<int> readers;
    for (int i = 0; i < graph.node_size(); ++i)
      for (const std::string &in : graph.node(i).input())
        if (in == f.weight) {
          readers.push_back(i);
          break;
        }
    if (readers.size() != 1) {
      error = what + " is read by " + std::to_string(readers.size()) +
              " nodes; its factored form needs exactly one";
      return false;
    }
    int at = readers[0];
    const onnx::NodeProto reader = graph.node(at);
    int transposeAt = -1;
    onnx::NodeProto node = reader;
    if (reader.op_type() == "Transpose") {
      std::vector<int> next;
      for (int i = 0; i < graph.node_size(); ++i)
        for (const std::string &in : graph.node(i).input())
          if (in == reader.output(0)) {
            next.push_back(i);
            break;
          }
      if (next.size() != 1 || graph.node(next[0]).op_type() != "MatMul" ||
          graph.node(next[0]).input(1) != reader.output(0)) {
        error = what + " is transposed for something other than one MatMul";
        return false;
      }
      transposeAt = at;
      at = next[0];
      node = graph.node(at);
    }
    auto make = [&](const std::string &op, std::vector<std::string> in,
                    const std::string &out) {
      onnx::NodeProto n;
      n.set_op_type(op);
      n.set_name(fresh(node.name() + "_" + op + "_low_rank"));
      for (std::string &x : in)
        n.add_input(std::move(x));
      n.add_output(out);
      return n;
    };
    auto setInt = [](onnx::NodeProto &n, const std::string &name, int64_t x) {
      onnx::AttributeProto *a = n.add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(x);
    };
    auto setFloat = [](onnx::NodeProto &n, const std::string &name, float x) {
      onnx::AttributeProto *a = n.add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::FLOAT);
      a->set_f(x);
    };
    std::string mid = fresh(f.weight + "_low_rank");
    std::vector<onnx::NodeProto> added;
    const std::string &x = node.input(0), &y = node.output(0);
    if (f.kind == "conv" && node.op_type() == "Conv" &&
        node.input(1) == f.weight) {
      onnx::NodeProto first = make("Conv", {x, f.v}, mid);
      *first.mutable_attribute() = node.attribute();
      std::vector<std::string> in{mid, f.u};
      if (node.input_size() > 2 && !node.input(2).empty())
        in.push_back(node.input(2));
      added = {first, make("Conv", in, y)};
    } else if (f.kind == "matmul" && node.op_type() == "MatMul" &&
               transposeAt >= 0) {
      // x W^T = (x v^T) u^T.
      std::string vt = fresh(f.v + "_T"), ut = fresh(f.u + "_T");
      added = {make("Transpose", {f.v}, vt), make("Transpose", {f.u}, ut),
               make("MatMul", {x, vt}, mid), make("MatMul", {mid, ut}, y)};
    } else if (f.kind == "matmul" && node.op_type() == "MatMul" &&
               node.input(1) == f.weight) {
      added = {make("MatMul", {x, f.u}, mid), make("MatMul", {mid, f.v}, y)};
    } else if (f.kind == "matmul" && node.op_type() == "Gemm" &&
               node.input(1) == f.weight) {
      bool transB = intAttribute(node, "transB", 0) != 0;
      int64_t transA = intAttribute(node, "transA", 0);
      float alpha = 1.0f, beta = 1.0f;
      for (const onnx::AttributeProto &a : node.attribute()) {
        alpha = a.name() == "alpha" ? a.f() : alpha;
        beta = a.name() == "beta" ? a.f() : beta;
      }
      // A W^T = (A v^T) u^T; A W = (A u) v.
      onnx::NodeProto first = make("Gemm", {x, transB ? f.v : f.u}, mid);
      setInt(first, "transA", transA);
      setInt(first, "transB", transB);
      setFloat(first, "alpha", alpha);
      std::vector<std::string> in{mid, transB ? f.u : f.v};
      if (node.input_size() > 2 && !node.input(2).empty())
        in.push_back(node.input(2));
      onnx::NodeProto second = make("Gemm", in, y);
      setInt(second, "transB", transB);
      setFloat(second, "beta", beta);
      added = {first, second};
    } else {
      error = what + " is read by a " + node.op_type() +
              " node, whose factored form is not written";
      return false;
    }
    // The nodes, in order: the new ones where the reader was.
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (int i = 0; i < graph.node_size(); ++i) {
      if (i == transposeAt)
        continue;
      if (i == at) {
        for (onnx::NodeProto &n : added)
          *nodes.Add() = std::move(n);
        continue;
      }
      *nodes.Add() = graph.node(i);
    }
    graph.mutable_node()->Swap(&nodes);
    // The factors replace the weight's initializer (and graph input, in
    // models that list initializers as inputs).
    eraseIf(*graph.mutable_initializer(),
            [&](const onnx::TensorProto &t) { return t.name() == f.weight; });
    eraseIf(*graph.mutable_input(), [&](const onnx::ValueInfoProto &i) {
      return i.name() == f.weight;
    });
    for (const NamedTensor *factor : {u, v}) {
      onnx::TensorProto *t = graph.add_initializer();
      t->set_name(factor->name);
      t->set_data_type(type);
      for (int64_t d : factor->shape)
        t->add_dims(d);
    }
  }
  return true;
}

/// The output-channel axis of weight `name` (of `rank` dims) as `reader`
/// (Conv, Gemm either way, MatMul) multiplies by it, or -1.
int64_t outputChannelAxis(const onnx::NodeProto &reader,
                          const std::string &name, size_t rank) {
  if (reader.input_size() < 2 || reader.input(1) != name)
    return -1;
  if (reader.op_type() == "Conv")
    return 0;
  if (reader.op_type() == "Gemm" && rank == 2)
    return intAttribute(reader, "transB", 0) ? 0 : 1;
  if (reader.op_type() == "MatMul" && rank == 2)
    return 1;
  return -1;
}

/// A float32 value being edited by compactChannels.
struct Editable {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

/// The values compactChannels reads and edits, by name: copies of the
/// trained float32 values, made on first use.
class EditableValues {
public:
  explicit EditableValues(const std::vector<NamedTensor> &values) {
    for (const NamedTensor &v : values)
      byName[v.name] = &v;
  }
  /// The value `name`, or null when there is none or it is not float32.
  Editable *get(const std::string &name) {
    auto it = edited.find(name);
    if (it != edited.end())
      return &it->second;
    auto v = byName.find(name);
    if (v == byName.end() || v->second->dtype != DType::F32)
      return nullptr;
    Editable e;
    e.shape = v->second->shape;
    const auto *data = static_cast<const float *>(v->second->data);
    e.data.assign(data, data + numElements(e.shape));
    return &edited.emplace(name, std::move(e)).first->second;
  }
  std::map<std::string, Editable> edited;

private:
  std::map<std::string, const NamedTensor *> byName;
};

/// `t` with only the indices `keep` (in order) of `axis`.
void keepAlong(Editable &t, int64_t axis, const std::vector<int64_t> &keep) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= t.shape[d];
  for (size_t d = axis + 1; d < t.shape.size(); ++d)
    inner *= t.shape[d];
  int64_t n = t.shape[axis];
  std::vector<float> out;
  out.reserve(static_cast<size_t>(outer * inner) * keep.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : keep)
      for (int64_t i = 0; i < inner; ++i)
        out.push_back(t.data[static_cast<size_t>((o * n + k) * inner + i)]);
  t.data = std::move(out);
  t.shape[axis] = static_cast<int64_t>(keep.size());
}

/// The nodes that read `name`, by index.
std::vector<int> readersOf(const onnx::GraphProto &graph,
                           const std::string &name) {
  std::vector<int> out;
  for (int i = 0; i < graph.node_size(); ++i)
    if (std::find(graph.node(i).input().begin(), graph.node(i).input().end(),
                  name) != graph.node(i).input().end())
      out.push_back(i);
  return out;
}

bool isInitializer(const onnx::GraphProto &graph, const std::string &name) {
  return std::any_of(
      graph.initializer().begin(), graph.initializer().end(),
      [&](const onnx::TensorProto &t) { return t.name() == name; });
}

/// The int64 values of `t` (int64_data or raw_data), if it has some.
bool int64Values(const onnx::TensorProto &t, std::vector<int64_t> &out) {
  if (t.data_type() != onnx::TensorProto::INT64)
    return false;
  out.assign(t.int64_data().begin(), t.int64_data().end());
  if (out.empty() && !t.raw_data().empty() && t.raw_data().size() % 8 == 0) {
    out.resize(t.raw_data().size() / 8);
    std::memcpy(out.data(), t.raw_data().data(), t.raw_data().size());
  }
  return !out.empty();
}

/// The constant int64 value `name` (an initializer, or a Constant node's
/// output), if it is one.
bool constantInts(const onnx::GraphProto &graph, const std::string &name,
                  std::vector<int64_t> &out) {
  for (const onnx::TensorProto &t : graph.initializer())
    if (t.name() == name)
      return int64Values(t, out);
  for (const onnx::NodeProto &n : graph.node())
    if (n.op_type() == "Constant" && n.output_size() == 1 &&
        n.output(0) == name)
      for (const onnx::AttributeProto &a : n.attribute())
        if (a.name() == "value")
          return int64Values(a.t(), out);
  return false;
}

/// Whether Reshape node `n` flattens to [batch, -1]: its shape is a
/// constant [B, -1] (or [0, -1]), or PyTorch's `x.view(x.size(0), -1)`, a
/// Concat whose last part is the constant [-1].
bool flattensToRows(const onnx::GraphProto &graph, const onnx::NodeProto &n) {
  if (n.input_size() < 2)
    return false;
  std::vector<int64_t> shape;
  if (constantInts(graph, n.input(1), shape))
    return shape.size() == 2 && shape[1] == -1;
  for (const onnx::NodeProto &c : graph.node())
    if (c.op_type() == "Concat" && c.output_size() == 1 &&
        c.output(0) == n.input(1) && c.input_size() == 2) {
      std::vector<int64_t> last;
      return constantInts(graph, c.input(1), last) && last.size() == 1 &&
             last[0] == -1;
    }
  return false;
}

/// Whether a Conv node pads its input (explicit pads or SAME auto_pad).
bool convPads(const onnx::NodeProto &n) {
  for (const onnx::AttributeProto &a : n.attribute()) {
    if (a.name() == "pads")
      for (int64_t p : a.ints())
        if (p != 0)
          return true;
    if (a.name() == "auto_pad" && a.s() != "NOTSET" && a.s() != "VALID")
      return true;
  }
  return false;
}

/// Removes the pruned output channels of each weight in `weights` (channel
/// pruning: whole output slices zero after the masks are folded) from the
/// model, and the matching input channels of the layer that reads them
/// (exportOnnx's `compact`). A pruned channel still outputs its bias, a
/// constant the layers in between map to another constant; that constant's
/// contribution is folded into the reading layer's bias, which is exact
/// where that layer sees the channel everywhere (no padding). A weight
/// whose channels cannot be followed to such a layer is left whole; each
/// weight gets a line in `report`.
bool compactChannels(onnx::GraphProto &graph, EditableValues &values,
                     const std::vector<std::string> &weights,
                     std::vector<std::string> &report, std::string &error) {
  FreshNames fresh(graph);
  for (const std::string &name : weights) {
    auto keepDense = [&](const std::string &why) {
      report.push_back(name + ": kept whole (" + why + ")");
    };
    Editable *w = values.get(name);
    if (!w || w->shape.empty()) {
      keepDense("not a float32 tensor");
      continue;
    }
    std::vector<int> readers = readersOf(graph, name);
    if (readers.size() != 1) {
      keepDense("read by " + std::to_string(readers.size()) + " nodes");
      continue;
    }
    int producer = readers[0];
    const onnx::NodeProto &p = graph.node(producer);
    int64_t axis = outputChannelAxis(p, name, w->shape.size());
    if (axis < 0) {
      keepDense("read by a " + p.op_type() + " node");
      continue;
    }
    int64_t channels = w->shape[axis];
    std::vector<int64_t> keep;
    {
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < axis; ++d)
        outer *= w->shape[d];
      for (size_t d = axis + 1; d < w->shape.size(); ++d)
        inner *= w->shape[d];
      for (int64_t c = 0; c < channels; ++c) {
        bool any = false;
        for (int64_t o = 0; o < outer && !any; ++o)
          for (int64_t i = 0; i < inner && !any; ++i)
            any =
                w->data[static_cast<size_t>((o * channels + c) * inner + i)] !=
                0.0f;
        if (any)
          keep.push_back(c);
      }
    }
    if (static_cast<int64_t>(keep.size()) == channels || keep.empty()) {
      keepDense(keep.empty() ? "every channel pruned" : "no channel pruned");
      continue;
    }
    std::vector<bool> kept(static_cast<size_t>(channels), false);
    for (int64_t c : keep)
      kept[c] = true;

    // What the pruned channels output: the bias.
    std::vector<std::string> perChannel; // every [C] tensor to slice
    std::string y = p.output(0);
    std::vector<double> constant(static_cast<size_t>(channels), 0.0);
    auto readBias = [&](const std::string &b) {
      Editable *bias = values.get(b);
      if (!bias || numElements(bias->shape) != channels)
        return false;
      for (int64_t c = 0; c < channels; ++c)
        constant[c] = bias->data[c];
      perChannel.push_back(b);
      return true;
    };
    std::string why;
    if (p.input_size() > 2 && !p.input(2).empty() && !readBias(p.input(2)))
      why = "its bias is not one value per channel";
    if (why.empty() && p.op_type() == "MatMul") {
      std::vector<int> next = readersOf(graph, y);
      if (next.size() == 1 && graph.node(next[0]).op_type() == "Add") {
        const onnx::NodeProto &add = graph.node(next[0]);
        const std::string &other =
            add.input(0) == y ? add.input(1) : add.input(0);
        if (isInitializer(graph, other)) {
          if (!readBias(other))
            why = "its bias is not one value per channel";
          y = add.output(0);
        }
      }
    }
    // Through the nodes that act channel by channel, to the next layer.
    int64_t group = 1; // columns per channel after a Flatten
    int consumer = -1;
    std::vector<int> batchNorms;
    while (why.empty()) {
      std::vector<int> next = readersOf(graph, y);
      bool isOutput = std::any_of(
          graph.output().begin(), graph.output().end(),
          [&](const onnx::ValueInfoProto &o) { return o.name() == y; });
      if (next.size() != 1 || isOutput) {
        why = "its output has " + std::to_string(next.size()) + " readers" +
              (isOutput ? " and is a graph output" : "");
        break;
      }
      const onnx::NodeProto &n = graph.node(next[0]);
      const std::string &op = n.op_type();
      if (n.input(0) != y) {
        why = "it reaches a " + op + " node as input other than the first";
        break;
      }
      if (op == "BatchNormalization" && n.input_size() == 5 && group == 1) {
        Editable *scale = values.get(n.input(1)),
                 *bias = values.get(n.input(2)), *mean = values.get(n.input(3)),
                 *var = values.get(n.input(4));
        float eps = 1e-5f;
        for (const onnx::AttributeProto &a : n.attribute())
          eps = a.name() == "epsilon" ? a.f() : eps;
        if (!scale || !bias || !mean || !var ||
            numElements(scale->shape) != channels) {
          why = "its BatchNormalization has no per-channel initializers";
          break;
        }
        // In training mode a constant channel normalizes to 0 (its batch
        // mean is itself, up to rounding): the BatchNorm outputs its bias.
        bool training = intAttribute(n, "training_mode", 0) != 0;
        for (int64_t c = 0; c < channels; ++c)
          constant[c] =
              training
                  ? static_cast<double>(bias->data[c])
                  : (constant[c] - mean->data[c]) /
                            std::sqrt(static_cast<double>(var->data[c]) + eps) *
                            scale->data[c] +
                        bias->data[c];
        for (int k = 1; k < 5; ++k)
          perChannel.push_back(n.input(k));
        batchNorms.push_back(next[0]);
      } else if (op == "Relu") {
        for (double &a : constant)
          a = std::max(a, 0.0);
      } else if (op == "LeakyRelu") {
        float alpha = 0.01f;
        for (const onnx::AttributeProto &a : n.attribute())
          alpha = a.name() == "alpha" ? a.f() : alpha;
        for (double &a : constant)
          a = a < 0 ? a * alpha : a;
      } else if (op == "Sigmoid") {
        for (double &a : constant)
          a = 1.0 / (1.0 + std::exp(-a));
      } else if (op == "Tanh") {
        for (double &a : constant)
          a = std::tanh(a);
      } else if (op == "Identity" || op == "Dropout" || op == "MaxPool" ||
                 op == "GlobalMaxPool" || op == "GlobalAveragePool" ||
                 (op == "AveragePool" &&
                  intAttribute(n, "count_include_pad", 0) == 0)) {
        // A constant channel stays the same constant.
      } else if ((op == "Flatten" && intAttribute(n, "axis", 1) == 1) ||
                 (op == "Reshape" && flattensToRows(graph, n))) {
        group = 0; // known from the reader's width
      } else if (op == "Conv" || op == "Gemm" || op == "MatMul") {
        consumer = next[0];
        break;
      } else {
        why = "its channels reach a " + op +
              " node, which compaction does "
              "not follow";
        break;
      }
      if (n.output_size() < 1) {
        why = "a " + op + " node without outputs";
        break;
      }
      y = n.output(0);
    }
    // The reader: its input channels, and where the constants fold.
    int64_t inAxis = -1;
    std::string readerWeight, readerBias;
    onnx::NodeProto *reader =
        consumer >= 0 ? graph.mutable_node(consumer) : nullptr;
    Editable *rw = nullptr;
    if (why.empty()) {
      readerWeight = reader->input_size() > 1 ? reader->input(1) : "";
      rw = values.get(readerWeight);
      const std::string &op = reader->op_type();
      if (!rw)
        why = "the " + op + " reading it has no float32 weight initializer";
      else if (op == "Conv" && intAttribute(*reader, "group", 1) == 1)
        inAxis = 1;
      else if (op == "Gemm" && intAttribute(*reader, "transA", 0) == 0)
        inAxis = intAttribute(*reader, "transB", 0) ? 1 : 0;
      else if (op == "MatMul" && rw->shape.size() == 2)
        inAxis = 0;
      if (why.empty() && inAxis < 0)
        why = "the " + op + " reading it is grouped or transposes its input";
    }
    if (why.empty()) {
      int64_t width = rw->shape[inAxis];
      if (group == 0)
        group = width % channels == 0 ? width / channels : -1;
      if (group <= 0 || (group == 1 && width != channels))
        why = "its reader's " + std::to_string(width) +
              " inputs do not divide into its " + std::to_string(channels) +
              " channels";
    }
    bool folds = false;
    for (int64_t c = 0; c < channels; ++c)
      folds |= !kept[c] && constant[c] != 0.0;
    if (why.empty() && folds) {
      if (reader->op_type() == "Conv" && convPads(*reader))
        why = "its pruned channels output nonzero constants (their biases) "
              "that the padded " +
              reader->name() +
              " does not see at its "
              "borders";
      else if (reader->op_type() == "MatMul")
        why = "its pruned channels output nonzero constants and the MatMul "
              "reading them has no bias to fold them into";
      else if (reader->op_type() == "Gemm" && reader->input_size() > 2 &&
               !reader->input(2).empty()) {
        Editable *c = values.get(reader->input(2));
        int64_t outputs = rw->shape[1 - inAxis];
        if (!c || numElements(c->shape) != outputs)
          why = "the Gemm reading it has a bias that is not one per output";
      } else if (reader->op_type() == "Conv" && reader->input_size() > 2 &&
                 !reader->input(2).empty() && !values.get(reader->input(2)))
        why = "the Conv reading it has no float32 bias initializer";
    }
    if (!why.empty()) {
      keepDense(why);
      continue;
    }

    // Fold: the reader's bias gains sum over pruned c of constant[c] times
    // the weights that read c (times Gemm's alpha / beta).
    if (folds) {
      int64_t outAxis = reader->op_type() == "Conv" ? 0 : 1 - inAxis;
      int64_t outputs = rw->shape[outAxis];
      std::vector<double> delta(static_cast<size_t>(outputs), 0.0);
      int64_t inner = 1;
      for (size_t d = 2; reader->op_type() == "Conv" && d < rw->shape.size();
           ++d)
        inner *= rw->shape[d];
      int64_t width = rw->shape[inAxis];
      for (int64_t o = 0; o < outputs; ++o)
        for (int64_t col = 0; col < width; ++col) {
          int64_t c = col / group;
          if (kept[c] || constant[c] == 0.0)
            continue;
          for (int64_t i = 0; i < inner; ++i) {
            size_t at = reader->op_type() == "Conv"
                            ? static_cast<size_t>((o * width + col) * inner + i)
                        : inAxis == 1 ? static_cast<size_t>(o * width + col)
                                      : static_cast<size_t>(col * outputs + o);
            delta[o] += constant[c] * rw->data[at];
          }
        }
      double factor = 1.0;
      if (reader->op_type() == "Gemm") {
        float alpha = 1.0f, beta = 1.0f;
        for (const onnx::AttributeProto &a : reader->attribute()) {
          alpha = a.name() == "alpha" ? a.f() : alpha;
          beta = a.name() == "beta" ? a.f() : beta;
        }
        if (beta == 0.0f) {
          keepDense("the Gemm reading it has beta 0, no bias to fold into");
          continue;
        }
        factor = static_cast<double>(alpha) / beta;
      }
      if (reader->input_size() < 3 || reader->input(2).empty()) {
        std::string b = fresh(readerWeight + "_compact_bias");
        onnx::TensorProto *t = graph.add_initializer();
        t->set_name(b);
        t->set_data_type(onnx::TensorProto::FLOAT);
        t->add_dims(outputs);
        Editable e{{outputs},
                   std::vector<float>(static_cast<size_t>(outputs), 0.0f)};
        values.edited[b] = std::move(e);
        while (reader->input_size() < 2)
          reader->add_input("");
        if (reader->input_size() == 2)
          reader->add_input(b);
        else
          reader->set_input(2, b);
      }
      Editable *bias = values.get(reader->input(2));
      for (int64_t o = 0; o < outputs; ++o)
        bias->data[o] = static_cast<float>(bias->data[o] + factor * delta[o]);
    }
    // Slice: the weight's and per-channel tensors' channels, the reader's
    // inputs.
    keepAlong(*w, axis, keep);
    for (const std::string &t : perChannel)
      keepAlong(*values.get(t), 0, keep);
    std::vector<int64_t> columns;
    for (int64_t c : keep)
      for (int64_t g = 0; g < group; ++g)
        columns.push_back(c * group + g);
    keepAlong(*rw, inAxis, columns);
    report.push_back(name + ": " + std::to_string(channels) + " -> " +
                     std::to_string(keep.size()) + " channels (and " +
                     readerWeight + "'s inputs)");
  }
  // The edited initializers' new shapes; intermediate shapes the model
  // declared may be stale now (ONNX Runtime infers them).
  for (onnx::TensorProto &t : *graph.mutable_initializer()) {
    auto it = values.edited.find(t.name());
    if (it == values.edited.end())
      continue;
    t.clear_dims();
    for (int64_t d : it->second.shape)
      t.add_dims(d);
  }
  // A declared tensor type gets the edited value's shape.
  auto reshape = [&](onnx::ValueInfoProto &info, const std::string &source) {
    auto it = values.edited.find(source);
    if (it == values.edited.end() || !info.type().has_tensor_type())
      return;
    onnx::TensorShapeProto *shape =
        info.mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->clear_dim();
    for (int64_t d : it->second.shape)
      shape->add_dim()->set_dim_value(d);
  };
  for (onnx::ValueInfoProto &in : *graph.mutable_input())
    reshape(in, in.name());
  // Graph outputs that are edited values (BatchNorm statistics a
  // training-mode model returns, through an Identity, or a training-mode
  // BatchNorm's updated statistics) get their new shapes.
  for (onnx::ValueInfoProto &out : *graph.mutable_output()) {
    std::string source = out.name();
    for (const onnx::NodeProto &n : graph.node())
      if (n.op_type() == "Identity" && n.output_size() == 1 &&
          n.output(0) == source)
        source = n.input(0);
    for (const onnx::NodeProto &n : graph.node())
      for (int k = 1; n.op_type() == "BatchNormalization" && k < 3 &&
                      k < n.output_size() && n.input_size() == 5;
           ++k)
        if (n.output(k) == source)
          source = n.input(k + 2);
    reshape(out, source);
  }
  graph.clear_value_info();
  (void)error;
  return true;
}

} // namespace

bool trainopt::rt::pruneAndCompactChannels(
    const std::string &modelBytes, const std::vector<std::string> &weights,
    double fraction, std::string &out, std::vector<std::string> &compacted,
    std::vector<std::string> &report, std::string &error) {
  onnx::ModelProto model;
  if (!model.ParseFromString(modelBytes)) {
    error = "the ONNX model does not parse";
    return false;
  }
  onnx::GraphProto &graph = *model.mutable_graph();
  // The float32 initializers, decoded.
  std::map<std::string, std::vector<float>> data;
  std::vector<NamedTensor> values;
  for (const onnx::TensorProto &init : graph.initializer()) {
    if (!hasInlineData(init)) {
      error = "initializer '" + init.name() +
              "' keeps its data outside the model file (external data), "
              "which --prune-compact does not read yet";
      return false;
    }
    if (init.data_type() != onnx::TensorProto::FLOAT)
      continue;
    std::vector<float> &d = data[init.name()];
    floatValues(init, d); // inline: checked above
    std::vector<int64_t> shape(init.dims().begin(), init.dims().end());
    if (numElements(shape) != static_cast<int64_t>(d.size())) {
      error = "initializer '" + init.name() + "' holds " +
              std::to_string(d.size()) + " values for its shape " +
              shapeString(shape);
      return false;
    }
    values.push_back({init.name(), DType::F32, shape, d.data()});
  }
  std::map<std::string, std::vector<float>> original;
  std::vector<std::pair<std::string, int64_t>> outputAxis;
  std::map<std::string, int64_t> channelsOf;
  for (const std::string &name : weights)
    if (data.count(name))
      original[name] = data[name];
  // The masks trainopt-prune's channel method sets at step 0: the L1 norm
  // of each output channel, the round(fraction * C) smallest pruned (and
  // any tied with the largest of them).
  for (const std::string &name : weights) {
    auto it = data.find(name);
    std::vector<int> readers = readersOf(graph, name);
    if (it == data.end() || readers.size() != 1) {
      report.push_back(name + ": kept whole (not a float32 initializer with "
                              "one reader)");
      continue;
    }
    const onnx::NodeProto &n = graph.node(readers[0]);
    auto w = std::find_if(values.begin(), values.end(),
                          [&](const NamedTensor &v) { return v.name == name; });
    int64_t axis = outputChannelAxis(n, name, w->shape.size());
    if (axis < 0) {
      report.push_back(name + ": kept whole (read by a " + n.op_type() +
                       " node)");
      continue;
    }
    int64_t channels = w->shape[axis], outer = 1, inner = 1;
    outputAxis.emplace_back(name, axis);
    channelsOf[name] = channels;
    for (int64_t d = 0; d < axis; ++d)
      outer *= w->shape[d];
    for (size_t d = axis + 1; d < w->shape.size(); ++d)
      inner *= w->shape[d];
    std::vector<float> &v = it->second;
    auto at = [&](int64_t o, int64_t c, int64_t i) {
      return static_cast<size_t>((o * channels + c) * inner + i);
    };
    std::vector<double> norms(static_cast<size_t>(channels), 0.0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = 0; i < inner; ++i)
          norms[c] += std::fabs(static_cast<double>(v[at(o, c, i)]));
    auto k = static_cast<int64_t>(
        std::nearbyint(fraction * static_cast<double>(channels)));
    if (k <= 0)
      continue;
    std::vector<double> sorted = norms;
    std::sort(sorted.begin(), sorted.end());
    double threshold = sorted[static_cast<size_t>(std::min(k, channels) - 1)];
    for (int64_t c = 0; c < channels; ++c)
      if (norms[c] <= threshold)
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i)
            v[at(o, c, i)] = 0.0f;
  }
  EditableValues editable(values);
  std::vector<std::string> lines;
  if (!compactChannels(graph, editable, weights, lines, error))
    return false;
  // Compacted: fewer output channels (a reader's inputs may shrink too).
  for (const auto &[name, axis] : outputAxis)
    if (editable.edited.count(name) &&
        editable.edited.at(name).shape[axis] < channelsOf.at(name))
      compacted.push_back(name);
  report.insert(report.end(), lines.begin(), lines.end());
  std::vector<NamedTensor> filled;
  for (const auto &[name, e] : editable.edited)
    filled.push_back({name, DType::F32, e.shape, e.data.data()});
  // The pruned weights that could not be compacted keep their values (the
  // masks zero them in training).
  for (NamedTensor v : values)
    if (!editable.edited.count(v.name)) {
      auto it = original.find(v.name);
      if (it != original.end())
        v.data = it->second.data();
      filled.push_back(v);
    }
  if (!fillInitializers(graph, filled, error))
    return false;
  if (!model.SerializeToString(&out)) {
    error = "the compacted model does not serialize";
    return false;
  }
  return true;
}

bool trainopt::rt::canExportQuantized(
    const std::string &modelBytes, const std::vector<QuantizedTensor> &quantized,
    ExportDType dtype, std::string &error) {
  onnx::ModelProto model;
  if (!model.ParseFromString(modelBytes)) {
    error = "the stored ONNX model does not parse";
    return false;
  }
  return checkQuantized(model, quantized, dtype, error);
}

bool trainopt::rt::exportOnnx(const std::string &modelBytes,
                              const std::vector<NamedTensor> &values,
                              const std::string &path, std::string &error,
                              ExportDType dtype,
                              const std::vector<QuantizedTensor> &quantized,
                              const std::vector<LowRankTensor> &lowRank,
                              const std::vector<std::string> &compact,
                              std::vector<std::string> *compacted) {
  auto fail = [&](const std::string &message) {
    error = "cannot export the model to '" + path + "': " + message;
    return false;
  };
  onnx::ModelProto model;
  if (!model.ParseFromString(modelBytes))
    return fail("the stored ONNX model does not parse");
  onnx::GraphProto &graph = *model.mutable_graph();
  std::string message;
  if (!toInference(graph, message))
    return fail(message);
  removeDead(graph);
  if (!lowRank.empty() && !writeLowRank(graph, values, lowRank, message))
    return fail(message);
  EditableValues editable(values);
  std::vector<NamedTensor> filled = values;
  if (!compact.empty()) {
    if (!quantized.empty() || !lowRank.empty())
      return fail("--compact does not apply to a quantized or factored model "
                  "yet");
    std::vector<std::string> report;
    if (!compactChannels(graph, editable, compact, report, message))
      return fail(message);
    for (NamedTensor &v : filled) {
      auto it = editable.edited.find(v.name);
      if (it != editable.edited.end()) {
        v.shape = it->second.shape;
        v.data = it->second.data.data();
      }
    }
    for (const auto &edit : editable.edited) {
      const std::string &name = edit.first;
      if (std::none_of(filled.begin(), filled.end(),
                       [&](const NamedTensor &v) { return v.name == name; }))
        filled.push_back(
            {name, DType::F32, edit.second.shape, edit.second.data.data()});
    }
    if (compacted)
      *compacted = std::move(report);
  }
  if (!fillInitializers(graph, filled, message))
    return fail(message);
  if (!checkQuantized(model, quantized, dtype, message) ||
      (!quantized.empty() && !writeQDQ(graph, filled, quantized, message)))
    return fail(message);
  // 4-bit tensors are IR version 10's.
  if (std::any_of(quantized.begin(), quantized.end(),
                  [](const QuantizedTensor &q) {
                    return q.quantMax - q.quantMin == 15;
                  }) &&
      model.ir_version() < 10)
    model.set_ir_version(10);
  if (dtype != ExportDType::F32) {
    // Cast from bfloat16 is in ONNX since opset 13 (from float16 since 6).
    for (const onnx::OperatorSetIdProto &opset : model.opset_import())
      if (dtype == ExportDType::BF16 &&
          (opset.domain().empty() || opset.domain() == "ai.onnx") &&
          opset.version() < 13)
        return fail("--export-dtype=bf16 needs opset 13 or later (Cast from "
                    "bfloat16), the model has " +
                    std::to_string(opset.version()));
    if (!narrowInitializers(graph,
                            dtype == ExportDType::BF16
                                ? onnx::TensorProto::BFLOAT16
                                : onnx::TensorProto::FLOAT16,
                            message))
      return fail(message);
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    return fail("the model does not serialize (over 2 GiB?)");
  if (!writeAtomically(path, bytes, message))
    return fail(message);
  return true;
}

bool trainopt::rt::stripInitializerData(
    const std::string &modelBytes, std::string &out, std::string &error,
    const std::function<bool(const std::string &)> &keep) {
  onnx::ModelProto model;
  if (!model.ParseFromString(modelBytes)) {
    error = "the ONNX model does not parse";
    return false;
  }
  for (onnx::TensorProto &init : *model.mutable_graph()->mutable_initializer())
    if ((isFloatType(init.data_type()) || !hasInlineData(init)) &&
        !(keep && hasInlineData(init) && keep(init.name())))
      clearData(init);
  if (!model.SerializeToString(&out)) {
    error = "the stripped ONNX model does not serialize";
    return false;
  }
  return true;
}

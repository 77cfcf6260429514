//===- OnnxExportTest.cpp - tests of the inference ONNX export ------------===//

#include "trainopt/Runtime/OnnxExport.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

using namespace trainopt::rt;

namespace {

onnx::TensorProto floatInit(const std::string &name, std::vector<int64_t> dims,
                            const std::vector<float> &values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims)
    t.add_dims(d);
  // Typed fields, so that stripping them is tested too.
  for (float v : values)
    t.add_float_data(v);
  return t;
}

onnx::TensorProto int64Init(const std::string &name,
                            const std::vector<int64_t> &values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(static_cast<int64_t>(values.size()));
  t.set_raw_data(std::string(reinterpret_cast<const char *>(values.data()),
                             values.size() * sizeof(int64_t)));
  return t;
}

onnx::ValueInfoProto valueInfo(const std::string &name,
                               std::vector<int64_t> dims) {
  onnx::ValueInfoProto info;
  info.set_name(name);
  auto *tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims)
    tensor->mutable_shape()->add_dim()->set_dim_value(d);
  return info;
}

onnx::NodeProto &addNode(onnx::GraphProto &g, const std::string &op,
                         std::vector<std::string> inputs,
                         std::vector<std::string> outputs) {
  onnx::NodeProto &n = *g.add_node();
  n.set_op_type(op);
  n.set_name(op + "_" + std::to_string(g.node_size() - 1));
  for (auto &i : inputs)
    n.add_input(i);
  for (auto &o : outputs)
    n.add_output(o);
  return n;
}

onnx::ModelProto newModel(int64_t opset) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("OnnxExportTest");
  auto *op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

std::vector<float> iota(size_t n, float start, float step) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = start + step * static_cast<float>(i);
  return v;
}

/// x[2,3] -> MatMul W[3,4] -> Add B[4] -> Reshape(shape) -> logits[2,4].
onnx::ModelProto linearModel() {
  onnx::ModelProto m = newModel(13);
  onnx::GraphProto &g = *m.mutable_graph();
  *g.add_input() = valueInfo("x", {2, 3});
  *g.add_initializer() = floatInit("fc.weight", {3, 4}, iota(12, 0.5f, 0.25f));
  *g.add_initializer() = floatInit("fc.bias", {4}, iota(4, -1.0f, 0.5f));
  *g.add_initializer() = int64Init("shape", {2, 4});
  addNode(g, "MatMul", {"x", "fc.weight"}, {"mm"});
  addNode(g, "Add", {"mm", "fc.bias"}, {"sum"});
  addNode(g, "Reshape", {"sum", "shape"}, {"logits"});
  *g.add_output() = valueInfo("logits", {2, 4});
  return m;
}

/// Conv -> BatchNormalization(training_mode=1, 3 outputs) -> Relu, with the
/// updated mean a graph output and the updated variance read by a node.
onnx::ModelProto convBnModel() {
  onnx::ModelProto m = newModel(15);
  onnx::GraphProto &g = *m.mutable_graph();
  *g.add_input() = valueInfo("x", {1, 1, 4, 4});
  *g.add_initializer() =
      floatInit("conv.weight", {2, 1, 3, 3}, iota(18, -0.5f, 0.0625f));
  *g.add_initializer() = floatInit("conv.bias", {2}, {0.1f, -0.1f});
  *g.add_initializer() = floatInit("bn.weight", {2}, {1.0f, 1.0f});
  *g.add_initializer() = floatInit("bn.bias", {2}, {0.0f, 0.0f});
  *g.add_initializer() = floatInit("bn.running_mean", {2}, {0.0f, 0.0f});
  *g.add_initializer() = floatInit("bn.running_var", {2}, {1.0f, 1.0f});
  addNode(g, "Conv", {"x", "conv.weight", "conv.bias"}, {"conv"});
  onnx::NodeProto &bn = addNode(
      g, "BatchNormalization",
      {"conv", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"},
      {"bn", "bn.new_mean", "bn.new_var"});
  auto *mode = bn.add_attribute();
  mode->set_name("training_mode");
  mode->set_type(onnx::AttributeProto::INT);
  mode->set_i(1);
  auto *momentum = bn.add_attribute();
  momentum->set_name("momentum");
  momentum->set_type(onnx::AttributeProto::FLOAT);
  momentum->set_f(0.9f);
  addNode(g, "Relu", {"bn"}, {"y"});
  addNode(g, "Identity", {"bn.new_var"}, {"var_copy"});
  *g.add_output() = valueInfo("y", {1, 2, 2, 2});
  *g.add_output() = valueInfo("bn.new_mean", {2});
  *g.add_output() = valueInfo("var_copy", {2});
  *g.add_value_info() = valueInfo("bn.new_var", {2});
  return m;
}

/// x -> Dropout(ratio initializer, training_mode from a Constant node) -> y.
onnx::ModelProto dropoutModel() {
  onnx::ModelProto m = newModel(13);
  onnx::GraphProto &g = *m.mutable_graph();
  *g.add_input() = valueInfo("x", {2, 2});
  *g.add_initializer() = floatInit("ratio", {}, {0.25f});
  *g.add_initializer() = floatInit("scale", {2}, {2.0f, 3.0f});
  onnx::NodeProto &c = addNode(g, "Constant", {}, {"train"});
  auto *value = c.add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::BOOL);
  value->mutable_t()->add_int32_data(1);
  addNode(g, "Dropout", {"x", "ratio", "train"}, {"dropped", "mask"});
  addNode(g, "Mul", {"dropped", "scale"}, {"y"});
  *g.add_output() = valueInfo("y", {2, 2});
  return m;
}

std::string serialize(const onnx::ModelProto &m) {
  std::string s;
  EXPECT_TRUE(m.SerializeToString(&s));
  return s;
}

std::string strip(const onnx::ModelProto &m) {
  std::string out, error;
  EXPECT_TRUE(stripInitializerData(serialize(m), out, error)) << error;
  return out;
}

onnx::ModelProto readModel(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(ss.str())) << path;
  return m;
}

const onnx::TensorProto *findInit(const onnx::ModelProto &m,
                                  const std::string &name) {
  for (const auto &t : m.graph().initializer())
    if (t.name() == name)
      return &t;
  return nullptr;
}

std::vector<float> rawFloats(const onnx::TensorProto &t) {
  EXPECT_EQ(t.float_data_size(), 0) << t.name();
  std::vector<float> v(t.raw_data().size() / sizeof(float));
  std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
  return v;
}

/// Every node input and graph output is defined by a graph input, an
/// initializer or an earlier node; initializers are all read.
void expectWellFormed(const onnx::ModelProto &m) {
  std::set<std::string> defined, read;
  for (const auto &i : m.graph().input())
    defined.insert(i.name());
  for (const auto &t : m.graph().initializer())
    defined.insert(t.name());
  for (const auto &n : m.graph().node()) {
    for (const auto &i : n.input()) {
      if (i.empty())
        continue;
      EXPECT_TRUE(defined.count(i)) << n.op_type() << " reads '" << i << "'";
      read.insert(i);
    }
    for (const auto &o : n.output())
      defined.insert(o);
  }
  for (const auto &o : m.graph().output()) {
    EXPECT_TRUE(defined.count(o.name())) << "output '" << o.name() << "'";
    read.insert(o.name());
  }
  for (const auto &v : m.graph().value_info())
    EXPECT_TRUE(defined.count(v.name())) << "value_info '" << v.name() << "'";
  for (const auto &t : m.graph().initializer())
    EXPECT_TRUE(read.count(t.name())) << "unread initializer " << t.name();
}

class OnnxExportTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "onnx_export_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ASSERT_NE(::mkdtemp(buf.data()), nullptr);
    dir = buf.data();
  }
  void TearDown() override {
    for (const std::string &f : files())
      std::remove((dir + "/" + f).c_str());
    ::rmdir(dir.c_str());
  }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR *d = ::opendir(dir.c_str())) {
      while (dirent *e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
          out.push_back(e->d_name);
      ::closedir(d);
    }
    return out;
  }
  std::string dir;
};

TEST_F(OnnxExportTest, StripKeepsNamesDimsAndTypes) {
  onnx::ModelProto m = linearModel();
  auto *ext = m.mutable_graph()->mutable_initializer(1);
  ext->clear_float_data();
  ext->set_data_location(onnx::TensorProto::EXTERNAL);
  auto *entry = ext->add_external_data();
  entry->set_key("location");
  entry->set_value("weights.bin");
  onnx::ModelProto s;
  ASSERT_TRUE(s.ParseFromString(strip(m)));
  ASSERT_EQ(s.graph().initializer_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const auto &a = m.graph().initializer(i), &b = s.graph().initializer(i);
    EXPECT_EQ(a.name(), b.name());
    EXPECT_EQ(a.data_type(), b.data_type());
    EXPECT_EQ(std::vector<int64_t>(a.dims().begin(), a.dims().end()),
              std::vector<int64_t>(b.dims().begin(), b.dims().end()));
    EXPECT_EQ(b.external_data_size(), 0);
    EXPECT_NE(b.data_location(), onnx::TensorProto::EXTERNAL);
  }
  EXPECT_EQ(s.graph().initializer(0).float_data_size(), 0);
  EXPECT_TRUE(s.graph().initializer(0).raw_data().empty());
  // Integer initializers are constants, not runtime values: kept.
  EXPECT_EQ(s.graph().initializer(2).raw_data(),
            m.graph().initializer(2).raw_data());
  EXPECT_EQ(s.graph().node_size(), 3);
}

TEST_F(OnnxExportTest, StripRejectsGarbage) {
  std::string out, error;
  EXPECT_FALSE(stripInitializerData("\xff\xff\xff not a model", out, error));
  EXPECT_NE(error.find("does not parse"), std::string::npos) << error;
}

TEST_F(OnnxExportTest, LinearModelGetsTrainedValues) {
  std::string stored = strip(linearModel());
  std::vector<float> w = iota(12, 3.0f, -0.5f), b = {9, 8, 7, 6};
  std::vector<float> slot(12, 1.0f);
  std::string path = dir + "/model.onnx", error;
  ASSERT_TRUE(exportOnnx(stored,
                         {{"fc.bias", DType::F32, {4}, b.data()},
                          {"fc.weight", DType::F32, {3, 4}, w.data()},
                          // Optimizer state names no initializer: ignored.
                          {"fc.weight.m", DType::F32, {3, 4}, slot.data()}},
                         path, error))
      << error;
  onnx::ModelProto out = readModel(path);
  expectWellFormed(out);
  ASSERT_TRUE(findInit(out, "fc.weight"));
  EXPECT_EQ(rawFloats(*findInit(out, "fc.weight")), w);
  EXPECT_EQ(rawFloats(*findInit(out, "fc.bias")), b);
  ASSERT_TRUE(findInit(out, "shape"));
  EXPECT_EQ(findInit(out, "shape")->raw_data().size(), 2 * sizeof(int64_t));
  EXPECT_EQ(out.graph().node_size(), 3);
  EXPECT_EQ(out.opset_import(0).version(), 13);
  // Only the model is left: the temporary file was renamed.
  EXPECT_EQ(files(), std::vector<std::string>{"model.onnx"});
}

TEST_F(OnnxExportTest, BatchNormBecomesInference) {
  std::string stored = strip(convBnModel());
  std::vector<float> cw = iota(18, 0.25f, -0.03125f), cb = {0.5f, -0.5f};
  std::vector<float> g = {1.5f, 0.5f}, beta = {0.1f, 0.2f};
  std::vector<float> mean = {0.3f, -0.3f}, var = {2.0f, 0.5f};
  int64_t counter = 7;
  std::string path = dir + "/bn.onnx", error;
  ASSERT_TRUE(exportOnnx(
      stored,
      {{"conv.weight", DType::F32, {2, 1, 3, 3}, cw.data()},
       {"conv.bias", DType::F32, {2}, cb.data()},
       {"bn.weight", DType::F32, {2}, g.data()},
       {"bn.bias", DType::F32, {2}, beta.data()},
       {"bn.running_mean", DType::F32, {2}, mean.data()},
       {"bn.running_var", DType::F32, {2}, var.data()},
       {"bn.running_mean.num_batches_tracked", DType::I64, {}, &counter}},
      path, error))
      << error;
  onnx::ModelProto out = readModel(path);
  expectWellFormed(out);
  EXPECT_EQ(rawFloats(*findInit(out, "bn.running_mean")), mean);
  EXPECT_EQ(rawFloats(*findInit(out, "bn.running_var")), var);
  EXPECT_EQ(rawFloats(*findInit(out, "conv.weight")), cw);
  const onnx::NodeProto *bn = nullptr, *copy = nullptr;
  for (const auto &n : out.graph().node()) {
    if (n.op_type() == "BatchNormalization")
      bn = &n;
    if (n.op_type() == "Identity")
      copy = &n;
  }
  ASSERT_TRUE(bn);
  EXPECT_EQ(bn->output_size(), 1);
  int64_t mode = -1;
  for (const auto &a : bn->attribute())
    if (a.name() == "training_mode")
      mode = a.i();
  EXPECT_EQ(mode, 0);
  // The reader of the updated variance reads the running variance, as the
  // eval step does.
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->input(0), "bn.running_var");
  std::vector<std::string> outputs;
  for (const auto &o : out.graph().output())
    outputs.push_back(o.name());
  EXPECT_EQ(outputs, (std::vector<std::string>{"y", "var_copy"}));
  EXPECT_EQ(out.graph().value_info_size(), 0);
}

TEST_F(OnnxExportTest, DropoutBecomesIdentity) {
  std::string stored = strip(dropoutModel());
  std::vector<float> scale = {4.0f, 5.0f};
  std::string path = dir + "/dropout.onnx", error;
  // No value for "ratio": trainopt folds it, and inference does not read it.
  ASSERT_TRUE(exportOnnx(stored, {{"scale", DType::F32, {2}, scale.data()}},
                         path, error))
      << error;
  onnx::ModelProto out = readModel(path);
  expectWellFormed(out);
  ASSERT_EQ(out.graph().node_size(), 2);
  const onnx::NodeProto &d = out.graph().node(0);
  EXPECT_EQ(d.op_type(), "Dropout");
  EXPECT_EQ(d.input_size(), 1);
  EXPECT_EQ(findInit(out, "ratio"), nullptr);
  EXPECT_EQ(rawFloats(*findInit(out, "scale")), scale);
}

TEST_F(OnnxExportTest, MissingValueNamesTheInitializer) {
  std::string stored = strip(linearModel());
  std::vector<float> w(12);
  std::string path = dir + "/model.onnx", error;
  EXPECT_FALSE(exportOnnx(stored, {{"fc.weight", DType::F32, {3, 4}, w.data()}},
                          path, error));
  EXPECT_NE(error.find("'fc.bias'"), std::string::npos) << error;
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_TRUE(files().empty());
}

TEST_F(OnnxExportTest, WrongShapeAndDtypeAreRejected) {
  std::string stored = strip(linearModel());
  std::vector<float> w(12), b(4);
  std::vector<double> wd(12);
  std::string path = dir + "/model.onnx", error;
  EXPECT_FALSE(exportOnnx(stored,
                          {{"fc.weight", DType::F32, {4, 3}, w.data()},
                           {"fc.bias", DType::F32, {4}, b.data()}},
                          path, error));
  EXPECT_NE(error.find("initializer 'fc.weight': expected float32 [3, 4], got "
                       "float32 [4, 3]"),
            std::string::npos)
      << error;
  EXPECT_FALSE(exportOnnx(stored,
                          {{"fc.weight", DType::F64, {3, 4}, wd.data()},
                           {"fc.bias", DType::F32, {4}, b.data()}},
                          path, error));
  EXPECT_NE(error.find("initializer 'fc.weight': expected float32 [3, 4], got "
                       "float64 [3, 4]"),
            std::string::npos)
      << error;
  EXPECT_TRUE(files().empty());
}

TEST_F(OnnxExportTest, UnparsableModelIsRejected) {
  std::string path = dir + "/model.onnx", error;
  EXPECT_FALSE(exportOnnx("\xff\xff\xff not a model", {}, path, error));
  EXPECT_NE(error.find("does not parse"), std::string::npos) << error;
  EXPECT_NE(error.find(path), std::string::npos) << error;
}

TEST_F(OnnxExportTest, UnwritablePathIsRejectedAndOldFileKept) {
  std::string stored = strip(linearModel());
  std::vector<float> w(12), b(4);
  std::vector<NamedTensor> values = {
      {"fc.weight", DType::F32, {3, 4}, w.data()},
      {"fc.bias", DType::F32, {4}, b.data()}};
  std::string missingDir = dir + "/no/such/dir/model.onnx", error;
  EXPECT_FALSE(exportOnnx(stored, values, missingDir, error));
  EXPECT_NE(error.find(missingDir), std::string::npos) << error;

  // A failed export leaves an existing file as it was.
  std::string path = dir + "/model.onnx";
  { std::ofstream(path) << "old"; }
  values[0].shape = {12};
  EXPECT_FALSE(exportOnnx(stored, values, path, error));
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "old");
  EXPECT_EQ(files(), std::vector<std::string>{"model.onnx"});
}

} // namespace

namespace {

/// x [1, 2, 3, 3] -> Conv(w1 [3, 2, 1, 1], b1) -> Relu -> Conv(w2 [2, 3, 1,
/// 1], b2, pads) -> y: the first convolution's channel 1 pruned (its filter
/// zero), its bias 2 still flowing to the second.
onnx::ModelProto prunedConvModel(bool padded) {
  onnx::ModelProto m = newModel(13);
  auto &g = *m.mutable_graph();
  *g.add_input() = valueInfo("x", {1, 2, 3, 3});
  *g.add_output() = valueInfo("y", {1, 2, padded ? 5 : 3, padded ? 5 : 3});
  *g.add_initializer() = floatInit("w1", {3, 2, 1, 1}, iota(6, 0, 0));
  *g.add_initializer() = floatInit("b1", {3}, {0, 0, 0});
  *g.add_initializer() = floatInit("w2", {2, 3, 1, 1}, iota(6, 0, 0));
  *g.add_initializer() = floatInit("b2", {2}, {0, 0});
  addNode(g, "Conv", {"x", "w1", "b1"}, {"h"});
  addNode(g, "Relu", {"h"}, {"r"});
  onnx::NodeProto &second = addNode(g, "Conv", {"r", "w2", "b2"}, {"y"});
  if (padded) {
    onnx::AttributeProto *pads = second.add_attribute();
    pads->set_name("pads");
    pads->set_type(onnx::AttributeProto::INTS);
    for (int k = 0; k < 4; ++k)
      pads->add_ints(1);
  }
  return m;
}

/// prunedConvModel's trained values: w1's filter 1 zero, its bias 2.
struct PrunedConvValues {
  std::vector<float> w1 = {1, 2, 0, 0, 3, 4}, b1 = {0.5f, 2.0f, -1.0f};
  std::vector<float> w2 = {1, 10, 100, 2, 20, 200}, b2 = {0.25f, -0.25f};
  std::vector<NamedTensor> named() {
    return {{"w1", DType::F32, {3, 2, 1, 1}, w1.data()},
            {"b1", DType::F32, {3}, b1.data()},
            {"w2", DType::F32, {2, 3, 1, 1}, w2.data()},
            {"b2", DType::F32, {2}, b2.data()}};
  }
};

} // namespace

TEST_F(OnnxExportTest, CompactRemovesPrunedChannelsAndFoldsTheirBias) {
  std::string stored = strip(prunedConvModel(false));
  PrunedConvValues v;
  std::vector<NamedTensor> values = v.named();
  std::string path = dir + "/compact.onnx", error;
  std::vector<std::string> report;
  ASSERT_TRUE(exportOnnx(stored, values, path, error, ExportDType::F32, {}, {},
                         {"w1"}, &report))
      << error;
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0], "w1: 3 -> 2 channels (and w2's inputs)");
  onnx::ModelProto out = readModel(path);
  expectWellFormed(out);
  EXPECT_EQ(rawFloats(*findInit(out, "w1")), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(rawFloats(*findInit(out, "b1")), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(rawFloats(*findInit(out, "w2")),
            (std::vector<float>{1, 100, 2, 200}));
  // The pruned channel outputs relu(2) = 2 everywhere: b2 + 2 * w2[:, 1].
  EXPECT_EQ(rawFloats(*findInit(out, "b2")),
            (std::vector<float>{0.25f + 20.0f, -0.25f + 40.0f}));
  EXPECT_EQ(findInit(out, "w2")->dims(1), 2);
}

TEST_F(OnnxExportTest, CompactLeavesAPaddedReaderWhole) {
  std::string stored = strip(prunedConvModel(true));
  PrunedConvValues v;
  std::vector<NamedTensor> values = v.named();
  std::string path = dir + "/padded.onnx", error;
  std::vector<std::string> report;
  ASSERT_TRUE(exportOnnx(stored, values, path, error, ExportDType::F32, {}, {},
                         {"w1"}, &report))
      << error;
  ASSERT_EQ(report.size(), 1u);
  EXPECT_NE(report[0].find("w1: kept whole (its pruned channels output nonzero "
                           "constants"),
            std::string::npos)
      << report[0];
  onnx::ModelProto out = readModel(path);
  EXPECT_EQ(rawFloats(*findInit(out, "w1")), v.w1);
  EXPECT_EQ(rawFloats(*findInit(out, "b2")), v.b2);
  // A pruned channel whose bias the ReLU zeroes needs no fold: compacted.
  v.b1[1] = -2.0f;
  report.clear();
  ASSERT_TRUE(exportOnnx(stored, values, path, error, ExportDType::F32, {}, {},
                         {"w1"}, &report))
      << error;
  EXPECT_EQ(report[0], "w1: 3 -> 2 channels (and w2's inputs)");
  EXPECT_EQ(rawFloats(*findInit(readModel(path), "b2")), v.b2);
}

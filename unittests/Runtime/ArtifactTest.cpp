//===- ArtifactTest.cpp - tests of the .trainopt file framing -------------===//

#include "trainopt/Artifact/ArtifactFile.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

using namespace trainopt::artifact;

namespace {

std::string tempPath(const char *name) {
  return std::string(::testing::TempDir()) + name;
}

Artifact sample() {
  Artifact a;
  a.set_producer("unit test");
  a.set_target("cpu");
  a.set_batch_size(8);
  EntryPoint *step = a.add_entry_points();
  step->set_name("train_step");
  Value *w = step->add_arguments();
  w->set_name("fc.weight");
  w->set_kind(Value::PARAMETER);
  w->mutable_type()->add_shape(10);
  w->mutable_type()->add_shape(784);
  w->mutable_type()->set_element_type(F32);
  InitialValue *init = a.add_initial_values();
  init->set_name("fc.weight");
  init->set_data(std::string(10 * 784 * 4, '\1'));
  return a;
}

std::vector<char> slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
}

void dump(const std::string &path, const std::vector<char> &bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
}

} // namespace

TEST(Artifact, RoundTrips) {
  std::string path = tempPath("model.trainopt"), error;
  ASSERT_TRUE(writeArtifact(sample(), path, error)) << error;
  Artifact back;
  ASSERT_TRUE(readArtifact(path, back, error)) << error;
  EXPECT_EQ(back.entry_points(0).arguments(0).name(), "fc.weight");
  EXPECT_EQ(back.initial_values(0).data().size(), 10u * 784 * 4);
  EXPECT_FALSE(std::ifstream(path + ".tmp")); // no temporary left behind
}

TEST(Artifact, RejectsForeignTruncatedCorruptAndNewerFiles) {
  std::string path = tempPath("bad.trainopt"), error;
  ASSERT_TRUE(writeArtifact(sample(), path, error)) << error;
  std::vector<char> good = slurp(path);
  Artifact a;

  dump(path, std::vector<char>{'\x08', '\x01', 'P', 'K', 0, 0, 0, 0});
  EXPECT_FALSE(readArtifact(path, a, error));
  EXPECT_NE(error.find("is not a trainopt artifact"), std::string::npos);

  std::vector<char> truncated(good.begin(), good.end() - 100);
  dump(path, truncated);
  EXPECT_FALSE(readArtifact(path, a, error));
  EXPECT_NE(error.find("is truncated"), std::string::npos) << error;

  std::vector<char> corrupt = good;
  corrupt[corrupt.size() / 2] ^= 0x40;
  dump(path, corrupt);
  EXPECT_FALSE(readArtifact(path, a, error));
  EXPECT_NE(error.find("is corrupt (payload checksum mismatch)"),
            std::string::npos);

  std::vector<char> newer = good;
  newer[8] = 3;
  dump(path, newer);
  EXPECT_FALSE(readArtifact(path, a, error));
  EXPECT_NE(error.find("format version 3; this runtime reads version 2"),
            std::string::npos)
      << error;
  std::remove(path.c_str());
}

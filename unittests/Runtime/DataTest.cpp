//===- DataTest.cpp - tests of the runtime's data readers -----------------===//

#include "trainopt/Runtime/Data.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

using namespace trainopt::rt;

namespace {

std::vector<uint8_t> idxHeader(uint8_t type, std::vector<uint32_t> dims) {
  std::vector<uint8_t> b{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8)
      b.push_back((d >> s) & 0xff);
  return b;
}

std::vector<uint8_t> npy(const std::string &descr, const std::string &shape,
                         const std::vector<uint8_t> &data) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::vector<uint8_t> b{0x93,
                         'N',
                         'U',
                         'M',
                         'P',
                         'Y',
                         1,
                         0,
                         static_cast<uint8_t>(header.size() & 0xff),
                         static_cast<uint8_t>(header.size() >> 8)};
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::string tempPath(const char *name) {
  return std::string(::testing::TempDir()) + name;
}

} // namespace

TEST(Idx, ParsesUnsignedBytes) {
  std::vector<uint8_t> b = idxHeader(0x08, {2, 3});
  for (uint8_t v = 0; v < 6; ++v)
    b.push_back(v * 10);
  Array a;
  std::string error;
  ASSERT_TRUE(parseIdx(b, "t", a, error)) << error;
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.dtype, DType::U8);
  EXPECT_EQ(a.at(5), 50.0);
}

TEST(Idx, ConvertsBigEndianFloats) {
  std::vector<uint8_t> b = idxHeader(0x0D, {1});
  float v = 1.5f;
  uint8_t raw[4];
  std::memcpy(raw, &v, 4);
  for (int i = 3; i >= 0; --i)
    b.push_back(raw[i]);
  Array a;
  std::string error;
  ASSERT_TRUE(parseIdx(b, "t", a, error)) << error;
  EXPECT_EQ(a.at(0), 1.5);
}

TEST(Idx, RejectsBadFiles) {
  Array a;
  std::string error;
  EXPECT_FALSE(parseIdx({1, 2, 3, 4}, "bad.idx", a, error));
  EXPECT_NE(error.find("bad.idx: not an IDX file"), std::string::npos);
  std::vector<uint8_t> truncated = idxHeader(0x08, {4});
  truncated.push_back(1);
  EXPECT_FALSE(parseIdx(truncated, "t", a, error));
  EXPECT_NE(error.find("payload has 1 bytes, the dims need 4"),
            std::string::npos);
  EXPECT_FALSE(parseIdx(idxHeader(0x0E, {0xffffffff, 0xffffffff, 0xffffffff}),
                        "t", a, error));
  EXPECT_NE(error.find("overflow"), std::string::npos);
}

TEST(Files, InflatesGzipByContent) {
  std::string path = tempPath("data.idx.gz");
  std::vector<uint8_t> b = idxHeader(0x08, {3});
  b.insert(b.end(), {7, 8, 9});
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, b.data(), b.size());
  gzclose(f);
  std::vector<std::pair<std::string, Array>> arrays;
  std::string error;
  ASSERT_TRUE(readArrays(path, arrays, error)) << error;
  ASSERT_EQ(arrays.size(), 1u);
  EXPECT_EQ(arrays[0].second.at(2), 9.0);
  std::remove(path.c_str());
}

TEST(Npy, ParsesHeaderAndData) {
  std::vector<uint8_t> data(2 * 3 * 4);
  float values[6] = {0, 1, 2, 3, 4, -5.25f};
  std::memcpy(data.data(), values, sizeof(values));
  std::vector<uint8_t> b = npy("<f4", "(2, 3)", data);
  Array a;
  std::string error;
  ASSERT_TRUE(parseNpy(b.data(), b.size(), "t", a, error)) << error;
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.at(5), -5.25);
}

TEST(Npy, RejectsMismatchedData) {
  std::vector<uint8_t> b = npy("<i8", "(4,)", std::vector<uint8_t>(8));
  Array a;
  std::string error;
  EXPECT_FALSE(parseNpy(b.data(), b.size(), "x.npy", a, error));
  EXPECT_NE(error.find("x.npy: data has 8 bytes, the shape needs 32"),
            std::string::npos);
  b = npy("<c8", "(1,)", std::vector<uint8_t>(8));
  EXPECT_FALSE(parseNpy(b.data(), b.size(), "x.npy", a, error));
  EXPECT_NE(error.find("unsupported dtype '<c8'"), std::string::npos);
}

TEST(FashionMnist, ReadsTheDebianDataset) {
  const char *dir = "/usr/share/datasets/fashion-mnist";
  std::string images = std::string(dir) + "/train-images-idx3-ubyte.gz";
  if (!std::ifstream(images)) {
    // scripts/run_tests.sh (and so CI) installs the data and requires it;
    // a developer build without the package skips, saying why.
    if (std::getenv("TRAINOPT_REQUIRE_DATASETS"))
      FAIL() << images << " is missing (TRAINOPT_REQUIRE_DATASETS is set)";
    GTEST_SKIP() << images
                 << " is missing; scripts/setup.sh installs the Debian "
                    "package dataset-fashion-mnist";
  }
  std::vector<std::pair<std::string, Array>> x, y;
  std::string error;
  ASSERT_TRUE(readArrays(images, x, error)) << error;
  ASSERT_TRUE(
      readArrays(std::string(dir) + "/train-labels-idx1-ubyte.gz", y, error))
      << error;
  EXPECT_EQ(x[0].second.shape, (std::vector<int64_t>{60000, 28, 28}));
  EXPECT_EQ(y[0].second.shape, (std::vector<int64_t>{60000}));
  double maxLabel = 0;
  for (int64_t i = 0; i < 60000; ++i)
    maxLabel = std::max(maxLabel, y[0].second.at(i));
  EXPECT_EQ(maxLabel, 9.0);
}

// Tensor parallelism's parts: "tp:1" splits dim 1 in two halves; "tp:1/3"
// splits each of dim 1's three blocks (attention's q, k and v), so rank r
// holds its half of each block. Parts put back make the whole again.
TEST(Sharding, CopiesPartsAlongADimAndOfEachBlock) {
  EXPECT_EQ(shardingDim("tp:1"), std::optional<size_t>(1));
  EXPECT_EQ(shardingBlocks("tp:1"), 1);
  EXPECT_EQ(shardingDim("tp:1/3"), std::optional<size_t>(1));
  EXPECT_EQ(shardingBlocks("tp:1/3"), 3);
  EXPECT_FALSE(shardingDim("dp:flat").has_value());
  EXPECT_FALSE(shardingDim("tp:1/0").has_value());
  // A 2 x 12 whole: row r is 12 r .. 12 r + 11.
  std::vector<uint8_t> whole(24);
  for (int i = 0; i < 24; ++i)
    whole[i] = static_cast<uint8_t>(i);
  std::vector<uint8_t> part(12);
  copyPart(whole.data(), {2, 12}, 1, 2, 1, 1, part.data(), false);
  EXPECT_EQ(part,
            (std::vector<uint8_t>{6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23}));
  copyPart(whole.data(), {2, 12}, 1, 2, 1, 1, part.data(), false, 3);
  EXPECT_EQ(part,
            (std::vector<uint8_t>{2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23}));
  std::vector<uint8_t> back(24, 0xff), other(12);
  copyPart(whole.data(), {2, 12}, 1, 2, 0, 1, other.data(), false, 3);
  copyPart(back.data(), {2, 12}, 1, 2, 0, 1, other.data(), true, 3);
  copyPart(back.data(), {2, 12}, 1, 2, 1, 1, part.data(), true, 3);
  EXPECT_EQ(back, whole);
}

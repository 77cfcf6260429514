//===- DataTest.cpp - tests of the runtime's data readers -----------------===//

#include "trainopt/Runtime/Data.h"
#include "trainopt/Runtime/Sharding.h"

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

// Shardings are levels, outermost first (Sharding.h). Bad ones are refused
// with the reason.
TEST(Sharding, ParsesLevelsAndRefusesBadOnes) {
  std::string why;
  std::optional<Sharding> s = Sharding::parse("pp=1,tp:1/3,dp:flat", why);
  ASSERT_TRUE(s.has_value()) << why;
  ASSERT_EQ(s->levels.size(), 3u);
  EXPECT_EQ(s->levels[0].kind, ShardLevel::Kind::Stage);
  EXPECT_EQ(s->levels[0].stage, 1);
  EXPECT_EQ(s->levels[1].kind, ShardLevel::Kind::Dim);
  EXPECT_EQ(s->levels[1].dim, 1);
  EXPECT_EQ(s->levels[1].blocks, 3);
  EXPECT_EQ(s->levels[2].kind, ShardLevel::Kind::Flat);
  EXPECT_EQ(s->str(), "pp=1,tp:1/3,dp:flat");
  EXPECT_EQ(s->splitAxes(), (std::vector<std::string>{"tp", "dp"}));
  EXPECT_TRUE(Sharding::parse("", why)->replicated());
  EXPECT_TRUE(Sharding::parse("dp:mean", why)->mean());
  for (const char *bad : {"tp:1/0", "tp", "dp:flat,tp:0", "tp:0,pp=1",
                          "dp:mean,tp:0", "tp:0,tp:1", "tp:x", "pp=-1", ","}) {
    why.clear();
    EXPECT_FALSE(Sharding::parse(bad, why).has_value()) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

// ZeRO over dp of a tensor-parallel part ("tp:0,dp:flat"), on a tp=2 x
// dp=3 mesh: each of the 6 ranks takes its part level by level, and the
// parts joined innermost first make the whole again (the padding of the
// flat parts dropped).
TEST(Sharding, TakesAndJoinsNestedParts) {
  std::string why;
  Sharding s = *Sharding::parse("tp:0,dp:flat", why);
  auto size = [](const std::string &axis) -> int64_t {
    return axis == "tp" ? 2 : 3;
  };
  std::vector<int64_t> whole{4, 5};
  EXPECT_EQ(*s.shapeAt(1, whole, size, why), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(*s.shapeAt(2, whole, size, why), (std::vector<int64_t>{4}));
  EXPECT_FALSE(s.shapeAt(1, {3, 5}, size, why).has_value());
  std::vector<float> value(20);
  for (int i = 0; i < 20; ++i)
    value[i] = static_cast<float>(i);
  const auto *bytes = reinterpret_cast<const uint8_t *>(value.data());
  std::vector<std::vector<uint8_t>> tpParts;
  for (int64_t t = 0; t < 2; ++t) {
    std::vector<uint8_t> rows =
        takePart(s.levels[0], whole, DType::F32, bytes, 2, t);
    std::vector<std::vector<uint8_t>> dpParts;
    for (int64_t d = 0; d < 3; ++d)
      dpParts.push_back(
          takePart(s.levels[1], {2, 5}, DType::F32, rows.data(), 3, d));
    // Rows 2t, 2t + 1: elements 10t .. 10t + 9, in parts of 4, zero-padded.
    const auto *last = reinterpret_cast<const float *>(dpParts[2].data());
    EXPECT_EQ(last[0], 10 * t + 8);
    EXPECT_EQ(last[1], 10 * t + 9);
    EXPECT_EQ(last[2], 0.0f);
    std::vector<const uint8_t *> data;
    std::vector<uint64_t> sizes;
    for (const auto &p : dpParts) {
      data.push_back(p.data());
      sizes.push_back(p.size());
    }
    std::vector<uint8_t> joined;
    ASSERT_TRUE(
        joinParts(s.levels[1], {2, 5}, DType::F32, data, sizes, joined, why))
        << why;
    EXPECT_EQ(joined, rows);
    tpParts.push_back(joined);
  }
  // partOfWhole takes the levels in one call: rank (tp 1, dp 2) holds
  // elements 18 and 19, then padding.
  std::optional<std::vector<uint8_t>> mine = partOfWhole(
      s, std::vector<uint8_t>(bytes, bytes + 80), whole, DType::F32, size,
      [](const std::string &axis) -> int64_t { return axis == "tp" ? 1 : 2; },
      why);
  ASSERT_TRUE(mine.has_value()) << why;
  ASSERT_EQ(mine->size(), 16u);
  const auto *m = reinterpret_cast<const float *>(mine->data());
  EXPECT_EQ(m[0], 18.0f);
  EXPECT_EQ(m[1], 19.0f);
  EXPECT_EQ(m[2], 0.0f);
  EXPECT_FALSE(partOfWhole(
                   s, {}, {3, 5}, DType::F32, size,
                   [](const std::string &) -> int64_t { return 0; }, why)
                   .has_value());
  std::vector<uint8_t> back;
  ASSERT_TRUE(joinParts(s.levels[0], whole, DType::F32,
                        {tpParts[0].data(), tpParts[1].data()},
                        {tpParts[0].size(), tpParts[1].size()}, back, why));
  EXPECT_EQ(back, std::vector<uint8_t>(bytes, bytes + 80));
  // A part of the wrong size is refused.
  EXPECT_FALSE(joinParts(s.levels[0], whole, DType::F32,
                         {tpParts[0].data(), tpParts[1].data()},
                         {tpParts[0].size(), 8}, back, why));
  // A mean: the parts' mean, in double.
  float a[2] = {1, 2}, b[2] = {2, 5};
  std::vector<uint8_t> mean;
  ASSERT_TRUE(joinParts(
      Sharding::parse("dp:mean", why)->levels[0], {2}, DType::F32,
      {reinterpret_cast<uint8_t *>(a), reinterpret_cast<uint8_t *>(b)}, {8, 8},
      mean, why));
  EXPECT_EQ(reinterpret_cast<float *>(mean.data())[0], 1.5f);
  EXPECT_EQ(reinterpret_cast<float *>(mean.data())[1], 3.5f);
}

// A 213-byte .npz whose deflated member declares 4 GiB (found by
// fuzz/fuzz_data.cpp, which ran out of memory on it): refused before the
// size is allocated.
TEST(Npz, RefusesADeclaredSizeDeflateCannotReach) {
  const std::vector<uint8_t> bytes = {
      0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
      0x21, 0x00, 0x09, 0xcd, 0xea, 0x3c, 0x55, 0x00, 0x00, 0x00, 0x8f, 0x00,
      0x00, 0x00, 0x05, 0x00, 0x14, 0x00, 0x78, 0x2e, 0x6e, 0x70, 0x79, 0x01,
      0x00, 0x10, 0x00, 0x8f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x55,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9b, 0xec, 0x17, 0xea, 0x1b,
      0x10, 0xc9, 0xc8, 0x50, 0xc6, 0x50, 0xad, 0x9e, 0x92, 0x5a, 0x9c, 0x5c,
      0xa4, 0x6e, 0xa5, 0xa0, 0x5e, 0x53, 0x6a, 0xa8, 0xae, 0xa3, 0xa0, 0x9e,
      0x96, 0x5f, 0x54, 0x52, 0x94, 0x98, 0x17, 0x9f, 0x5f, 0xd1, 0x92, 0x0a,
      0x12, 0x77, 0x4b, 0xcc, 0x29, 0x4e, 0x05, 0x8a, 0x17, 0x67, 0x24, 0x16,
      0xa4, 0x02, 0xf9, 0x1a, 0xa6, 0x3a, 0x0a, 0xc6, 0x9a, 0x3a, 0x0a, 0xb5,
      0x0a, 0x64, 0x03, 0x2e, 0x66, 0x06, 0x06, 0x46, 0x06, 0x36, 0x16, 0x56,
      0x26, 0x56, 0x36, 0x66, 0x16, 0x0e, 0x76, 0x00, 0x50, 0x4b, 0x01, 0x02,
      0x14, 0x03, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00,
      0x09, 0xcd, 0xea, 0x3c, 0x55, 0x00, 0x00, 0x00, 0x8f, 0x00, 0x00, 0xf6,
      0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x78, 0x2e, 0x6e, 0x70, 0x79, 0x50,
      0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x33,
      0x00, 0x00, 0x00, 0x8c, 0x00, 0x00, 0x00, 0x00, 0x00,
  };
  std::vector<std::pair<std::string, Array>> arrays;
  std::string error;
  EXPECT_FALSE(parseNpz(bytes, "bomb.npz", arrays, error));
  EXPECT_NE(error.find("declares 4127195279 bytes, more than deflate expands "
                       "its 85 bytes to"),
            std::string::npos)
      << error;
}

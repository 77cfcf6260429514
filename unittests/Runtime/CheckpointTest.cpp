//===- CheckpointTest.cpp - tests of the runtime's checkpoints ------------===//
//
/// \file
/// Round trip, refusal of damaged, foreign and mismatched files, directory
/// handling, and crash safety: a writer killed with SIGKILL at random moments
/// must always leave a latest checkpoint that loads with the right content.
//
//===----------------------------------------------------------------------===//

#include "trainopt/Runtime/Checkpoint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace trainopt::rt;

namespace {

/// A fresh empty directory, removed with its files at the end of the test.
class TempDir {
public:
  TempDir() {
    std::string base = ::testing::TempDir() + "trainopt-ckpt-XXXXXX";
    std::vector<char> buf(base.begin(), base.end());
    buf.push_back('\0');
    EXPECT_NE(::mkdtemp(buf.data()), nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    std::string cmd = "rm -rf '" + path_ + "'";
    if (std::system(cmd.c_str()) != 0)
      std::fprintf(stderr, "cannot remove %s\n", path_.c_str());
  }
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

Checkpoint makeCheckpoint(uint64_t step) {
  Checkpoint c;
  c.modelName = "mlp";
  c.step = step;
  c.epoch = 2;
  c.batch = 17;
  c.seed = 1234;
  c.shuffle = true;
  c.counters = {{"train_samples", 60000}, {"rng", 0xdeadbeefcafeull}};
  c.metrics = {{"time_s", 12.5}, {"loss_sum", 3.25}};
  CheckpointValue w{{"fc.weight", "parameter", DType::F32, {3, 2}}, {}};
  for (int i = 0; i < 6; ++i) {
    float v = 0.5f * i - 1.0f + static_cast<float>(step);
    w.bytes.insert(w.bytes.end(), reinterpret_cast<uint8_t *>(&v),
                   reinterpret_cast<uint8_t *>(&v) + 4);
  }
  CheckpointValue m{
      {"fc.weight.exp_avg", "optimizer_state", DType::F32, {3, 2}},
      std::vector<uint8_t>(24, 7)};
  CheckpointValue s{{"step", "step", DType::I64, {}},
                    std::vector<uint8_t>(8, 0)};
  std::memcpy(s.bytes.data(), &step, 8);
  c.values = {w, m, s};
  return c;
}

std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

void writeBytes(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
}

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

TEST(Checkpoint, RoundTrip) {
  TempDir dir;
  Checkpoint c = makeCheckpoint(42);
  std::string error, path;
  ASSERT_TRUE(writeCheckpoint(dir.path(), c, path, error)) << error;
  EXPECT_EQ(path, dir.file("ckpt-000000000042.ckpt"));
  Checkpoint r;
  ASSERT_TRUE(readCheckpoint(path, r, error)) << error;
  EXPECT_EQ(r.modelName, "mlp");
  EXPECT_EQ(r.fingerprint, signatureFingerprint(signaturesOf(c)));
  EXPECT_EQ(r.step, 42u);
  EXPECT_EQ(r.epoch, 2u);
  EXPECT_EQ(r.batch, 17);
  EXPECT_EQ(r.seed, 1234u);
  EXPECT_TRUE(r.shuffle);
  EXPECT_EQ(r.counters, c.counters);
  EXPECT_EQ(r.metrics, c.metrics);
  EXPECT_EQ(r.counter("rng"), 0xdeadbeefcafeull);
  EXPECT_EQ(r.metric("time_s"), 12.5);
  EXPECT_EQ(r.metric("missing", -1.0), -1.0);
  ASSERT_EQ(r.values.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.values[i].signature, c.values[i].signature);
    EXPECT_EQ(r.values[i].bytes, c.values[i].bytes);
  }
  EXPECT_TRUE(
      checkCompatible(r, path, "mlp", signaturesOf(makeCheckpoint(1)), error))
      << error;
  // No temporary file is left behind.
  std::vector<std::pair<uint64_t, std::string>> all;
  ASSERT_TRUE(listCheckpoints(dir.path(), all, error));
  EXPECT_EQ(all.size(), 1u);
  EXPECT_NE(::access(dir.file(".ckpt-000000000042.ckpt.tmp").c_str(), F_OK), 0);
}

/// `values` f32 as bytes.
std::vector<uint8_t> floats(std::initializer_list<float> values) {
  std::vector<uint8_t> out(values.size() * 4);
  std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

TEST(Checkpoint, ShardedRoundTripPutsValuesTogether) {
  TempDir dir;
  std::string error, path;
  // 2 ranks over dp: "w" (5 elements) flat over dp in parts of 3 (zero
  // padded), "acc" each rank's own (its mean is the whole), "b" replicated
  // (rank 0's).
  auto shard = [&](int rank) {
    Checkpoint c;
    c.modelName = "mlp";
    c.step = 7;
    c.counters = {{"batch_size", 64}};
    if (rank == 0)
      c.values.push_back({{"b", "parameter", DType::F32, {2}}, floats({1, 2})});
    c.values.push_back({{"w", "parameter", DType::F32, {3}},
                        rank == 0 ? floats({1, 2, 3}) : floats({4, 5, 0})});
    c.values.push_back({{"acc", "optimizer_state", DType::F32, {2}},
                        rank == 0 ? floats({1, 10}) : floats({3, 20})});
    return c;
  };
  ASSERT_TRUE(beginShardedCheckpoint(dir.path(), 7, error)) << error;
  // Uncommitted: not a checkpoint yet.
  EXPECT_FALSE(findLatestCheckpoint(dir.path(), path, error));
  for (int r = 0; r < 2; ++r)
    ASSERT_TRUE(writeCheckpointShard(dir.path(), r, shard(r), error)) << error;
  ShardManifest m;
  m.mesh = {{"dp", 2}};
  m.coordinates = {{0}, {1}};
  m.values = {{{"b", "parameter", DType::F32, {2}}, ""},
              {{"w", "parameter", DType::F32, {5}}, "dp:flat"},
              {{"acc", "optimizer_state", DType::F32, {2}}, "dp:mean"}};
  ASSERT_TRUE(commitShardedCheckpoint(dir.path(), 7, m, path, error)) << error;
  EXPECT_EQ(path, dir.file("ckpt-000000000007.ckpt"));
  std::string latest;
  ASSERT_TRUE(findLatestCheckpoint(dir.path(), latest, error)) << error;
  EXPECT_EQ(latest, path);
  Checkpoint r;
  ASSERT_TRUE(readCheckpoint(path, r, error)) << error;
  EXPECT_EQ(r.step, 7u);
  EXPECT_EQ(r.counter("batch_size"), 64u);
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_EQ(r.values[0].bytes, floats({1, 2}));
  EXPECT_EQ(r.values[1].signature.shape, std::vector<int64_t>{5});
  EXPECT_EQ(r.values[1].bytes, floats({1, 2, 3, 4, 5}));
  EXPECT_EQ(r.values[2].bytes, floats({2, 15}));
  EXPECT_EQ(r.fingerprint, signatureFingerprint(signaturesOf(r)));

  // A damaged manifest and a missing rank file are refused, naming them.
  std::string manifest = path + "/MANIFEST";
  std::vector<uint8_t> text = readBytes(manifest);
  std::string edited(text.begin(), text.end());
  edited.replace(edited.find("mesh dp=2"), 9, "mesh dp=3");
  writeBytes(manifest, std::vector<uint8_t>(edited.begin(), edited.end()));
  EXPECT_FALSE(readCheckpoint(path, r, error));
  EXPECT_TRUE(contains(error, "MANIFEST") && contains(error, "3 ranks"))
      << error;
  writeBytes(manifest, text);
  ASSERT_EQ(std::rename((path + "/rank-00001.ckpt").c_str(),
                        (path + "/gone").c_str()),
            0);
  EXPECT_FALSE(readCheckpoint(path, r, error));
  EXPECT_TRUE(contains(error, "rank-00001.ckpt")) << error;

  // keepLast removes old sharded checkpoints and killed writers' temporary
  // directories.
  ASSERT_TRUE(writeCheckpoint(dir.path(), makeCheckpoint(9), error)) << error;
  ASSERT_TRUE(beginShardedCheckpoint(dir.path(), 8, error)) << error;
  ASSERT_TRUE(keepLast(dir.path(), 1, error)) << error;
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  EXPECT_NE(::access(dir.file(".ckpt-000000000008.ckpt.tmp").c_str(), F_OK),
            0);
  ASSERT_TRUE(findLatestCheckpoint(dir.path(), latest, error)) << error;
  EXPECT_EQ(latest, dir.file("ckpt-000000000009.ckpt"));
}

TEST(Checkpoint, EmptyAndScalarValues) {
  TempDir dir;
  Checkpoint c;
  c.modelName = "empty";
  c.step = 0;
  c.shuffle = false;
  c.values = {{{"z", "model_state", DType::F16, {0, 4}}, {}}};
  std::string error, path;
  ASSERT_TRUE(writeCheckpoint(dir.path(), c, path, error)) << error;
  Checkpoint r;
  ASSERT_TRUE(readCheckpoint(path, r, error)) << error;
  EXPECT_FALSE(r.shuffle);
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].signature.shape, (std::vector<int64_t>{0, 4}));
}

// A bfloat16 value keeps its dtype and bits (it was stored as int16).
TEST(Checkpoint, KeepsBfloat16) {
  TempDir dir;
  Checkpoint c;
  c.modelName = "amp";
  c.values = {{{"w", "parameter", DType::BF16, {2}}, {0x80, 0x3f, 0x40, 0xc0}}};
  std::string error, path;
  ASSERT_TRUE(writeCheckpoint(dir.path(), c, path, error)) << error;
  Checkpoint r;
  ASSERT_TRUE(readCheckpoint(path, r, error)) << error;
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].signature.dtype, DType::BF16);
  EXPECT_EQ(r.values[0].bytes, c.values[0].bytes);
}

TEST(Checkpoint, RefusesValueOfWrongSize) {
  TempDir dir;
  Checkpoint c = makeCheckpoint(1);
  c.values[0].bytes.pop_back();
  std::string error;
  EXPECT_FALSE(writeCheckpoint(dir.path(), c, error));
  EXPECT_TRUE(contains(error, "'fc.weight' has 23 bytes")) << error;
}

TEST(Checkpoint, RefusesCorrupt) {
  TempDir dir;
  std::string error, path;
  ASSERT_TRUE(writeCheckpoint(dir.path(), makeCheckpoint(3), path, error));
  std::vector<uint8_t> good = readBytes(path);
  // A flipped byte anywhere in the payload: in the metadata (model name,
  // counts, shapes) or in the values.
  for (size_t at :
       {size_t(24), size_t(40), size_t(60), good.size() / 2, good.size() - 1}) {
    std::vector<uint8_t> bad = good;
    bad[at] ^= 0x10;
    writeBytes(path, bad);
    Checkpoint r;
    EXPECT_FALSE(readCheckpoint(path, r, error)) << "byte " << at;
    EXPECT_TRUE(contains(error, "'" + path + "'")) << error;
    EXPECT_TRUE(contains(error, "is corrupt"))
        << "byte " << at << ": " << error;
  }
  // A flipped checksum is corruption too.
  std::vector<uint8_t> bad = good;
  bad[21] ^= 1;
  writeBytes(path, bad);
  Checkpoint r;
  EXPECT_FALSE(readCheckpoint(path, r, error));
  EXPECT_TRUE(contains(error, "payload checksum mismatch")) << error;
}

TEST(Checkpoint, RefusesTruncated) {
  TempDir dir;
  std::string error, path;
  ASSERT_TRUE(writeCheckpoint(dir.path(), makeCheckpoint(3), path, error));
  std::vector<uint8_t> good = readBytes(path);
  for (size_t keep : {size_t(0), size_t(10), size_t(24), good.size() - 1}) {
    writeBytes(path, std::vector<uint8_t>(good.begin(), good.begin() + keep));
    Checkpoint r;
    EXPECT_FALSE(readCheckpoint(path, r, error)) << keep;
    EXPECT_TRUE(contains(error, "'" + path + "'")) << error;
    EXPECT_TRUE(keep < 24 ? contains(error, "not a trainopt checkpoint")
                          : contains(error, "is truncated"))
        << keep << ": " << error;
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  writeBytes(path, longer);
  Checkpoint r;
  EXPECT_FALSE(readCheckpoint(path, r, error));
  EXPECT_TRUE(contains(error, "trailing bytes")) << error;
}

TEST(Checkpoint, RefusesForeignAndNewer) {
  TempDir dir;
  std::string path = dir.file("ckpt-000000000001.ckpt");
  std::string artifactLike = "TRAINOPT";
  artifactLike += std::string(40, '\1');
  writeBytes(path,
             std::vector<uint8_t>(artifactLike.begin(), artifactLike.end()));
  Checkpoint r;
  std::string error;
  EXPECT_FALSE(readCheckpoint(path, r, error));
  EXPECT_EQ(error, "checkpoint '" + path +
                       "' is not a trainopt checkpoint (no TOPTCKPT header)");

  EXPECT_FALSE(readCheckpoint(dir.file("missing.ckpt"), r, error));
  EXPECT_TRUE(contains(error, "missing.ckpt' cannot be opened")) << error;
  EXPECT_FALSE(readCheckpoint(dir.path(), r, error));
  EXPECT_TRUE(contains(error, "is not a regular file")) << error;

  ASSERT_TRUE(writeCheckpoint(dir.path(), makeCheckpoint(2), path, error));
  std::vector<uint8_t> bytes = readBytes(path);
  bytes[8] = 2;
  writeBytes(path, bytes);
  EXPECT_FALSE(readCheckpoint(path, r, error));
  EXPECT_TRUE(contains(error, "has checkpoint format version 2; this runtime "
                              "reads version 1"))
      << error;
}

TEST(Checkpoint, RefusesMismatchedProgram) {
  TempDir dir;
  std::string error, path;
  ASSERT_TRUE(writeCheckpoint(dir.path(), makeCheckpoint(5), path, error));
  Checkpoint r;
  ASSERT_TRUE(readCheckpoint(path, r, error)) << error;
  std::vector<ValueSignature> program = signaturesOf(makeCheckpoint(5));

  EXPECT_FALSE(checkCompatible(r, path, "cnn", program, error));
  EXPECT_EQ(error, "checkpoint '" + path +
                       "' does not match the program: it is a checkpoint of "
                       "model 'mlp', the program is model 'cnn'");

  // Another compile with a different shape.
  std::vector<ValueSignature> reshaped = program;
  reshaped[0].shape = {4, 2};
  EXPECT_NE(signatureFingerprint(reshaped), r.fingerprint);
  EXPECT_FALSE(checkCompatible(r, path, "mlp", reshaped, error));
  EXPECT_TRUE(contains(error, "value 'fc.weight' (parameter, float32 [3, 2]) "
                              "in the checkpoint is 'fc.weight' (parameter, "
                              "float32 [4, 2]) in the program"))
      << error;

  std::vector<ValueSignature> retyped = program;
  retyped[2].dtype = DType::I32;
  EXPECT_FALSE(checkCompatible(r, path, "mlp", retyped, error));
  EXPECT_TRUE(contains(error, "'step' (step, int64 [])")) << error;

  std::vector<ValueSignature> kind = program;
  kind[1].kind = "model_state";
  EXPECT_FALSE(checkCompatible(r, path, "mlp", kind, error));
  EXPECT_TRUE(contains(error, "optimizer_state")) << error;

  std::vector<ValueSignature> more = program;
  more.push_back({"fc.bias", "parameter", DType::F32, {2}});
  EXPECT_FALSE(checkCompatible(r, path, "mlp", more, error));
  EXPECT_TRUE(contains(error, "the program has persistent value 'fc.bias'"))
      << error;

  std::vector<ValueSignature> fewer(program.begin(), program.end() - 1);
  EXPECT_FALSE(checkCompatible(r, path, "mlp", fewer, error));
  EXPECT_TRUE(contains(error, "the checkpoint has persistent value 'step'"))
      << error;

  std::vector<ValueSignature> renamed = program;
  renamed[0].name = "fc1.weight";
  EXPECT_FALSE(checkCompatible(r, path, "mlp", renamed, error));
  EXPECT_TRUE(contains(error, "value 0 is 'fc.weight'")) << error;
}

TEST(Checkpoint, LatestIgnoresTemporaryFilesAndPrunes) {
  TempDir dir;
  std::string error, path;
  EXPECT_FALSE(findLatestCheckpoint(dir.path(), path, error));
  EXPECT_EQ(error, "no checkpoint (ckpt-<step>.ckpt) in '" + dir.path() + "'");
  EXPECT_FALSE(findLatestCheckpoint(dir.file("nope"), path, error));
  EXPECT_TRUE(contains(error, "cannot read checkpoint directory")) << error;

  for (uint64_t step : {5, 100, 20, 7})
    ASSERT_TRUE(writeCheckpoint(dir.path(), makeCheckpoint(step), error));
  // Leftovers of a killed writer and unrelated files are not checkpoints.
  writeBytes(dir.file(".ckpt-000000000200.ckpt.tmp"), {1, 2, 3});
  writeBytes(dir.file(".ckpt-000000000050.ckpt.tmp"), {1, 2, 3});
  writeBytes(dir.file("ckpt-notanumber.ckpt"), {1});
  writeBytes(dir.file("ckpt-000000000999.ckpt.bak"), {1});
  ASSERT_TRUE(findLatestCheckpoint(dir.path(), path, error)) << error;
  EXPECT_EQ(path, dir.file("ckpt-000000000100.ckpt"));
  Checkpoint r;
  ASSERT_TRUE(readCheckpoint(path, r, error)) << error;
  EXPECT_EQ(r.step, 100u);

  ASSERT_TRUE(keepLast(dir.path(), 2, error)) << error;
  std::vector<std::pair<uint64_t, std::string>> all;
  ASSERT_TRUE(listCheckpoints(dir.path(), all, error));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 20u);
  EXPECT_EQ(all[1].first, 100u);
  // The stale temporary file (step 50 <= 100) is gone; one of a step not yet
  // written may belong to a live writer and stays.
  EXPECT_NE(::access(dir.file(".ckpt-000000000050.ckpt.tmp").c_str(), F_OK), 0);
  EXPECT_EQ(::access(dir.file(".ckpt-000000000200.ckpt.tmp").c_str(), F_OK), 0);
  ASSERT_TRUE(keepLast(dir.path(), 0, error));
  ASSERT_TRUE(listCheckpoints(dir.path(), all, error));
  EXPECT_EQ(all.size(), 2u);

  // A damaged latest checkpoint is reported, not skipped for an older one.
  writeBytes(dir.file("ckpt-000000000100.ckpt"), {0});
  ASSERT_TRUE(findLatestCheckpoint(dir.path(), path, error));
  EXPECT_FALSE(readCheckpoint(path, r, error));
  EXPECT_TRUE(contains(error, "ckpt-000000000100.ckpt")) << error;
}

//===----------------------------------------------------------------------===//
// Crash safety
//===----------------------------------------------------------------------===//

/// 16 MiB of int32s in 32 values (many writes, so that kills land inside
/// a file, not only between files), a deterministic function of the step.
constexpr int64_t kKillValues = 32;
constexpr int64_t kKillElements = 128 << 10;

uint32_t killContent(uint64_t step, int64_t i) {
  uint64_t h = (step + 1) * 0x9e3779b97f4a7c15ull ^
               (uint64_t(i) * 0xbf58476d1ce4e5b9ull);
  return static_cast<uint32_t>(h ^ (h >> 31));
}

Checkpoint killCheckpoint(uint64_t step) {
  Checkpoint c;
  c.modelName = "big";
  c.step = step;
  c.epoch = step / 10;
  c.batch = static_cast<int64_t>(step % 10);
  c.seed = 7;
  c.counters = {{"step_again", step}};
  for (int64_t k = 0; k < kKillValues; ++k) {
    CheckpointValue v{
        {"w" + std::to_string(k), "parameter", DType::I32, {kKillElements}},
        {}};
    v.bytes.resize(kKillElements * 4);
    auto *p = reinterpret_cast<uint32_t *>(v.bytes.data());
    for (int64_t i = 0; i < kKillElements; ++i)
      p[i] = killContent(step, k * kKillElements + i);
    c.values.push_back(std::move(v));
  }
  return c;
}

/// The child: writes checkpoints of increasing steps until it is killed.
[[noreturn]] void killWriter(const std::string &dir) {
  for (uint64_t step = 1;; ++step) {
    std::string error;
    if (!writeCheckpoint(dir, killCheckpoint(step), error) ||
        !keepLast(dir, 3, error)) {
      std::fprintf(stderr, "writer: %s\n", error.c_str());
      ::_exit(3);
    }
  }
}

TEST(Checkpoint, SurvivesKillDashNine) {
  std::mt19937_64 rng(20240601);
  int midWrite = 0;
  for (int trial = 0; trial < 20; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    TempDir dir;
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0)
      killWriter(dir.path());

    // Wait for the first checkpoint, then kill after a random delay, so that
    // kills land before, during and after the writes of later steps.
    std::string error, path;
    auto start = std::chrono::steady_clock::now();
    bool existed = false;
    while (!(existed = findLatestCheckpoint(dir.path(), path, error))) {
      int status;
      ASSERT_EQ(::waitpid(child, &status, WNOHANG), 0) << "writer exited";
      ASSERT_LT(std::chrono::steady_clock::now() - start,
                std::chrono::seconds(60));
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::this_thread::sleep_for(
        std::chrono::microseconds(rng() % 400000 + (trial % 4) * 7919));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "writer failed before the kill";
    EXPECT_TRUE(existed);

    // A temporary file left behind means the kill landed mid-write.
    bool tmpLeft =
        std::system(
            ("ls -a '" + dir.path() + "' | grep -q '\\.tmp$'").c_str()) == 0;
    midWrite += tmpLeft;

    ASSERT_TRUE(findLatestCheckpoint(dir.path(), path, error)) << error;
    Checkpoint c;
    ASSERT_TRUE(readCheckpoint(path, c, error)) << error;
    EXPECT_GE(c.step, 1u);
    EXPECT_EQ(path, dir.file(checkpointFileName(c.step)));
    EXPECT_EQ(c.counter("step_again"), c.step);
    EXPECT_EQ(c.epoch, c.step / 10);
    ASSERT_EQ(c.values.size(), size_t(kKillValues));
    int64_t wrong = 0;
    for (int64_t k = 0; k < kKillValues; ++k) {
      ASSERT_EQ(c.values[k].bytes.size(), size_t(kKillElements * 4));
      const auto *p =
          reinterpret_cast<const uint32_t *>(c.values[k].bytes.data());
      for (int64_t i = 0; i < kKillElements; ++i)
        wrong += p[i] != killContent(c.step, k * kKillElements + i);
    }
    EXPECT_EQ(wrong, 0) << "step " << c.step;
    // The older checkpoints that were kept load too.
    std::vector<std::pair<uint64_t, std::string>> all;
    ASSERT_TRUE(listCheckpoints(dir.path(), all, error));
    for (const auto &[step, file] : all) {
      Checkpoint old;
      EXPECT_TRUE(readCheckpoint(file, old, error)) << error;
    }
  }
  std::printf("[          ] %d of 20 kills left a partial temporary file\n",
              midWrite);
}

} // namespace

/*===- CAPITest.c - the runtime's C API, from C ----------------------------===*\
|*                                                                            *|
|* Compiled as C, so the header stays C. Loads a compiled model, lists the   *|
|* values of train_step by role, dtype and shape, feeds zeros and class 0,   *|
|* runs one step, reads the loss, and checks the errors of a missing entry  *|
|* point, an index out of range and a missing file; with data and a        *|
|* metrics path, trains two steps through trainopt_train. Run by           *|
|* test/Runtime/capi.test.                                                   *|
\*===----------------------------------------------------------------------===*/

#include "trainopt/Runtime/trainopt_runtime.h"

#include <stdio.h>
#include <string.h>

static const char *roleName(trainopt_role r) {
  static const char *names[] = {"parameter", "optimizer_state", "model_state",
                                "step",      "input",           "labels",
                                "metric",    "output",          "loss"};
  return (unsigned)r < 9 ? names[r] : "?";
}

static const char *dtypeName(trainopt_dtype t) {
  static const char *names[] = {"f64", "f32", "f16", "i64", "i32",
                                "i16", "i8",  "u8",  "bool", "bf16"};
  return (unsigned)t < 10 ? names[t] : "?";
}

static void list(const trainopt_program *p, const char *entry,
                 trainopt_value_set set, const char *what) {
  int64_t n = trainopt_program_num_values(p, entry, set);
  printf("%s: %lld\n", what, (long long)n);
  for (int64_t i = 0; i < n; ++i) {
    trainopt_value_info v;
    char error[256];
    if (trainopt_program_value(p, entry, set, i, &v, error, sizeof error) !=
        TRAINOPT_OK) {
      printf("error: %s\n", error);
      continue;
    }
    printf("  %s %s %s [", v.name, roleName(v.role), dtypeName(v.dtype));
    for (int32_t d = 0; d < v.rank; ++d)
      printf(d ? ", %lld" : "%lld", (long long)v.shape[d]);
    printf("] %zu bytes\n", v.bytes);
  }
}

int main(int argc, char **argv) {
  char error[512];
  trainopt_program *p = NULL;
  if (argc != 2 && argc != 4) {
    fprintf(stderr, "usage: %s MODEL.trainopt [--data=D --metrics=M]\n",
            argv[0]);
    return 2;
  }
  if (trainopt_program_load(argv[1], &p, error, sizeof error) != TRAINOPT_OK) {
    printf("load failed: %s\n", error);
    return 1;
  }
  printf("batch %lld\n", (long long)trainopt_program_batch_size(p));
  list(p, NULL, TRAINOPT_VALUES_PERSISTENT, "persistent");
  list(p, "train_step", TRAINOPT_VALUES_INPUTS, "train_step inputs");
  list(p, "train_step", TRAINOPT_VALUES_OUTPUTS, "train_step outputs");

  /* Zeros for the data, class 0 for the labels, found by role. */
  int64_t n = trainopt_program_num_values(p, "train_step", TRAINOPT_VALUES_INPUTS);
  for (int64_t i = 0; i < n; ++i) {
    trainopt_value_info v;
    trainopt_program_value(p, "train_step", TRAINOPT_VALUES_INPUTS, i, &v, error,
                           sizeof error);
    size_t bytes = 0;
    void *data = trainopt_program_input(p, "train_step", v.name, &bytes);
    if (!data || bytes != v.bytes) {
      printf("input %s: no storage\n", v.name);
      return 1;
    }
    memset(data, 0, bytes);
  }
  if (trainopt_program_run(p, "train_step", error, sizeof error) != TRAINOPT_OK) {
    printf("run failed: %s\n", error);
    return 1;
  }
  const float *loss = trainopt_program_output(p, "train_step", "loss", NULL);
  printf("loss %s\n", loss && *loss > 0.0f ? "positive" : "missing");

  printf("no entry: %lld\n",
         (long long)trainopt_program_num_values(p, "nope", TRAINOPT_VALUES_INPUTS));
  trainopt_value_info v;
  if (trainopt_program_value(p, "train_step", TRAINOPT_VALUES_INPUTS, 99, &v, error,
                             sizeof error) != TRAINOPT_OK)
    printf("out of range: %s\n", error);
  trainopt_program_free(p);
  p = NULL;
  if (trainopt_program_load("/nonexistent/model.trainopt", &p, error,
                            sizeof error) != TRAINOPT_OK)
    printf("missing file: %s\n", error);

  /* The trainer: two steps on the data in argv[2], then a bad flag. */
  if (argc > 3) {
    const char *train[] = {argv[1], argv[2], "--steps=2", "--quiet",
                           "--no-train-eval", argv[3]};
    if (trainopt_train(6, train, error, sizeof error) == TRAINOPT_OK)
      printf("trained\n");
    else
      printf("train failed: %s\n", error);
    const char *bad[] = {argv[1], argv[2], "--steps=0"};
    if (trainopt_train(3, bad, error, sizeof error) != TRAINOPT_OK)
      printf("bad flag: %s\n", error);
  }
  return 0;
}

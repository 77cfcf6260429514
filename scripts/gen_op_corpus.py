#!/usr/bin/env python3
"""The single-op corpus of the differential tester: one small MLIR model per
op (or small group of ops) of the trainopt dialect, in float32 and float64,
with random batches, in the format of scripts/gen_difftest_corpus.py, so
scripts/difftest.py compiles each for the CPU and compares it with the
reference evaluator value by value: the forward results, every cotangent
(the ops' VJPs and the backward ops they emit) and the SGD update.

Each model is `@forward(x, params...) -> y` built around the op; the loss is
the model's own (the loss ops) or MSE against random targets. Parameters
and inputs are random, so gradients are non-trivial; integer operands
(indices, labels) are constants or label inputs.

Usage:
    gen_op_corpus.py OUTDIR [--batches 2] [--check-coverage DIALECT.md]
With --check-coverage, also lists every op of the dialect (from the
generated dialect reference) that no case covers and is not declared
uncovered below with a reason; exit status 1 when there is one.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

# Ops no case needs to cover, with the reason.
NOT_COMPUTATIONS = {
    "constant": "a value, not a computation (every case has constants)",
    "parameter": "a module-level declaration, not a computation",
    "grad_sync": "a marker in the training step that trainopt-shard-step "
                 "replaces, not part of a model",
    "send": "point to point between pipeline stages, placed after autodiff: "
            "it needs two ranks (test/Runtime/pipeline-parallel.test checks "
            "pipelines bit for bit against --grad-accum)",
    "recv": "point to point between pipeline stages (as send)",
}

X = "tensor<4x6xT>"  # the default input

# name: dict(covers=[ops], x=shape, params={name: shape}, body=MLIR lines
# computing %y from %x and the parameters (T is the element type), y=shape
# of %y, loss="mse" (against random targets) or "own" (%y is a loss op's
# result; the int64 labels %t have shape `labels` and `classes` classes)),
# module=MLIR lines before the parameters.
CASES = {
    # A mesh of one rank: the sum over the group is the value itself, and
    # the VJP passes the cotangent through (the compiled program runs the
    # collective's pack and unpack with no communicator).
    "all_reduce": dict(
        covers=["all_reduce"],
        module='shard.grid @mesh(shape = 1) {trainopt.axes = ["dp"]}',
        params={"w": (4, 6)},
        body="""
  %p = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %y = trainopt.all_reduce sum %p on @mesh axes = [0] : tensor<4x6xT>"""),
    # The same mesh: ZeRO-2's reduce-scatter of a bucket of two (each
    # rank's part is the whole) and its VJP, an all-gather.
    "reduce_scatter": dict(
        covers=["reduce_scatter"],
        module='shard.grid @mesh(shape = 1) {trainopt.axes = ["dp"]}',
        params={"w": (4, 6)},
        body="""
  %p = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %q = trainopt.exp %p : tensor<4x6xT>
  %r:2 = trainopt.reduce_scatter sum %p, %q on @mesh axes = [0] : tensor<4x6xT>, tensor<4x6xT> -> tensor<4x6xT>, tensor<4x6xT>
  %y = trainopt.mul %r#0, %r#1 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    # The same mesh: entering a tensor-parallel region (the identity; its
    # VJP all-reduces the cotangent, here over one rank).
    "copy_to_group": dict(
        covers=["copy_to_group"],
        module='shard.grid @mesh(shape = 1) {trainopt.axes = ["tp"]}',
        params={"w": (4, 6)},
        body="""
  %p = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %c = trainopt.copy_to_group %p on @mesh axes = [0] : tensor<4x6xT>
  %y = trainopt.tanh %c : tensor<4x6xT>"""),
    # The same mesh: ZeRO's shard of a value and the gather of the shards.
    "rank_slice_all_gather": dict(
        covers=["rank_slice", "all_gather"],
        module='shard.grid @mesh(shape = 1) {trainopt.axes = ["dp"]}',
        params={"w": (4, 6)},
        body="""
  %p = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %s = trainopt.rank_slice %p on @mesh axes = [0] : tensor<4x6xT> -> tensor<4x6xT>
  %q = trainopt.tanh %s : tensor<4x6xT>
  %y = trainopt.all_gather %q on @mesh axes = [0] : tensor<4x6xT> -> tensor<4x6xT>"""),
    # The same mesh: a broadcast from the root (the value itself) and its
    # VJP, the cotangents summed over the group on the root only.
    "broadcast": dict(
        covers=["broadcast"],
        module='shard.grid @mesh(shape = 1) {trainopt.axes = ["dp"]}',
        params={"w": (4, 6)},
        body="""
  %p = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %b = trainopt.broadcast %p on @mesh axes = [0] root = 0 : tensor<4x6xT>
  %y = trainopt.tanh %b : tensor<4x6xT>"""),
    # Per-channel int4 fake quantization of a product (zero points that
    # shift the range; values on both sides of it, so the straight-through
    # VJP passes some cotangents and stops the others).
    "fake_quant": dict(
        covers=["fake_quant"],
        params={"w": (4, 6)},
        body="""
  %p = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %s = trainopt.constant dense<[[0.05], [0.1], [0.02], [0.2]]> : tensor<4x1xT>
  %z = trainopt.constant dense<[[0.0], [3.0], [-2.0], [0.0]]> : tensor<4x1xT>
  %y = trainopt.fake_quant %p, %s, %z {quant_min = -8 : i64, quant_max = 7 : i64} : (tensor<4x6xT>, tensor<4x1xT>, tensor<4x1xT>) -> tensor<4x6xT>"""),
    # A pruning mask: the 9 smallest magnitudes of a product zeroed (the
    # threshold is one of the elements, so the comparison is exact on both
    # sides; kth_smallest has no VJP and gets no cotangent).
    "kth_smallest": dict(
        covers=["kth_smallest"],
        params={"w": (4, 6)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %s = trainopt.abs %a : tensor<4x6xT>
  %k = trainopt.constant dense<9> : tensor<i64>
  %t = trainopt.kth_smallest %s, %k : (tensor<4x6xT>, tensor<i64>) -> tensor<T>
  %keep = trainopt.greater %s, %t : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xi1>
  %m = trainopt.cast %keep : tensor<4x6xi1> to tensor<4x6xT>
  %y = trainopt.mul %a, %m : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    # Model state the model updates itself (an observer's running mean of
    # the input, by columns): the step returns the new value and uses the
    # old one.
    "assign": dict(
        covers=["assign"],
        params={"w": (4, 6)},
        state={"avg": ((6,), 0.5)},
        body="""
  %m = trainopt.reduce_mean %x {axes = array<i64: 0>} : (tensor<4x6xT>) -> tensor<6xT>
  %k = trainopt.constant dense<0.9> : tensor<T>
  %d = trainopt.sub %m, %avg : (tensor<6xT>, tensor<6xT>) -> tensor<6xT>
  %e = trainopt.mul %d, %k : (tensor<6xT>, tensor<T>) -> tensor<6xT>
  %n = trainopt.add %avg, %e : (tensor<6xT>, tensor<6xT>) -> tensor<6xT>
  trainopt.assign %avg, %n : tensor<6xT>
  %p = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %y = trainopt.mul %p, %avg : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>"""),
    "unary_smooth": dict(
        covers=["neg", "exp", "tanh", "sigmoid", "erf", "sin", "cos", "add", "mul"],
        params={"w": (6,)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %0 = trainopt.neg %a : tensor<4x6xT>
  %1 = trainopt.exp %0 : tensor<4x6xT>
  %2 = trainopt.tanh %1 : tensor<4x6xT>
  %3 = trainopt.sigmoid %2 : tensor<4x6xT>
  %4 = trainopt.erf %a : tensor<4x6xT>
  %5 = trainopt.sin %4 : tensor<4x6xT>
  %6 = trainopt.cos %a : tensor<4x6xT>
  %7 = trainopt.add %3, %5 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %y = trainopt.add %7, %6 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    "unary_positive": dict(
        covers=["log", "sqrt", "rsqrt", "reciprocal", "pow", "div"],
        params={"w": (6,), "e": (6,)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %s = trainopt.mul %a, %a : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %one = trainopt.constant dense<1.0> : tensor<T>
  %p = trainopt.add %s, %one : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xT>
  %0 = trainopt.log %p : tensor<4x6xT>
  %1 = trainopt.sqrt %p : tensor<4x6xT>
  %2 = trainopt.rsqrt %p : tensor<4x6xT>
  %3 = trainopt.reciprocal %p : tensor<4x6xT>
  %4 = trainopt.pow %p, %e : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %5 = trainopt.div %a, %p : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %6 = trainopt.add %0, %1 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %7 = trainopt.add %2, %3 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %8 = trainopt.add %4, %5 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %9 = trainopt.add %6, %7 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %y = trainopt.add %9, %8 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    "trigonometric": dict(
        covers=["tan", "asin", "acos", "atan", "sinh", "cosh"],
        params={"w": (6,)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %t = trainopt.tanh %a : tensor<4x6xT>
  %c = trainopt.constant dense<0.9> : tensor<T>
  %u = trainopt.mul %t, %c : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xT>
  %half = trainopt.constant dense<0.5> : tensor<T>
  %h = trainopt.mul %a, %half : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xT>
  %0 = trainopt.tan %u : tensor<4x6xT>
  %1 = trainopt.asin %u : tensor<4x6xT>
  %2 = trainopt.acos %u : tensor<4x6xT>
  %3 = trainopt.atan %a : tensor<4x6xT>
  %4 = trainopt.sinh %h : tensor<4x6xT>
  %5 = trainopt.cosh %h : tensor<4x6xT>
  %6 = trainopt.add %0, %1 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %7 = trainopt.add %2, %3 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %8 = trainopt.add %4, %5 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %9 = trainopt.add %6, %7 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %y = trainopt.add %9, %8 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    "piecewise": dict(
        covers=["abs", "relu", "clip", "max", "min", "floor", "ceil", "gelu", "sub"],
        params={"w": (6,), "b": (6,)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %0 = trainopt.abs %a : tensor<4x6xT>
  %1 = trainopt.relu %a : tensor<4x6xT>
  %2 = trainopt.clip %a {min = -0.5 : f64, max = 0.7 : f64} : tensor<4x6xT>
  %3 = trainopt.max %a, %b : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %4 = trainopt.min %a, %b : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %5 = trainopt.floor %a : tensor<4x6xT>
  %6 = trainopt.ceil %a : tensor<4x6xT>
  %7 = trainopt.gelu %a : tensor<4x6xT>
  %8 = trainopt.gelu %a approximation = tanh : tensor<4x6xT>
  %9 = trainopt.sub %0, %1 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %10 = trainopt.add %2, %3 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %11 = trainopt.add %4, %5 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %12 = trainopt.add %6, %7 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %13 = trainopt.add %8, %9 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %14 = trainopt.add %10, %11 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %15 = trainopt.add %12, %13 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %y = trainopt.add %14, %15 : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    "logic_where_cast": dict(
        covers=["greater", "less", "greater_equal", "less_equal", "equal", "and", "or",
                "xor", "not", "where", "cast"],
        params={"w": (6,), "b": (6,)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %zero = trainopt.constant dense<0.0> : tensor<T>
  %m0 = trainopt.greater %a, %b : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xi1>
  %m1 = trainopt.less %x, %zero : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xi1>
  %m2 = trainopt.greater_equal %x, %b : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xi1>
  %m3 = trainopt.less_equal %a, %zero : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xi1>
  %fa = trainopt.floor %a : tensor<4x6xT>
  %m4 = trainopt.equal %fa, %zero : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xi1>
  %m5 = trainopt.and %m0, %m1 : (tensor<4x6xi1>, tensor<4x6xi1>) -> tensor<4x6xi1>
  %m6 = trainopt.or %m5, %m2 : (tensor<4x6xi1>, tensor<4x6xi1>) -> tensor<4x6xi1>
  %m7 = trainopt.xor %m6, %m3 : (tensor<4x6xi1>, tensor<4x6xi1>) -> tensor<4x6xi1>
  %m8 = trainopt.not %m7 : tensor<4x6xi1>
  %m9 = trainopt.or %m8, %m4 : (tensor<4x6xi1>, tensor<4x6xi1>) -> tensor<4x6xi1>
  %c = trainopt.cast %m9 : tensor<4x6xi1> to tensor<4x6xT>
  %s = trainopt.mul %c, %b : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %wh = trainopt.where %m9, %a, %x : (tensor<4x6xi1>, tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %y = trainopt.add %wh, %s : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    "reductions": dict(
        covers=["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "argmax",
                "broadcast_to"],
        params={"w": (6,)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %0 = trainopt.reduce_sum %a {axes = array<i64: 1>, keepdims = true} : (tensor<4x6xT>) -> tensor<4x1xT>
  %1 = trainopt.reduce_mean %a {axes = array<i64: 0>, keepdims = true} : (tensor<4x6xT>) -> tensor<1x6xT>
  %2 = trainopt.reduce_max %a {axes = array<i64: 0>} : (tensor<4x6xT>) -> tensor<6xT>
  %3 = trainopt.reduce_min %a {axes = array<i64: 1>, keepdims = true} : (tensor<4x6xT>) -> tensor<4x1xT>
  %i = trainopt.argmax %a {axis = 1 : i64} : (tensor<4x6xT>) -> tensor<4xi64>
  %ic = trainopt.cast %i : tensor<4xi64> to tensor<4xT>
  %ir = trainopt.reshape %ic : tensor<4xT> -> tensor<4x1xT>
  %4 = trainopt.mul %0, %ir : (tensor<4x1xT>, tensor<4x1xT>) -> tensor<4x1xT>
  %5 = trainopt.add %4, %3 : (tensor<4x1xT>, tensor<4x1xT>) -> tensor<4x1xT>
  %6 = trainopt.broadcast_to %5 : tensor<4x1xT> -> tensor<4x6xT>
  %7 = trainopt.add %6, %1 : (tensor<4x6xT>, tensor<1x6xT>) -> tensor<4x6xT>
  %y = trainopt.mul %7, %2 : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>"""),
    "shapes": dict(
        covers=["reshape", "transpose", "slice", "concat", "split", "pad", "trilu"],
        params={"w": (4, 6)},
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>
  %r = trainopt.reshape %a : tensor<4x6xT> -> tensor<2x2x6xT>
  %t = trainopt.transpose %r {permutation = array<i64: 2, 0, 1>} : (tensor<2x2x6xT>) -> tensor<6x2x2xT>
  %tr = trainopt.reshape %t : tensor<6x2x2xT> -> tensor<6x4xT>
  %tt = trainopt.transpose %tr {permutation = array<i64: 1, 0>} : (tensor<6x4xT>) -> tensor<4x6xT>
  %s0 = trainopt.slice %tt {start = array<i64: 0, 1>, limit = array<i64: 4, 6>, stride = array<i64: 1, 2>} : (tensor<4x6xT>) -> tensor<4x3xT>
  %p0, %p1 = trainopt.split %a {axis = 1 : i64, sizes = array<i64: 2, 4>} : (tensor<4x6xT>) -> (tensor<4x2xT>, tensor<4x4xT>)
  %c = trainopt.concat %s0, %p0 {axis = 1 : i64} : (tensor<4x3xT>, tensor<4x2xT>) -> tensor<4x5xT>
  %pd = trainopt.pad %c {low = array<i64: 0, 1>, high = array<i64: 0, 0>, value = 0.5 : f64} : (tensor<4x5xT>) -> tensor<4x6xT>
  %tl = trainopt.trilu %pd {upper = true, diagonal = 1 : i64} : tensor<4x6xT>
  %p1p = trainopt.pad %p1 {low = array<i64: 0, 0>, high = array<i64: 0, 2>, value = 0.0 : f64} : (tensor<4x4xT>) -> tensor<4x6xT>
  %y = trainopt.add %tl, %p1p : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<4x6xT>"""),
    "gather_matmul": dict(
        covers=["gather", "scatter_add", "matmul"],
        params={"table": (5, 6), "w": (6, 3), "v": (2, 3, 6)},
        body="""
  %ids = trainopt.constant dense<[[0, 3, 3, 1], [4, 0, 2, 3]]> : tensor<2x4xi64>
  %e = trainopt.gather %table, %ids {axis = 0 : i64} : (tensor<5x6xT>, tensor<2x4xi64>) -> tensor<2x4x6xT>
  %xe = trainopt.reshape %x : tensor<4x6xT> -> tensor<1x4x6xT>
  %xb = trainopt.broadcast_to %xe : tensor<1x4x6xT> -> tensor<2x4x6xT>
  %h = trainopt.mul %e, %xb : (tensor<2x4x6xT>, tensor<2x4x6xT>) -> tensor<2x4x6xT>
  %m0 = trainopt.matmul %h, %w : (tensor<2x4x6xT>, tensor<6x3xT>) -> tensor<2x4x3xT>
  %m1 = trainopt.matmul %h, %v {transpose_rhs = true} : (tensor<2x4x6xT>, tensor<2x3x6xT>) -> tensor<2x4x3xT>
  %s = trainopt.add %m0, %m1 : (tensor<2x4x3xT>, tensor<2x4x3xT>) -> tensor<2x4x3xT>
  %y = trainopt.reshape %s : tensor<2x4x3xT> -> tensor<4x6xT>"""),
    "conv_pool": dict(
        covers=["conv", "conv_grad_input", "conv_grad_filter", "max_pool", "max_pool_grad",
                "avg_pool", "avg_pool_grad"],
        x=(2, 4, 7, 7), params={"w": (6, 2, 3, 3), "b": (6,), "dw": (6, 1, 3, 3)},
        y=(2, 6, 3, 3),
        body="""
  %c = trainopt.conv %x, %w, %b {strides = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 0>, dilations = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x4x7x7xT>, tensor<6x2x3x3xT>, tensor<6xT>) -> tensor<2x6x7x6xT>
  %d = trainopt.conv %c, %dw {strides = array<i64: 2, 1>, padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 2>, groups = 6 : i64} : (tensor<2x6x7x6xT>, tensor<6x1x3x3xT>) -> tensor<2x6x4x4xT>
  %mp = trainopt.max_pool %d {kernel_shape = array<i64: 2, 2>, strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<2x6x4x4xT>) -> tensor<2x6x3x3xT>
  %ap = trainopt.avg_pool %c {kernel_shape = array<i64: 3, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>} : (tensor<2x6x7x6xT>) -> tensor<2x6x3x3xT>
  %y = trainopt.add %mp, %ap : (tensor<2x6x3x3xT>, tensor<2x6x3x3xT>) -> tensor<2x6x3x3xT>"""),
    "normalization": dict(
        covers=["batch_norm_train", "batch_norm_inference", "layer_norm", "softmax",
                "log_softmax", "dropout", "random"],
        x=(4, 3, 2, 2), params={"g": (3,), "b": (3,), "lg": (2, 2), "lb": (2, 2)},
        y=(4, 3, 2, 2),
        body="""
  %rm = trainopt.constant dense<[0.1, -0.2, 0.3]> : tensor<3xT>
  %rv = trainopt.constant dense<[1.5, 0.5, 2.0]> : tensor<3xT>
  %n:3 = trainopt.batch_norm_train %x, %g, %b, %rm, %rv {epsilon = 1.0e-5 : f64, momentum = 0.9 : f64} : tensor<4x3x2x2xT>, tensor<3xT>
  %i = trainopt.batch_norm_inference %x, %g, %b, %rm, %rv : tensor<4x3x2x2xT>, tensor<3xT>
  %l = trainopt.layer_norm %n#0, %lg, %lb {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<4x3x2x2xT>, tensor<2x2xT>, tensor<2x2xT>) -> tensor<4x3x2x2xT>
  %sm = trainopt.softmax %l {axis = 1 : i64} : tensor<4x3x2x2xT>
  %ls = trainopt.log_softmax %i {axis = 3 : i64} : tensor<4x3x2x2xT>
  %seed = trainopt.constant dense<11> : tensor<i64>
  %d, %dm = trainopt.dropout %ls, %seed {ratio = 0.25 : f64} : tensor<4x3x2x2xT>, tensor<i64> -> tensor<4x3x2x2xi1>
  %nz = trainopt.random %seed {distribution = #trainopt<distribution normal>, a = 0.5 : f64, b = 0.1 : f64} : tensor<i64> -> tensor<4x3x2x2xT>
  %uz = trainopt.random %seed {distribution = #trainopt<distribution uniform>, a = -1.0 : f64, b = 1.0 : f64} : tensor<i64> -> tensor<1x3x1x1xT>
  %sn = trainopt.mul %sm, %nz : (tensor<4x3x2x2xT>, tensor<4x3x2x2xT>) -> tensor<4x3x2x2xT>
  %du = trainopt.mul %d, %uz : (tensor<4x3x2x2xT>, tensor<1x3x1x1xT>) -> tensor<4x3x2x2xT>
  %y = trainopt.add %sn, %du : (tensor<4x3x2x2xT>, tensor<4x3x2x2xT>) -> tensor<4x3x2x2xT>"""),
    "losses": dict(
        covers=["cross_entropy", "nll_loss", "mse_loss"],
        params={"w": (6,), "cw": (6,)}, loss="own", labels=(4,), classes=6,
        body="""
  %a = trainopt.mul %x, %w : (tensor<4x6xT>, tensor<6xT>) -> tensor<4x6xT>
  %0 = trainopt.cross_entropy %a, %t {reduction = #trainopt<reduction mean>, label_smoothing = 0.1 : f64} : (tensor<4x6xT>, tensor<4xi64>) -> tensor<T>
  %one = trainopt.constant dense<1.0> : tensor<T>
  %wp = trainopt.mul %cw, %cw : (tensor<6xT>, tensor<6xT>) -> tensor<6xT>
  %wq = trainopt.add %wp, %one : (tensor<6xT>, tensor<T>) -> tensor<6xT>
  %lsm = trainopt.log_softmax %a {axis = 1 : i64} : tensor<4x6xT>
  %2 = trainopt.nll_loss %lsm, %t {reduction = #trainopt<reduction sum>} : (tensor<4x6xT>, tensor<4xi64>) -> tensor<T>
  %3 = trainopt.mse_loss %a, %x {reduction = #trainopt<reduction mean>} : (tensor<4x6xT>, tensor<4x6xT>) -> tensor<T>
  %4 = trainopt.add %0, %2 : (tensor<T>, tensor<T>) -> tensor<T>
  %5 = trainopt.add %4, %3 : (tensor<T>, tensor<T>) -> tensor<T>
  %tenth = trainopt.constant dense<0.1> : tensor<T>
  %6 = trainopt.mul %5, %tenth : (tensor<T>, tensor<T>) -> tensor<T>
  %7 = trainopt.add %6, %one : (tensor<T>, tensor<T>) -> tensor<T>
  %z = trainopt.mul %a, %7 : (tensor<4x6xT>, tensor<T>) -> tensor<4x6xT>
  %y = trainopt.cross_entropy %z, %t, %wq {reduction = #trainopt<reduction mean>} : (tensor<4x6xT>, tensor<4xi64>, tensor<6xT>) -> tensor<T>"""),
}


def dims(shape):
    return "x".join(str(d) for d in shape)


def literal(a):
    """A dense literal that parses back to exactly `a`."""
    if a.ndim == 0:
        return repr(float(a))
    return "[" + ", ".join(literal(v) for v in a) + "]"


def module(case, dtype, params):
    t = {np.float32: "f32", np.float64: "f64"}[dtype]
    x = case.get("x", (4, 6))
    y = case.get("y", x)
    lines = [case["module"]] if "module" in case else []
    for name, value in params.items():
        lines.append(f"trainopt.parameter @{name} trainable : tensor<{dims(value.shape)}x{t}> = "
                     f"dense<{literal(value)}> : tensor<{dims(value.shape)}x{t}>")
    # Frozen parameters (model state), starting at the given constant.
    state = case.get("state", {})
    for name, (shape, init) in state.items():
        lines.append(f"trainopt.parameter @{name} frozen : tensor<{dims(shape)}x{t}> = "
                     f"dense<{init!r}> : tensor<{dims(shape)}x{t}>")
    args = [f"%x: tensor<{dims(x)}x{t}> {{trainopt.input = \"x\"}}"]
    args += [f"%{n}: tensor<{dims(v.shape)}x{t}> {{trainopt.param = @{n}}}"
             for n, v in params.items()]
    args += [f"%{n}: tensor<{dims(shape)}x{t}> {{trainopt.param = @{n}}}"
             for n, (shape, _) in state.items()]
    if case.get("loss") == "own":
        args.append(f"%t: tensor<{dims(case['labels'])}xi64> {{trainopt.input = \"labels\"}}")
        result = f"tensor<{t}> {{trainopt.output = \"loss\"}}"
    else:
        result = f"tensor<{dims(y)}x{t}> {{trainopt.output = \"y\"}}"
    body = case["body"].replace("xT>", f"x{t}>").replace("<T>", f"<{t}>")
    lines.append(f"func.func @forward({', '.join(args)}) -> ({result}) {{{body}")
    ret_type = f"tensor<{t}>" if case.get("loss") == "own" else f"tensor<{dims(y)}x{t}>"
    lines.append(f"  return %y : {ret_type}\n}}")
    return "\n".join(lines) + "\n"


def dialect_ops(doc):
    text = open(doc, encoding="utf-8").read()
    return sorted(set(re.findall(r"^### `trainopt\.([a-z_0-9]+)`", text, re.M)))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("outdir")
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-coverage", metavar="DIALECT.md")
    args = ap.parse_args()
    if args.check_coverage:
        covered = {op for case in CASES.values() for op in case["covers"]}
        missing = [op for op in dialect_ops(args.check_coverage)
                   if op not in covered and op not in NOT_COMPUTATIONS]
        for op in missing:
            print(f"trainopt.{op}: no single-op case covers it (add one to {__file__})")
        print(f"{len(dialect_ops(args.check_coverage))} ops, {len(missing)} uncovered")
        if missing:
            return 1
    os.makedirs(args.outdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    manifest = {"models": []}
    for name, case in CASES.items():
        # Values float32 holds exactly, so both precisions start alike.
        params = {n: rng.standard_normal(s).astype(np.float32)
                  for n, s in case["params"].items()}
        for dtype, tag in ((np.float32, "f32"), (np.float64, "f64")):
            typed = {n: v.astype(dtype) for n, v in params.items()}
            with open(os.path.join(args.outdir, f"{name}.{tag}.mlir"), "w") as f:
                f.write(module(case, dtype, typed))
            np.savez(os.path.join(args.outdir, f"{name}.{tag}.init.npz"), **typed)
        x_shape = case.get("x", (4, 6))
        y_shape = case.get("y", x_shape)
        batches = []
        for k in range(args.batches):
            x64 = rng.standard_normal(x_shape)
            if case.get("loss") == "own":
                y = rng.integers(0, case["classes"], case["labels"]).astype(np.int64)
            else:
                y = rng.standard_normal(y_shape).astype(np.float32).astype(np.float64)
            stem = f"{name}.b{k}"
            np.savez(os.path.join(args.outdir, stem + ".npz"),
                     x64=x64, x32=x64.astype(np.float32), y=y)
            batches.append(stem)
        manifest["models"].append({
            "name": name, "format": "mlir", "batch": x_shape[0], "small": True,
            "loss": "" if case.get("loss") == "own" else "mse",
            "covers": case["covers"], "batches": batches, "flags": []})
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{len(CASES)} cases, {args.batches} batches each")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Data-parallel training on the CPU: trainopt over Open MPI against
PyTorch DDP (gloo), measured in the same run on the same machine, with the
same model, per-rank batch, global batch, optimizer and number of ranks
(DESIGN.md section 6; docs/distributed.md). A benchmark, not a test.

Per model and rank count it prints:
- step time (median of rank 0's steps after warm-up) of both, and the
  ratio trainopt / DDP;
- per-rank peak memory (max resident set over the ranks) of both, and the
  ratio;
- trainopt's bytes sent per rank per step against the ring all-reduce
  minimum 2(N-1)/N * S, S the gradient bytes;
- the share of trainopt's communication hidden behind compute, from
  timestamps: 1 - (time blocked waiting) / (time the all-reduces were
  active, start to completion);
- the step time trainopt-compile --report predicts with its alpha-beta
  cost model (shared-memory link, --compute-gflops calibrated below from
  the one-process step), against the measured one;
- with ZeRO-1, -2 and -3 (--zero=1|2|3): per-rank persistent bytes (the
  compiler's report), peak memory and step time, against PyTorch FSDP
  (fully_shard on the root: parameters, gradients and optimizer state
  sharded, the parameters gathered at the start of the step as ZeRO-3
  does) with the same gloo backend;
- a pipeline of N stages (--mesh=pp=N --micro-batches=N, the same global
  batch: N micro-batches of the per-rank batch): step time against data
  parallelism's, its largest stage's persistent bytes and peak memory, the
  predicted step (its slowest stage, bubble included) and the bubble
  fraction (N - 1) / (2N - 1).

Run it with a Python that has the PyPI torch wheel, numpy and onnx, e.g.:
    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy onnx==1.16.2
    /tmp/tv/bin/python bench/distributed.py --bin build/bin [--ranks 2,4]

Each rank gets cores / N threads (at least one); with more ranks than
cores (4 on this 2-core machine) both sides are oversubscribed and the
figures show scheduling as much as communication.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from cpu_step_time import batches, bench_gpt  # noqa: E402
from export_torch_models import CNN, MLP, export_training  # noqa: E402

MPIRUN = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])

def sgd_momentum(p):
    return torch.optim.SGD(p, lr=0.05, momentum=0.9)


def adam(p):
    return torch.optim.Adam(p, lr=1e-3)


def adamw(p):
    return torch.optim.AdamW(p, lr=1e-3)


# Module-level callables: the DDP workers are spawned processes.
CASES = [
    # name, module, per-rank batch, sample, trainopt flags, torch optimizer
    ("mlp", MLP, 64, (784,), "--optimizer=sgd --lr=0.05 --momentum=0.9", sgd_momentum),
    ("cnn", CNN, 32, (1, 28, 28), "--optimizer=adam --lr=1e-3", adam),
    ("gpt", bench_gpt, 8, "tokens:512:64", "--optimizer=adamw --lr=1e-3", adamw),
]


def threads_per_rank(ranks):
    return max(1, len(os.sched_getaffinity(0)) // ranks)


def run_trainopt(tool, onnx_path, tmp, tag, flags, data, ranks, args, extra=(), mesh=None):
    artifact = os.path.join(tmp, f"{tag}.trainopt")
    report = artifact + ".json"
    subprocess.run([tool("trainopt-compile"), onnx_path, *flags,
                    f"--mesh={mesh or 'dp=' + str(ranks)}", *extra, "-o", artifact,
                    f"--report={report}"], check=True)
    metrics = artifact + ".jsonl"
    # --bind-to none: the ranks share the cores as the PyTorch processes do.
    subprocess.run(MPIRUN + ["--bind-to", "none", "-np", str(ranks), tool("trainopt-run"),
                             artifact, f"--data={data}", "--no-shuffle",
                             f"--steps={args.steps + args.warmup}",
                             f"--threads={threads_per_rank(ranks)}", f"--metrics={metrics}",
                             "--quiet", "--no-train-eval", "--scale=1"],
                   check=True, stdout=subprocess.DEVNULL)
    lines = [json.loads(l) for l in open(metrics)]
    summary = lines[-1]
    steps = [l for l in lines if not l.get("summary")]
    ms = statistics.median(l["step_ms"] for l in steps if l["step"] > args.warmup)
    rep = json.load(open(report))
    # A pipeline: its slowest stage's prediction, its largest stage's memory.
    stages = rep.get("stages", [rep])
    rep = dict(stages[0],
               predicted_step_ms=max(r.get("predicted_step_ms", float("nan")) for r in stages),
               persistent_bytes=max(r["persistent_bytes"] for r in stages),
               arena_bytes=max(r["arena_bytes"] for r in stages),
               predicted_bubble_fraction=stages[0].get("predicted_bubble_fraction", 0))
    grad_bytes = rep.get("communication_bytes_per_step", {}).get("all_reduce", 0)
    n = summary["steps"]
    return {
        "ms": ms,
        "rss": summary["peak_rss_bytes"],
        "arena": rep["arena_bytes"],
        # Communication figures exist only with more than one rank.
        "sent": summary.get("comm_bytes_sent", 0) / n,
        "ring_min": max(2 * (ranks - 1) / ranks * grad_bytes, 1e-30),
        "hidden": 1 - summary.get("comm_exposed_s", 0) / max(summary.get("comm_active_s", 0),
                                                              1e-12),
        "active_ms": 1e3 * summary.get("comm_active_s", 0) / n,
        "predicted_ms": rep.get("predicted_step_ms", float("nan")),
        "flops": rep["flops_per_step"],
        "persistent": rep["persistent_bytes"],
        "bubble": rep["predicted_bubble_fraction"],
    }


def fsdp(model):
    """FSDP2 over gloo with one unit, the root: parameters gathered at the
    start of the forward, as trainopt's ZeRO-3 does. (Per-module units do
    not work for the GPT model, whose forward reads wpe.weight outside
    wpe's own forward.)"""
    from torch.distributed.fsdp import fully_shard
    fully_shard(model)
    return model


def ddp_worker(rank, ranks, port, cls, make_opt, x, y, batch, args, out, sharded=False):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    torch.set_num_threads(threads_per_rank(ranks))
    torch.manual_seed(0)
    model = (fsdp(cls().train()) if sharded
             else torch.nn.parallel.DistributedDataParallel(cls().train()))
    opt = make_opt(model.parameters())
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    times = []
    g = batch * ranks
    for k in range(args.steps + args.warmup):
        lo = k * g + rank * batch
        xb, yb = xt[lo:lo + batch], yt[lo:lo + batch]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = F.cross_entropy(logits.transpose(1, 2) if logits.dim() == 3 else logits, yb)
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    dist.destroy_process_group()
    out.put((rank, statistics.median(times[args.warmup:]), rss))


def run_ddp(cls, make_opt, x, y, batch, ranks, args, port, sharded=False):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=ddp_worker,
                         args=(r, ranks, port, cls, make_opt, x, y, batch, args, out, sharded))
             for r in range(ranks)]
    for p in procs:
        p.start()
    results = sorted(out.get() for _ in procs)
    for p in procs:
        p.join()
    return {"ms": results[0][1], "rss": max(r[2] for r in results)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--ranks", default="2,4")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cases", default="", help="comma-separated names (mlp,cnn,gpt)")
    args = ap.parse_args()
    tool = lambda name: os.path.join(args.bin, name)
    rows = []
    port = 29500 + os.getpid() % 1000
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls, batch, sample, flags, make_opt in CASES:
            if args.cases and name not in args.cases.split(","):
                continue
            for ranks in [int(r) for r in args.ranks.split(",")]:
                tag = f"{name}-np{ranks}"
                torch.manual_seed(0)
                model = cls().train()
                rng = np.random.default_rng(0)
                n = batch * ranks * (args.steps + args.warmup)
                x, y, extra = batches(sample, n, rng)
                onnx_path = os.path.join(tmp, f"{tag}.onnx")
                export_training(model, torch.from_numpy(x[:batch]), onnx_path)
                data = os.path.join(tmp, f"{tag}.npz")
                np.savez(data, x=x, y=y)
                common = [f"--batch-size={batch}", "--loss=cross_entropy", *extra,
                          *flags.split()]
                # The compute rate of the cost model, from one process's step
                # on this machine (a 1-rank mesh: the same program, no
                # communication).
                one = run_trainopt(tool, onnx_path, tmp, tag + "-one", common, data, 1, args)
                # The machine's rate, shared by the N ranks.
                gflops = one["flops"] / (one["ms"] * 1e-3) / 1e9 / ranks
                cost = [f"--compute-gflops={gflops:.3f}"]
                ours = run_trainopt(tool, onnx_path, tmp, tag, common + cost, data, ranks, args)
                ours["zero"] = [ours] + [
                    run_trainopt(tool, onnx_path, tmp, f"{tag}-zero{z}", common + cost, data,
                                 ranks, args, [f"--zero={z}"]) for z in (1, 2, 3)]
                ours["pp"] = run_trainopt(tool, onnx_path, tmp, f"{tag}-pp", common + cost, data,
                                          ranks, args, [f"--micro-batches={ranks}"],
                                          mesh=f"pp={ranks}")
                port += 1
                theirs = run_ddp(cls, make_opt, x, y, batch, ranks, args, port)
                port += 1
                theirs["fsdp"] = run_ddp(cls, make_opt, x, y, batch, ranks, args, port,
                                         sharded=True)
                rows.append((tag, batch, ours, theirs))
    print(f"torch={torch.__version__} steps={args.steps} (median of rank 0 after "
          f"{args.warmup} warm-up) cores={len(os.sched_getaffinity(0))}")
    print(f"{'case':10s} {'B/rank':>6s} {'trainopt ms':>11s} {'DDP ms':>8s} {'ratio':>6s} "
          f"{'ours MiB':>9s} {'DDP MiB':>8s} {'ratio':>6s} {'sent/ring-min':>13s} "
          f"{'hidden':>7s} {'comm ms':>8s} {'predicted':>9s}")
    for tag, batch, o, t in rows:
        print(f"{tag:10s} {batch:6d} {o['ms']:11.2f} {t['ms']:8.2f} {o['ms'] / t['ms']:6.2f} "
              f"{o['rss'] / 2**20:9.1f} {t['rss'] / 2**20:8.1f} {o['rss'] / t['rss']:6.2f} "
              f"{o['sent'] / o['ring_min']:13.3f} {100 * o['hidden']:6.1f}% "
              f"{o['active_ms']:8.2f} {o['predicted_ms']:9.2f}")
    print()
    print("ZeRO stages 0-3: persistent MiB per rank (compiler report) / peak RSS MiB / "
          "step ms (predicted ms); FSDP: peak RSS MiB / step ms; last: ZeRO-3 / FSDP")
    print(f"{'case':10s} " + " ".join(f"{'ZeRO-' + str(z):>26s}" for z in range(4)) +
          f" {'FSDP':>14s} {'ms ratio':>8s} {'RSS ratio':>9s}")
    for tag, batch, o, t in rows:
        cells = " ".join(f"{z['persistent'] / 2**20:6.2f}/{z['rss'] / 2**20:6.1f}/"
                         f"{z['ms']:5.2f} ({z['predicted_ms']:5.2f})" for z in o["zero"])
        f, z3 = t["fsdp"], o["zero"][3]
        print(f"{tag:10s} {cells} {f['rss'] / 2**20:6.1f}/{f['ms']:7.2f} "
              f"{z3['ms'] / f['ms']:8.2f} {z3['rss'] / f['rss']:9.2f}")
    print()
    print("Pipeline, pp=N with N micro-batches (the same global batch): step ms against "
          "data parallelism's, persistent MiB per rank (largest stage) and peak RSS MiB "
          "against DP's, predicted ms, predicted bubble")
    print(f"{'case':10s} {'pp ms':>8s} {'DP ms':>8s} {'ratio':>6s} {'pp MiB':>7s} "
          f"{'DP MiB':>7s} {'pp RSS':>7s} {'DP RSS':>7s} {'predicted':>9s} {'bubble':>7s}")
    for tag, batch, o, t in rows:
        p = o["pp"]
        print(f"{tag:10s} {p['ms']:8.2f} {o['ms']:8.2f} {p['ms'] / o['ms']:6.2f} "
              f"{p['persistent'] / 2**20:7.2f} {o['persistent'] / 2**20:7.2f} "
              f"{p['rss'] / 2**20:7.1f} {o['rss'] / 2**20:7.1f} {p['predicted_ms']:9.2f} "
              f"{100 * p['bubble']:6.1f}%")


if __name__ == "__main__":
    main()

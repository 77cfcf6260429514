#!/usr/bin/env python3
"""Compares the per-step losses of two `trainopt-run --metrics` files.

Prints the largest relative difference |a - b| / max(|b|, 1e-12) over the
steps both files have, and `identical` when every loss is bit-equal; exits 1
when the difference exceeds --rtol (or, with --identical, when any loss
differs), or when the files have different steps.

    compare_metrics.py RUN.jsonl REFERENCE.jsonl [--rtol 1e-3] [--identical]
"""
import argparse
import json
import sys


def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if record.get("summary"):
                continue
            out[record["step"]] = record["loss"]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("reference")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--identical", action="store_true")
    args = parser.parse_args()
    a, b = losses(args.run), losses(args.reference)
    if sorted(a) != sorted(b) or not a:
        print(f"FAIL: the runs have different steps ({len(a)} and {len(b)})")
        return 1
    worst, at = 0.0, None
    for step in sorted(a):
        rel = abs(a[step] - b[step]) / max(abs(b[step]), 1e-12)
        if rel > worst:
            worst, at = rel, step
    same = all(a[s] == b[s] for s in a)
    print(f"{len(a)} steps; max relative loss difference {worst:.3g}"
          + (f" at step {at}" if at is not None else ""))
    if same:
        print("identical")
    if args.identical and not same:
        print("FAIL: the losses differ")
        return 1
    if worst > args.rtol:
        print(f"FAIL: above the tolerance {args.rtol:g}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks that docs/cli.md's training-flags table and trainopt-compile's
training flags (made from the stage passes' options) name the same flags.

Usage: check_cli_doc.py --compile build/bin/trainopt-compile --doc docs/cli.md
Prints each disagreement; exit status 1 when there is one.
"""
import argparse
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--compile", required=True)
    ap.add_argument("--doc", required=True)
    args = ap.parse_args()
    out = subprocess.run([args.compile, "--list-training-flags"], check=True,
                         capture_output=True, text=True).stdout
    flags = {line.split("\t")[0]: line.split("\t")[1] for line in out.splitlines() if line}
    text = open(args.doc, encoding="utf-8").read()
    start = text.index("### Training flags")
    end = text.index("\n#", start + 1)
    table = [line for line in text[start:end].splitlines() if line.startswith("| `--")]
    documented = set()
    for row in table:
        first_cell = row.split(" | ")[0]
        documented.update(re.findall(r"`--([a-z0-9-]+)", first_cell))
    problems = [f"--{f} ({flags[f]}) is a training flag but not in {args.doc}'s table"
                for f in sorted(set(flags) - documented)]
    problems += [f"--{f} is in {args.doc}'s training-flags table but is no training flag"
                 for f in sorted(documented - set(flags))]
    for p in problems:
        print(p)
    print(f"{len(flags)} training flags, {len(documented)} documented, "
          f"{len(problems)} disagreements")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

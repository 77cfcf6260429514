"""Assembles the PTX module that `trainopt-compile --emit=ptx` writes after
its launch list ('// ===== trainopt kernel' and '// launch' lines) with
ptxas for the given architecture, and prints how many entries assembled;
exits 1 with ptxas's message when it rejects the module."""
import re
import subprocess
import sys
import tempfile

ptxas, arch, path = sys.argv[1:4]
lines = [l for l in open(path)
         if not l.startswith("// ===== ") and not l.startswith("// launch ")]
entries = sum(1 for l in lines if re.match(r"^\.visible \.entry ", l))
if not entries:
    sys.exit(f"no PTX entries in {path}")
with tempfile.TemporaryDirectory() as tmp:
    open(f"{tmp}/m.ptx", "w").writelines(lines)
    r = subprocess.run([ptxas, f"-arch={arch}", f"{tmp}/m.ptx", "-o", f"{tmp}/m.cubin"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ptxas rejects {path}:\n{r.stderr}")
print(f"assembled {entries} entries for {arch}")

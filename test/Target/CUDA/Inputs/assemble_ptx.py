"""Splits `trainopt-compile --emit=ptx` output into its PTX modules (each
starts after a '// <module>::<entry>' line), assembles every one with
ptxas for the given architecture, and prints how many assembled; exits 1
naming the first module ptxas rejects."""
import re
import subprocess
import sys
import tempfile

ptxas, arch, path = sys.argv[1:4]
modules, current = [], None
for line in open(path):
    if re.match(r"^// \w+::\w+$", line.strip()):
        current = [line]
        modules.append((line.strip()[3:], current))
    elif current is not None and not line.startswith("// ===== ") \
            and not line.startswith("// launch "):
        current.append(line)
if not modules:
    sys.exit(f"no PTX modules in {path}")
with tempfile.TemporaryDirectory() as tmp:
    for name, lines in modules:
        src = f"{tmp}/m.ptx"
        open(src, "w").writelines(lines)
        r = subprocess.run([ptxas, f"-arch={arch}", src, "-o", f"{tmp}/m.cubin"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"ptxas rejects {name}:\n{r.stderr}")
print(f"assembled {len(modules)} modules for {arch}")

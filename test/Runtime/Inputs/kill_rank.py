"""Starts an mpirun command (the arguments after --), waits until the
directory argv[3] holds a checkpoint, sends signal argv[1] (KILL or STOP)
to the process of rank argv[2] of that job (not another test's), and waits
for mpirun, at most 60 s.
Prints mpirun's exit status, whether it ended within the limit, and its
output (stdout and stderr)."""
import glob
import os
import signal
import subprocess
import sys
import time

sig, rank, ckpt_dir = getattr(signal, "SIG" + sys.argv[1]), sys.argv[2], sys.argv[3]
cmd = sys.argv[sys.argv.index("--") + 1:]
job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)


def parent(pid):
    # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces.
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def descends_from_job(pid):
    while pid and pid > 1:
        if pid == job.pid:
            return True
        pid = parent(pid)
    return False


def rank_pid():
    # Only this job's ranks: lit runs tests side by side, and another
    # test's mpirun has a rank 1 of its own.
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe.endswith("trainopt-run") and \
                f"OMPI_COMM_WORLD_RANK={rank}".encode() in env and \
                descends_from_job(int(pid)):
            return int(pid)
    return None


deadline = time.time() + 60
pid = None
while time.time() < deadline and job.poll() is None:
    if glob.glob(os.path.join(ckpt_dir, "*.ckpt")):
        pid = rank_pid()
        if pid:
            break
    time.sleep(0.05)
if pid is None:
    job.kill()
    print("NO RANK", rank, "TO SIGNAL")
    sys.exit(1)
os.kill(pid, sig)
signalled = time.time()
try:
    out, _ = job.communicate(timeout=60)
except subprocess.TimeoutExpired:
    job.kill()
    out, _ = job.communicate()
    print("HUNG")
    sys.exit(1)
print("exit", job.returncode, "within limit", time.time() - signalled < 30)
print(out)

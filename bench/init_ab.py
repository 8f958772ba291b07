"""Start cost of the in-sandbox init of two binaries, interleaved so that
load drift cancels: runs `BIN __sandbox-init … -- PROGRAM` (as bwrap would,
without cgroups) from each binary in turn N times and prints the medians.
Run as root. Usage:
  /usr/bin/python3 bench/init_ab.py OLD_BIN NEW_BIN [PROGRAM ARGS…]
  (default PROGRAM: /usr/bin/python3 -S -c pass; N from $N, default 300)"""
import os, statistics, subprocess, sys, time

old, new, *prog = sys.argv[1:]
prog = prog or ["/usr/bin/python3", "-S", "-c", "pass"]
init = ["__sandbox-init", "--listen", "127.0.0.1:0", "--socket", "/nonexistent",
        "--uid", "65534", "--gid", "65534", "--"]
times = {"old": [], "new": []}
for i in range(int(os.environ.get("N", "300"))):
    for side in (("old", "new") if i % 2 else ("new", "old")):
        t = time.perf_counter()
        subprocess.run([old if side == "old" else new] + init + prog, check=True)
        times[side].append(time.perf_counter() - t)
for side, v in times.items():
    v.sort()
    print("%s median %.2f ms  p10 %.2f ms  min %.2f ms" % (
        side, statistics.median(v) * 1e3, v[len(v) // 10] * 1e3, v[0] * 1e3))

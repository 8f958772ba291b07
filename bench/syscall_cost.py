"""What one system call costs in a process, best of 5 loops of 10^6
`getppid`. `none`: as started; `allow1`: after installing a one-instruction
seccomp filter that allows everything (what any filter costs). To measure
the sandbox's own filter, run it under the init (as root):
  /usr/bin/python3 bench/syscall_cost.py none
  /usr/bin/python3 bench/syscall_cost.py allow1
  BIN __sandbox-init --listen 127.0.0.1:0 --socket /x --uid 65534 --gid 65534 -- /usr/bin/python3 bench/syscall_cost.py ours"""
import ctypes, os, sys, time

libc = ctypes.CDLL(None, use_errno=True)


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def loop():
    t = time.perf_counter()
    for _ in range(1000000):
        os.getppid()
    return time.perf_counter() - t


mode = sys.argv[1] if len(sys.argv) > 1 else "none"
if mode == "allow1":
    prog = (SockFilter * 1)(SockFilter(0x06, 0, 0, 0x7FFF0000))  # BPF_RET|BPF_K, SECCOMP_RET_ALLOW
    fprog = SockFprog(1, prog)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
seccomp = open("/proc/self/status").read().split("Seccomp:")[1].split()[0]
print("%s %.0f ns per loop iteration (Seccomp: %s)" % (mode, min(loop() for _ in range(5)) * 1e3, seccomp))

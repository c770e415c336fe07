#!/usr/bin/env python3
"""smaps_split.py PID: a process's resident set (KiB) split by what its mappings are.

Prints one line "label rss_kib" per kind, largest first, then "total N" and "hwm N"
(VmHWM). Kinds: each file (its basename, all its mappings summed), [heap] (the main arena),
"arena" (a glibc per-thread malloc arena: a read-write anonymous mapping at a 64 MiB boundary,
the start of its HEAP_MAX_SIZE reservation), "stack:TID" (the anonymous mapping holding a
thread's stack pointer, from /proc/PID/task/TID/syscall), [stack] (the main thread's) and
"anon" (every other anonymous mapping: malloc's mmap'd chunks, OpenSSL's, ...).
With -v every anonymous mapping is printed on its own line too.
"""
import os
import sys

ARENA_ALIGN = 64 << 20


def thread_sps(pid):
    sps = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        if len(fields) >= 8:
            sps[int(fields[-2], 16)] = tid
    return sps


def main():
    verbose = "-v" in sys.argv[1:]
    pid = [a for a in sys.argv[1:] if a != "-v"][0]
    sps = thread_sps(pid)
    kinds = {}
    details = []
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                perms = parts[1]
                path = parts[5] if len(parts) > 5 else ""
                if path.startswith("/"):
                    label = os.path.basename(path)
                elif path:
                    label = path
                else:
                    label = "anon"
                    for sp, tid in sps.items():
                        if lo <= sp < hi:
                            label = f"stack:{tid}"
                    if label == "anon" and lo % ARENA_ALIGN == 0 and "rw" in perms:
                        label = "arena"
                cur = [label, lo, hi, perms]
                continue
            if first == "Rss:" and cur:
                kib = int(line.split()[1])
                kinds[cur[0]] = kinds.get(cur[0], 0) + kib
                if not cur[0].startswith("/") and "." not in cur[0]:
                    details.append((cur[1], cur[2], cur[3], cur[0], kib))
    total = sum(kinds.values())
    for label, kib in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{label} {kib}")
    print(f"total {total}")
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                print(f"hwm {line.split()[1]}")
    if verbose:
        for lo, hi, perms, label, kib in details:
            print(f"  {lo:x}-{hi:x} {perms} {(hi - lo) >> 10}K {label} rss {kib}")


main()

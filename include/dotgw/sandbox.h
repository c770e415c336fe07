/*
 * sandbox.h - a seccomp filter that takes from the running daemon the system calls it never
 * makes once it serves: running programs, debugging other processes, namespaces, mounts,
 * kernel modules, BPF, keyrings, clocks, identity changes.
 */
#ifndef DOTGW_SANDBOX_H
#define DOTGW_SANDBOX_H

#include <stdbool.h>

/*
 * sandbox_apply - install the filter on the calling thread and every thread it starts later
 * (call it before starting any). A denied call kills the process (SIGSYS). clone3 fails with
 * ENOSYS, so that thread creation uses clone, whose flags the filter can see: a clone into new
 * namespaces is denied like unshare. System calls of other ABIs (i386 and x32 on x86-64) kill
 * the process. With sanitizer true (ASan/UBSan builds) ptrace stays allowed, for
 * LeakSanitizer's check at exit, and denied calls fail with EPERM instead, so that a report
 * can still try llvm-symbolizer. Returns 0 or -errno (e.g. -EINVAL where the kernel has no
 * seccomp filters, or under valgrind, which does not emulate them).
 */
int sandbox_apply(bool sanitizer);

#endif

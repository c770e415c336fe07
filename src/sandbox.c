/*
 * sandbox.c - dotgw's seccomp filter, built with libseccomp.
 *
 * A deny list, not an allow list: the daemon's own calls, OpenSSL's, libmicrohttpd's, libfstrm's
 * and glibc's differ between versions and code paths (reload, reconnects, dnstap, metrics), and
 * a call missing from an allow list would kill a gateway's DNS in production. What is denied is
 * what an attacker who got code running inside dotgw would reach for next, and what dotgw
 * itself never does after setup. systemd's SystemCallFilter= in dotgw.service adds an allow
 * list on top of this where dotgw runs under systemd; this filter is what holds elsewhere
 * (a container, a shell). bpf() is denied but for BPF_PROG_QUERY, with which dataplane.c lists
 * the programs attached to the interfaces (the kernel asks CAP_NET_ADMIN for it).
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>

#include "dotgw/sandbox.h"

#define SANDBOX_BPF_PROG_QUERY 16 /* enum bpf_cmd */

/* grouped by what they reach, several to a line */
/* clang-format off */
static const char *const sandbox_denied[] = {
	/* running programs */
	"execve", "execveat",
	/* other processes' memory */
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	/* namespaces and mounts */
	"unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount",
	"open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"open_by_handle_at", "name_to_handle_at",
	/* the kernel: modules, kexec, reboot, swap, accounting, quotas, its log */
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
	"iopl", "ioperm", "uselib", "vhangup",
	/* large attack surfaces dotgw has no use for */
	"perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
	"io_uring_setup", "io_uring_enter", "io_uring_register", "personality",
	/* clocks and names of the machine */
	"settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "sethostname",
	"setdomainname",
	/* identity: the privilege drop is over */
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
	"setfsuid", "setfsgid", "capset",
};
/* clang-format on */

/* The clone flags that make new namespaces: denied like unshare. */
static const unsigned long sandbox_clone_ns[] = {
	CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
	CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

int sandbox_apply(bool sanitizer)
{
	uint32_t deny = sanitizer ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(sandbox_denied) / sizeof(sandbox_denied[0]) && !r; i++) {
		int nr = seccomp_syscall_resolve_name(sandbox_denied[i]);

		if (nr == __NR_SCMP_ERROR) /* a call this architecture lacks */
			continue;
		if (sanitizer && nr == SCMP_SYS(ptrace))
			continue;
		r = seccomp_rule_add(ctx, deny, nr, 0);
	}
	for (size_t i = 0; i < sizeof(sandbox_clone_ns) / sizeof(sandbox_clone_ns[0]) && !r; i++)
		r = seccomp_rule_add(
			ctx, deny, SCMP_SYS(clone), 1,
			SCMP_A0(SCMP_CMP_MASKED_EQ, sandbox_clone_ns[i], sandbox_clone_ns[i]));
	/* bpf(): only the query of attached programs; any other command, the high bits set too */
	if (!r)
		r = seccomp_rule_add(ctx, deny, SCMP_SYS(bpf), 1,
				     SCMP_A0(SCMP_CMP_NE, SANDBOX_BPF_PROG_QUERY, 0));
	/* clone3 passes its flags in memory the filter cannot read: make glibc use clone */
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* no_new_privs is already set by privs_drop; other ABIs' calls kill (the default) */
	if (!r)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

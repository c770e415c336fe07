/*
 * nobpf.c - a test helper of bpf_dataplane.test.sh: run a command under a seccomp filter that
 * makes bpf(2) fail with EPERM, as a container runtime's default profile does for a container
 * without CAP_SYS_ADMIN or CAP_BPF (and systemd's SystemCallFilter=@system-service alone would).
 *
 * Usage: nobpf COMMAND [ARG]...
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	scmp_filter_ctx ctx;

	if (argc < 2) {
		fprintf(stderr, "usage: nobpf COMMAND [ARG]...\n");
		return 2;
	}
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(bpf), 0) < 0 ||
	    seccomp_load(ctx) < 0) {
		fprintf(stderr, "nobpf: cannot install the seccomp filter\n");
		return 1;
	}
	seccomp_release(ctx);
	execv(argv[1], argv + 1);
	fprintf(stderr, "nobpf: %s: %s\n", argv[1], strerror(errno));
	return 127;
}

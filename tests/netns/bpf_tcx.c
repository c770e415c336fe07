/*
 * bpf_tcx.c - a test helper of bpf_dataplane.test.sh: attach a minimal tc program (it returns
 * TC_ACT_UNSPEC: the packet goes on as if nothing were there) to an interface's tcx ingress or
 * egress hook (kernel >= 6.6) through a BPF link, print its program id, and hold the link until
 * killed: the program is detached when the process ends. Debian 12's bpftool (7.1) cannot
 * attach tcx programs, hence this. Built at test time with the system's 6.1 headers, which lack
 * the tcx attach types: their numbers are spelled out.
 *
 * Usage: bpf_tcx IFNAME ingress|egress     exit 77: the kernel has no tcx; 1: other errors
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#define TCX_INGRESS 46 /* enum bpf_attach_type, kernel 6.6 */
#define TCX_EGRESS  47

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int main(int argc, char **argv)
{
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = -1},
		{.code = BPF_JMP | BPF_EXIT},
	};
	struct bpf_prog_info info;
	union bpf_attr a;
	unsigned int ifindex;
	int prog, link;

	if (argc != 3 || (strcmp(argv[2], "ingress") && strcmp(argv[2], "egress"))) {
		fprintf(stderr, "usage: bpf_tcx IFNAME ingress|egress\n");
		return 2;
	}
	ifindex = if_nametoindex(argv[1]);
	if (!ifindex) {
		fprintf(stderr, "bpf_tcx: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SCHED_CLS;
	a.insns = (unsigned long)insns;
	a.insn_cnt = 2;
	a.license = (unsigned long)"GPL";
	snprintf(a.prog_name, sizeof(a.prog_name), "dp_test_tcx");
	prog = (int)sys_bpf(BPF_PROG_LOAD, &a);
	if (prog < 0) {
		fprintf(stderr, "bpf_tcx: BPF_PROG_LOAD: %s\n", strerror(errno));
		return 1;
	}
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = (unsigned int)prog;
	a.link_create.target_ifindex = ifindex;
	a.link_create.attach_type = strcmp(argv[2], "ingress") ? TCX_EGRESS : TCX_INGRESS;
	link = (int)sys_bpf(BPF_LINK_CREATE, &a);
	if (link < 0) {
		fprintf(stderr, "bpf_tcx: BPF_LINK_CREATE: %s\n", strerror(errno));
		return errno == EINVAL ? 77 : 1;
	}
	memset(&info, 0, sizeof(info));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = (unsigned int)prog;
	a.info.info_len = sizeof(info);
	a.info.info = (unsigned long)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0) {
		fprintf(stderr, "bpf_tcx: BPF_OBJ_GET_INFO_BY_FD: %s\n", strerror(errno));
		return 1;
	}
	printf("%u\n", info.id);
	fflush(stdout);
	pause(); /* until killed: the link goes with the process */
	return 0;
}

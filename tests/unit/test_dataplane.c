/*
 * test_dataplane.c - which data plane an interface and a program name point to
 * (dataplane_classify), and a check of this namespace's own interfaces, read only: it runs
 * without privilege (the rtnetlink dumps need none; tcx listing may be refused) and finds a
 * count, or an error, never a crash. Real programs are attached by
 * tests/netns/bpf_dataplane.test.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dotgw/dataplane.h"

int main(void)
{
	static const struct {
		const char *ifname, *prog;
		enum dataplane_kind kind;
	} cases[] = {
		{"cilium_host", "", DATAPLANE_CILIUM},
		{"cilium_net", "", DATAPLANE_CILIUM},
		{"cilium_vxlan", "", DATAPLANE_CILIUM},
		{"lxc1a2b3c4d", "", DATAPLANE_CILIUM},
		{"lxc_health", "", DATAPLANE_CILIUM},
		{"lxcbr0", "", DATAPLANE_UNKNOWN}, /* LXC's bridge, not Cilium's */
		{"eth0", "cil_from_netdev-eth0", DATAPLANE_CILIUM},
		{"eth0", "bpf_host.o:[from-netdev]", DATAPLANE_CILIUM},
		{"eth0", "bpf_netdev_eth0.o:[from-netdev]", DATAPLANE_CILIUM},
		{"bpfin.cali", "", DATAPLANE_CALICO},
		{"bpfout.cali", "", DATAPLANE_CALICO},
		{"cali12345", "", DATAPLANE_CALICO},
		{"eth0", "cali_tc_preamble", DATAPLANE_CALICO},
		{"eth0", "calico_from_hos", DATAPLANE_CALICO},
		{"eth0", "", DATAPLANE_UNKNOWN},
		{"eth0", "prog.o:[tc]", DATAPLANE_UNKNOWN},
		{"", "", DATAPLANE_UNKNOWN},
		/* the program's name wins over the interface's */
		{"cilium_host", "cali_tc_preamble", DATAPLANE_CALICO},
		{"cali1", "cil_to_host", DATAPLANE_CILIUM},
	};
	struct dataplane *dp;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ(dataplane_classify(cases[i].ifname, cases[i].prog), cases[i].kind);
	CHECK(strcmp(dataplane_kind_name(DATAPLANE_CILIUM), "cilium") == 0);
	CHECK(strcmp(dataplane_kind_name(DATAPLANE_CALICO), "calico") == 0);
	CHECK(strcmp(dataplane_kind_name(DATAPLANE_UNKNOWN), "unknown") == 0);

	CHECK(dataplane_new(&dp) == 0);
	f = open_memstream(&text, &len);
	dataplane_render(dp, f); /* before any check: nothing */
	fclose(f);
	CHECK_EQ(len, 0);
	free(text);
	r = dataplane_check(dp);
	CHECK(r >= 0 || r == -EPERM || r == -EACCES);
	f = open_memstream(&text, &len);
	dataplane_render(dp, f);
	fclose(f);
	if (r >= 0)
		CHECK(strstr(text, "\ndotgw_bpf_dataplane_programs{dataplane=\"cilium\"} ") !=
		      NULL);
	free(text);
	dataplane_off(dp);
	f = open_memstream(&text, &len);
	dataplane_render(dp, f); /* off: nothing */
	fclose(f);
	CHECK_EQ(len, 0);
	free(text);
	dataplane_free(dp);
	dataplane_free(NULL);
	return check_done("dataplane");
}

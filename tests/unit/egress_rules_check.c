/*
 * egress_rules_check.c - egress_rules.c and nftset.c against the kernel, driven by
 * tests/netns/egress_rules.test.sh as root in the lab's gateway namespace.
 *
 * Usage: egress_rules_check TABLE STEP [ADDR...]
 *   closed1   fail closed, gateway scope: group 0 (egress; clients 198.51.100.0/24, allow
 *             203.0.113.12/32), group 1 (no egress; 2001:db8:100::/64); then ADDRs go into
 *             group 0's sets (timeout 600 s)
 *   closed2   the same table applied again, changed: group 0 without the allow prefix, group 1
 *             now with egress; nothing is added (the elements must have stayed)
 *   open      fail open: a fresh owned table; an ADDR added through the owning socket gets in,
 *             through a second socket it is refused (EPERM); prints the counter c0 at the end
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/egress_rules.h"
#include "dotgw/loop.h"
#include "dotgw/nftset.h"
#include "dotgw/ruleset.h"

static struct loop *loop;
static unsigned int pending;
static int last_err;

static void req_done(struct nftset_req *r, int err)
{
	(void)r;
	last_err = err;
	if (--pending == 0)
		loop_stop(loop);
}

/* add - addr (text) to group 0's set of its family through link; the request's result. */
static int add(struct nftset_link *link, const char *table, const char *text)
{
	static char set[2][16];
	struct nftset_req r = {.done = req_done};
	struct nftset *ns;
	uint8_t a[16];
	int family = strchr(text, ':') ? AF_INET6 : AF_INET;

	if (inet_pton(family, text, a) != 1 || nftset_new(&ns, loop, link, table) < 0)
		return -EINVAL;
	egress_rules_set_name(set[family == AF_INET6], sizeof(set[0]), 0, family);
	pending = 1;
	nftset_add(ns, &r, set[family == AF_INET6], family, a, 600000);
	loop_run(loop);
	nftset_free(ns);
	return last_err;
}

int main(int argc, char **argv)
{
	static const struct cidr clients0 = {.family = AF_INET, .plen = 24, .addr = {198, 51, 100}};
	static const struct cidr clients1 = {
		.family = AF_INET6, .plen = 64, .addr = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00}};
	static const struct cidr allow = {.family = AF_INET, .plen = 32, .addr = {203, 0, 113, 12}};
	struct egress_rules_config cfg = {
		.scope = RULESET_SCOPE_GATEWAY,
		.bypass_mark = 0x1f00,
		.max = 1000,
		.n_groups = 2,
	};
	struct nftset_link *link, *other;
	const char *step;
	uint64_t dropped = 0;

	if (argc < 3)
		return 2;
	cfg.table = argv[1];
	step = argv[2];
	cfg.groups[0] = (struct egress_rules_group){.egress = true,
						    .clients = &clients0,
						    .n_clients = 1,
						    .allow = &allow,
						    .n_allow = 1};
	cfg.groups[1] = (struct egress_rules_group){.clients = &clients1, .n_clients = 1};
	CHECK_EQ(loop_new(&loop), 0);
	CHECK_EQ(nftset_link_new(&link), 0);

	if (!strcmp(step, "closed1") || !strcmp(step, "closed2")) {
		cfg.fail_closed = true;
		if (!strcmp(step, "closed2")) {
			cfg.groups[0].n_allow = 0;
			cfg.groups[1].egress = true;
		}
		CHECK_EQ(egress_rules_apply(nftset_link_lock(link), &cfg), 0);
		nftset_link_unlock(link);
		for (int i = 3; i < argc; i++)
			CHECK_EQ(add(link, cfg.table, argv[i]), 0);
	} else if (!strcmp(step, "open")) {
		CHECK_EQ(egress_rules_apply(nftset_link_lock(link), &cfg), 0);
		nftset_link_unlock(link);
		CHECK_EQ(nftset_link_new(&other), 0);
		for (int i = 3; i < argc; i++) {
			CHECK_EQ(add(other, cfg.table, argv[i]), -EPERM);
			CHECK_EQ(add(link, cfg.table, argv[i]), 0);
		}
		nftset_link_free(other);
		CHECK_EQ(egress_rules_counter(nftset_link_lock(link), cfg.table, 0, &dropped), 0);
		nftset_link_unlock(link);
		printf("c0 %llu\n", (unsigned long long)dropped);
		/* the same table applied again through its owner keeps its elements */
		CHECK_EQ(egress_rules_apply(nftset_link_lock(link), &cfg), 0);
		nftset_link_unlock(link);
		fflush(stdout);
		/* the script lists the table now; the socket closes (and the table goes) on exit */
		if (argc > 3)
			getchar();
	} else {
		return 2;
	}
	nftset_link_free(link);
	loop_free(loop);
	return check_done("egress_rules_check");
}

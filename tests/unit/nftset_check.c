/*
 * nftset_check.c - nftset.c against the kernel: run by tests/netns/nftset.test.sh as root
 * inside a namespace of its own, where the script has made table inet TABLE with the sets
 *   e4 (ipv4_addr, timeout, size 1000), e6 (ipv6_addr, timeout), small (ipv4_addr, timeout,
 *   size 2).
 * Usage: nftset_check TABLE. The script then checks the sets' contents with nft.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/loop.h"
#include "dotgw/nftset.h"

struct item {
	struct nftset_req r;
	int err;
	int calls;
};

static struct loop *loop;
static unsigned int pending;

static void item_done(struct nftset_req *r, int err)
{
	struct item *it = (struct item *)r;

	it->err = err;
	it->calls++;
	if (--pending == 0)
		loop_stop(loop);
}

static void add4(struct nftset *ns, struct item *it, const char *set, uint32_t host_order,
		 uint64_t timeout_ms)
{
	uint32_t a = htonl(host_order);

	memset(it, 0, sizeof(*it));
	it->r.done = item_done;
	pending++;
	nftset_add(ns, &it->r, set, AF_INET, (const uint8_t *)&a, timeout_ms);
}

static void run(void)
{
	if (pending)
		CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(pending, 0);
}

int main(int argc, char **argv)
{
	static const uint32_t nets[] = {0xc0000200u, 0xc6336400u, 0xcb007100u};
	static struct item many[600];
	struct item v6[10], refresh[2], small[3], missing, cancelled;
	const struct nftset_stats *st;
	struct nftset_link *link;
	struct nftset *ns;

	if (argc != 2)
		return 2;
	CHECK_EQ(loop_new(&loop), 0);
	CHECK_EQ(nftset_link_new(&link), 0);
	CHECK_EQ(nftset_new(&ns, loop, link, argv[1]), 0);
	st = nftset_stats(ns);

	/* 600 elements in one loop iteration: three batches (256, 256, 88), every one acked;
	 * 192.0.2.0/24, 198.51.100.0/24, then 203.0.113.0-87 */
	for (unsigned int i = 0; i < 600; i++)
		add4(ns, &many[i], "e4", nets[i / 256] + i % 256, 600000);
	run();
	for (unsigned int i = 0; i < 600; i++)
		CHECK(many[i].calls == 1 && many[i].err == 0);
	CHECK_EQ(st->batches, 3);
	CHECK_EQ(st->elements, 600);

	/* IPv6: 2001:db8::1 .. ::a */
	for (unsigned int i = 0; i < 10; i++) {
		uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = (uint8_t)(i + 1)};

		memset(&v6[i], 0, sizeof(v6[i]));
		v6[i].r.done = item_done;
		pending++;
		nftset_add(ns, &v6[i].r, "e6", AF_INET6, a, 600000);
	}
	run();
	for (unsigned int i = 0; i < 10; i++)
		CHECK(v6[i].calls == 1 && v6[i].err == 0);

	/* an add of an element already there sets its timeout anew (the script checks) */
	add4(ns, &refresh[0], "e4", 0xc6336401u, 5000); /* 198.51.100.1 */
	run();
	add4(ns, &refresh[1], "e4", 0xc6336401u, 3600000);
	run();
	CHECK(refresh[0].err == 0 && refresh[1].err == 0);

	/* a full set refuses the third element; the batch is aborted, the other two go again */
	for (unsigned int i = 0; i < 3; i++)
		add4(ns, &small[i], "small", 0xc0000201u + i, 600000);
	run();
	CHECK_EQ(small[0].err, 0);
	CHECK_EQ(small[1].err, 0);
	CHECK_EQ(small[2].err, -ENFILE);
	CHECK_EQ(st->refused, 1);
	CHECK_EQ(st->resent, 2);

	/* no such set */
	add4(ns, &missing, "nosuchset", 0xc0000209u, 0);
	run();
	CHECK_EQ(missing.err, -ENOENT);

	/* a cancelled request never completes, and the element is not added */
	add4(ns, &cancelled, "e4", 0xcb0071feu, 0); /* 203.0.113.254 */
	nftset_cancel(ns, &cancelled.r);
	pending--;
	add4(ns, &refresh[0], "e4", 0xc6336402u, 600000); /* 198.51.100.2: something to wait for */
	run();
	CHECK_EQ(cancelled.calls, 0);

	nftset_free(ns);
	nftset_link_free(link);
	loop_free(loop);
	return check_done("nftset_check");
}

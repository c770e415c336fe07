/*
 * test_frontend.c - a frontend driven in-process: its queries come as queued UDP packets
 * (frontend_queue_packet, as NFQUEUE hands them over) from clients in 127.0.0.0/8 to
 * 127.0.0.1:53, and go to two upstreams that the test plays (fake_upstream.h). Their answers
 * go nowhere: a reply from a local address is a raw packet, and no raw socket is open (counted
 * reply_errors). Checks the hold of a query answered SERVFAIL at its deadline while an
 * upstream connection still has it (QUERY_HELD): its place in its client's share
 * (--max-inflight-per-client 1) stays taken when that connection is closed for silence while
 * the upstream answers on its other one, until --hold-timeout passes; a close for silence
 * with no answer anywhere frees it at once.
 */
#include <arpa/inet.h>
#include <stdio.h>

#include "check.h"
#include "fake_upstream.h"

#include "dotgw/frontend.h"
#include "dotgw/pkt.h"

#define TIMEOUT_MS 200
#define STALL_MS   1000
#define HOLD_MS	   2000

static struct config cfg;
static struct stats st;
static struct upstream_pool *pool;
static struct frontend *fe;

/* fe_open - a frontend with the options of these tests, over a pool of the fake upstreams. */
static void fe_open(void)
{
	/* the times as TIMEOUT_MS, STALL_MS and HOLD_MS (checked below) */
	char line[] = "dotgw --config none --upstream 192.0.2.1#up0 --upstream 192.0.2.2#up1 "
		      "--timeout 200 --stall-timeout 1000 --hold-timeout 2000 "
		      "--max-inflight-per-client 1 --pool-size 2 --conn-inflight 1 --cache-size 0 "
		      "--no-padding --no-prefetch";
	char *argv[32];
	int argc = 0;
	FILE *out = fopen("/dev/null", "w");

	for (char *w = strtok(line, " "); w && argc < 31; w = strtok(NULL, " "))
		argv[argc++] = w;
	argv[argc] = NULL;
	config_init(&cfg);
	CHECK_EQ(config_parse_args(&cfg, argc, argv, out, stderr), 0);
	fclose(out);
	CHECK_EQ(cfg.timeout_ms, TIMEOUT_MS);
	CHECK_EQ(cfg.stall_ms, STALL_MS);
	CHECK_EQ(cfg.hold_ms, HOLD_MS);
	memset(&st, 0, sizeof(st));
	for (size_t i = 0; i < 3; i++)
		opens[i] = reads[i] = 0;
	CHECK_EQ(upstream_pool_new_transport(&pool, loop, &cfg, &st, &fake), 0);
	CHECK_EQ(frontend_open(&fe, loop, &cfg, pool, &st, 0), 0);
}

static void fe_close(void)
{
	frontend_close(fe);
	upstream_pool_free(pool);
}

/* ask - client 127.0.0.host asks foo.test A of 127.0.0.1:53, with id. */
static void ask(uint8_t host, uint16_t id)
{
	const uint8_t src[4] = {127, 0, 0, host}, dst[4] = {127, 0, 0, 1};
	uint8_t msg[sizeof(query)], pkt[PKT_MAX_HDR + sizeof(query)];
	int n;

	memcpy(msg, query, sizeof(query));
	dns_put16(msg, id);
	n = pkt_udp_build(pkt, sizeof(pkt), AF_INET, src, 40000 + id, dst, 53, msg, sizeof(msg));
	CHECK(n > 0);
	if (n > 0)
		CHECK(!frontend_queue_packet(fe, pkt, (size_t)n, 1, false));
}

/* upstream_reads - the queries both upstreams read so far (serve_read). */
static uint64_t upstream_reads(void)
{
	serve_read(0);
	serve_read(1);
	return reads[0] + reads[1];
}

/*
 * Client 2's query goes out on up0's first connection and is never answered; client 3's, on
 * its second, is. At its deadline client 2 gets SERVFAIL and its query is held; the first
 * connection is closed for silence, but up0 answered on the other: the hold goes on, and a
 * further query of client 2 waits for its share (then SERVFAIL at its deadline) without
 * reaching an upstream. Once --hold-timeout passed, its next query goes out at once.
 */
static void test_hold_alive(void)
{
	struct upstream_snapshot s = {0};
	uint64_t t0, servfail_ms;

	fe_open();
	t0 = clock_ms();
	ask(2, 1);
	SPIN_UNTIL(upstream_reads() >= 1);
	ask(3, 2);
	SPIN_UNTIL(upstream_reads() >= 2);
	CHECK_EQ(opens[0], 2);	  /* the first connection was full (--conn-inflight 1) */
	CHECK(fake_forget(0, 1)); /* client 2's: never answered */
	CHECK_EQ(serve_answer(0, false), 1);
	SPIN_UNTIL(stats_get(&st.answered) >= 1);
	/* the stall check compares this answer's time with when client 2's query went out:
	 * this only says the machine ran the test too slowly for it */
	CHECK(clock_ms() < t0 + STALL_MS);
	SPIN_UNTIL(stats_get(&st.upstream_abandoned) >= 1);
	servfail_ms = clock_ms();
	CHECK_EQ(stats_get(&st.servfail), 1);

	SPIN_UNTIL(stats_get(&st.upstream_stalled) >= 1);
	upstream_pool_snapshot(pool, 0, &s);
	CHECK_EQ(s.failures, 0); /* no back-off */
	ask(2, 3);
	CHECK_EQ(stats_get(&st.client_waited), 1);
	SPIN_UNTIL(stats_get(&st.servfail) >= 2);
	CHECK_EQ(upstream_reads(), 2); /* it never went out */
	/* the checks above read a hold that had not run out yet */
	CHECK(clock_ms() < servfail_ms + HOLD_MS);

	/* --hold-timeout after its SERVFAIL (servfail_ms is later): client 2's place is free */
	SPIN_UNTIL(clock_ms() >= servfail_ms + HOLD_MS);
	ask(2, 4);
	SPIN_UNTIL(upstream_reads() >= 3 || stats_get(&st.servfail) >= 3);
	CHECK_EQ(upstream_reads(), 3);
	CHECK_EQ(stats_get(&st.servfail), 2);
	fe_close();
}

/*
 * Client 2's query goes out on up0's only connection, which never answers anything: at its
 * deadline client 2 gets SERVFAIL, the query is held, and a further one of client 2 waits
 * and gets SERVFAIL. The connection is closed for silence with no answer anywhere: that ends
 * the hold (and backs up0 off), and client 2's next query goes out at once, to up1.
 */
static void test_hold_dead(void)
{
	fe_open();
	ask(2, 1);
	SPIN_UNTIL(upstream_reads() >= 1);
	CHECK(fake_forget(0, 1));
	SPIN_UNTIL(stats_get(&st.upstream_abandoned) >= 1);
	ask(2, 2);
	CHECK_EQ(stats_get(&st.client_waited), 1);
	SPIN_UNTIL(stats_get(&st.servfail) >= 2);
	CHECK_EQ(upstream_reads(), 1);

	SPIN_UNTIL(stats_get(&st.upstream_stalled) >= 1);
	ask(2, 3);
	SPIN_UNTIL(upstream_reads() >= 2 || stats_get(&st.servfail) >= 3);
	CHECK_EQ(reads[1], 1);
	CHECK_EQ(stats_get(&st.client_waited), 1);
	CHECK_EQ(stats_get(&st.servfail), 2);
	fe_close();
}

int main(void)
{
	CHECK_EQ(loop_new(&loop), 0);
	test_hold_alive();
	test_hold_dead();
	loop_free(loop);
	return check_done("frontend");
}

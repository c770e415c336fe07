/*
 * test_frontend.c - a frontend driven in-process: its queries come as queued UDP packets
 * (frontend_queue_packet, as NFQUEUE hands them over) from clients in 127.0.0.0/8 to
 * 127.0.0.1:53, or over TCP connections it adopts (frontend_tcp_adopt, a socketpair with a
 * client address), and go to two upstreams that the test plays (fake_upstream.h). UDP answers
 * go nowhere: a reply from a local address is a raw packet, and no raw socket is open (counted
 * reply_errors); TCP ones reach the test. Checks the hold of a query answered SERVFAIL at its
 * deadline while an upstream connection still has it (QUERY_HELD): its place in its client's
 * share (--max-inflight-per-client 1) stays taken when that connection is closed for silence
 * while the upstream answers on its other one, until --hold-timeout passes; a close for
 * silence with no answer anywhere frees it at once. A TCP client's query is held the same
 * way, past its connection's close, until the late answer or --hold-timeout. A reload's
 * --hold-timeout holds for queries held after it; those held before keep theirs. And the
 * wiring of per-client shares to the pool's wait lists: a client past its default share (grown
 * with its answers) waits behind another client's later query for a slot on a full connection.
 * An answer that sat unread while the loop was held up past the query's deadline answers it.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <sys/epoll.h>

#include "check.h"
#include "fake_upstream.h"

#include "dotgw/frontend.h"
#include "dotgw/pkt.h"

#define TIMEOUT_MS 200
#define STALL_MS   1000
#define HOLD_MS	   2000

/* the hold tests' limits: one query per client, two connections of one query each */
#define HOLD_LIMITS "--max-inflight-per-client 1 --pool-size 2 --conn-inflight 1"

static struct config cfg;
static struct stats st;
static struct upstream_pool *pool;
static struct frontend *fe;

/*
 * cfg_load - c: the options of these tests, with limits (--max-inflight-per-client,
 * --pool-size, --conn-inflight), --stall-timeout stall and --hold-timeout hold.
 */
static void cfg_load(struct config *c, const char *limits, unsigned int stall, unsigned int hold)
{
	char line[512];
	char *argv[32];
	int argc = 0;
	FILE *out = fopen("/dev/null", "w");

	snprintf(line, sizeof(line),
		 "dotgw --config none --upstream 192.0.2.1#up0 --upstream 192.0.2.2#up1 "
		 "--timeout %u --stall-timeout %u --hold-timeout %u %s --cache-size 0 --no-padding "
		 "--no-prefetch",
		 TIMEOUT_MS, stall, hold, limits);
	for (char *w = strtok(line, " "); w && argc < 31; w = strtok(NULL, " "))
		argv[argc++] = w;
	argv[argc] = NULL;
	config_init(c);
	CHECK_EQ(config_parse_args(c, argc, argv, out, stderr), 0);
	fclose(out);
	CHECK_EQ(c->timeout_ms, TIMEOUT_MS);
	CHECK_EQ(c->stall_ms, stall);
	CHECK_EQ(c->hold_ms, hold);
}

/* fe_open - a frontend with the options of cfg_load, over a pool of the fake upstreams. */
static void fe_open(const char *limits, unsigned int stall, unsigned int hold)
{
	cfg_load(&cfg, limits, stall, hold);
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

/*
 * ask_as - client 127.0.0.host asks foo.test A of 127.0.0.1:53, with id, the name's first
 * letter first (its case tells the upstream whose query it read: read_first).
 */
static void ask_as(uint8_t host, uint16_t id, char first)
{
	const uint8_t src[4] = {127, 0, 0, host}, dst[4] = {127, 0, 0, 1};
	uint8_t msg[sizeof(query)], pkt[PKT_MAX_HDR + sizeof(query)];
	int n;

	memcpy(msg, query, sizeof(query));
	dns_put16(msg, id);
	msg[DNS_HDR_LEN + 1] = (uint8_t)first;
	n = pkt_udp_build(pkt, sizeof(pkt), AF_INET, src, 40000 + id, dst, 53, msg, sizeof(msg));
	CHECK(n > 0);
	if (n > 0)
		CHECK(!frontend_queue_packet(fe, pkt, (size_t)n, 1, false));
}

/* ask - client 127.0.0.host asks foo.test A of 127.0.0.1:53, with id. */
static void ask(uint8_t host, uint16_t id)
{
	ask_as(host, id, 'f');
}

/* upstream_reads - the queries both upstreams read so far (serve_read). */
static uint64_t upstream_reads(void)
{
	serve_read(0);
	serve_read(1);
	return reads[0] + reads[1];
}

/*
 * ask_at - at at_ms (when a hold ended), client 127.0.0.host asks with id; its query must go
 * out, the nth that the upstreams read, with servfail SERVFAILs so far and none for it.
 */
static void ask_at(uint64_t at_ms, uint8_t host, uint16_t id, uint64_t nth, uint64_t servfail)
{
	SPIN_UNTIL(clock_ms() >= at_ms);
	ask(host, id);
	SPIN_UNTIL(upstream_reads() >= nth || stats_get(&st.servfail) > servfail);
	CHECK_EQ(upstream_reads(), nth);
	CHECK_EQ(stats_get(&st.servfail), servfail);
}

/* A TCP client of the frontend: the test's end of a socketpair, and what it read. */
struct tcp_peer {
	int fd;
	uint8_t in[4096];
	size_t len;
};

/* tcp_open - client 127.0.0.host connects over TCP (the frontend adopts the other end). */
static void tcp_open(struct tcp_peer *c, uint8_t host)
{
	union sockaddr_any peer = {.sin = {.sin_family = AF_INET}};
	int sv[2];

	peer.sin.sin_addr.s_addr = htonl(0x7f000000u | host);
	c->len = 0;
	c->fd = -1;
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	CHECK_EQ(frontend_tcp_adopt(fe, sv[0], &peer), 0);
	c->fd = sv[1];
}

/* tcp_ask - the TCP client c asks foo.test A, with id. */
static void tcp_ask(const struct tcp_peer *c, uint16_t id)
{
	uint8_t frame[2 + sizeof(query)];

	dns_put16(frame, sizeof(query));
	memcpy(frame + 2, query, sizeof(query));
	dns_put16(frame + 2, id);
	CHECK_EQ(write(c->fd, frame, sizeof(frame)), sizeof(frame));
}

/* tcp_rcode - the rcode of the answer with id that c has received (-1: none yet). */
static int tcp_rcode(struct tcp_peer *c, uint16_t id)
{
	ssize_t n = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
	const uint8_t *msg;
	size_t off = 0, len;

	if (n > 0)
		c->len += (size_t)n;
	while (dns_frame_next(c->in, c->len, &off, &msg, &len) > 0)
		if (len >= DNS_HDR_LEN && dns_get16(msg) == id && (msg[2] & 0x80))
			return msg[3] & DNS_RCODE_MASK;
	return -1;
}

/* tcp_closed - client c, which shut its side, sees the frontend close its own (false: not yet). */
static bool tcp_closed(struct tcp_peer *c)
{
	uint8_t buf[512];

	if (c->fd >= 0 && read(c->fd, buf, sizeof(buf)) == 0) {
		close(c->fd);
		c->fd = -1;
	}
	return c->fd < 0;
}

/* tcp_answer - the rcode of c's answer with id, once it came (-1: none in time, a failure). */
static int tcp_answer(struct tcp_peer *c, uint16_t id)
{
	SPIN_UNTIL(tcp_rcode(c, id) >= 0);
	return tcp_rcode(c, id);
}

/* tcp_reconnect - client c shuts its connection, sees the frontend close it, connects again. */
static void tcp_reconnect(struct tcp_peer *c, uint8_t host)
{
	CHECK_EQ(shutdown(c->fd, SHUT_WR), 0);
	SPIN_UNTIL(tcp_closed(c));
	tcp_open(c, host);
}

/* upstream_forget - both upstreams' connections will never answer what they read so far. */
static void upstream_forget(void)
{
	upstream_reads();
	for (size_t i = 0; i < FAKE_MAX; i++)
		fakes[i].n_ids = 0;
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

	fe_open(HOLD_LIMITS, STALL_MS, HOLD_MS);
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
	ask_at(servfail_ms + HOLD_MS, 2, 4, 3, 2);
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
	fe_open(HOLD_LIMITS, STALL_MS, HOLD_MS);
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

/*
 * The hold of a TCP client's query (over TCP port 53): --hold-timeout 500, and no stall close
 * within the test (--stall-timeout 3000). Client 2's first query is not answered in time: it
 * gets SERVFAIL on its connection at the deadline, and a second one on the same connection
 * waits for its share (held by the first) and gets SERVFAIL too. The connection closes; on a
 * new one, a third query of client 2 waits still, until the upstream's late answer to the
 * first frees the place: it goes out and is answered. A fourth query is never answered: held,
 * past its client's close, until --hold-timeout, and no longer.
 */
static void test_hold_tcp(void)
{
	const unsigned int hold = 500, stall = 3000;
	struct tcp_peer c;
	uint64_t t0, servfail_ms;

	fe_open(HOLD_LIMITS, stall, hold);
	tcp_open(&c, 2);
	t0 = clock_ms();
	tcp_ask(&c, 1);
	SPIN_UNTIL(upstream_reads() >= 1);
	SPIN_UNTIL(stats_get(&st.upstream_abandoned) >= 1);
	CHECK_EQ(tcp_answer(&c, 1), DNS_RCODE_SERVFAIL);
	CHECK(clock_ms() >= t0 + TIMEOUT_MS); /* at the deadline, not before */

	/* the connection serves on, but client 2's place is the held query's */
	tcp_ask(&c, 2);
	SPIN_UNTIL(stats_get(&st.client_waited) >= 1);
	CHECK_EQ(tcp_answer(&c, 2), DNS_RCODE_SERVFAIL);
	CHECK_EQ(upstream_reads(), 1); /* it never went out */
	CHECK_EQ(stats_get(&st.servfail), 2);

	/* the client goes: the frontend closes its end (nothing in work), the query stays held */
	tcp_reconnect(&c, 2);
	tcp_ask(&c, 3);
	SPIN_UNTIL(stats_get(&st.client_waited) >= 2);
	CHECK_EQ(upstream_reads(), 1);
	/* the late answer ends the hold: the waiting query goes out */
	CHECK_EQ(serve_answer(0, false), 1);
	SPIN_UNTIL(stats_get(&st.upstream_late_answers) >= 1);
	SPIN_UNTIL(upstream_reads() >= 2);
	serve_answer(0, false);
	serve_answer(1, false);
	CHECK_EQ(tcp_answer(&c, 3), DNS_RCODE_NOERROR);
	CHECK_EQ(stats_get(&st.answered), 1);
	CHECK_EQ(stats_get(&st.servfail), 2);

	/* held, its client gone: the place is free once --hold-timeout passed */
	tcp_ask(&c, 4);
	SPIN_UNTIL(upstream_reads() >= 3);
	upstream_forget();
	CHECK_EQ(tcp_answer(&c, 4), DNS_RCODE_SERVFAIL);
	servfail_ms = clock_ms();
	CHECK_EQ(stats_get(&st.upstream_abandoned), 2);
	tcp_reconnect(&c, 2);
	tcp_ask(&c, 5);
	SPIN_UNTIL(stats_get(&st.client_waited) >= 3);
	CHECK_EQ(upstream_reads(), 3);
	/* the checks above read a hold that had not run out yet */
	CHECK(clock_ms() < servfail_ms + hold);
	CHECK_EQ(tcp_answer(&c, 5), DNS_RCODE_SERVFAIL);
	SPIN_UNTIL(clock_ms() >= servfail_ms + hold);
	tcp_ask(&c, 6);
	SPIN_UNTIL(upstream_reads() >= 4 || stats_get(&st.servfail) >= 5);
	CHECK_EQ(upstream_reads(), 4);
	CHECK_EQ(stats_get(&st.servfail), 4);
	CHECK_EQ(stats_get(&st.upstream_stalled), 0); /* the hold's end was --hold-timeout */
	close(c.fd);
	fe_close();
}

/*
 * A reload that changes --hold-timeout (frontend_reload, as a worker takes up SIGHUP's or the
 * config watch's configuration) from 1500 to 300: client 2's query, held before it, keeps its
 * 1500 ms; client 4's, held after it on the new pool, is held 300 ms: client 4's next query
 * then goes out (and is answered), while client 2's waits and gets SERVFAIL at its deadline,
 * and client 2's next one goes out once the 1500 ms passed.
 */
static void test_hold_reload(void)
{
	const unsigned int stall = 3000, hold_old = 1500, hold_new = 300;
	static struct config cfg_new;
	struct upstream_pool *pool_new, *pool_old;
	uint64_t servfail_old, servfail_new, waited;

	fe_open(HOLD_LIMITS, stall, hold_old);
	ask(2, 1);
	SPIN_UNTIL(upstream_reads() >= 1);
	CHECK(fake_forget(0, 1));
	SPIN_UNTIL(stats_get(&st.servfail) >= 1);
	servfail_old = clock_ms();
	CHECK_EQ(stats_get(&st.upstream_abandoned), 1);

	cfg_load(&cfg_new, HOLD_LIMITS, stall, hold_new);
	CHECK_EQ(upstream_pool_new_transport(&pool_new, loop, &cfg_new, &st, &fake), 0);
	pool_old = frontend_reload(fe, &cfg_new, pool_new);
	CHECK(pool_old == pool);
	ask(4, 2);
	SPIN_UNTIL(upstream_reads() >= 2);
	CHECK(fake_forget(0, 2)); /* the new pool's first connection */
	SPIN_UNTIL(stats_get(&st.servfail) >= 2);
	servfail_new = clock_ms();
	CHECK_EQ(stats_get(&st.upstream_abandoned), 2);

	/* client 4's place is free after the new --hold-timeout (its query may wait for the
	 * loop's next turn to see that), client 2's is not */
	ask_at(servfail_new + hold_new, 4, 3, 3, 2);
	serve_answer(0, false);
	serve_answer(1, false);
	SPIN_UNTIL(stats_get(&st.answered) >= 1);
	waited = stats_get(&st.client_waited);
	ask(2, 4);
	CHECK_EQ(stats_get(&st.client_waited), waited + 1);
	SPIN_UNTIL(stats_get(&st.servfail) >= 3);
	CHECK_EQ(upstream_reads(), 3);
	/* the checks above read the old hold before it ran out */
	CHECK(clock_ms() < servfail_old + hold_old);

	/* and it runs out at the old --hold-timeout */
	ask_at(servfail_old + hold_old, 2, 5, 4, 3);
	CHECK_EQ(stats_get(&st.upstream_stalled), 0);
	frontend_close(fe);
	upstream_pool_free(pool_new);
	upstream_pool_free(pool_old);
}

/*
 * ask_ids - client 127.0.0.host asks with ids first to last; then the upstreams have read n
 * queries in all, no more (those the asks sent leave in one flush, read at once), and waited
 * queries have waited for their client's share.
 */
static void ask_ids(uint8_t host, uint16_t first, uint16_t last, uint64_t n, uint64_t waited)
{
	for (uint16_t id = first; id <= last; id++)
		ask(host, id);
	SPIN_UNTIL(upstream_reads() >= n);
	CHECK_EQ(upstream_reads(), n);
	CHECK_EQ(stats_get(&st.client_waited), waited);
}

/* quick_answer - the upstream's end of a connection, watched: what it reads it answers at once. */
static void quick_answer(struct loop_watch *w, uint32_t revents)
{
	(void)w;
	(void)revents;
	serve_read(0);
	serve_answer(0, false);
}

/*
 * A client past its default share waits behind the others (query_submit marks its queries
 * bulk, the pool's wait list serves them last). --max-inflight-per-client is left to its
 * default, which alone grows (an explicit one never does): half of --pool-size 1 x
 * --conn-inflight 4, 2, while one connection carries 4 queries. Client 2's share grows with
 * its answers while it has queries waiting for it (inflight.h): to 5 after two rounds. It then
 * fills the connection's 4 slots and has one more, bulk, waiting in the pool when client 3
 * (within its share) asks, after it. Once answers free the slots, client 3's query is the
 * first that the upstream reads; then client 2's. Client 2 asks foo.test, client 3 FOO.test:
 * the upstream tells them apart by the first letter (read_first).
 */
static void test_bulk_behind(void)
{
	const char *order = read_first[0];
	struct loop_watch quick = {.cb = quick_answer};

	fe_open("--pool-size 1 --conn-inflight 4", STALL_MS, HOLD_MS);
	CHECK_EQ(cfg.max_inflight_client, 2);
	CHECK(cfg.inflight_client_auto);

	/*
	 * Client 4's query opens the connection and is answered from within the loop: its least
	 * RTT is some microseconds, so its window (twice the answers per second times the least
	 * RTT, upstream.c) stays at --conn-inflight however slowly the machine runs what follows;
	 * answers a pause made late would otherwise let it grow past 4.
	 */
	ask(4, 100);
	quick.fd = fake_nth(0, 1) ? fake_nth(0, 1)->peer : -1;
	CHECK_EQ(loop_watch_add(loop, &quick, EPOLLIN), 0);
	SPIN_UNTIL(stats_get(&st.answered) >= 1);
	loop_watch_del(loop, &quick);

	/* share 2: two go out, two wait for them; the first answer grows the share to 3 */
	ask_ids(2, 1, 4, 3, 2);
	CHECK_EQ(serve_answer(0, false), 2);
	SPIN_UNTIL(upstream_reads() >= 5);

	/* share 3, 2 in flight: one more goes out, three wait; three answers: share 5 */
	ask_ids(2, 5, 8, 6, 5);
	CHECK_EQ(serve_answer(0, false), 3);
	SPIN_UNTIL(upstream_reads() >= 9);

	/*
	 * 3 in flight: id 9 fills the connection's window, id 10 (counted: the share is 5) waits
	 * in the pool, bulk (10 queries read in all), and id 11 waits for the share
	 */
	ask_ids(2, 9, 11, 10, 6);
	ask_as(3, 12, 'F');

	/* the window empties: client 3's query first, then client 2's ids 10 and 11 */
	CHECK_EQ(serve_answer(0, false), 4);
	SPIN_UNTIL(upstream_reads() >= 13);
	CHECK_EQ(upstream_reads(), 13);
	CHECK_EQ(order[10], 'F');
	CHECK_EQ(order[11], 'f');
	CHECK_EQ(order[12], 'f');
	CHECK_EQ(serve_answer(0, false), 3);
	SPIN_UNTIL(stats_get(&st.answered) >= 13);
	CHECK_EQ(stats_get(&st.answered), 13);
	CHECK_EQ(stats_get(&st.servfail), 0);
	CHECK_EQ(reads[1], 0);
	fe_close();
}

/*
 * The loop runs its timers before it reads: an answer written before the query's deadline,
 * read only after a loop held up past it, answers the query (no SERVFAIL).
 */
static void test_deadline_unread(void)
{
	fe_open("", STALL_MS, HOLD_MS);
	ask(2, 1);
	SPIN_UNTIL(upstream_reads() >= 1);
	CHECK_EQ(serve_answer(0, false), 1);
	usleep((TIMEOUT_MS + 100) * 1000); /* the loop held up past the deadline */
	SPIN_UNTIL(stats_get(&st.answered) + stats_get(&st.servfail) >= 1);
	CHECK_EQ(stats_get(&st.answered), 1);
	CHECK_EQ(stats_get(&st.servfail), 0);
	fe_close();
}

int main(void)
{
	CHECK_EQ(loop_new(&loop), 0);
	test_hold_alive();
	test_hold_dead();
	test_hold_tcp();
	test_hold_reload();
	test_bulk_behind();
	test_deadline_unread();
	loop_free(loop);
	return check_done("frontend");
}

/*
 * test_tcp_client.c - TCP client framing over a socketpair: frames split across reads, the
 * answer's length prefix, the limit of frames in work (reading pauses, then resumes), a
 * frame shorter than a header (the client closes, its work is dropped), an idle close, and
 * none for a frame sent in time but read only after a loop held up past the idle period.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "dotgw/dns.h"
#include "dotgw/loop.h"
#include "dotgw/tcp_client.h"

#define MAX_WORK 200

struct fixture {
	struct loop *loop;
	struct stats stats;
	struct tcp_clients *set;
	struct tcp_client *tc;
	int peer; /* the client's end */
	struct tcp_work work[MAX_WORK];
	uint16_t ids[MAX_WORK];
	unsigned int nframes, ndropped, stop_at;
	struct loop_timer guard;
};

static struct fixture fx;

static void on_frame(void *data, struct tcp_client *tc, const uint8_t *msg, size_t len)
{
	struct fixture *f = data;

	CHECK(len >= DNS_HDR_LEN);
	if (f->nframes < MAX_WORK) {
		f->ids[f->nframes] = dns_get16(msg);
		tcp_work_begin(tc, &f->work[f->nframes]);
	}
	f->tc = tc;
	if (++f->nframes == f->stop_at)
		loop_stop(f->loop);
}

static void on_drop(void *data, struct tcp_work *w)
{
	struct fixture *f = data;

	f->ndropped++;
	tcp_work_end(w);
}

static const struct tcp_client_ops ops = {.frame = on_frame, .drop = on_drop};

static void guard_fired(struct loop_timer *t)
{
	(void)t;
	loop_stop(fx.loop); /* a test waited in vain: its checks fail */
}

/*
 * run - the loop until stop_at frames arrived in all, or guard_ms passed: a bound when the
 * frames are due (the checks then fail), the wait itself when nothing more is.
 */
static void run(unsigned int stop_at, unsigned int guard_ms)
{
	fx.stop_at = stop_at;
	loop_timer_set(fx.loop, &fx.guard, loop_now_ms(fx.loop) + guard_ms);
	loop_run(fx.loop);
	loop_timer_cancel(fx.loop, &fx.guard);
}

/* frame - a query frame with id into buf (length prefix, 12-octet header); its length. */
static size_t frame(uint8_t *buf, uint16_t id)
{
	memset(buf, 0, 14);
	dns_put16(buf, 12);
	dns_put16(buf + 2, id);
	return 14;
}

static void setup(unsigned int idle_ms)
{
	struct tcp_client_limits lim = {.max_clients = 4, .idle_ms = idle_ms, .redirect_port = 53};
	union sockaddr_any peer = {.sin = {.sin_family = AF_INET}};
	int sv[2];

	memset(&fx, 0, sizeof(fx));
	CHECK_EQ(loop_new(&fx.loop), 0);
	loop_timer_init(&fx.guard, guard_fired);
	CHECK_EQ(tcp_clients_new(&fx.set, fx.loop, &fx.stats, &lim, &ops, &fx), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	fx.peer = sv[1];
	CHECK_EQ(tcp_clients_adopt(fx.set, sv[0], &peer), 0);
	CHECK_EQ(tcp_clients_count(fx.set), 1);
}

static void teardown(void)
{
	tcp_clients_free(fx.set);
	close(fx.peer);
	loop_free(fx.loop);
}

/* Frames split anywhere arrive whole; answers go out with their length prefix. */
static void test_framing(void)
{
	uint8_t buf[64], ans[16];
	size_t n = 0;

	setup(10000);
	n += frame(buf, 1);
	n += frame(buf + n, 2);
	frame(buf + n, 3);
	CHECK_EQ(write(fx.peer, buf, n + 1), (ssize_t)n + 1); /* and one octet of the third */
	run(2, 2000);
	CHECK_EQ(fx.nframes, 2);
	CHECK_EQ(fx.ids[0], 1);
	CHECK_EQ(fx.ids[1], 2);
	CHECK_EQ(write(fx.peer, buf + n + 1, 5), 5);
	CHECK_EQ(write(fx.peer, buf + n + 6, 8), 8);
	run(3, 2000);
	CHECK_EQ(fx.nframes, 3);
	CHECK_EQ(fx.ids[2], 3);

	/* answer the second: 2 octets of length, then the message */
	memset(ans, 0, sizeof(ans));
	dns_put16(ans, 2);
	tcp_client_send(fx.tc, ans, 12);
	tcp_work_end(&fx.work[1]);
	tcp_client_kick(fx.tc);
	CHECK_EQ(read(fx.peer, buf, sizeof(buf)), 14);
	CHECK_EQ(dns_get16(buf), 12);
	CHECK_EQ(dns_get16(buf + 2), 2);

	/* the client closes its side: the set stays until its work is over */
	shutdown(fx.peer, SHUT_WR);
	run(100, 200); /* the guard stops it: nothing more arrives */
	CHECK_EQ(tcp_clients_count(fx.set), 1);
	tcp_work_end(&fx.work[0]);
	tcp_work_end(&fx.work[2]);
	tcp_client_kick(fx.tc); /* all answered, EOF read: the client goes */
	CHECK_EQ(tcp_clients_count(fx.set), 0);
	CHECK_EQ(fx.ndropped, 0);
	teardown();
}

/* At TCP_CLIENT_WORK frames in work, reading pauses; it resumes as work ends. */
static void test_backpressure(void)
{
	uint8_t buf[14 * (TCP_CLIENT_WORK + 5)];
	size_t n = 0;

	setup(10000);
	for (unsigned int i = 0; i < TCP_CLIENT_WORK + 5; i++)
		n += frame(buf + n, (uint16_t)i);
	CHECK_EQ(write(fx.peer, buf, n), (ssize_t)n);
	run(TCP_CLIENT_WORK + 5, 300); /* the guard stops it: reading paused */
	CHECK_EQ(fx.nframes, TCP_CLIENT_WORK);
	for (unsigned int i = 0; i < 5; i++)
		tcp_work_end(&fx.work[i]);
	tcp_client_kick(fx.tc);
	run(TCP_CLIENT_WORK + 5, 2000);
	CHECK_EQ(fx.nframes, TCP_CLIENT_WORK + 5);
	CHECK_EQ(fx.ids[TCP_CLIENT_WORK + 4], TCP_CLIENT_WORK + 4);
	/* closing drops the work still open */
	tcp_clients_free(fx.set);
	fx.set = NULL;
	CHECK_EQ(fx.ndropped, TCP_CLIENT_WORK);
	close(fx.peer);
	loop_free(fx.loop);
}

/* A frame shorter than a header: the stream cannot be trusted; the client closes. */
static void test_short_frame(void)
{
	uint8_t buf[32];
	size_t n = frame(buf, 7);

	setup(10000);
	dns_put16(buf + n, 5);
	memset(buf + n + 2, 0, 5);
	CHECK_EQ(write(fx.peer, buf, n + 7), (ssize_t)n + 7);
	run(100, 200);
	CHECK_EQ(fx.nframes, 1);
	CHECK_EQ(fx.ndropped, 1); /* the first frame's work */
	CHECK_EQ(tcp_clients_count(fx.set), 0);
	CHECK_EQ(stats_get(&fx.stats.malformed), 1);
	CHECK_EQ(read(fx.peer, buf, sizeof(buf)), 0); /* EOF */
	teardown();
}

/* A client that sends nothing for the idle period is closed. */
static void test_idle(void)
{
	uint8_t buf[4];

	setup(50);
	run(100, 300);
	CHECK_EQ(tcp_clients_count(fx.set), 0);
	CHECK_EQ(read(fx.peer, buf, sizeof(buf)), 0);
	teardown();
}

/*
 * The loop runs its timers before it reads: a frame sent before the idle period ended, read
 * only after a loop held up past it, is handed out, and the client stays.
 */
static void test_idle_unread(void)
{
	uint8_t buf[16];

	setup(50);
	CHECK_EQ(write(fx.peer, buf, frame(buf, 9)), 14);
	usleep(120 * 1000); /* the loop held up past the idle period (a busy machine) */
	run(1, 300);
	CHECK_EQ(fx.nframes, 1);
	CHECK_EQ(fx.ids[0], 9);
	CHECK_EQ(tcp_clients_count(fx.set), 1);
	CHECK_EQ(fx.ndropped, 0);
	teardown();
}

int main(void)
{
	test_framing();
	test_backpressure();
	test_short_frame();
	test_idle();
	test_idle_unread();
	return check_done("tcp_client");
}

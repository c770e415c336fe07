/*
 * fake_upstream.h - the upstreams of a test, played by the test itself: a struct
 * upstream_transport (fake) whose connections are plain bytes over a socketpair, the test
 * reading the queries at the other end and answering them (serve_*), and a loop that the test
 * runs in turns until what it waits for came (SPIN_UNTIL). For test_upstream.c and
 * test_frontend.c; include it after check.h.
 */
#ifndef DOTGW_FAKE_UPSTREAM_H
#define DOTGW_FAKE_UPSTREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dotgw/upstream.h"

enum fake_mode {
	FAKE_OK,
	FAKE_REFUSED,  /* connect() fails: the upstream's fault */
	FAKE_LOCAL,    /* socket() fails for want of descriptors: ours */
	FAKE_HS_FAIL,  /* the handshake fails (authentication): the upstream's fault */
	FAKE_HS_LOCAL, /* no memory for the TLS state: ours */
};

/* A fake connection: upstream.c sees it as a struct tls_conn * (see upstream_transport). */
struct fake_conn {
	int fd, peer; /* ours, the test's (the upstream) */
	size_t up;
	unsigned int nth; /* the upstream's nth connection (opens[up] then) */
	bool drained, live;
	uint16_t ids[2048]; /* queries read by the upstream, not answered yet */
	size_t n_ids;
	uint8_t in[65536]; /* what the upstream read, up to a whole frame */
	size_t in_len;
	uint16_t failed[16]; /* ids answered with a stand-in SERVFAIL (serve_error), unclaimed */
	size_t n_failed;
};

#define FAKE_MAX 64
static struct fake_conn fakes[FAKE_MAX];
static enum fake_mode modes[3];
static unsigned int opens[3];
static unsigned int handshakes[3]; /* handshakes done, per upstream */
static int fake_ctx_token;

static struct fake_conn *fc(const struct tls_conn *t)
{
	return (struct fake_conn *)t;
}

static int fake_ctx_new(struct tls_ctx **out, const struct config *cfg)
{
	(void)cfg;
	*out = (struct tls_ctx *)&fake_ctx_token;
	return 0;
}

static void fake_ctx_free(struct tls_ctx *ctx)
{
	(void)ctx;
}

static int fake_open(struct tls_ctx *ctx, size_t up, struct tls_conn **out, bool *local)
{
	int sv[2];

	(void)ctx;
	*local = modes[up] == FAKE_LOCAL;
	if (modes[up] == FAKE_LOCAL)
		return -EMFILE;
	if (modes[up] == FAKE_REFUSED)
		return -ECONNREFUSED;
	for (size_t i = 0; i < FAKE_MAX; i++) {
		struct fake_conn *f = &fakes[i];

		if (f->live)
			continue;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
			return -errno;
		memset(f, 0, sizeof(*f));
		f->fd = sv[0];
		f->peer = sv[1];
		f->up = up;
		f->live = true;
		f->nth = ++opens[up];
		*out = (struct tls_conn *)f;
		return 0;
	}
	return -ENFILE;
}

static int fake_fd(const struct tls_conn *t)
{
	return fc(t)->fd;
}

static int fake_handshake(struct tls_conn *t, bool *want_write, bool *local)
{
	(void)want_write;
	*local = modes[fc(t)->up] == FAKE_HS_LOCAL;
	if (modes[fc(t)->up] == FAKE_HS_FAIL)
		return -EPERM;
	if (modes[fc(t)->up] == FAKE_HS_LOCAL)
		return -ENOMEM;
	handshakes[fc(t)->up]++;
	return 1;
}

static int fake_write(struct tls_conn *t, const uint8_t *buf, size_t len, bool *want_write)
{
	ssize_t n = write(fc(t)->fd, buf, len);

	if (n < 0 && errno == EAGAIN) {
		*want_write = true;
		return 0;
	}
	return n < 0 ? -errno : (int)n;
}

static int fake_read(struct tls_conn *t, uint8_t *buf, size_t len, bool *want_write)
{
	ssize_t n = read(fc(t)->fd, buf, len);

	(void)want_write;
	fc(t)->drained = n <= 0 || (size_t)n < len;
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n == 0)
		return -ECONNRESET;
	return n < 0 ? -errno : (int)n;
}

static bool fake_drained(const struct tls_conn *t)
{
	return fc(t)->drained;
}

static bool fake_false(const struct tls_conn *t)
{
	(void)t;
	return false;
}

/* fake_failed - the transport's failed(): was id answered by serve_error (claimed once)? */
static bool fake_failed(struct tls_conn *t, uint16_t id)
{
	struct fake_conn *f = fc(t);

	for (size_t i = 0; i < f->n_failed; i++)
		if (f->failed[i] == id) {
			f->failed[i] = f->failed[--f->n_failed];
			return true;
		}
	return false;
}

static void fake_close(struct tls_conn *t, bool clean)
{
	struct fake_conn *f = fc(t);

	(void)clean;
	close(f->fd);
	if (f->peer >= 0)
		close(f->peer);
	f->live = false;
}

static const struct upstream_transport fake = {
	.ctx_new = fake_ctx_new,
	.ctx_free = fake_ctx_free,
	.open = fake_open,
	.fd = fake_fd,
	.handshake = fake_handshake,
	.write = fake_write,
	.read = fake_read,
	.drained = fake_drained,
	.resumed = fake_false,
	.unverified = fake_false,
	.close = fake_close,
	.failed = fake_failed,
};

/* fake_nth - upstream up's nth connection, while open (NULL: closed). */
static inline struct fake_conn *fake_nth(size_t up, unsigned int nth)
{
	for (size_t i = 0; i < FAKE_MAX; i++)
		if (fakes[i].live && fakes[i].up == up && fakes[i].peer >= 0 && fakes[i].nth == nth)
			return &fakes[i];
	return NULL;
}

/* fake_forget - upstream up's nth connection holds one query, which it will never answer:
 * false if it holds another number (or is closed). */
static inline bool fake_forget(size_t up, unsigned int nth)
{
	struct fake_conn *f = fake_nth(up, nth);

	if (!f || f->n_ids != 1)
		return false;
	f->n_ids = 0;
	return true;
}

/* --- the upstream's side --------------------------------------------------------------- */
/* "foo.test. IN A", recursion desired */
static const uint8_t query[] = {0,   0,	  1,   0, 0,   1,   0,	 0,   0, 0, 0, 0, 3,
				'f', 'o', 'o', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
static uint64_t reads[3]; /* the queries each upstream read, since setup() */
/* the first letter of each query's name, in the order each upstream read them (the first 256) */
static char read_first[3][4096];

/*
 * serve_read - read what upstream up's connections sent; the number of queries. The pool's
 * probes of a silent connection (". NS") are read and left unanswered, and not counted, as
 * sent() does not count them.
 */
static inline size_t serve_read(size_t up)
{
	size_t total = 0;

	for (size_t i = 0; i < FAKE_MAX; i++) {
		struct fake_conn *f = &fakes[i];
		const uint8_t *msg;
		size_t off = 0, len;
		ssize_t n;

		if (!f->live || f->up != up || f->peer < 0)
			continue;
		while ((n = read(f->peer, f->in + f->in_len, sizeof(f->in) - f->in_len)) > 0) {
			f->in_len += (size_t)n;
			off = 0;
			while (dns_frame_next(f->in, f->in_len, &off, &msg, &len) > 0) {
				if (len > DNS_HDR_LEN && msg[DNS_HDR_LEN] == 0)
					continue; /* a probe: the root name */
				f->ids[f->n_ids++] = dns_get16(msg);
				if (reads[up] < sizeof(read_first[up]) && len > DNS_HDR_LEN + 1)
					read_first[up][reads[up]] = (char)msg[DNS_HDR_LEN + 1];
				total++;
				reads[up]++;
			}
			memmove(f->in, f->in + off, f->in_len - off);
			f->in_len -= off;
		}
	}
	return total;
}

/*
 * fake_answer_frame - at frame, the framed answer to query id, its name's first letter first
 * ('f': foo.test, as asked); where the next frame goes.
 */
static inline uint8_t *fake_answer_frame(uint8_t *frame, uint16_t id, char first)
{
	dns_put16(frame, sizeof(query));
	memcpy(frame + 2, query, sizeof(query));
	dns_put16(frame + 2, id);
	frame[4] |= 0x80; /* QR */
	frame[2 + DNS_HDR_LEN + 1] = (uint8_t)first;
	return frame + 2 + sizeof(query);
}

/* serve_answer - answer every query read on upstream up's connections, in one write. */
static inline size_t serve_answer(size_t up, bool bad)
{
	static uint8_t out[2048 * (2 + sizeof(query))];
	size_t total = 0;

	for (size_t i = 0; i < FAKE_MAX; i++) {
		struct fake_conn *f = &fakes[i];
		uint8_t *frame = out;

		if (!f->live || f->up != up || f->peer < 0)
			continue;
		/* bad: goo.test, another question than the one asked */
		for (size_t k = 0; k < f->n_ids; k++)
			frame = fake_answer_frame(frame, f->ids[k], bad ? 'g' : 'f');
		if (frame > out)
			CHECK_EQ(write(f->peer, out, (size_t)(frame - out)), frame - out);
		total += f->n_ids;
		f->n_ids = 0;
	}
	return total;
}

/* serve_hangup - the upstream closes its connections (a restart: a clean close). */
static inline void serve_hangup(size_t up)
{
	for (size_t i = 0; i < FAKE_MAX; i++)
		if (fakes[i].live && fakes[i].up == up && fakes[i].peer >= 0) {
			close(fakes[i].peer);
			fakes[i].peer = -1;
			fakes[i].n_ids = 0;
		}
}

static struct loop *loop;
static struct loop_timer stopper;

static void stop(struct loop_timer *t)
{
	(void)t;
	loop_stop(loop);
}

/* clock_ms - CLOCK_MONOTONIC milliseconds read afresh, as the loop reads them. */
static inline uint64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * How long SPIN_UNTIL waits for what must come: events that take microseconds here, so only a
 * machine that does not run this test for seconds (or a bug) reaches it.
 */
#define SPIN_LIMIT_MS 3000

/*
 * spin_turn - one turn of the loop, a millisecond or so: connections open, queries leave,
 * answers land, timers due fire. Past end_ms, none: it records a failure of the wait for
 * what (at file:line) and returns false.
 */
static inline bool spin_turn(uint64_t end_ms, const char *what, const char *file, int line)
{
	if (clock_ms() >= end_ms) {
		check_failed++;
		fprintf(stderr, "%s:%d: gave up after %d ms waiting for: %s\n", file, line,
			SPIN_LIMIT_MS, what);
		return false;
	}
	loop_timer_init(&stopper, stop);
	loop_timer_set(loop, &stopper, clock_ms() + 1);
	loop_run(loop);
	return true;
}

/*
 * SPIN_UNTIL - run the loop until cond holds (evaluated before each turn), SPIN_LIMIT_MS at
 * most, then a failure. The checks that follow read the state cond waited for, however slowly
 * the machine ran the loop; where a check says something did not happen, the comment there
 * says why waiting for cond is enough.
 */
#define SPIN_UNTIL(cond)                                                           \
	do {                                                                       \
		uint64_t spin_end_ = clock_ms() + SPIN_LIMIT_MS;                   \
		while (!(cond) && spin_turn(spin_end_, #cond, __FILE__, __LINE__)) \
			;                                                          \
	} while (0)

#endif

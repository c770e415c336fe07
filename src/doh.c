/*
 * doh.c - DNS-over-HTTPS upstream transport: HTTP/2 through libnghttp2 over tls.c; see doh.h.
 *
 * Two layers:
 * - The session (struct doh_session) is sans-I/O: DoT frames in (doh_session_submit), HTTP/2
 *   octets out (doh_session_output), decrypted octets in (doh_session_recv), DoT frames out
 *   (doh_session_take). The fuzzer drives it directly.
 * - The transport (struct doh_conn) moves the session's octets through a tls_conn, in the
 *   event loop of upstream.c: nothing here blocks or polls.
 *
 * Invariants:
 * - Every libnghttp2 call that has a ssize_t form goes through doh_h2_recv/doh_h2_send (one
 *   place to move to the *2 API of nghttp2 1.58 and later).
 * - The stream close callback never returns an error: before nghttp2 1.55.1 doing so leaks
 *   the stream (GHSA-6pcr-v3hg-752p).
 * - Each query lives in one struct doh_stream from submit to the close of the session: its
 *   body (id 0) is kept for resubmission; the stream list owns them.
 * - An answer is framed back only once per query, with the query's id: for a 200 status and a
 *   body of one DNS message; else as a counted SERVFAIL header, whose id is also kept in
 *   failed[] until doh_session_failed() claims it (upstream.c may send the query elsewhere).
 * - The session's output is bounded (DOH_OUT_MAX): writes are refused, not buffered, beyond it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <nghttp2/nghttp2.h>

#include "dotgw/config.h"
#include "dotgw/dns.h"
#include "dotgw/doh.h"
#include "dotgw/log.h"
#include "dotgw/tls.h"

#define DOH_OUT_MAX	(256u << 10) /* HTTP/2 octets waiting for TLS at most */
#define DOH_READ_BUF	(16u << 10)
#define DOH_MAX_REFUSED 3 /* times one query is sent again after REFUSED_STREAM */
#define DOH_AUTH_MAX	(CONFIG_AUTH_NAME_MAX + INET6_ADDRSTRLEN + 8)

struct doh_stream {
	TAILQ_ENTRY(doh_stream) link;
	int32_t id;	 /* the HTTP/2 stream id (0: not submitted) */
	uint16_t qid;	 /* the DNS id to put back into the answer */
	uint8_t refused; /* times sent again after REFUSED_STREAM */
	bool done;	 /* answered or lost: nothing more comes on this stream */
	bool resubmit;	 /* refused: to be sent again after the current receive */
	int status;
	size_t sent; /* body octets handed to nghttp2 */
	uint8_t *ans;
	size_t alen, acap;
	size_t qlen;
	uint8_t q[]; /* the query, id 0 */
};

/* The DoH counters (struct doh_counters, in its order): process-wide, and per upstream. */
enum {
	DOH_C_QUERIES,
	DOH_C_ANSWERS,
	DOH_C_ERRORS,
	DOH_C_REFUSED,
	DOH_C_GOAWAYS,
	DOH_C_PINGS,
	DOH_C_N
};

struct doh_up_counters {
	_Atomic uint64_t v[DOH_C_N];
};

struct doh_session {
	nghttp2_session *h2;
	struct doh_up_counters *uc; /* its upstream's counters (NULL: none, as in the fuzzer) */
	TAILQ_HEAD(, doh_stream) streams;
	unsigned int n_resubmit, n_over; /* streams to send again; streams over, not reaped */
	uint8_t *out;			 /* HTTP/2 octets for the wire */
	size_t out_off, out_len, out_cap;
	uint8_t *in; /* framed answers for upstream.c */
	size_t in_off, in_len, in_cap;
	bool goaway, pong, failed;
	int32_t last_id;      /* GOAWAY's last-stream-id */
	uint16_t *failed_ids; /* ids of the SERVFAIL headers framed for failed streams, unclaimed */
	size_t n_failed, cap_failed;
	char authority[DOH_AUTH_MAX];
	const char *path;
};

struct doh_conn {
	struct tls_conn *tls;
	struct doh_session *s; /* NULL: a DoT upstream, everything passes to tls.c */
	const struct upstream_config *u;
	struct doh_up_counters *uc; /* its upstream's, in the context */
};

struct doh_ctx {
	struct tls_ctx *tls;
	const struct upstream_config *ups;
	/* the DoT upstreams' DoH fallbacks (port 443, their doh_fallback path), and a context
	 * of their own (sessions differ by port), NULL when no upstream has one */
	struct tls_ctx *fb_tls;
	struct upstream_config *fb;
	/* per upstream (the fallback counts as its DoT upstream), written by the pool's worker,
	 * read by metrics */
	struct doh_up_counters *uc;
	size_t n_uc;
};

static struct doh_up_counters doh_total;

/* doh_count - one more of counter k, process-wide and for s's upstream. */
static void doh_count(struct doh_session *s, unsigned int k)
{
	atomic_fetch_add_explicit(&doh_total.v[k], 1, memory_order_relaxed);
	if (s->uc)
		atomic_fetch_add_explicit(&s->uc->v[k], 1, memory_order_relaxed);
}

/* doh_counters_add - add the counters of uc to *c. */
static void doh_counters_add(const struct doh_up_counters *uc, struct doh_counters *c)
{
	uint64_t v[DOH_C_N];

	for (unsigned int k = 0; k < DOH_C_N; k++)
		v[k] = atomic_load_explicit(&uc->v[k], memory_order_relaxed);
	c->queries += v[DOH_C_QUERIES];
	c->answers += v[DOH_C_ANSWERS];
	c->errors += v[DOH_C_ERRORS];
	c->refused += v[DOH_C_REFUSED];
	c->goaways += v[DOH_C_GOAWAYS];
	c->pings += v[DOH_C_PINGS];
}

void doh_stats(struct doh_counters *c)
{
	doh_counters_add(&doh_total, c);
}

bool doh_path_valid(const char *path)
{
	size_t len = strlen(path);

	if (len == 0 || len > CONFIG_DOH_PATH_MAX || path[0] != '/')
		return false;
	for (; *path; path++)
		if (*path <= ' ' || *path > '~' || *path == '#' || *path == '?')
			return false;
	return true;
}

int doh_fake_servfail(uint8_t out[12], const uint8_t *q, size_t len)
{
	if (len < DNS_HDR_LEN)
		return -EINVAL;
	memset(out, 0, DNS_HDR_LEN);
	out[0] = q[0];
	out[1] = q[1];
	out[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD */
	out[3] = DNS_RCODE_SERVFAIL;
	return 0;
}

int doh_answer_check(int status, const uint8_t *body, size_t len)
{
	struct dns_msg m;

	if (status != 200 || len < DNS_HDR_LEN || len > DNS_MAX_MSG)
		return -EPROTO;
	/* one whole message: dns_msg_parse rejects trailing octets */
	if (dns_msg_parse(&m, body, len) < 0 || !(m.flags & DNS_FLAG_QR))
		return -EPROTO;
	return 0;
}

/* --- the sans-I/O session ------------------------------------------------------------- */

/* doh_h2_recv, doh_h2_send - the ssize_t API of nghttp2 1.52, in one place each. */
static int doh_h2_recv(nghttp2_session *h2, const uint8_t *buf, size_t len)
{
	ssize_t n = nghttp2_session_mem_recv(h2, buf, len);

	return n < 0 || (size_t)n != len ? -EPROTO : 0;
}

static long doh_h2_send(nghttp2_session *h2, const uint8_t **data)
{
	ssize_t n = nghttp2_session_mem_send(h2, data);

	return n < 0 ? -EPROTO : (long)n;
}

/* doh_buf_append - append len octets to a growable buffer; 0 or -ENOMEM/-ENOBUFS past max. */
static int doh_buf_append(uint8_t **buf, size_t *off, size_t *len, size_t *cap, const void *p,
			  size_t n, size_t max)
{
	if (n == 0)
		return 0;
	if (*off && *off == *len)
		*off = *len = 0;
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 4096;
		uint8_t *nb;

		if (*off) {
			memmove(*buf, *buf + *off, *len - *off);
			*len -= *off;
			*off = 0;
		}
		while (c < *len + n)
			c *= 2;
		if (c > max && *len + n > max)
			return -ENOBUFS;
		if (c > *cap) {
			nb = realloc(*buf, c);
			if (!nb)
				return -ENOMEM;
			*buf = nb;
			*cap = c;
		}
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

static void doh_session_note_failed(struct doh_session *s, uint16_t qid);

/* doh_session_pump - move everything nghttp2 wants to send into s->out. 0 or -errno. */
static int doh_session_pump(struct doh_session *s)
{
	for (;;) {
		const uint8_t *data;
		long n = doh_h2_send(s->h2, &data);
		int r;

		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0;
		/* nghttp2 has produced it already: keep it even over the limit (the limit is
		 * enforced where queries come in) */
		r = doh_buf_append(&s->out, &s->out_off, &s->out_len, &s->out_cap, data, (size_t)n,
				   SIZE_MAX);
		if (r < 0)
			return r;
	}
}

/* doh_session_frame - frame one answer msg (or SERVFAIL header) for upstream.c, its id st's. */
static int doh_session_frame(struct doh_session *s, struct doh_stream *st, const uint8_t *msg,
			     size_t len)
{
	uint8_t hdr[4];
	int r;

	dns_put16(hdr, (uint16_t)len);
	dns_put16(hdr + 2, st->qid);
	r = doh_buf_append(&s->in, &s->in_off, &s->in_len, &s->in_cap, hdr, 4, SIZE_MAX);
	if (r == 0)
		r = doh_buf_append(&s->in, &s->in_off, &s->in_len, &s->in_cap, msg + 2, len - 2,
				   SIZE_MAX);
	return r;
}

static ssize_t doh_read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
			     uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct doh_stream *st = src->ptr;
	size_t n = st->qlen - st->sent;

	(void)h2;
	(void)id;
	(void)user;
	if (n > len)
		n = len;
	memcpy(buf, st->q + st->sent, n);
	st->sent += n;
	if (st->sent == st->qlen)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

#define DOH_NV(n, v, vl)                                                                        \
	{                                                                                       \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, vl, NGHTTP2_NV_FLAG_NO_COPY_NAME \
	}

/* doh_stream_submit - open (or reopen) st's request. 0 or -errno. */
static int doh_stream_submit(struct doh_session *s, struct doh_stream *st)
{
	char clen[8];
	nghttp2_nv nv[] = {
		DOH_NV(":method", "POST", 4),
		DOH_NV(":scheme", "https", 5),
		DOH_NV(":authority", s->authority, strlen(s->authority)),
		DOH_NV(":path", s->path, strlen(s->path)),
		DOH_NV("content-type", "application/dns-message", 23),
		DOH_NV("accept", "application/dns-message", 23),
		DOH_NV("content-length", clen, 0),
	};
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = doh_read_body};
	int32_t id;

	nv[6].valuelen = (size_t)snprintf(clen, sizeof(clen), "%zu", st->qlen);
	st->sent = 0;
	st->status = 0;
	st->alen = 0;
	st->done = false;
	id = nghttp2_submit_request(s->h2, NULL, nv, sizeof(nv) / sizeof(nv[0]), &prd, st);
	if (id < 0)
		return id == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
	st->id = id;
	doh_count(s, DOH_C_QUERIES);
	return 0;
}

static int doh_on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
			 size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
			 void *user)
{
	struct doh_stream *st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);

	(void)flags;
	(void)user;
	if (!st || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		int v = 0;

		for (size_t i = 0; i < valuelen && i < 3; i++)
			v = v * 10 + (value[i] - '0');
		if (valuelen != 3 || v < 100)
			v = -1;
		/* interim 1xx responses are followed by the real one */
		if (v < 100 || v >= 200)
			st->status = v;
	}
	return 0;
}

static int doh_on_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
		       size_t len, void *user)
{
	struct doh_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	size_t dummy = 0;

	(void)flags;
	(void)user;
	if (!st || st->done)
		return 0;
	if (!st->alen) {
		/* room for the two octets of DoT framing ahead of the body */
		st->alen = 2;
	}
	if (st->alen + len > 2 + DNS_MAX_MSG) {
		st->status = -1; /* longer than a DNS message: a counted error at close */
		return 0;
	}
	if (doh_buf_append(&st->ans, &dummy, &st->alen, &st->acap, data, len, 2 + DNS_MAX_MSG) < 0)
		st->status = -1;
	return 0;
}

/*
 * doh_on_close - a stream ended. Never returns an error (see the file's comment): whatever
 * goes wrong is the query's, and answered SERVFAIL, or the session's (s->failed).
 */
static int doh_on_close(nghttp2_session *h2, int32_t id, uint32_t error, void *user)
{
	struct doh_session *s = user;
	struct doh_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	uint8_t fake[DNS_HDR_LEN];

	if (!st || st->done || st->id != id)
		return 0;
	st->done = true;
	s->n_over++;
	if (error == NGHTTP2_REFUSED_STREAM || (s->goaway && id > s->last_id)) {
		/* not processed (RFC 9113 8.7): safe to send again */
		if (!s->goaway && st->refused < DOH_MAX_REFUSED) {
			st->refused++;
			st->resubmit = true;
			s->n_resubmit++;
			doh_count(s, DOH_C_REFUSED);
		}
		/* after GOAWAY upstream.c sends it elsewhere when the connection closes */
		return 0;
	}
	if (error == NGHTTP2_NO_ERROR && st->alen > 2 &&
	    doh_answer_check(st->status, st->ans + 2, st->alen - 2) == 0) {
		doh_count(s, DOH_C_ANSWERS);
		if (doh_session_frame(s, st, st->ans + 2, st->alen - 2) < 0)
			s->failed = true;
	} else {
		doh_count(s, DOH_C_ERRORS);
		log_debug("doh: stream %d ended with status %d, error %u, %zu octets: SERVFAIL", id,
			  st->status, error, st->alen > 2 ? st->alen - 2 : 0);
		if (doh_fake_servfail(fake, st->q, st->qlen) < 0 ||
		    doh_session_frame(s, st, fake, sizeof(fake)) < 0)
			s->failed = true;
		else
			doh_session_note_failed(s, st->qid);
	}
	free(st->ans);
	st->ans = NULL;
	st->alen = st->acap = 0;
	return 0;
}

/* doh_session_note_failed - remember qid as a failed stream's; without memory, it is not. */
static void doh_session_note_failed(struct doh_session *s, uint16_t qid)
{
	if (s->n_failed == s->cap_failed) {
		size_t cap = s->cap_failed ? 2 * s->cap_failed : 16;
		uint16_t *p = realloc(s->failed_ids, cap * sizeof(*p));

		if (!p)
			return; /* a plain SERVFAIL then, as the answer says */
		s->failed_ids = p;
		s->cap_failed = cap;
	}
	s->failed_ids[s->n_failed++] = qid;
}

bool doh_session_failed(struct doh_session *s, uint16_t id)
{
	for (size_t i = 0; i < s->n_failed; i++)
		if (s->failed_ids[i] == id) {
			s->failed_ids[i] = s->failed_ids[--s->n_failed];
			return true;
		}
	return false;
}

static int doh_on_frame(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct doh_session *s = user;

	(void)h2;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		if (!s->goaway)
			doh_count(s, DOH_C_GOAWAYS);
		s->goaway = true;
		s->last_id = frame->goaway.last_stream_id;
	} else if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
		s->pong = true;
	}
	return 0;
}

static int doh_on_not_sent(nghttp2_session *h2, const nghttp2_frame *frame, int error, void *user)
{
	(void)h2;
	(void)frame;
	(void)error;
	(void)user;
	/* a request that could not start (GOAWAY): upstream.c sends it elsewhere at the close */
	return 0;
}

void doh_session_free(struct doh_session *s)
{
	struct doh_stream *st;

	if (!s)
		return;
	nghttp2_session_del(s->h2);
	while ((st = TAILQ_FIRST(&s->streams))) {
		TAILQ_REMOVE(&s->streams, st, link);
		free(st->ans);
		free(st);
	}
	free(s->out);
	free(s->in);
	free(s->failed_ids);
	free(s);
}

/*
 * doh_session_new - a client session for upstream u (its auth name or address is the
 * :authority, its path the :path), with the connection preface and SETTINGS queued.
 * 0 or -ENOMEM.
 */
int doh_session_new(struct doh_session **out, const struct upstream_config *u)
{
	nghttp2_settings_entry set[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
	};
	nghttp2_session_callbacks *cb;
	struct doh_session *s;
	const union sockaddr_any *a = (const union sockaddr_any *)&u->addr;
	char ip[INET6_ADDRSTRLEN];
	uint16_t port = addr_port(a);
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	TAILQ_INIT(&s->streams);
	s->path = u->doh_path;
	if (u->auth_name[0]) {
		snprintf(s->authority, sizeof(s->authority), "%s", u->auth_name);
	} else {
		inet_ntop(a->sa.sa_family, addr_bytes(a), ip, sizeof(ip));
		snprintf(s->authority, sizeof(s->authority),
			 a->sa.sa_family == AF_INET6 ? "[%s]" : "%s", ip);
	}
	if (port != 443) {
		size_t l = strlen(s->authority);

		snprintf(s->authority + l, sizeof(s->authority) - l, ":%u", (unsigned int)port);
	}
	if (nghttp2_session_callbacks_new(&cb) != 0) {
		free(s);
		return -ENOMEM;
	}
	nghttp2_session_callbacks_set_on_header_callback(cb, doh_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, doh_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, doh_on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, doh_on_frame);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, doh_on_not_sent);
	r = nghttp2_session_client_new(&s->h2, cb, s);
	nghttp2_session_callbacks_del(cb);
	if (r != 0) {
		free(s);
		return -ENOMEM;
	}
	r = nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, set, sizeof(set) / sizeof(set[0]));
	if (r == 0)
		r = nghttp2_session_set_local_window_size(s->h2, NGHTTP2_FLAG_NONE, 0, 4u << 20);
	if (r != 0 || doh_session_pump(s) < 0) {
		doh_session_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

/*
 * doh_session_submit - take whole DoT frames (2-octet length, query) from buf, each a request.
 * Returns the octets taken (0: no room now, the output is full or the server sent GOAWAY),
 * or -EPROTO (a cut frame) / -ENOMEM.
 */
int doh_session_submit(struct doh_session *s, const uint8_t *buf, size_t len)
{
	size_t off = 0;
	int r;

	if (s->goaway || s->failed)
		return s->failed ? -EPROTO : 0;
	while (off + 2 <= len && s->out_len - s->out_off < DOH_OUT_MAX) {
		size_t qlen = dns_get16(buf + off);
		struct doh_stream *st;

		if (qlen < DNS_HDR_LEN || off + 2 + qlen > len)
			return -EPROTO;
		st = calloc(1, sizeof(*st) + qlen);
		if (!st)
			return off ? (int)off : -ENOMEM;
		memcpy(st->q, buf + off + 2, qlen);
		st->qlen = qlen;
		st->qid = dns_get16(st->q);
		dns_put16(st->q, 0); /* RFC 8484 4.1: id 0, for HTTP caches */
		r = doh_stream_submit(s, st);
		if (r < 0) {
			free(st);
			return off ? (int)off : r;
		}
		TAILQ_INSERT_TAIL(&s->streams, st, link);
		off += 2 + qlen;
	}
	if (off + 2 > len && off < len)
		return -EPROTO;
	r = doh_session_pump(s);
	return r < 0 ? r : (int)off;
}

/* doh_session_reap - free the streams that are over (answered, or lost to GOAWAY). */
static void doh_session_reap(struct doh_session *s)
{
	struct doh_stream *st, *next;

	s->n_over = 0;
	for (st = TAILQ_FIRST(&s->streams); st; st = next) {
		next = TAILQ_NEXT(st, link);
		if (st->resubmit && !s->goaway) {
			st->resubmit = false;
			s->n_resubmit--;
			if (doh_stream_submit(s, st) == 0)
				continue;
			s->failed = true;
		}
		if (st->done || (s->goaway && st->id > s->last_id)) {
			if (st->resubmit)
				s->n_resubmit--;
			/* streams lost to GOAWAY stay known to nghttp2 no longer: drop them */
			if (st->id && nghttp2_session_get_stream_user_data(s->h2, st->id) == st)
				nghttp2_session_set_stream_user_data(s->h2, st->id, NULL);
			TAILQ_REMOVE(&s->streams, st, link);
			free(st->ans);
			free(st);
		}
	}
}

/*
 * doh_session_recv - feed decrypted octets from the server. Answers become available to
 * doh_session_take; replies of the session (SETTINGS and PING acks, window updates, requests
 * sent again) are queued for the wire. 0, or -EPROTO (the session is broken).
 */
int doh_session_recv(struct doh_session *s, const uint8_t *buf, size_t len)
{
	int r = doh_h2_recv(s->h2, buf, len);

	if (r < 0)
		return r;
	if (s->n_resubmit || s->n_over || s->goaway)
		doh_session_reap(s);
	if (s->failed)
		return -EPROTO;
	return doh_session_pump(s);
}

size_t doh_session_output(struct doh_session *s, const uint8_t **p)
{
	if (s->out_len == s->out_off) {
		*p = NULL;
		return 0;
	}
	*p = s->out + s->out_off;
	return s->out_len - s->out_off;
}

void doh_session_consumed(struct doh_session *s, size_t n)
{
	s->out_off += n;
	if (s->out_off >= s->out_len)
		s->out_off = s->out_len = 0;
}

/* doh_session_take - copy up to len octets of framed answers into buf; returns the count. */
size_t doh_session_take(struct doh_session *s, uint8_t *buf, size_t len)
{
	size_t n = s->in_len - s->in_off;

	if (n == 0)
		return 0;
	if (n > len)
		n = len;
	memcpy(buf, s->in + s->in_off, n);
	s->in_off += n;
	if (s->in_off == s->in_len)
		s->in_off = s->in_len = 0;
	return n;
}

/*
 * doh_session_over - no answer can come any more: after GOAWAY, every stream the server
 * processed has ended and been taken; or the session wants neither to read nor to write.
 */
bool doh_session_over(struct doh_session *s)
{
	struct doh_stream *st;

	if (s->in_len > s->in_off)
		return false;
	if (!nghttp2_session_want_read(s->h2) && !nghttp2_session_want_write(s->h2))
		return true;
	if (!s->goaway)
		return false;
	TAILQ_FOREACH(st, &s->streams, link)
		if (!st->done && st->id && st->id <= s->last_id)
			return false;
	return true;
}

/* --- the transport --------------------------------------------------------------------- */

static void doh_ctx_free(struct tls_ctx *ctx);

/* doh_ctx_fallbacks - the DoH fallbacks of cfg's DoT upstreams that have one. 0 or -ENOMEM. */
static int doh_ctx_fallbacks(struct doh_ctx *d, const struct config *cfg)
{
	bool any = false;

	for (size_t i = 0; i < cfg->n_upstreams; i++)
		any |= cfg->upstreams[i].doh_fallback[0] != '\0';
	if (!any)
		return 0;
	d->fb = calloc(cfg->n_upstreams, sizeof(*d->fb));
	if (!d->fb)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		struct upstream_config *f = &d->fb[i];
		union sockaddr_any *a = (union sockaddr_any *)&f->addr;
		char ip[INET6_ADDRSTRLEN];

		*f = cfg->upstreams[i];
		if (!f->doh_fallback[0])
			continue;
		memcpy(f->doh_path, f->doh_fallback, sizeof(f->doh_path));
		addr_set_port(a, 443);
		inet_ntop(a->sa.sa_family, addr_bytes(a), ip, sizeof(ip));
		snprintf(f->text, sizeof(f->text), "https://%s%s%s:443%.64s%s%.170s",
			 a->sa.sa_family == AF_INET6 ? "[" : "", ip,
			 a->sa.sa_family == AF_INET6 ? "]" : "", f->doh_path,
			 f->auth_name[0] ? "#" : "", f->auth_name);
	}
	return tls_ctx_share(&d->fb_tls, cfg, d->tls, d->fb);
}

static int doh_ctx_new(struct tls_ctx **out, const struct config *cfg)
{
	struct doh_ctx *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	r = tls_ctx_new(&d->tls, cfg);
	if (r < 0) {
		free(d);
		return r;
	}
	d->ups = cfg->upstreams;
	d->n_uc = cfg->n_upstreams;
	d->uc = calloc(d->n_uc ? d->n_uc : 1, sizeof(*d->uc));
	r = d->uc ? doh_ctx_fallbacks(d, cfg) : -ENOMEM;
	if (r < 0) {
		doh_ctx_free((struct tls_ctx *)d);
		return r;
	}
	*out = (struct tls_ctx *)d;
	return 0;
}

static int doh_ctx_share(struct tls_ctx **out, const struct config *cfg, const struct tls_ctx *like,
			 const struct upstream_config *u)
{
	const struct doh_ctx *l = (const struct doh_ctx *)like;
	struct doh_ctx *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	d->uc = calloc(1, sizeof(*d->uc));
	d->n_uc = 1;
	r = d->uc ? tls_ctx_share(&d->tls, cfg, l->tls, u) : -ENOMEM;
	if (r < 0) {
		free(d->uc);
		free(d);
		return r;
	}
	d->ups = u;
	*out = (struct tls_ctx *)d;
	return 0;
}

static void doh_ctx_free(struct tls_ctx *ctx)
{
	struct doh_ctx *d = (struct doh_ctx *)ctx;

	if (!d)
		return;
	tls_ctx_free(d->fb_tls);
	tls_ctx_free(d->tls);
	free(d->fb);
	free(d->uc);
	free(d);
}

static int doh_open(struct tls_ctx *ctx, size_t up, struct tls_conn **out, bool *local)
{
	struct doh_ctx *d = (struct doh_ctx *)ctx;
	struct doh_conn *c = calloc(1, sizeof(*c));
	int r;

	bool fb = up & UPSTREAM_FALLBACK;

	*local = true;
	if (!c)
		return -ENOMEM;
	up &= ~UPSTREAM_FALLBACK;
	if (fb && (!d->fb || !d->fb[up].doh_path[0])) {
		free(c);
		return -EOPNOTSUPP;
	}
	r = tls_conn_open(fb ? d->fb_tls : d->tls, up, &c->tls, local);
	if (r < 0) {
		free(c);
		return r;
	}
	c->u = fb ? &d->fb[up] : &d->ups[up];
	c->uc = up < d->n_uc ? &d->uc[up] : NULL;
	*out = (struct tls_conn *)c;
	return 0;
}

static int doh_fd(const struct tls_conn *t)
{
	return tls_conn_fd(((const struct doh_conn *)t)->tls);
}

/* doh_flush - hand the session's output to TLS; 0 (done or would block) or -errno. */
static int doh_flush(struct doh_conn *c, bool *want_write)
{
	const uint8_t *p;
	size_t len;

	while ((len = doh_session_output(c->s, &p)) > 0) {
		int n = tls_conn_write(c->tls, p, len, want_write);

		if (n <= 0)
			return n;
		doh_session_consumed(c->s, (size_t)n);
	}
	return 0;
}

static int doh_handshake(struct tls_conn *t, bool *want_write, bool *local)
{
	struct doh_conn *c = (struct doh_conn *)t;
	int r = tls_conn_handshake(c->tls, want_write, local);

	if (r != 1 || !c->u->doh_path[0])
		return r;
	if (!tls_conn_alpn_h2(c->tls)) {
		log_warn("upstream %s: the server did not agree to HTTP/2 (ALPN h2)", c->u->text);
		return -EPROTO;
	}
	r = doh_session_new(&c->s, c->u);
	if (r < 0) {
		*local = true;
		return r;
	}
	c->s->uc = c->uc;
	return 1;
}

static int doh_write(struct tls_conn *t, const uint8_t *buf, size_t len, bool *want_write)
{
	struct doh_conn *c = (struct doh_conn *)t;
	int n, r;

	if (!c->s)
		return tls_conn_write(c->tls, buf, len, want_write);
	r = doh_flush(c, want_write);
	if (r < 0)
		return r;
	n = doh_session_submit(c->s, buf, len);
	if (n < 0)
		return n;
	r = doh_flush(c, want_write);
	if (r < 0)
		return r;
	if (n == 0 && !c->s->goaway)
		*want_write = true; /* the output is full: go on when the socket drains */
	return n;
}

static int doh_read(struct tls_conn *t, uint8_t *buf, size_t len, bool *want_write)
{
	struct doh_conn *c = (struct doh_conn *)t;
	struct doh_session *s = c->s;
	uint8_t raw[DOH_READ_BUF];
	int n, r;

	if (!s)
		return tls_conn_read(c->tls, buf, len, want_write);
	for (;;) {
		if (s->in_len > s->in_off)
			return (int)doh_session_take(s, buf, len);
		if (doh_session_over(s))
			return -ECONNRESET; /* upstream.c sends what it still holds elsewhere */
		r = doh_flush(c, want_write);
		if (r < 0)
			return r;
		n = tls_conn_read(c->tls, raw, sizeof(raw), want_write);
		if (n <= 0)
			return n;
		r = doh_session_recv(s, raw, (size_t)n);
		if (r < 0) {
			log_debug("upstream %s: HTTP/2 session failed", c->u->text);
			return r;
		}
		r = doh_flush(c, want_write);
		if (r < 0)
			return r;
	}
}

static bool doh_drained(const struct tls_conn *t)
{
	const struct doh_conn *c = (const struct doh_conn *)t;

	if (c->s && c->s->in_len > c->s->in_off)
		return false;
	return tls_conn_drained(c->tls);
}

static bool doh_failed(struct tls_conn *t, uint16_t id)
{
	struct doh_conn *c = (struct doh_conn *)t;

	return c->s && doh_session_failed(c->s, id);
}

static bool doh_resumed(const struct tls_conn *t)
{
	return tls_conn_resumed(((const struct doh_conn *)t)->tls);
}

static bool doh_unverified(const struct tls_conn *t)
{
	return tls_conn_unverified(((const struct doh_conn *)t)->tls);
}

static int doh_ping(struct tls_conn *t)
{
	struct doh_conn *c = (struct doh_conn *)t;
	bool want_write = false;

	if (!c->s)
		return 0; /* DoT: the DNS probe */
	if (nghttp2_submit_ping(c->s->h2, NGHTTP2_FLAG_NONE, NULL) != 0 ||
	    doh_session_pump(c->s) < 0)
		return -ENOMEM;
	doh_count(c->s, DOH_C_PINGS);
	/* best effort: a socket that cannot take it now gets it with the next I/O */
	return doh_flush(c, &want_write) < 0 ? -EIO : 1;
}

static bool doh_pong(struct tls_conn *t)
{
	struct doh_conn *c = (struct doh_conn *)t;
	bool p = c->s && c->s->pong;

	if (p)
		c->s->pong = false;
	return p;
}

static void doh_close(struct tls_conn *t, bool clean)
{
	struct doh_conn *c = (struct doh_conn *)t;

	if (!c)
		return;
	if (c->s && clean && !c->s->goaway) {
		bool want_write = false;

		/* best effort, as close_notify is */
		if (nghttp2_session_terminate_session(c->s->h2, NGHTTP2_NO_ERROR) == 0 &&
		    doh_session_pump(c->s) == 0)
			doh_flush(c, &want_write);
	}
	doh_session_free(c->s);
	tls_conn_close(c->tls, clean);
	free(c);
}

/* doh_snapshot - add the DoH counters of ctx's upstream up to *s. */
static void doh_snapshot(const struct tls_ctx *ctx, size_t up, struct upstream_snapshot *s)
{
	const struct doh_ctx *d = (const struct doh_ctx *)ctx;
	struct doh_counters c = {0};

	if (up >= d->n_uc)
		return;
	doh_counters_add(&d->uc[up], &c);
	s->doh_errors += c.errors;
	s->doh_refused += c.refused;
	s->doh_goaways += c.goaways;
	s->doh_pings += c.pings;
}

const struct upstream_transport doh_transport = {
	.ctx_new = doh_ctx_new,
	.ctx_share = doh_ctx_share,
	.ctx_free = doh_ctx_free,
	.open = doh_open,
	.fd = doh_fd,
	.handshake = doh_handshake,
	.write = doh_write,
	.read = doh_read,
	.drained = doh_drained,
	.resumed = doh_resumed,
	.unverified = doh_unverified,
	.close = doh_close,
	.ping = doh_ping,
	.pong = doh_pong,
	.snapshot = doh_snapshot,
	.failed = doh_failed,
};

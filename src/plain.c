/*
 * plain.c - unencrypted DNS client; see plain.h. Each query owns one non-blocking socket
 * (pq->watch.fd, -1 when none) from submit to complete or cancel, so that a query can never
 * take another one's answer, and its source port is as random as the kernel makes it. States:
 * PQ_UDP (sent, waiting for the datagram), PQ_TCP_CONNECT (waiting to write the framed query),
 * PQ_TCP_READ (reading the length and the answer). Before complete() runs the socket is closed
 * and the buffer freed (after complete(), when the answer is in it): complete() may free pq.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dotgw/plain.h"

enum { PQ_IDLE, PQ_UDP, PQ_TCP_CONNECT, PQ_TCP_READ };

struct plain {
	struct loop *loop;
	uint32_t mark;
	uint8_t buf[DNS_MAX_MSG]; /* UDP answers */
};

static void pq_event(struct loop_watch *w, uint32_t revents);

int plain_new(struct plain **out, struct loop *loop, uint32_t mark)
{
	struct plain *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->mark = mark;
	*out = p;
	return 0;
}

void plain_set_mark(struct plain *p, uint32_t mark)
{
	p->mark = mark;
}

void plain_free(struct plain *p)
{
	free(p);
}

/* pq_close - the query's socket and buffer go; nothing else. */
static void pq_close(struct plain_query *pq)
{
	if (pq->watch.fd >= 0) {
		loop_watch_del(pq->p->loop, &pq->watch);
		close(pq->watch.fd);
		pq->watch.fd = -1;
	}
	free(pq->buf);
	pq->buf = NULL;
	pq->state = PQ_IDLE;
}

void plain_cancel(struct plain_query *pq)
{
	if (pq->p)
		pq_close(pq);
}

/* pq_done - close pq's socket, then complete it; answer may lie in pq's TCP buffer, which is
 * freed only after complete() (which may free pq) returns. */
static void pq_done(struct plain_query *pq, const uint8_t *answer, const struct dns_msg *r, int err)
{
	uint8_t *buf = pq->buf;

	pq->buf = NULL;
	pq_close(pq);
	pq->complete(pq, answer, r, err); /* may free pq */
	free(buf);
}

/* pq_open - a socket of type to pq->dst, marked, connecting; 0 or -errno. */
static int pq_open(struct plain_query *pq, int type)
{
	int fd = socket(pq->dst.sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &pq->p->mark, sizeof(pq->p->mark)) < 0 ||
	    (connect(fd, &pq->dst.sa, addr_len(&pq->dst)) < 0 && errno != EINPROGRESS)) {
		r = -errno;
		close(fd);
		return r;
	}
	pq->watch.fd = fd;
	pq->watch.cb = pq_event;
	r = loop_watch_add(pq->p->loop, &pq->watch, type == SOCK_STREAM ? EPOLLOUT : EPOLLIN);
	if (r < 0) {
		close(fd);
		pq->watch.fd = -1;
	}
	return r;
}

/* pq_send - the query with our id, over the connected socket (TCP: framed), from pq->sent on;
 * 1 when all of it left, 0 when more must wait for EPOLLOUT, or -errno. */
static int pq_send(struct plain_query *pq, bool tcp)
{
	uint8_t head[4];
	struct iovec iov[2];
	size_t hl = 0, total;
	ssize_t n;

	if (tcp) {
		dns_put16(head, (uint16_t)pq->len);
		hl = 2;
	}
	dns_put16(head + hl, pq->id);
	hl += 2;
	total = hl + pq->len - 2;
	iov[0] = (struct iovec){head, hl};
	iov[1] = (struct iovec){(void *)(pq->msg + 2), pq->len - 2};
	if (pq->sent) { /* a partial TCP write: the rest */
		size_t s = pq->sent;

		if (s < hl) {
			iov[0].iov_base = head + s;
			iov[0].iov_len = hl - s;
		} else {
			iov[0].iov_len = 0;
			iov[1].iov_base = (void *)(pq->msg + 2 + (s - hl));
			iov[1].iov_len = total - s;
		}
	}
	n = writev(pq->watch.fd, iov, 2);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	pq->sent += (size_t)n;
	if (!tcp && pq->sent != total)
		return -EMSGSIZE;
	return pq->sent == total;
}

/* pq_answer - a message arrived: 1 when it is the answer (pq completed, maybe freed), 0 when it
 * is not ours (ignored), or -EAGAIN when it is truncated over UDP (TCP follows). */
static int pq_answer(struct plain_query *pq, const uint8_t *a, size_t len, bool tcp)
{
	struct dns_msg r;

	if (dns_msg_parse(&r, a, len) < 0) {
		if (!tcp)
			return 0; /* someone else's garbage: wait for ours */
		pq_done(pq, NULL, NULL, -EBADMSG);
		return 1;
	}
	if (r.id != pq->id || !(r.flags & DNS_FLAG_QR) || r.qdcount != pq->m->qdcount ||
	    (r.qdcount == 1 && !dns_question_equal(&r.q, &pq->m->q))) {
		if (!tcp)
			return 0;
		pq_done(pq, NULL, NULL, -EBADMSG);
		return 1;
	}
	if (!tcp && (r.flags & DNS_FLAG_TC))
		return -EAGAIN;
	pq_done(pq, a, &r, 0);
	return 1;
}

/* pq_tcp_start - the query again (or at first) over TCP; 0 or -errno. */
static int pq_tcp_start(struct plain_query *pq)
{
	pq_close(pq);
	pq->sent = pq->have = 0;
	pq->need = 2; /* the length first, into pq->head; then buf, as large as it says */
	pq->state = PQ_TCP_CONNECT;
	return pq_open(pq, SOCK_STREAM);
}

static void pq_udp_readable(struct plain_query *pq)
{
	struct plain *p = pq->p;

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(pq->watch.fd, p->buf, sizeof(p->buf), 0);
		int r;

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			pq_done(pq, NULL, NULL, -errno); /* e.g. ECONNREFUSED */
			return;
		}
		r = pq_answer(pq, p->buf, (size_t)n, false);
		if (r == 1)
			return;
		if (r == -EAGAIN) {
			r = pq_tcp_start(pq);
			if (r < 0)
				pq_done(pq, NULL, NULL, r);
			return;
		}
	}
}

static void pq_tcp_readable(struct plain_query *pq)
{
	uint8_t *to = pq->buf ? pq->buf : pq->head;
	ssize_t n = recv(pq->watch.fd, to + pq->have, pq->need - pq->have, 0);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			pq_done(pq, NULL, NULL, -errno);
		return;
	}
	if (n == 0) {
		pq_done(pq, NULL, NULL, -ECONNRESET);
		return;
	}
	pq->have += (size_t)n;
	if (pq->have < pq->need)
		return;
	if (!pq->buf) {
		pq->need = dns_get16(pq->head);
		pq->have = 0;
		if (pq->need < DNS_HDR_LEN) {
			pq_done(pq, NULL, NULL, -EBADMSG);
			return;
		}
		pq->buf = malloc(pq->need);
		if (!pq->buf)
			pq_done(pq, NULL, NULL, -ENOMEM);
		return;
	}
	pq_answer(pq, pq->buf, pq->need, true);
}

static void pq_event(struct loop_watch *w, uint32_t revents)
{
	struct plain_query *pq = container_of(w, struct plain_query, watch);
	int r, err = 0;
	socklen_t elen = sizeof(err);

	switch (pq->state) {
	case PQ_UDP:
		pq_udp_readable(pq);
		return;
	case PQ_TCP_CONNECT:
		if ((revents & (EPOLLERR | EPOLLHUP)) &&
		    getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err) {
			pq_done(pq, NULL, NULL, -err);
			return;
		}
		r = pq_send(pq, true);
		if (r < 0) {
			pq_done(pq, NULL, NULL, r);
		} else if (r == 1) {
			pq->state = PQ_TCP_READ;
			loop_watch_mod(pq->p->loop, w, EPOLLIN);
		}
		return;
	case PQ_TCP_READ:
		pq_tcp_readable(pq);
		return;
	default:
		return;
	}
}

void plain_submit(struct plain *p, struct plain_query *pq)
{
	int r;

	pq->p = p;
	pq->watch.fd = -1;
	pq->buf = NULL;
	pq->sent = 0;
	if (getrandom(&pq->id, sizeof(pq->id), GRND_NONBLOCK) != sizeof(pq->id))
		pq->id = (uint16_t)(loop_now_ms(p->loop) * 2654435761u >> 7);
	if (pq->len < DNS_HDR_LEN) {
		pq->complete(pq, NULL, NULL, -EINVAL);
		return;
	}
	if (pq->tcp) {
		r = pq_tcp_start(pq);
	} else {
		pq->state = PQ_UDP;
		r = pq_open(pq, SOCK_DGRAM);
		if (r == 0)
			r = pq_send(pq, false);
		r = r < 0 ? r : 0;
	}
	if (r < 0)
		pq_done(pq, NULL, NULL, r);
}

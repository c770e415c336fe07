/*
 * plain.h - unencrypted DNS to one address, for --forward SUFFIX=plain:ADDR (an internal
 * resolver without DoT, by explicit opt-in) and for TCP clients whose query goes to the
 * address they asked (--forward SUFFIX=asked). Each query gets a socket of its own, carrying
 * the bypass mark (so that host-scope capture does not take it back), a random id, and is
 * sent over UDP, again over TCP when the answer is truncated, or over TCP from the start. An
 * answer counts only if its id and question are the query's. The caller owns the deadline.
 */
#ifndef DOTGW_PLAIN_H
#define DOTGW_PLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/addr.h"
#include "dotgw/dns.h"
#include "dotgw/loop.h"

struct plain;

/* A query; the caller fills the public part and keeps it and msg alive until complete() runs
 * or plain_cancel() returns. */
struct plain_query {
	const uint8_t *msg; /* the query as the client sent it (its id is replaced) */
	size_t len;
	const struct dns_msg *m; /* the parsed query: the answer must carry its question */
	union sockaddr_any dst;	 /* the server, port included */
	bool tcp;		 /* over TCP from the start */
	/*
	 * Called exactly once, unless cancelled: with the answer (its id is ours, the buffer is
	 * valid during the call only) and its parsed view r, err 0; or answer and r NULL and
	 * -errno (the socket's error, -EBADMSG for an answer that does not parse, -ECONNRESET
	 * when the server closed).
	 */
	void (*complete)(struct plain_query *pq, const uint8_t *answer, const struct dns_msg *r,
			 int err);

	/* private to plain.c */
	struct plain *p;
	struct loop_watch watch;
	uint8_t *buf;	 /* TCP: the answer, once its length is known */
	uint8_t head[2]; /* TCP: the answer's length */
	size_t have, need, sent;
	uint16_t id;
	uint8_t state;
};

/* plain_new - the client for loop; its sockets carry mark (SO_MARK). 0 or -ENOMEM. */
int plain_new(struct plain **out, struct loop *loop, uint32_t mark);

/* plain_set_mark - the mark of sockets opened from now on. */
void plain_set_mark(struct plain *p, uint32_t mark);

/* plain_submit - send pq. complete() may run before this returns (no socket). */
void plain_submit(struct plain *p, struct plain_query *pq);

/* plain_cancel - forget pq (its deadline passed, its client went): its socket closes. */
void plain_cancel(struct plain_query *pq);

/* plain_free - the client; every query must be completed or cancelled. Accepts NULL. */
void plain_free(struct plain *p);

#endif

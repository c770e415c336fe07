/*
 * frontend.c - the life of each client query, from the TPROXY listeners or NFQUEUE to its
 * answer.
 *
 * Queries arrive on the transparent UDP listeners (the original destination from
 * IP(V6)_ORIGDSTADDR), from NFQUEUE (frontend_queue_packet), or as frames of TCP clients
 * (tcp_client.c hands them here). Where each answer goes is a struct reply_to: the TCP
 * client, or the UDP client and the address it asked (plus, for bridged clients, the
 * redirect's address); udp_reply.c sends UDP answers from that address.
 *
 * Every accepted query ends in exactly one answer or one counted drop: the upstream's answer,
 * SERVFAIL at the deadline or when no upstream is usable, FORMERR for messages that do not
 * parse. Whatever parses goes upstream, whatever its opcode or question count, so that the
 * answer is the upstream's own.
 * struct query owns its copy of the message and is freed by query_free() alone: from
 * query_finish(), or when its TCP client goes (tcp_client.c's drop callback), or at close.
 *
 * Bridged clients (ruleset.c) reach the listeners through a conntrack redirect instead of
 * TPROXY: their packets arrive addressed to this machine's address on the bridge and the
 * listener port. TCP needs nothing more (tcp_client.c reads SO_ORIGINAL_DST for dnstap). A
 * UDP answer must leave from the address the query was redirected to (reply_to.nat); the
 * conntrack entry gives the original destination for dnstap and debug logs.
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dotgw/addr.h"
#include "dotgw/cache.h"
#include "dotgw/conntrack.h"
#include "dotgw/ddr.h"
#include "dotgw/dns.h"
#include "dotgw/dnstap.h"
#include "dotgw/egress_gate.h"
#include "dotgw/forward.h"
#include "dotgw/frontend.h"
#include "dotgw/iftab.h"
#include "dotgw/inflight.h"
#include "dotgw/localzone.h"
#include "dotgw/log.h"
#include "dotgw/pkt.h"
#include "dotgw/plain.h"
#include "dotgw/prefetch.h"
#include "dotgw/ratelimit.h"
#include "dotgw/tcp_client.h"
#include "dotgw/udp_reply.h"
#include "dotgw/unreachable.h"

#define UDP_BATCH     32
#define UDP_QUERY_MAX 4096u /* larger datagrams are not DNS queries */

/* Where an answer goes. */
struct reply_to {
	struct tcp_client *tc;	   /* TCP: the client (then nothing else is set); NULL: UDP */
	union sockaddr_any client; /* UDP: the client... */
	union sockaddr_any odst;   /* ...the address it asked... */
	union sockaddr_any nat;	   /* ...and, redirected from a bridge, where to (else family 0) */
};

struct query {
	struct upstream_query uq;
	struct loop_timer deadline;
	struct frontend *fe;
	LIST_ENTRY(query) link; /* every query in flight */
	struct tcp_work work;	/* TCP: its place among the client's frames in work */
	struct reply_to to;
	struct dns_msg m;	    /* the parsed query */
	struct cache *cache;	    /* where its answer goes (NULL: nowhere) */
	struct upstream_pool *pool; /* where it was sent (a reload may bring a new one) */
	struct ddr_pool *ddr;	    /* --upstream asked: the designated resolver's (else NULL) */
	uint64_t start_ms;
	size_t udp_limit;
	unsigned int ifindex;	    /* where it came in (0: unknown), for the client's group */
	struct inflight_wait share; /* its client's share (fe->shares); the ready list's links */
	uint8_t held;		    /* QUERY_RUNNING, QUERY_WAITING or QUERY_READY */
	uint8_t route;		 /* ROUTE_DEFAULT or ROUTE_DOT: uq; ROUTE_PLAIN, ROUTE_RELAY: pq */
	struct plain_query pq;	 /* unencrypted forwarding (forward.h) */
	char via[128];		 /* where a --forward rule sent it, for the logs ("": nowhere) */
	struct egress_hold hold; /* --egress: the answer waits for the group's sets... */
	uint8_t *egress_ans;	 /* ...this copy of it (NULL: not waiting) */
	size_t egress_len;
	const char *egress_via;
	uint16_t len;
	uint8_t msg[];
};

/*
 * A query beyond its client's in-flight share waits (in fe->shares) until one of the client's
 * earlier queries ends; it is then ready, and a deferred call sends it upstream.
 */
enum { QUERY_RUNNING, QUERY_WAITING, QUERY_READY, QUERY_HELD };

/*
 * QUERY_HELD: a query answered SERVFAIL at its deadline while the upstream still works on it
 * (upstream_query_abandon). It keeps its place in its client's share and in --max-inflight
 * until the upstream ends it (its late answer, its connection's close) or --hold-timeout
 * passes: a client asking names that the upstream cannot resolve soon thus has no more of them
 * open there than its share, instead of a share more at every deadline, which piled up in the
 * upstream's request list until other clients' queries were dropped there. A close for
 * silence while the upstream answers on its other connections (complete() with -ETIMEDOUT)
 * does not end the hold: the upstream may still work on the query.
 */

/*
 * Where a query goes (query_route): the configured upstreams (DEFAULT), one DoT upstream
 * (DOT), unencrypted to a --forward plain: target (PLAIN) or, for TCP clients, to the address
 * they asked (RELAY); or nowhere, answered or sent on already (DONE), or let pass (PASS:
 * NFQUEUE's accept verdict).
 */
enum { ROUTE_DEFAULT, ROUTE_DOT, ROUTE_PLAIN, ROUTE_RELAY, ROUTE_DONE, ROUTE_PASS };

struct listener {
	struct frontend *fe;
	struct loop_watch watch;
};

struct frontend {
	struct loop *loop;
	const struct config *cfg;
	struct upstream_pool *pool;
	struct stats *stats;
	struct cache *cache; /* NULL: no cache */
	/* groups with upstreams of their own keep their answers apart: one cache each */
	struct cache *group_cache[POLICY_MAX_GROUPS];
	struct cache *fwd_cache[FORWARD_MAX_TARGETS]; /* one per --forward target (asked: none) */
	bool caches_shared;	    /* the caches are cfg->shared_caches': not ours to free */
	struct plain *plain;	    /* unencrypted forwarding */
	struct ratelimit *rl;	    /* NULL: no rate limit */
	struct inflight *shares;    /* each client's queries in flight (NULL: no memory) */
	struct inflight_list ready; /* queries whose turn came, linked through share */
	struct loop_defer ready_defer;
	struct dnstap_queue *dnstap;	 /* NULL: no dnstap */
	struct ddr *ddr;		 /* --upstream asked (kept once made: queries may use it) */
	struct nftset_link *egress_link; /* --egress: the sets' socket (NULL: no egress) */
	struct egress_gate *egress;	 /* made once a group has egress policy */
	struct prefetch *prefetch;	 /* cache refreshes in flight (--prefetch) */
	struct listener udp[2];
	struct udp_reply *udp_reply;
	struct tcp_clients *tcp; /* NULL: no TCP listeners (nor adopted clients) */
	struct conntrack *ct;	 /* original destinations of redirected UDP; NULL: not known */
	LIST_HEAD(, query) queries;
	_Atomic unsigned int inflight; /* also read by the metrics thread (frontend_inflight) */
	_Atomic unsigned int held;     /* of them, QUERY_HELD: their clients have their answer */
	struct log_ratelimit rl_malformed, rl_recv, rl_ct;
	/* UDP receive batch */
	struct mmsghdr mmsg[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	union sockaddr_any from[UDP_BATCH];
	uint8_t ctrl[UDP_BATCH][CMSG_SPACE(sizeof(struct sockaddr_in6)) +
				CMSG_SPACE(sizeof(struct in6_pktinfo))];
	bool want_ifindex;   /* some client group names an interface */
	struct iftab *iftab; /* interface names by index, when want_ifindex (NULL: none yet) */
	struct loop_watch iftab_watch;
	struct unreachable_probe probe; /* --unreachable plaintext: upstreams tried meanwhile */
	uint8_t bufs[UDP_BATCH][UDP_QUERY_MAX];
	uint8_t reply[DNS_MAX_MSG];
};

static int frontend_iftab_open(struct frontend *fe);
static void frontend_egress_renew(struct frontend *fe, const struct config *cfg);
static int query_group(const struct query *q);
static struct query *query_new(struct frontend *fe, const uint8_t *msg, size_t len,
			       const struct dns_msg *m, const struct reply_to *to, bool share);
static bool answer_police(struct frontend *fe, int group, const uint8_t *ans, size_t alen,
			  const struct dns_msg *r, const uint8_t *qmsg, size_t qlen,
			  const struct dns_msg *qm, const struct reply_to *to);

/* --- where answers go ----------------------------------------------------------------- */

/* reply_to_peer - the client's address, whatever its transport. */
static const union sockaddr_any *reply_to_peer(const struct reply_to *to)
{
	return to->tc ? tcp_client_peer(to->tc) : &to->client;
}

/* reply_to_name - the client as text, for logs (buf: ADDR_TEXT_MAX octets). */
static const char *reply_to_name(const struct reply_to *to, char *buf)
{
	return to->tc ? tcp_client_name(to->tc) : addr_text(&to->client, buf, ADDR_TEXT_MAX);
}

/* asked_addr - the address the client of to asked (TCP: the accepted socket's own). */
static const union sockaddr_any *asked_addr(const struct reply_to *to)
{
	return to->tc ? tcp_client_local(to->tc) : &to->odst;
}

/* tap - a dnstap message for this query or response, when dnstap is on. */
static inline void tap(struct frontend *fe, bool response, const struct reply_to *to,
		       const uint8_t *msg, size_t len)
{
	const union sockaddr_any *local;

	if (!fe->dnstap)
		return;
	local = asked_addr(to);
	if (!dnstap_log(fe->dnstap, response, to->tc != NULL, &reply_to_peer(to)->sa, &local->sa,
			msg, len))
		fe->stats->dnstap_dropped++;
}

/*
 * tap_forward - a FORWARDER_QUERY or _RESPONSE message for a query a --forward rule or a
 * locally served zone sent on: to server, from from (NULL: a socket of ours).
 */
static void tap_forward(struct frontend *fe, bool response, enum dnstap_proto proto,
			const struct sockaddr *from, const struct sockaddr *server,
			const uint8_t *msg, size_t len)
{
	if (fe->dnstap && !dnstap_log_forward(fe->dnstap, response, proto, from, server, msg, len))
		fe->stats->dnstap_dropped++;
}

/* client_send - hand a finished answer to the client's transport. */
static void client_send(struct frontend *fe, const struct reply_to *to, const uint8_t *msg,
			size_t len)
{
	tap(fe, true, to, msg, len);
	if (to->tc)
		tcp_client_send(to->tc, msg, len);
	else
		udp_reply_send(fe->udp_reply, &to->client, &to->odst,
			       to->nat.sa.sa_family ? &to->nat : NULL, msg, len);
}

/* --- the life of a query ------------------------------------------------------------- */

static void query_submit(struct query *q)
{
	q->held = QUERY_RUNNING;
	if (q->route == ROUTE_PLAIN || q->route == ROUTE_RELAY) {
		plain_submit(q->fe->plain, &q->pq); /* may complete (and free) q at once */
		return;
	}
	q->pool = q->ddr ? ddr_pool_upstream(q->ddr) : q->fe->pool;
	/* past its client's default share: it waits behind the other clients' queries */
	q->uq.bulk = q->fe->shares && inflight_over_share(q->fe->shares, &q->share);
	upstream_pool_submit(q->pool, &q->uq); /* may complete (and free) q at once */
}

/* query_cancel - q no longer wants its answer from wherever it was sent. */
static void query_cancel(struct query *q)
{
	if (q->route == ROUTE_PLAIN || q->route == ROUTE_RELAY)
		plain_cancel(&q->pq);
	else
		upstream_query_cancel(q->pool, &q->uq);
}

/* queries_ready_run - send the queries whose turn came upstream, oldest first. */
static void queries_ready_run(struct loop_defer *d)
{
	struct frontend *fe = container_of(d, struct frontend, ready_defer);
	struct inflight_wait *w;

	while ((w = TAILQ_FIRST(&fe->ready))) {
		TAILQ_REMOVE(&fe->ready, w, link);
		query_submit(container_of(w, struct query, share)); /* may make more ready */
	}
}

/* query_make_ready - q's turn came (it is counted): it goes upstream at the end of this
 * loop iteration, not here, deep in another query's completion. */
static void query_make_ready(struct query *q)
{
	struct frontend *fe = q->fe;

	q->held = QUERY_READY;
	TAILQ_INSERT_TAIL(&fe->ready, &q->share, link);
	loop_defer(fe->loop, &fe->ready_defer);
}

/* fe_shares_counted - does q count in its client's share (started, not waiting)? */
static bool fe_shares_counted(const struct query *q)
{
	return q->fe->shares && q->share.slot >= 0 && q->held != QUERY_WAITING;
}

/* query_share_end - q no longer counts against its client's share, nor waits in it. */
static void query_share_end(struct query *q)
{
	struct frontend *fe = q->fe;
	struct inflight_wait *next;
	int slot = q->share.slot;

	if (q->held == QUERY_WAITING) {
		inflight_unwait(fe->shares, &q->share);
		return;
	}
	if (q->held == QUERY_READY)
		TAILQ_REMOVE(&fe->ready, &q->share, link);
	if (slot < 0)
		return;
	if ((next = inflight_put(fe->shares, &q->share)))
		query_make_ready(container_of(next, struct query, share));
	while ((next = inflight_admit(fe->shares, slot))) /* the share grew */
		query_make_ready(container_of(next, struct query, share));
}

/* query_free - forget q: its deadline, its lists, its share. Nothing is sent. */
static void query_free(struct query *q)
{
	struct frontend *fe = q->fe;

	loop_timer_cancel(fe->loop, &q->deadline);
	if (q->egress_ans) {
		egress_gate_cancel(&q->hold);
		free(q->egress_ans);
	}
	LIST_REMOVE(q, link);
	fe->inflight--;
	if (q->held == QUERY_HELD)
		fe->held--;
	query_share_end(q);
	if (q->to.tc)
		tcp_work_end(&q->work);
	free(q);
}

/* query_drop - end q unanswered (its client or the frontend goes); counted as dropped. */
static void query_drop(struct query *q)
{
	query_cancel(q);
	if (q->held != QUERY_HELD) /* a held one was answered */
		q->fe->stats->dropped++;
	query_free(q);
}

/* query_hold_end - --hold-timeout passed: the upstream kept q too long to be counted. */
static void query_hold_end(struct loop_timer *t)
{
	struct query *q = container_of(t, struct query, deadline);

	query_cancel(q);
	query_free(q);
}

/*
 * query_end - q was answered: free it, or, held (QUERY_HELD), keep it counted without its
 * client (a TCP client may go) until the upstream ends it or its time is up.
 */
static void query_end(struct query *q)
{
	struct frontend *fe = q->fe;

	if (q->held != QUERY_HELD) {
		query_free(q);
		return;
	}
	if (q->to.tc) { /* its share is still its address's (frontend_shares_renew) */
		q->to.client = *tcp_client_peer(q->to.tc);
		tcp_work_end(&q->work);
		q->to.tc = NULL;
	}
	loop_timer_init(&q->deadline, query_hold_end);
	if (loop_timer_set(fe->loop, &q->deadline, loop_now_ms(fe->loop) + fe->cfg->hold_ms) < 0)
		query_hold_end(&q->deadline);
}

static const char *rcode_name(unsigned int rcode)
{
	static const char *const names[] = {"NOERROR",	"FORMERR", "SERVFAIL",
					    "NXDOMAIN", "NOTIMP",  "REFUSED"};

	return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode] : "RCODE";
}

/* query_log - --query-log: client, name, type, rcode, where the answer came from, latency. */
static void query_log(struct frontend *fe, const struct reply_to *to, const struct dns_msg *m,
		      const uint8_t *answer, const char *via, uint64_t start_ms)
{
	char who[ADDR_TEXT_MAX], name[DNS_MAX_NAME * 4 + 1];

	if (!fe->cfg->query_log)
		return;
	if (dns_name_to_text(m->q.name, m->q.name_len, name, sizeof(name)) < 0)
		strcpy(name, "?");
	log_info("query %s %s %u %s %s%s %llu ms", reply_to_name(to, who), name, m->q.qtype,
		 rcode_name(dns_get16(answer + 2) & DNS_RCODE_MASK), to->tc ? "tcp " : "udp ",
		 via ? via : "-", (unsigned long long)(loop_now_ms(fe->loop) - start_ms));
}

/*
 * deliver - send an answer (already carrying the client's id) in out, cut to udp_limit with
 * TC set when it is larger. view describes out when the caller has it (NULL: parsed here,
 * should it need cutting).
 */
static void deliver(struct frontend *fe, const struct reply_to *to, size_t udp_limit, uint8_t *out,
		    size_t len, const struct dns_msg *view)
{
	if (len > udp_limit) {
		struct dns_msg r;
		int n = -EBADMSG;

		if (view || dns_msg_parse(&r, out, len) == 0)
			n = dns_truncate(out, view ? view : &r, udp_limit);
		if (n < 0) { /* an OPT RR too large for the client: nothing sensible to send */
			fe->stats->dropped++;
			return;
		}
		len = (size_t)n;
		fe->stats->truncated++;
	}
	client_send(fe, to, out, len);
}

/*
 * query_answer - the answer to q in fe->reply: msg (from the upstream, parsed into r) with
 * q's id; or with rcode when msg is NULL (SERVFAIL: a stale cached answer instead, when
 * serve-stale allows). Returns its length; -1 when it must not go out (policed: the policy's
 * answer went instead; or no answer can be built). *via: where it came from.
 */
static int query_answer(struct query *q, const uint8_t *msg, const struct dns_msg *r, int rcode,
			const char **via)
{
	struct frontend *fe = q->fe;
	uint8_t *out = fe->reply;
	int n;

	if (msg) {
		if (answer_police(fe, query_group(q), msg, r->len, r, q->msg, q->len, &q->m,
				  &q->to))
			return -1;
		memcpy(out, msg, r->len);
		dns_put16(out, q->m.id);
		*via = q->uq.answered_by;
		return (int)r->len;
	}
	if (rcode == DNS_RCODE_SERVFAIL && q->cache && fe->cfg->serve_stale &&
	    (n = cache_lookup(q->cache, &q->m, out, sizeof(fe->reply), loop_now_ms(fe->loop),
			      true)) >= 0) {
		if (answer_police(fe, query_group(q), out, (size_t)n, NULL, q->msg, q->len, &q->m,
				  &q->to))
			return -1;
		fe->stats->cache_stale++;
		*via = "cache(stale)";
		return n;
	}
	n = dns_build_error(out, sizeof(fe->reply), q->msg, q->len, &q->m, rcode);
	if (n < 0) {
		fe->stats->dropped++;
		return -1;
	}
	if (rcode == DNS_RCODE_SERVFAIL)
		fe->stats->servfail++;
	*via = "-";
	return n;
}

/* query_egress_done - q's addresses are in its group's sets (or refused, counted): answer. */
static void query_egress_done(struct egress_hold *h, int err)
{
	struct query *q = container_of(h, struct query, hold);
	struct frontend *fe = q->fe;
	struct tcp_client *tc = q->to.tc;

	(void)err; /* a refused address was logged and counted; its connections are dropped */
	query_log(fe, &q->to, &q->m, q->egress_ans, q->egress_via, q->start_ms);
	deliver(fe, &q->to, q->udp_limit, q->egress_ans, q->egress_len, NULL);
	query_end(q);
	if (tc)
		tcp_client_kick(tc);
}

/*
 * query_egress_hold - q's answer ans (n octets) goes to a client of an --egress group: hold a
 * copy until the addresses it gives are in the group's sets. True when held (then
 * query_egress_done answers); false when it may go at once.
 */
static bool query_egress_hold(struct query *q, int group, const uint8_t *ans, size_t n,
			      const char *via)
{
	struct frontend *fe = q->fe;
	int r;

	if (!fe->egress || !egress_gate_polices(fe->egress, group))
		return false;
	q->egress_ans = malloc(n);
	if (!q->egress_ans)
		return false; /* its addresses stay out of the sets: connections are dropped */
	memcpy(q->egress_ans, ans, n);
	q->egress_len = n;
	q->egress_via = via;
	q->hold.done = query_egress_done;
	r = egress_gate_hold(fe->egress, group, ans, n, &q->hold);
	if (r == 1)
		return true;
	free(q->egress_ans);
	q->egress_ans = NULL;
	return false;
}

/*
 * query_finish - answer q with msg (an answer from the upstream, any id, parsed into r), or
 * with rcode when msg is NULL (see query_answer); then free q (query_end).
 */
static void query_finish(struct query *q, const uint8_t *msg, const struct dns_msg *r, int rcode)
{
	struct frontend *fe = q->fe;
	struct tcp_client *tc = q->to.tc;
	const char *via = "-";
	int n = query_answer(q, msg, r, rcode, &via);

	if (n >= 0 && fe->egress && query_egress_hold(q, query_group(q), fe->reply, (size_t)n, via))
		return; /* query_egress_done answers */
	if (n >= 0) {
		query_log(fe, &q->to, &q->m, fe->reply, via, q->start_ms);
		deliver(fe, &q->to, q->udp_limit, fe->reply, (size_t)n, msg ? r : NULL);
	}
	query_end(q);
	if (tc)
		tcp_client_kick(tc);
}

static void query_complete(struct upstream_query *uq, const uint8_t *answer,
			   const struct dns_msg *r, int err)
{
	struct query *q = container_of(uq, struct query, uq);
	struct frontend *fe = q->fe;

	if (q->held == QUERY_HELD) {
		/* the upstream answered it late, or its connection closed; unless dotgw closed
		 * that for silence while the upstream answered on others (it may still hold
		 * the query: held until --hold-timeout), its place is free now */
		if (err != -ETIMEDOUT)
			query_free(q);
		return;
	}
	if (q->ddr) {
		ddr_done(q->ddr, err);
		if (!err)
			tap_forward(fe, true, DNSTAP_DOT, NULL, ddr_pool_addr(q->ddr), answer,
				    r->len);
		if (err) {
			/* the designated resolver failed it: the configured upstreams, never plain
			 */
			log_debug(
				"query id %u: designated resolver: %s; to the configured upstreams",
				q->m.id, strerror(-err));
			q->ddr = NULL;
			query_submit(q); /* may complete (and free) q at once */
			return;
		}
	}
	if (err) {
		if (q->route == ROUTE_DEFAULT) /* --unreachable (a plain route fails elsewhere) */
			unreachable_failed(&unreachable_process, loop_now_ms(fe->loop));
		log_debug("query id %u: %s, SERVFAIL", q->m.id, strerror(-err));
		query_finish(q, NULL, NULL, DNS_RCODE_SERVFAIL);
		return;
	}
	fe->stats->answered++;
	if (fe_shares_counted(q))
		inflight_answered(fe->shares, &q->share);
	if (q->route == ROUTE_DEFAULT && !q->ddr)
		unreachable_answered(&unreachable_process, loop_now_ms(fe->loop), uq->answered_by);
	if (q->route != ROUTE_DEFAULT) /* where a --forward rule sent it (pq.dst: see below) */
		tap_forward(fe, true,
			    q->route == ROUTE_DOT ? DNSTAP_DOT
			    : q->pq.tcp		  ? DNSTAP_TCP
						  : DNSTAP_UDP,
			    NULL, &q->pq.dst.sa, answer, r->len);
	/* r came from the upstream module: the answer is parsed once, there */
	if (q->cache && cache_store(q->cache, &q->m, answer, r, loop_now_ms(fe->loop)) == 0)
		fe->stats->cache_stored++;
	query_finish(q, answer, r, 0);
}

/* plain_complete - the end of an unencrypted query: as an upstream's answer would end. */
static void plain_complete(struct plain_query *pq, const uint8_t *answer, const struct dns_msg *r,
			   int err)
{
	struct query *q = container_of(pq, struct query, pq);

	if (err)
		q->fe->stats->forward_errors++;
	q->uq.answered_by = q->via;
	query_complete(&q->uq, answer, r, err);
}

static void query_deadline(struct loop_timer *t)
{
	struct query *q = container_of(t, struct query, deadline);

	if (q->egress_ans) { /* the sets' update is late: the answer goes as it is */
		egress_gate_cancel(&q->hold);
		query_egress_done(&q->hold, -ETIMEDOUT);
		return;
	}
	if (q->held == QUERY_RUNNING && q->route != ROUTE_PLAIN && q->route != ROUTE_RELAY &&
	    fe_shares_counted(q) && upstream_query_abandon(q->pool, &q->uq)) {
		q->held = QUERY_HELD; /* query_end keeps it */
		q->fe->held++;
	} else
		query_cancel(q);
	if (fe_shares_counted(q))
		inflight_timed_out(q->fe->shares, &q->share);
	if (q->ddr)
		ddr_done(q->ddr, -ETIMEDOUT);
	else if (q->route == ROUTE_DEFAULT)
		unreachable_failed(&unreachable_process, loop_now_ms(q->fe->loop));
	log_debug(
		"query id %u: no answer within %u ms, SERVFAIL%s", q->m.id, q->fe->cfg->timeout_ms,
		q->held == QUERY_HELD ? " (counted in its client's share while the upstream has it)"
				      : "");
	query_finish(q, NULL, NULL, DNS_RCODE_SERVFAIL);
}

/*
 * query_reject - answer a message that will not go upstream, at once: rcode FORMERR (m NULL:
 * only its header could be read), REFUSED (rate limit, policy) or SERVFAIL (overload). Error
 * answers are small (header, question, OPT), within any client's UDP limit.
 */
static void query_reject(struct frontend *fe, const uint8_t *msg, size_t len,
			 const struct dns_msg *m, int rcode, const struct reply_to *to)
{
	int n = dns_build_error(fe->reply, sizeof(fe->reply), msg, len, m, rcode);

	if (n < 0) {
		fe->stats->dropped++;
		return;
	}
	client_send(fe, to, fe->reply, (size_t)n);
}

#define GROUP_IF_UNKNOWN (-2) /* arrived on an interface whose name is not known */

/*
 * client_group - the group of the client (who, arrived on ifindex; 0: not known), -1 for
 * none, or GROUP_IF_UNKNOWN when groups name interfaces and the one of ifindex cannot be named
 * (deleted long ago, or no table): it might be a group's, so it is not let through unpoliced.
 */
static int client_group(struct frontend *fe, const union sockaddr_any *who, unsigned int ifindex)
{
	const struct policy *p = &fe->cfg->groups;
	const char *ifname = NULL;

	if (!p->n_groups)
		return -1;
	if (ifindex && fe->want_ifindex && policy_has_interfaces(p)) {
		ifname = fe->iftab ? iftab_name(fe->iftab, ifindex) : NULL;
		if (!ifname)
			return GROUP_IF_UNKNOWN;
	}
	return policy_group_of(p, who->sa.sa_family, addr_bytes(who), ifname);
}

/* query_group - q's client's group under the configuration now in force (a reload may have
 * changed the groups since q started), or -1. */
static int query_group(const struct query *q)
{
	return client_group(q->fe, reply_to_peer(&q->to), q->ifindex);
}

/* policy_answer - answer the query msg (parsed into m) as action a of a group says. */
static void policy_answer(struct frontend *fe, const uint8_t *msg, size_t len,
			  const struct dns_msg *m, enum policy_action a,
			  const struct policy_rule *rule, const struct reply_to *to)
{
	int n;

	fe->stats->policy_denied++;
	if (a == POLICY_SINKHOLE) {
		n = dns_build_address(fe->reply, sizeof(fe->reply), msg, m, rule->sink_family,
				      rule->sink, 60);
		if (n < 0)
			fe->stats->dropped++;
		else
			client_send(fe, to, fe->reply, (size_t)n);
	} else {
		query_reject(fe, msg, len, m,
			     a == POLICY_NXDOMAIN ? DNS_RCODE_NXDOMAIN : DNS_RCODE_REFUSED, to);
	}
}

/*
 * query_police - apply the client's group rules to the query m. Returns true when the query
 * was answered here (denied, NXDOMAIN, sinkhole); else stores the group (or -1) in *group.
 */
static bool query_police(struct frontend *fe, const uint8_t *msg, size_t len,
			 const struct dns_msg *m, const struct reply_to *to, unsigned int ifindex,
			 int *group)
{
	const struct policy_rule *rule;
	enum policy_action a;

	*group = client_group(fe, reply_to_peer(to), ifindex);
	if (*group == GROUP_IF_UNKNOWN) {
		char who[ADDR_TEXT_MAX];

		log_ratelimited(&fe->rl_malformed, LOG_LVL_WARN,
				"query from %s on interface %u, whose name is unknown: REFUSED",
				reply_to_name(to, who), ifindex);
		*group = -1;
		policy_answer(fe, msg, len, m, POLICY_REFUSED, NULL, to);
		return true;
	}
	if (*group < 0)
		return false;
	a = policy_check(&fe->cfg->groups.groups[*group], m->q.name, m->q.name_len, &rule);
	if (a == POLICY_PASS)
		return false;
	policy_answer(fe, msg, len, m, a, rule, to);
	return true;
}

/*
 * answer_police - the names an answer (ans, parsed into r; NULL: parsed here) leads to, held
 * against the rules of group (-1: none): an alias must not cloak a name the group may not
 * resolve. Returns true when the answer must not go out; then the policy's answer to the
 * query (qmsg, parsed into qm) was sent instead. Clobbers fe->reply when it polices.
 */
static bool answer_police(struct frontend *fe, int group, const uint8_t *ans, size_t alen,
			  const struct dns_msg *r, const uint8_t *qmsg, size_t qlen,
			  const struct dns_msg *qm, const struct reply_to *to)
{
	const struct policy_group *g;
	const struct policy_rule *rule;
	enum policy_action a;
	struct dns_msg v;

	if (group < 0)
		return false;
	g = &fe->cfg->groups.groups[group];
	if (!policy_group_polices(g))
		return false;
	if (!r) {
		if (dns_msg_parse(&v, ans, alen) < 0)
			return false; /* our own cache's answer, or a bare error header */
		r = &v;
	}
	if (!r->ancount)
		return false;
	a = policy_check_answer(g, ans, r, &rule);
	if (a == POLICY_PASS)
		return false;
	fe->stats->policy_alias++;
	policy_answer(fe, qmsg, qlen, qm, a, rule, to);
	return true;
}

/* query_count - the counters of a message that arrived from the client of to. */
static void query_count(struct frontend *fe, const struct reply_to *to)
{
	fe->stats->queries++;
	if (to->tc)
		fe->stats->queries_tcp++;
	else
		fe->stats->queries_udp++;
	if (reply_to_peer(to)->sa.sa_family == AF_INET6)
		fe->stats->queries_ipv6++;
	else
		fe->stats->queries_ipv4++;
}

/*
 * query_screen - rate limit, non-queries and malformed messages. Returns true when the message
 * was dealt with here (refused, dropped, FORMERR); else it parsed into *m.
 */
static bool query_screen(struct frontend *fe, const uint8_t *msg, size_t len,
			 const struct reply_to *to, struct dns_msg *m)
{
	char a[ADDR_TEXT_MAX];

	if (fe->rl && !ratelimit_allow(fe->rl, reply_to_peer(to)->sa.sa_family,
				       addr_bytes(reply_to_peer(to)), loop_now_ms(fe->loop))) {
		fe->stats->rate_limited++;
		if (fe->cfg->rate_refuse && len >= DNS_HDR_LEN &&
		    !(dns_get16(msg + 2) & DNS_FLAG_QR) && dns_msg_parse(m, msg, len) == 0 &&
		    dns_query_check(m) == 0)
			query_reject(fe, msg, len, m, DNS_RCODE_REFUSED, to);
		return true;
	}
	if (len < DNS_HDR_LEN || (dns_get16(msg + 2) & DNS_FLAG_QR)) {
		/* Not a query at all: never answer it (no loops, no reflection). */
		fe->stats->malformed++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"dropped a %zu-octet non-query from %s", len, reply_to_name(to, a));
		return true;
	}
	/* every opcode and a header-only query go upstream too: its answer, not one of ours */
	if (dns_msg_parse(m, msg, len) < 0) {
		fe->stats->malformed++;
		fe->stats->formerr++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"malformed %zu-octet query from %s, FORMERR", len,
				reply_to_name(to, a));
		query_reject(fe, msg, len, NULL, DNS_RCODE_FORMERR, to);
		return true;
	}
	return false;
}

/*
 * query_from_cache - answer m from cache when it holds an answer. Returns true when the
 * query was answered here (from the cache, or policed). refresh (NULL: no prefetch): set to the
 * entry's mark when it is to be refreshed (cache_lookup_refresh).
 */
static bool query_from_cache(struct frontend *fe, struct cache *cache, int group,
			     const uint8_t *msg, size_t len, const struct dns_msg *m,
			     const struct reply_to *to, uint32_t *refresh)
{
	int n = cache_lookup_refresh(cache, m, fe->reply, sizeof(fe->reply), loop_now_ms(fe->loop),
				     refresh);

	if (n < 0) {
		fe->stats->cache_misses++;
		return false;
	}
	if (answer_police(fe, group, fe->reply, (size_t)n, NULL, msg, len, m, to))
		return true;
	fe->stats->cache_hits++;
	if (egress_gate_polices(fe->egress, group)) {
		/* a hit refreshes the group's elements too: it may have to wait for them */
		/* not counted in its client's share: it has its answer and only waits for the
		 * sets, and a place handed to it would send it upstream with no query set up */
		struct query *q = query_new(fe, msg, len, m, to, false);

		if (!q)
			return true;
		q->start_ms = loop_now_ms(fe->loop);
		loop_timer_init(&q->deadline, query_deadline);
		if (loop_timer_set(fe->loop, &q->deadline, q->start_ms + fe->cfg->timeout_ms) ==
			    0 &&
		    query_egress_hold(q, group, fe->reply, (size_t)n, "cache"))
			return true;
		query_free(q); /* nothing to wait for (or no timer: do not wait) */
	}
	query_log(fe, to, m, fe->reply, "cache", loop_now_ms(fe->loop));
	deliver(fe, to, to->tc ? DNS_MAX_MSG : dns_udp_limit(m, fe->cfg->udp_size_cap), fe->reply,
		(size_t)n, NULL);
	return true;
}

/* prefetch_admits - prefetch.h's admits: may the clients of group have ans (parsed into r)? */
static bool prefetch_admits(void *data, int group, const uint8_t *ans, const struct dns_msg *r)
{
	const struct frontend *fe = data;
	const struct policy_group *g;
	const struct policy_rule *rule;

	if (group < 0 || (size_t)group >= fe->cfg->groups.n_groups)
		return false;
	g = &fe->cfg->groups.groups[group];
	return !policy_group_polices(g) || !r->ancount ||
	       policy_check_answer(g, ans, r, &rule) == POLICY_PASS;
}

/*
 * query_prefetch - the entry of cache that answered m (msg, len; from a client of group,
 * routed as route to target) is near its end: refresh it from the upstreams its miss would
 * have gone to (prefetch.h), with mark, the entry's refreshing mark. The client has its answer
 * already.
 */
static void query_prefetch(struct frontend *fe, struct cache *cache, int group, int route,
			   int target, const uint8_t *msg, size_t len, const struct dns_msg *m,
			   uint32_t mark)
{
	const struct config *cfg = fe->cfg;
	struct prefetch_req req = {
		.cache = cache,
		.pool = fe->pool,
		.dnstap = fe->dnstap,
		.egress = fe->egress,
		.group = group,
		.admits = prefetch_admits,
		.data = fe,
		.timeout_ms = cfg->timeout_ms,
		.msg = msg,
		.len = len,
		.m = m,
		.mark = mark,
	};
	unsigned int up;

	if (route == ROUTE_DOT)
		req.allowed = 1u << cfg->forwards.targets[target].upstream;
	else if (group >= 0 && cfg->groups.groups[group].upstreams)
		req.allowed = cfg->groups.groups[group].upstreams;
	else
		req.allowed = cfg->default_upstreams;
	/* dnstap names the first upstream allowed: the pool may pick another */
	up = req.allowed ? (unsigned int)__builtin_ctz(req.allowed) : 0;
	req.server = &cfg->upstreams[up].addr;
	prefetch_start(fe->prefetch, &req, loop_now_ms(fe->loop));
}

/*
 * query_new - a query for m (msg, len) from the client of to, counted in its client's share
 * when share is set; NULL when there is no room (then SERVFAIL was sent).
 */
static struct query *query_new(struct frontend *fe, const uint8_t *msg, size_t len,
			       const struct dns_msg *m, const struct reply_to *to, bool share)
{
	struct query *q = fe->inflight < fe->cfg->max_inflight ? malloc(sizeof(*q) + len) : NULL;
	const union sockaddr_any *who = reply_to_peer(to);
	int r;

	if (!q) {
		fe->stats->overload++;
		fe->stats->servfail++;
		query_reject(fe, msg, len, m, DNS_RCODE_SERVFAIL, to);
		return NULL;
	}
	memset(q, 0, sizeof(*q));
	q->share.slot = -1;
	if (fe->shares && share) {
		r = inflight_take(fe->shares, who->sa.sa_family, addr_bytes(who), &q->share, false);
		if (r == -EBUSY) {
			/* its share is in flight and as many wait: the other clients keep theirs */
			free(q);
			fe->stats->client_overload++;
			fe->stats->servfail++;
			query_reject(fe, msg, len, m, DNS_RCODE_SERVFAIL, to);
			return NULL;
		}
		if (r == 1) {
			q->held = QUERY_WAITING;
			fe->stats->client_waited++;
		}
	}
	q->fe = fe;
	q->m = *m;
	q->to = *to;
	q->len = (uint16_t)len;
	memcpy(q->msg, msg, len);
	if (to->tc) {
		tcp_work_begin(to->tc, &q->work);
		q->udp_limit = DNS_MAX_MSG;
	} else {
		q->udp_limit = dns_udp_limit(m, fe->cfg->udp_size_cap);
	}
	LIST_INSERT_HEAD(&fe->queries, q, link);
	fe->inflight++;
	return q;
}

static void query_log_start(const struct query *q)
{
	char name[DNS_MAX_NAME * 4 + 1], a[ADDR_TEXT_MAX], b[ADDR_TEXT_MAX];
	const struct reply_to *to = &q->to;

	if (dns_name_to_text(q->m.q.name, q->m.q.name_len, name, sizeof(name)) < 0)
		strcpy(name, "?");
	log_debug("query %s type %u from %s%s%s over %s%s%s", name, q->m.q.qtype,
		  reply_to_name(to, a), to->tc ? "" : " to ",
		  to->tc ? "" : addr_text(&to->odst, b, sizeof(b)), to->tc ? "TCP" : "UDP",
		  q->via[0] ? ", forwarded to " : "", q->via);
}

/*
 * query_asked - the query goes to the address its client asked, left alone: let pass when
 * queued (NFQUEUE), sent on from the client's own address as a raw packet (TPROXY, UDP), or
 * relayed from here (TCP, whose connection is already ours; bridged clients). Returns the
 * route (ROUTE_PASS, ROUTE_DONE or ROUTE_RELAY).
 */
static int query_asked(struct frontend *fe, const uint8_t *msg, size_t len, const struct dns_msg *m,
		       const struct reply_to *to, bool queued)
{
	char who[ADDR_TEXT_MAX], where[ADDR_TEXT_MAX], name[DNS_MAX_NAME * 4 + 1];
	int r;

	if (to->tc || to->nat.sa.sa_family)
		return ROUTE_RELAY;
	if (fe->cfg->query_log || log_enabled(LOG_LVL_DEBUG)) {
		if (dns_name_to_text(m->q.name, m->q.name_len, name, sizeof(name)) < 0)
			strcpy(name, "?");
		log_info("query %s %s %u - udp asked %s (%s)", reply_to_name(to, who), name,
			 m->q.qtype, addr_text(&to->odst, where, sizeof(where)),
			 queued ? "let pass" : "sent on");
	}
	tap_forward(fe, false, DNSTAP_UDP, &to->client.sa, &to->odst.sa, msg, len);
	if (queued)
		return ROUTE_PASS;
	r = udp_reply_forward(fe->udp_reply, &to->client, &to->odst, msg, len);
	if (r < 0) {
		fe->stats->forward_errors++;
		log_ratelimited(&fe->rl_recv, LOG_LVL_WARN, "cannot send a query on to %s: %s",
				addr_text(&to->odst, where, sizeof(where)), strerror(-r));
	}
	return ROUTE_DONE;
}

/*
 * query_route - where the query m (msg, len) of a client of group goes: a --forward rule
 * for its name (*target: the rule's target), else a locally served zone (to the private
 * address the client asked, or answered here), else the default. See the ROUTE_ values.
 */
static int query_route(struct frontend *fe, const uint8_t *msg, size_t len, const struct dns_msg *m,
		       const struct reply_to *to, int group, bool queued, int *target)
{
	const struct config *cfg = fe->cfg;
	const struct forward_rule *rule = NULL;
	const union sockaddr_any *asked = asked_addr(to);
	struct localzone_match z;
	int n;

	*target = -1;
	if (m->qdcount != 1)
		return ROUTE_DEFAULT;
	if (cfg->forwards.n_rules)
		rule = forward_lookup(&cfg->forwards, group, m->q.name, m->q.name_len);
	if (rule) {
		*target = (int)rule->target;
		fe->stats->forwarded[rule->target]++;
		switch (cfg->forwards.targets[rule->target].kind) {
		case FORWARD_UPSTREAM:
			return ROUTE_DOT;
		case FORWARD_PLAIN:
			return ROUTE_PLAIN;
		default:
			return query_asked(fe, msg, len, m, to, queued);
		}
	}
	if (!cfg->local_zones || !localzone_find(m->q.name, m->q.name_len, &z))
		return ROUTE_DEFAULT;
	if (!z.never_asked && localzone_private(asked->sa.sa_family, addr_bytes(asked))) {
		fe->stats->local_asked++;
		return query_asked(fe, msg, len, m, to, queued);
	}
	n = localzone_answer(fe->reply, sizeof(fe->reply), msg, m, &z);
	if (n < 0) {
		fe->stats->dropped++;
		return ROUTE_DONE;
	}
	fe->stats->local_answered++;
	query_log(fe, to, m, fe->reply, "local", loop_now_ms(fe->loop));
	deliver(fe, to, to->tc ? DNS_MAX_MSG : dns_udp_limit(m, fe->cfg->udp_size_cap), fe->reply,
		(size_t)n, NULL);
	return ROUTE_DONE;
}

/* query_plain_init - q goes unencrypted: to its --forward target, or relayed to the address
 * its client asked. */
static void query_plain_init(struct query *q, int target)
{
	char a[ADDR_TEXT_MAX];

	if (q->route == ROUTE_PLAIN) {
		q->pq.dst = q->fe->cfg->forwards.targets[target].addr;
		snprintf(q->via, sizeof(q->via), "plain:%s", addr_text(&q->pq.dst, a, sizeof(a)));
	} else {
		q->pq.dst = *asked_addr(&q->to);
		snprintf(q->via, sizeof(q->via), "asked:%s", addr_text(&q->pq.dst, a, sizeof(a)));
	}
	q->pq.msg = q->msg;
	q->pq.len = q->len;
	q->pq.m = &q->m;
	q->pq.tcp = q->to.tc != NULL;
	q->pq.complete = plain_complete;
}

/*
 * query_unreachable - --unreachable plaintext, and no upstream answered for a while
 * (unreachable.h): the query goes to the address its client asked, and the probe keeps trying
 * the upstreams meanwhile.
 */
static bool query_unreachable(struct frontend *fe)
{
	const struct config *cfg = fe->cfg;

	if (!cfg->unreachable_plain)
		return false;
	if (unreachable_probe_resumed(&fe->probe))
		upstream_pool_retry(fe->pool); /* another worker's upstream answered */
	if (!unreachable_check(&unreachable_process, (uint64_t)cfg->unreachable_after * 1000,
			       loop_now_ms(fe->loop)))
		return false;
	unreachable_count_pass(&unreachable_process);
	unreachable_probe_kick(&fe->probe, cfg->default_upstreams, cfg->timeout_ms);
	return true;
}

/*
 * query_start - a message arrived from the client of to (arrived on ifindex; for TCP the
 * client's): answer bad ones at once, else make a query and submit it. For TCP, tcp_client.c
 * is handing out frames, so nothing here writes to or closes the client.
 */
static bool query_start(struct frontend *fe, const uint8_t *msg, size_t len,
			const struct reply_to *to, unsigned int ifindex, bool queued)
{
	struct ddr_pool *dp = NULL;
	const char *ddr_via = NULL;
	struct cache *cache;
	struct dns_msg m;
	struct query *q;
	int group, route, target;
	uint32_t refresh;
	bool pf;

	query_count(fe, to);
	if (query_screen(fe, msg, len, to, &m))
		return false;
	tap(fe, false, to, msg, len);
	if (query_police(fe, msg, len, &m, to, ifindex, &group))
		return false;
	route = query_route(fe, msg, len, &m, to, group, queued, &target);
	if (route == ROUTE_DONE || route == ROUTE_PASS)
		return route == ROUTE_PASS;
	/* --upstream asked, for what no --forward rule or served zone took: a group's own
	 * upstreams win; a designated resolver's answers are its own (it may filter): never
	 * cached here, never answered from the shared cache */
	if (fe->ddr && route == ROUTE_DEFAULT &&
	    (group < 0 || !fe->cfg->groups.groups[group].upstreams))
		dp = ddr_route(fe->ddr, asked_addr(to), &ddr_via);
	cache = group >= 0 && fe->group_cache[group] ? fe->group_cache[group] : fe->cache;
	if (target >= 0 || route == ROUTE_RELAY) /* asked: never cached */
		cache = route == ROUTE_RELAY ? NULL : fe->fwd_cache[target];
	if (dp)
		cache = NULL;
	/* --prefetch: entries of DoT upstreams only (a plain: target's expire) */
	refresh = 0;
	pf = fe->cfg->prefetch && (route == ROUTE_DEFAULT || route == ROUTE_DOT) &&
	     prefetch_room(fe->prefetch, fe->cfg->max_inflight);
	if (cache && query_from_cache(fe, cache, group, msg, len, &m, to, pf ? &refresh : NULL)) {
		if (refresh)
			query_prefetch(fe, cache, group, route, target, msg, len, &m, refresh);
		return false;
	}
	if (route == ROUTE_DEFAULT && !dp && query_unreachable(fe)) {
		route = query_asked(fe, msg, len, &m, to, queued); /* unencrypted, as asked */
		if (route != ROUTE_RELAY)
			return route == ROUTE_PASS;
		cache = NULL;
	}
	q = query_new(fe, msg, len, &m, to, true);
	if (!q)
		return false;
	q->start_ms = loop_now_ms(fe->loop);
	q->ifindex = ifindex;
	q->cache = cache;
	q->route = (uint8_t)route;
	if (route == ROUTE_DOT)
		q->uq.allowed = 1u << fe->cfg->forwards.targets[target].upstream;
	else if (group >= 0 && fe->cfg->groups.groups[group].upstreams)
		q->uq.allowed = fe->cfg->groups.groups[group].upstreams;
	else
		q->uq.allowed = fe->cfg->default_upstreams;
	if (dp)
		q->uq.allowed = 0; /* the designated resolver's pool holds it alone */
	if (route == ROUTE_PLAIN || route == ROUTE_RELAY)
		query_plain_init(q, target);
	if (route == ROUTE_DOT) { /* for dnstap and the debug log: the upstream */
		const struct upstream_config *u =
			&fe->cfg->upstreams[fe->cfg->forwards.targets[target].upstream];

		memcpy(&q->pq.dst, &u->addr, sizeof(q->pq.dst));
		snprintf(q->via, sizeof(q->via), "%s", u->text);
	}
	if (route != ROUTE_DEFAULT)
		tap_forward(fe, false,
			    route == ROUTE_DOT ? DNSTAP_DOT
			    : q->pq.tcp	       ? DNSTAP_TCP
					       : DNSTAP_UDP,
			    NULL, &q->pq.dst.sa, msg, len);
	loop_timer_init(&q->deadline, query_deadline);
	q->ddr = dp;
	if (log_enabled(LOG_LVL_DEBUG))
		query_log_start(q);
	if (dp) {
		log_debug("query id %u: to %s, the designated resolver of the address asked",
			  q->m.id, ddr_via);
		tap_forward(fe, false, DNSTAP_DOT, NULL, ddr_pool_addr(dp), q->msg, q->len);
	}
	q->uq.msg = q->msg;
	q->uq.len = q->len;
	q->uq.m = &q->m;
	q->uq.deadline_ms = loop_now_ms(fe->loop) + fe->cfg->timeout_ms;
	q->uq.complete = query_complete;
	if (loop_timer_set(fe->loop, &q->deadline, q->uq.deadline_ms) < 0) {
		query_finish(q, NULL, NULL, DNS_RCODE_SERVFAIL);
		return false;
	}
	if (q->held == QUERY_RUNNING)
		query_submit(q);
	return false;
}

/* --- TCP frames ----------------------------------------------------------------------- */

static void tcp_frame(void *data, struct tcp_client *tc, const uint8_t *msg, size_t len)
{
	struct reply_to to = {.tc = tc};

	query_start(data, msg, len, &to, tcp_client_ifindex(tc), false);
}

static void tcp_drop(void *data, struct tcp_work *w)
{
	(void)data;
	query_drop(container_of(w, struct query, work));
}

static const struct tcp_client_ops tcp_ops = {
	.frame = tcp_frame,
	.drop = tcp_drop,
};

/* --- UDP listener and NFQUEUE ---------------------------------------------------------- */

/*
 * udp_nat_orig_dst - the destination a redirected query from client had before the redirect
 * made it nat, from its conntrack entry, into *odst; when the kernel cannot tell, or nothing
 * would show it, nat's address with port 53 (what the redirect rule matched). Only dnstap and
 * debug logs show it (the answer's source comes from the reverse NAT, policy goes by client
 * and interface), and a lookup costs a netlink round trip (9-12 us measured here), so it is
 * made only for them.
 */
static void udp_nat_orig_dst(struct frontend *fe, const union sockaddr_any *client,
			     const union sockaddr_any *nat, union sockaddr_any *odst)
{
	struct sockaddr_storage ss;
	char a[ADDR_TEXT_MAX];
	int r = -ENOTCONN;

	if (!fe->dnstap && !fe->ddr && !log_enabled(LOG_LVL_DEBUG))
		goto out_fallback;
	if (fe->ct)
		r = conntrack_orig_dst(fe->ct, IPPROTO_UDP, &nat->sa, &client->sa, &ss);
	if (r == 0 && ss.ss_family == nat->sa.sa_family) {
		memset(odst, 0, sizeof(*odst));
		memcpy(odst, &ss, addr_len(nat));
		if (odst->sa.sa_family == AF_INET6)
			odst->sin6.sin6_scope_id = nat->sin6.sin6_scope_id;
		return;
	}
	if (fe->ct)
		log_ratelimited(&fe->rl_ct, LOG_LVL_DEBUG,
				"conntrack lookup for redirected UDP from %s: %s",
				addr_text(client, a, sizeof(a)), strerror(-r));
out_fallback:
	*odst = *nat;
	addr_set_port(odst, 53);
}

static void udp_readable(struct loop_watch *w, uint32_t revents)
{
	struct listener *l = container_of(w, struct listener, watch);
	struct frontend *fe = l->fe;
	int n;

	(void)revents;
	for (int i = 0; i < UDP_BATCH; i++) {
		struct msghdr *mh = &fe->mmsg[i].msg_hdr;

		fe->iov[i].iov_base = fe->bufs[i];
		fe->iov[i].iov_len = sizeof(fe->bufs[i]);
		mh->msg_name = &fe->from[i];
		mh->msg_namelen = sizeof(fe->from[i]);
		mh->msg_iov = &fe->iov[i];
		mh->msg_iovlen = 1;
		mh->msg_control = fe->ctrl[i];
		mh->msg_controllen = sizeof(fe->ctrl[i]);
		mh->msg_flags = 0;
	}
	n = recvmmsg(w->fd, fe->mmsg, UDP_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_ratelimited(&fe->rl_recv, LOG_LVL_WARN, "UDP receive: %s",
					strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		struct msghdr *mh = &fe->mmsg[i].msg_hdr;
		struct reply_to to;
		unsigned int ifindex;

		/* odst: addr_cmsg_orig_dst fills it; no need to clear 3 addresses per query */
		to.tc = NULL;
		to.client = fe->from[i];
		to.nat.sa.sa_family = 0;

		if (!addr_cmsg_orig_dst(mh, &to.odst, &ifindex) || (mh->msg_flags & MSG_TRUNC)) {
			fe->stats->malformed++;
			continue;
		}
		/* TPROXY keeps port 53; only the bridge redirect makes it the listener's */
		if (addr_port(&to.odst) == fe->cfg->tproxy_port) {
			to.nat = to.odst;
			udp_nat_orig_dst(fe, &to.client, &to.nat, &to.odst);
		}
		query_start(fe, fe->bufs[i], fe->mmsg[i].msg_len, &to, ifindex, false);
	}
}

/*
 * nonrec_passes - --non-recursive pass: may the query m, from client, go on untouched? Not a
 * stub's query, from a client in no policy group: a group's rules and upstreams hold for all
 * of its clients' queries, and clearing RD must not take a client past them (RD=0 to a public
 * resolver is answered from its cache).
 */
static bool nonrec_passes(struct frontend *fe, const union sockaddr_any *client,
			  const struct dns_msg *m, unsigned int ifindex)
{
	if ((m->flags & DNS_FLAG_QR) || dns_query_is_stub(m))
		return false;
	/* GROUP_IF_UNKNOWN may be a group's: not let pass */
	return !fe->cfg->groups.n_groups || client_group(fe, client, ifindex) == -1;
}

/* reply_to_packet - where the answer to the queued UDP packet p (in on ifindex) goes. */
static void reply_to_packet(struct reply_to *to, const struct pkt_udp *p, unsigned int ifindex)
{
	union sockaddr_any *c = &to->client, *o = &to->odst;

	memset(to, 0, sizeof(*to));
	c->sa.sa_family = o->sa.sa_family = (sa_family_t)p->family;
	if (p->family == AF_INET) {
		memcpy(&c->sin.sin_addr, p->src, 4);
		memcpy(&o->sin.sin_addr, p->dst, 4);
	} else {
		memcpy(&c->sin6.sin6_addr, p->src, 16);
		memcpy(&o->sin6.sin6_addr, p->dst, 16);
		/* a link-local client is only reachable through the interface it came in on */
		if (IN6_IS_ADDR_LINKLOCAL(&c->sin6.sin6_addr))
			c->sin6.sin6_scope_id = o->sin6.sin6_scope_id = ifindex;
	}
	addr_set_port(c, p->sport);
	addr_set_port(o, p->dport);
}

bool frontend_queue_packet(void *data, const uint8_t *pkt, size_t len, unsigned int ifindex,
			   bool csum_ready)
{
	struct frontend *fe = data;
	struct reply_to to;
	struct pkt_udp p;
	struct dns_msg m;

	if (pkt_udp_parse(&p, pkt, len) < 0 || p.dport != 53) {
		fe->stats->queries++;
		fe->stats->queries_udp++;
		fe->stats->malformed++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"dropped a queued %zu-octet packet that is not UDP to port 53",
				len);
		return false;
	}
	/*
	 * What tproxy mode's UDP listener never sees, dotgw drops here too: a bad checksum (the
	 * kernel's UDP stack drops it) and more than UDP_QUERY_MAX octets (its buffer's size).
	 */
	switch (pkt_udp_verify(&p, pkt, UDP_QUERY_MAX, csum_ready)) {
	case -EMSGSIZE:
		fe->stats->malformed++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"dropped a queued %zu-octet UDP datagram (more than %u)",
				p.payload_len, UDP_QUERY_MAX);
		return false;
	case -EBADMSG:
		fe->stats->bad_checksum++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"dropped a queued UDP datagram whose checksum does not verify");
		return false;
	default:
		break;
	}
	reply_to_packet(&to, &p, ifindex);
	/* --non-recursive pass: what a resolver, a monitor or a primary sends to the server it
	 * names (RD=0, CH, AXFR/IXFR, NOTIFY...) goes there; only a running dotgw says so */
	if (fe->cfg->nonrec_pass && dns_msg_parse(&m, pkt + p.payload_off, p.payload_len) == 0 &&
	    nonrec_passes(fe, &to.client, &m, ifindex)) {
		log_debug("a query that is not a stub's (opcode %u, RD %u): let pass",
			  (m.flags & DNS_OPCODE_MASK) >> 11, !!(m.flags & DNS_FLAG_RD));
		return true;
	}
	/* true: a query that goes to the address it asked (--forward asked) passes */
	return query_start(fe, pkt + p.payload_off, p.payload_len, &to, ifindex, true);
}

/* --- setup ---------------------------------------------------------------------------- */

/* udp_listener_setup - the options of the UDP listener fd; 0 or -1 with errno. */
static int udp_listener_setup(struct frontend *fe, int fd, int family)
{
	int one = 1, rcvbuf = 4 << 20;

	if (family == AF_INET ? setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one))
			      : setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof(one)))
		return -1;
	/* the incoming interface, for client groups that name one */
	if (fe->want_ifindex && addr_set_pktinfo(fd, family) < 0)
		return -1;
	/* best effort: a larger buffer absorbs bursts; capped by net.core.rmem_max */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	return 0;
}

/*
 * listener_open - a transparent listener of type on the TPROXY port: UDP ones are watched
 * here, TCP ones go to fe->tcp. 0 or -errno, logged.
 */
static int listener_open(struct frontend *fe, int family, int type)
{
	union sockaddr_any a;
	int fd, one = 1, r;
	const char *what = type == SOCK_DGRAM ? "UDP" : "TCP";

	memset(&a, 0, sizeof(a));
	a.sa.sa_family = (sa_family_t)family;
	if (family == AF_INET)
		a.sin.sin_addr.s_addr = htonl(INADDR_ANY);
	else
		a.sin6.sin6_addr = in6addr_any;
	addr_set_port(&a, fe->cfg->tproxy_port);
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out_err;
	/*
	 * The bypass mark, like every socket of ours: in host scope the output chain would
	 * otherwise take this socket's packets to a client bound to port 53 (destination port
	 * 53) for queries and send them back to us. Accepted TCP sockets inherit it, and the
	 * SYN-ACK carries the listener's.
	 */
	if (addr_set_transparent(fd, family) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &fe->cfg->bypass_mark,
		       sizeof(fe->cfg->bypass_mark)) < 0)
		goto out_close;
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto out_close;
	/* --workers, and a second instance during a handover (handover.h): the listeners join
	 * one group; TPROXY's socket lookup picks a member by a hash of the flow
	 * (docs/ARCHITECTURE.md, "Threads") */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto out_close;
	if (type == SOCK_DGRAM && udp_listener_setup(fe, fd, family) < 0)
		goto out_close;
	if (bind(fd, &a.sa, addr_len(&a)) < 0)
		goto out_close;
	if (type == SOCK_STREAM) {
		if (listen(fd, 128) < 0)
			goto out_close;
		r = tcp_clients_listen(fe->tcp, fd, family);
	} else {
		struct listener *l = &fe->udp[family == AF_INET6];

		l->fe = fe;
		l->watch.fd = fd;
		l->watch.cb = udp_readable;
		r = loop_watch_add(fe->loop, &l->watch, EPOLLIN);
		if (r < 0)
			l->watch.fd = -1;
		else
			udp_reply_set_listener(fe->udp_reply, family, fd);
	}
	if (r < 0) {
		errno = -r;
		goto out_close;
	}
	return 0;

out_close:
	r = -errno;
	close(fd);
	errno = -r;
out_err:
	r = -errno;
	log_error("%s listener on %s port %u: %s", what, family == AF_INET ? "IPv4" : "IPv6",
		  fe->cfg->tproxy_port, strerror(-r));
	return r;
}

/* caches_free - free the caches of one set (main, per group, per --forward target). */
static void caches_free(struct cache **cache, struct cache **group, struct cache **fwd)
{
	cache_free(*cache);
	*cache = NULL;
	for (size_t i = 0; i < POLICY_MAX_GROUPS; i++) {
		cache_free(group[i]);
		group[i] = NULL;
	}
	for (size_t i = 0; i < FORWARD_MAX_TARGETS; i++) {
		cache_free(fwd[i]);
		fwd[i] = NULL;
	}
}

/*
 * caches_make - the caches cfg asks for (one shared, one per group with upstreams of its own,
 * one per --forward target that is not "asked"), total octets shared out among them. 0 or
 * -ENOMEM (then none are left).
 */
static int caches_make(const struct config *cfg, size_t total, struct cache **cache,
		       struct cache **group, struct cache **fwd)
{
	size_t views = 1, size;
	uint32_t seed;
	int r;

	for (size_t i = 0; i < cfg->groups.n_groups; i++)
		views += cfg->groups.groups[i].upstreams != 0;
	for (size_t i = 0; i < cfg->forwards.n_targets; i++)
		views += cfg->forwards.targets[i].kind != FORWARD_ASKED;
	size = total / views;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	r = cache_new(cache, size, cfg->cache_max_ttl, cfg->serve_stale, seed);
	for (size_t i = 0; r == 0 && i < cfg->groups.n_groups; i++)
		if (cfg->groups.groups[i].upstreams)
			r = cache_new(&group[i], size, cfg->cache_max_ttl, cfg->serve_stale,
				      seed ^ (uint32_t)(i + 1));
	/* a forwarded name's answers are its target's: one partition each */
	for (size_t i = 0; r == 0 && i < cfg->forwards.n_targets; i++)
		if (cfg->forwards.targets[i].kind != FORWARD_ASKED)
			r = cache_new(&fwd[i], size, cfg->cache_max_ttl, cfg->serve_stale,
				      seed ^ (uint32_t)(0x100 + i));
	if (r < 0)
		caches_free(cache, group, fwd);
	return r;
}

int frontend_caches_new(struct frontend_caches **out, const struct config *cfg)
{
	struct frontend_caches *c;
	int r;

	*out = NULL;
	if (!cfg->cache_size)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = caches_make(cfg, cfg->cache_size, &c->cache, c->group, c->fwd);
	if (r < 0) {
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void frontend_caches_free(struct frontend_caches *c)
{
	if (!c)
		return;
	caches_free(&c->cache, c->group, c->fwd);
	free(c);
}

/* frontend_tables_free - the caches and the rate limiter. */
static void frontend_tables_free(struct frontend *fe)
{
	if (!fe->caches_shared)
		caches_free(&fe->cache, fe->group_cache, fe->fwd_cache);
	fe->caches_shared = false;
	fe->cache = NULL;
	memset(fe->group_cache, 0, sizeof(fe->group_cache));
	memset(fe->fwd_cache, 0, sizeof(fe->fwd_cache));
	ratelimit_free(fe->rl);
	fe->rl = NULL;
}

/*
 * frontend_tables_new - the caches (one shared, one per group with upstreams of its own) and
 * the rate limiter that cfg asks for. 0 or -ENOMEM (then none are left).
 */
static int frontend_tables_new(struct frontend *fe, const struct config *cfg)
{
	int r = 0;

	if (cfg->shared_caches) {
		const struct frontend_caches *sc = cfg->shared_caches;

		fe->caches_shared = true;
		fe->cache = sc->cache;
		memcpy(fe->group_cache, sc->group, sizeof(fe->group_cache));
		memcpy(fe->fwd_cache, sc->fwd, sizeof(fe->fwd_cache));
	} else if (cfg->cache_worker_size) {
		r = caches_make(cfg, cfg->cache_worker_size, &fe->cache, fe->group_cache,
				fe->fwd_cache);
	}
	if (r == 0 && cfg->rate_limit)
		r = ratelimit_new(&fe->rl, cfg->rate_limit, cfg->rate_burst, cfg->rate_prefix4,
				  cfg->rate_prefix6, 16384,
				  (uint32_t)loop_now_ms(fe->loop) ^ 0x5bd1e995);
	if (r < 0)
		frontend_tables_free(fe);
	return r;
}

/*
 * frontend_shares_renew - the table of per-client shares that cfg asks for; the queries in
 * flight are counted in a new table (over the new share or not: they are there already).
 * On failure the old table stays. 0 or -ENOMEM.
 */
static int frontend_shares_renew(struct frontend *fe, const struct config *cfg)
{
	unsigned int grow = cfg->inflight_client_auto ? cfg->max_inflight / 2 : 0;
	struct inflight *t;
	struct query *q;
	int r;

	if (fe->shares && inflight_same(fe->shares, cfg->max_inflight, cfg->max_inflight_client,
					cfg->rate_prefix4, cfg->rate_prefix6)) {
		inflight_set_growth(fe->shares, grow);
		return 0;
	}
	r = inflight_new(&t, cfg->max_inflight, cfg->max_inflight_client, cfg->rate_prefix4,
			 cfg->rate_prefix6, (uint32_t)loop_now_ms(fe->loop) ^ 0x9e3779b9);
	if (r == 0)
		inflight_set_growth(t, grow);
	if (r < 0) {
		log_warn("no memory for the per-client in-flight shares%s",
			 fe->shares ? ": the old ones stay" : "");
		return r;
	}
	/* every query counts in the new table; those that waited in the old one go now */
	LIST_FOREACH(q, &fe->queries, link) {
		const union sockaddr_any *who = reply_to_peer(&q->to);

		inflight_take(t, who->sa.sa_family, addr_bytes(who), &q->share, true);
		if (q->held == QUERY_WAITING)
			query_make_ready(q);
	}
	inflight_free(fe->shares);
	fe->shares = t;
	return 0;
}

/* tcp_limits - what cfg says of TCP clients. */
static struct tcp_client_limits tcp_limits(const struct frontend *fe, const struct config *cfg)
{
	return (struct tcp_client_limits){
		.max_clients = cfg->max_tcp_clients,
		.idle_ms = cfg->tcp_idle_ms,
		.redirect_port = cfg->tproxy_port,
		.want_ifindex = fe->want_ifindex,
	};
}

struct upstream_pool *frontend_reload(struct frontend *fe, const struct config *cfg,
				      struct upstream_pool *pool)
{
	struct upstream_pool *old = fe->pool;
	struct query *q;

	/* Queries in flight keep their pool, their cache and their deadline; new ones use
	 * the new settings. The caches start empty: groups and sizes may have changed. */
	LIST_FOREACH(q, &fe->queries, link)
		q->cache = NULL;
	prefetch_reload(fe->prefetch);
	frontend_tables_free(fe);
	fe->cfg = cfg;
	fe->pool = pool;
	if (fe->ddr)
		ddr_reload(fe->ddr, cfg, pool);
	else if (cfg->upstream_asked && ddr_new(&fe->ddr, fe->loop, cfg, fe->stats, pool) < 0)
		log_warn("reload: no memory for --upstream asked: the configured upstreams serve "
			 "all");
	if (frontend_tables_new(fe, cfg) < 0)
		log_warn("reload: no memory for the cache and rate limits: running without them");
	frontend_shares_renew(fe, cfg);
	frontend_egress_renew(fe, cfg);
	if (!fe->want_ifindex && policy_has_interfaces(&cfg->groups)) {
		fe->want_ifindex = true;
		frontend_iftab_open(fe);
		for (int i = 0; i < 2; i++)
			if (fe->udp[i].watch.fd >= 0)
				addr_set_pktinfo(fe->udp[i].watch.fd, i ? AF_INET6 : AF_INET);
	}
	if (fe->tcp) {
		struct tcp_client_limits lim = tcp_limits(fe, cfg);

		tcp_clients_set_limits(fe->tcp, &lim); /* the limit may have moved */
	}
	udp_reply_set_mark(fe->udp_reply, cfg->bypass_mark);
	plain_set_mark(fe->plain, cfg->bypass_mark);
	return old;
}

static void iftab_event(struct loop_watch *w, uint32_t revents)
{
	struct frontend *fe = container_of(w, struct frontend, iftab_watch);
	int r;

	(void)revents;
	r = iftab_process(fe->iftab);
	if (r < 0)
		log_ratelimited(&fe->rl_recv, LOG_LVL_WARN,
				"interface names (rtnetlink): %s: queries from unnamed "
				"interfaces are REFUSED",
				strerror(-r));
}

/*
 * frontend_iftab_open - follow the interfaces' names (client groups that name interfaces
 * match by name). 0 or -errno; on failure, queries that arrive on an interface are REFUSED
 * while some group names one.
 */
static int frontend_iftab_open(struct frontend *fe)
{
	int r = iftab_open(&fe->iftab);

	if (r == 0) {
		fe->iftab_watch.fd = iftab_fd(fe->iftab);
		fe->iftab_watch.cb = iftab_event;
		r = loop_watch_add(fe->loop, &fe->iftab_watch, EPOLLIN);
		if (r < 0) {
			iftab_close(fe->iftab);
			fe->iftab = NULL;
		}
	}
	if (r < 0)
		log_error("following interface names (rtnetlink): %s", strerror(-r));
	return r;
}

int frontend_open(struct frontend **out, struct loop *loop, const struct config *cfg,
		  struct upstream_pool *pool, struct stats *stats, unsigned int flags)
{
	struct frontend *fe = calloc(1, sizeof(*fe));
	unsigned int reply_flags = 0;
	int r;

	if (!fe)
		return -ENOMEM;
	fe->loop = loop;
	fe->cfg = cfg;
	fe->pool = pool;
	fe->stats = stats;
	LIST_INIT(&fe->queries);
	TAILQ_INIT(&fe->ready);
	loop_defer_init(&fe->ready_defer, queries_ready_run);
	unreachable_probe_init(&fe->probe, loop, &fe->pool, &unreachable_process);
	fe->want_ifindex = policy_has_interfaces(&cfg->groups);
	for (int i = 0; i < 2; i++)
		fe->udp[i].watch.fd = -1;
	if (flags & FE_UDP_RAW)
		reply_flags |= UDP_REPLY_RAW_ALL;
	if (flags & FE_UDP_RAW_LOCAL)
		reply_flags |= UDP_REPLY_RAW_LOCAL;
	r = frontend_tables_new(fe, cfg);
	if (r == 0)
		r = frontend_shares_renew(fe, cfg);
	if (r == 0 && fe->want_ifindex)
		r = frontend_iftab_open(fe);
	if (r == 0 && cfg->upstream_asked)
		r = ddr_new(&fe->ddr, loop, cfg, stats, pool);
	if (r == 0)
		r = udp_reply_new(&fe->udp_reply, loop, stats, cfg->bypass_mark, reply_flags);
	if (r == 0)
		r = plain_new(&fe->plain, loop, cfg->bypass_mark);
	if (r == 0)
		r = prefetch_new(&fe->prefetch, loop, stats);
	if (r == 0 && (flags & FE_TCP_LISTEN)) {
		struct tcp_client_limits lim = tcp_limits(fe, cfg);

		r = tcp_clients_new(&fe->tcp, loop, stats, &lim, &tcp_ops, fe);
	}
	for (int i = 0; r == 0 && i < 2; i++) {
		int family = i ? AF_INET6 : AF_INET;

		if (flags & FE_UDP_LISTEN)
			r = listener_open(fe, family, SOCK_DGRAM);
		if (r == 0 && (flags & FE_TCP_LISTEN))
			r = listener_open(fe, family, SOCK_STREAM);
	}
	if (r < 0) {
		frontend_close(fe);
		return r;
	}
	/* without it, redirected UDP is still answered; only its logs name the bridge */
	if ((flags & FE_UDP_LISTEN) && (r = conntrack_open(&fe->ct)) < 0)
		log_warn("conntrack netlink socket: %s: logs and dnstap name the bridge's address "
			 "as the destination of bridged clients' UDP queries",
			 strerror(-r));
	*out = fe;
	return 0;
}

int frontend_tcp_adopt(struct frontend *fe, int fd, const union sockaddr_any *peer)
{
	int r;

	if (!fe->tcp) {
		struct tcp_client_limits lim = tcp_limits(fe, fe->cfg);

		r = tcp_clients_new(&fe->tcp, fe->loop, fe->stats, &lim, &tcp_ops, fe);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	return tcp_clients_adopt(fe->tcp, fd, peer);
}

void frontend_set_dnstap(struct frontend *fe, struct dnstap_queue *q)
{
	fe->dnstap = q;
}

/* frontend_egress_renew - the gate that cfg's --egress groups need (kept once made). */
static void frontend_egress_renew(struct frontend *fe, const struct config *cfg)
{
	bool any = false;
	int r;

	for (size_t i = 0; i < cfg->groups.n_groups; i++)
		any |= cfg->groups.groups[i].egress;
	if (!fe->egress_link)
		return;
	if (fe->egress)
		r = egress_gate_reload(fe->egress, cfg);
	else if (any)
		r = egress_gate_new(&fe->egress, fe->loop, fe->egress_link, cfg->egress_table, cfg);
	else
		return;
	if (r < 0)
		log_warn("egress: %s: answers to --egress groups go without updating their sets "
			 "(their connections are dropped)",
			 strerror(-r));
}

void frontend_set_egress(struct frontend *fe, struct nftset_link *link)
{
	fe->egress_link = link;
	frontend_egress_renew(fe, fe->cfg);
}

void frontend_egress_stats(const struct frontend *fe, int group, struct egress_gate_stats *out)
{
	egress_gate_stats(fe->egress, group, out);
}

struct ddr *frontend_ddr(const struct frontend *fe)
{
	return fe->ddr;
}

unsigned int frontend_inflight(const struct frontend *fe)
{
	unsigned int held = atomic_load_explicit(&fe->held, memory_order_relaxed);
	unsigned int n = atomic_load_explicit(&fe->inflight, memory_order_relaxed);

	return n > held ? n - held : 0; /* two reads, not one instant's */
}

/*
 * frontend_leave - handover: leave the listeners' SO_REUSEPORT groups, so that the newer
 * instance's sockets take every new flow, and keep serving what is ours. A connected UDP
 * socket is skipped by the kernel's reuseport selection and, bound to the wildcard address,
 * leaves its group on connect; the datagrams already queued on it stay readable.
 */
void frontend_leave(struct frontend *fe)
{
	for (int i = 0; fe && i < 2; i++) {
		union sockaddr_any to;

		if (fe->udp[i].watch.fd < 0)
			continue;
		memset(&to, 0, sizeof(to));
		to.sa.sa_family = i ? AF_INET6 : AF_INET;
		if (i)
			to.sin6.sin6_addr = in6addr_loopback;
		else
			to.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		addr_set_port(&to, 9); /* discard: nothing answers from there */
		if (connect(fe->udp[i].watch.fd, &to.sa, addr_len(&to)) < 0)
			log_warn("handover: leaving the UDP listener group: %s", strerror(errno));
	}
	if (fe)
		tcp_clients_unlisten(fe->tcp);
}

void frontend_close(struct frontend *fe)
{
	if (!fe)
		return;
	tcp_clients_free(fe->tcp); /* drops their queries */
	while (!LIST_EMPTY(&fe->queries))
		query_drop(LIST_FIRST(&fe->queries));
	loop_defer_cancel(fe->loop, &fe->ready_defer); /* freeing them made some ready */
	unreachable_probe_stop(&fe->probe);	       /* before the pools go */
	prefetch_free(fe->prefetch);		       /* before the gate and the pools */
	ddr_free(fe->ddr);			       /* no query uses its pools now */
	egress_gate_free(fe->egress);		       /* no query holds an answer now */
	udp_reply_free(fe->udp_reply); /* answers already given leave before sockets close */
	plain_free(fe->plain);
	for (int i = 0; i < 2; i++) {
		if (fe->udp[i].watch.fd < 0)
			continue;
		loop_watch_del(fe->loop, &fe->udp[i].watch);
		close(fe->udp[i].watch.fd);
	}
	conntrack_close(fe->ct);
	frontend_tables_free(fe);
	inflight_free(fe->shares);
	if (fe->iftab) {
		loop_watch_del(fe->loop, &fe->iftab_watch);
		iftab_close(fe->iftab);
	}
	free(fe);
}

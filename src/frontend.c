/*
 * frontend.c - TPROXY listeners and the life of each client query.
 *
 * UDP: the listener learns each query's original destination from IP(V6)_ORIGDSTADDR; the
 * answer leaves through a "reply socket", an IP_TRANSPARENT socket bound to that destination
 * (kept in a small LRU cache, since clients use few resolver addresses), so the client sees
 * it come from exactly the address and port it asked. TCP: the accepted socket's local address
 * already is the original destination, so answers just go back on it (RFC 7766 framing).
 *
 * Every accepted query ends in exactly one answer or one counted drop: the upstream's answer,
 * SERVFAIL at the deadline or when no upstream is usable, FORMERR for messages that do not
 * parse. Whatever parses goes upstream, whatever its opcode or question count, so that the
 * answer is the upstream's own.
 * struct query owns its copy of the message and is freed by query_finish() alone.
 *
 * UDP answers of up to UDP_OUT_PAYLOAD octets are copied into a batch that leaves in one
 * sendmmsg per socket at the end of the loop iteration (or when it is full); larger ones go at
 * once. A reply socket is never closed while the batch may name it.
 *
 * Bridged clients (ruleset.c) reach the listeners through a conntrack redirect instead of
 * TPROXY: their packets arrive addressed to this machine's address on the bridge and the
 * listener port. TCP needs nothing more (SO_ORIGINAL_DST names what the client asked, for
 * dnstap). A UDP answer must leave from the address and port the query was redirected to, so
 * that the reverse NAT turns them back into those the client asked: it goes out on the
 * listener itself with IP(V6)_PKTINFO naming that address; the conntrack entry gives the
 * original destination for dnstap and debug logs. fe->nat is that redirect address while such a
 * query is being handled (udp_readable -> query_start, query_finish -> deliver) and NULL
 * otherwise: udp_send reads it.
 *
 * No reply socket is ever bound to one of this machine's own addresses: with SO_REUSEADDR on
 * both sides, the kernel would hand a DNS server on that address its new datagrams to our
 * socket, which never reads them. Answers from a local address (only captured with
 * --capture-local) are raw packets instead; one too large for a packet goes truncated (TC),
 * and the client asks again over TCP. Whether an address is local is checked when its cache
 * entry is made, and again once it is REPLY_RECHECK_MS old.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dotgw/addr.h"
#include "dotgw/cache.h"
#include "dotgw/conntrack.h"
#include "dotgw/dns.h"
#include "dotgw/dnstap.h"
#include "dotgw/frontend.h"
#include "dotgw/iftab.h"
#include "dotgw/inflight.h"
#include "dotgw/log.h"
#include "dotgw/pkt.h"
#include "dotgw/ratelimit.h"

#define UDP_BATCH	     32
#define UDP_QUERY_MAX	     4096u /* larger datagrams are not DNS queries */
#define REPLY_SOCKS_MAX	     64
#define REPLY_RECHECK_MS     10000 /* an address may have become local (or stopped being) */
#define TCP_CLIENT_QUERIES   64	       /* in flight per TCP client; reading pauses beyond */
#define TCP_CLIENT_OUT_MAX   (256u << 10) /* unsent answer octets per TCP client, then cut off */
#define ACCEPT_RETRY_MS	     100
#define UDP_OUT_BATCH	     32
#define UDP_OUT_PAYLOAD	     1232 /* the default --udp-size-cap: nearly every UDP answer */

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

struct tcp_client;

struct query {
	struct upstream_query uq;
	struct loop_timer deadline;
	struct frontend *fe;
	struct query *next, *prev;	 /* every query in flight */
	struct tcp_client *tc;		 /* TCP: the client; NULL for UDP */
	struct query *tc_next, *tc_prev; /* the TCP client's queries */
	union sockaddr_any client;	 /* UDP: the client... */
	union sockaddr_any odst;	 /* ...and the address it asked */
	union sockaddr_any nat;		 /* UDP, redirected: where to (else family 0) */
	struct dns_msg m;		 /* the parsed query */
	struct cache *cache;		 /* where its answer goes (NULL: nowhere) */
	struct upstream_pool *pool;	 /* where it was sent (a reload may bring a new one) */
	uint64_t start_ms;
	size_t udp_limit;
	unsigned int ifindex; /* where it came in (0: unknown), for the client's group */
	struct inflight_wait share; /* its client's share (fe->shares); the ready list's links */
	uint8_t held;		    /* QUERY_RUNNING, QUERY_WAITING or QUERY_READY */
	uint16_t len;
	uint8_t msg[];
};

/*
 * A query beyond its client's in-flight share waits (in fe->shares) until one of the client's
 * earlier queries ends; it is then ready, and a deferred call sends it upstream.
 */
enum { QUERY_RUNNING, QUERY_WAITING, QUERY_READY };

struct reply_sock {
	union sockaddr_any addr;
	int fd;		    /* -1 when local */
	bool local;	    /* addr is one of ours: answer through the raw socket */
	uint64_t last_used;
	uint64_t checked;   /* when local was found out */
};

/* A UDP answer waiting for the batch's sendmmsg. */
struct udp_out {
	int fd;			   /* a reply socket, or a raw socket */
	int err;		   /* errno of its send, 0 when it left */
	bool raw;		   /* buf is a whole IP packet (nfqueue mode) */
	uint16_t len, payload_off; /* the datagram in buf; where the DNS message starts */
	union sockaddr_any to;	   /* where sendmmsg sends it (port 0 for raw sockets) */
	union sockaddr_any client, odst;
	uint8_t buf[PKT_MAX_HDR + UDP_OUT_PAYLOAD];
};

struct listener {
	struct frontend *fe;
	struct loop_watch watch;
	int family;
};

struct tcp_client {
	struct frontend *fe;
	struct loop_watch watch;
	struct loop_timer idle;
	struct tcp_client *next, *prev;
	struct query *queries;
	unsigned int nqueries;
	bool eof;
	bool busy; /* its input is being walked: answers are only queued */
	bool dead; /* does not read its answers: close as soon as nothing walks its input */
	uint64_t progress_ms; /* when it last sent us something or took some of our output */
	union sockaddr_any peer_addr;
	union sockaddr_any local_addr; /* the address the client asked */
	unsigned int ifindex; /* where its SYN came in (0: unknown) */
	struct loop_timer resume;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	char peer[INET6_ADDRSTRLEN + 8];
};

struct frontend {
	struct loop *loop;
	const struct config *cfg;
	struct upstream_pool *pool;
	struct stats *stats;
	struct cache *cache; /* NULL: no cache */
	/* groups with upstreams of their own keep their answers apart: one cache each */
	struct cache *group_cache[POLICY_MAX_GROUPS];
	struct ratelimit *rl; /* NULL: no rate limit */
	struct inflight *shares; /* each client's queries in flight (NULL: no memory) */
	struct query *ready, *ready_tail; /* queries whose turn came, linked through share */
	struct loop_defer ready_defer;
	struct dnstap_queue *dnstap; /* NULL: no dnstap */
	struct listener udp[2], tcp[2];
	int raw[2]; /* IPPROTO_RAW sockets, IPv4 and IPv6; -1 when unused */
	bool raw_all; /* nfqueue mode: every UDP answer is raw (else: only local ones) */
	struct conntrack *ct; /* original destinations of redirected UDP; NULL: not known */
	const union sockaddr_any *nat; /* see the top of this file */
	struct loop_timer accept_retry;
	struct reply_sock replies[REPLY_SOCKS_MAX];
	size_t nreplies;
	struct query *queries;
	_Atomic unsigned int inflight; /* also read by the metrics thread (frontend_inflight) */
	struct tcp_client *clients;
	unsigned int nclients;
	struct log_ratelimit rl_malformed, rl_reply, rl_tcp, rl_ct;
	/* UDP receive batch */
	struct mmsghdr mmsg[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	union sockaddr_any from[UDP_BATCH];
	uint8_t ctrl[UDP_BATCH][CMSG_SPACE(sizeof(struct sockaddr_in6)) +
				CMSG_SPACE(sizeof(struct in6_pktinfo))];
	bool want_ifindex; /* some client group names an interface */
	struct iftab *iftab; /* interface names by index, when want_ifindex (NULL: none yet) */
	struct loop_watch iftab_watch;
	uint8_t bufs[UDP_BATCH][UDP_QUERY_MAX];
	/* UDP answer batch */
	struct loop_defer udp_defer;
	unsigned int nout;
	struct mmsghdr out_mmsg[UDP_OUT_BATCH];
	struct iovec out_iov[UDP_OUT_BATCH];
	struct udp_out out[UDP_OUT_BATCH];
	uint8_t reply[DNS_MAX_MSG];
	uint8_t packet[PKT_MAX_HDR + DNS_MAX_MSG];
};

static void tcp_client_close(struct tcp_client *tc);
static void tcp_client_write(struct tcp_client *tc);
static void listeners_enable(struct frontend *fe, bool on);
static void udp_flush(struct frontend *fe);
static int frontend_iftab_open(struct frontend *fe);
static int query_group(const struct query *q);
static bool answer_police(struct frontend *fe, int group, const uint8_t *ans, size_t alen,
			  const struct dns_msg *r, const uint8_t *qmsg, size_t qlen,
			  const struct dns_msg *qm, struct tcp_client *tc,
			  const union sockaddr_any *client, const union sockaddr_any *odst);

/* --- UDP answers ---------------------------------------------------------------------- */

static int set_transparent(int fd, int family)
{
	int one = 1;

	if (family == AF_INET6)
		return setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
	return setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
}

/*
 * addr_is_local - is a (its address; the port does not count) one of this machine's? When
 * the interfaces cannot be read, it counts as local: the safe answer, as no socket is then
 * bound there.
 */
static bool addr_is_local(const union sockaddr_any *a)
{
	struct ifaddrs *ifa, *i;
	bool local = false;

	if (getifaddrs(&ifa) < 0)
		return true;
	for (i = ifa; i && !local; i = i->ifa_next) {
		const union sockaddr_any *x = (const union sockaddr_any *)(void *)i->ifa_addr;

		if (!x || x->sa.sa_family != a->sa.sa_family)
			continue;
		if (a->sa.sa_family == AF_INET)
			local = x->sin.sin_addr.s_addr == a->sin.sin_addr.s_addr;
		else
			local = memcmp(&x->sin6.sin6_addr, &a->sin6.sin6_addr, 16) == 0;
	}
	freeifaddrs(ifa);
	return local;
}

static void reply_sock_close(struct frontend *fe, struct reply_sock *rs)
{
	/* the batch may hold answers for this socket: they leave first */
	if (rs->fd >= 0 && fe->nout)
		udp_flush(fe);
	if (rs->fd >= 0)
		close(rs->fd);
	rs->fd = -1;
}

/* reply_sock_slot - a free cache entry, or the least recently used one, emptied. */
static struct reply_sock *reply_sock_slot(struct frontend *fe)
{
	struct reply_sock *rs;

	if (fe->nreplies < REPLY_SOCKS_MAX)
		return &fe->replies[fe->nreplies++];
	rs = &fe->replies[0];
	for (size_t i = 1; i < fe->nreplies; i++)
		if (fe->replies[i].last_used < rs->last_used)
			rs = &fe->replies[i];
	reply_sock_close(fe, rs);
	return rs;
}

/*
 * reply_sock_get - what answers from odst leave through: the reply socket bound to it,
 * opened (evicting the LRU one) if needed; or, when odst is local, the raw socket of its
 * family, with *raw set (-EADDRINUSE when there is none). Returns the fd or -errno.
 */
static int reply_sock_get(struct frontend *fe, const union sockaddr_any *odst, bool *raw)
{
	uint64_t now = loop_now_ms(fe->loop);
	struct reply_sock *rs = NULL;
	int fd, one = 1;
	bool local;

	for (size_t i = 0; i < fe->nreplies && !rs; i++)
		if (addr_equal(&fe->replies[i].addr, odst))
			rs = &fe->replies[i];
	if (rs && now - rs->checked >= REPLY_RECHECK_MS) {
		local = addr_is_local(odst);
		rs->checked = now;
		if (local != rs->local) {
			reply_sock_close(fe, rs);
			rs->local = local;
		}
	}
	if (rs && (rs->local || rs->fd >= 0)) {
		rs->last_used = now;
		fd = rs->local ? fe->raw[odst->sa.sa_family == AF_INET6] : rs->fd;
		*raw = rs->local;
		return fd >= 0 ? fd : -EADDRINUSE;
	}
	local = rs ? rs->local : addr_is_local(odst);
	if (local) {
		fd = -1;
		goto out_store;
	}
	fd = socket(odst->sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (set_transparent(fd, odst->sa.sa_family) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &fe->cfg->bypass_mark,
		       sizeof(fe->cfg->bypass_mark)) < 0 ||
	    (odst->sa.sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, &odst->sa, addr_len(odst)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
out_store:
	/* a new entry; or one whose socket a recheck closed */
	if (!rs) {
		rs = reply_sock_slot(fe);
		rs->checked = now;
	}
	rs->addr = *odst;
	rs->fd = fd;
	rs->local = local;
	rs->last_used = now;
	*raw = local;
	if (local) {
		fd = fe->raw[odst->sa.sa_family == AF_INET6];
		return fd >= 0 ? fd : -EADDRINUSE;
	}
	return fd;
}

/*
 * raw_build - the answer as an IP packet from odst to client, for a raw socket (nfqueue mode:
 * the query was dropped, no socket ever saw it), in out; *to becomes its destination. Returns
 * the packet's length, or -errno.
 */
static int raw_build(uint8_t *out, size_t outlen, const union sockaddr_any *client,
		     const union sockaddr_any *odst, const uint8_t *msg, size_t len,
		     union sockaddr_any *to)
{
	int n;

	if (client->sa.sa_family == AF_INET6)
		n = pkt_udp_build(out, outlen, AF_INET6, odst->sin6.sin6_addr.s6_addr,
				  ntohs(odst->sin6.sin6_port), client->sin6.sin6_addr.s6_addr,
				  ntohs(client->sin6.sin6_port), msg, len);
	else
		n = pkt_udp_build(out, outlen, AF_INET, (const uint8_t *)&odst->sin.sin_addr,
				  ntohs(odst->sin.sin_port), (const uint8_t *)&client->sin.sin_addr,
				  ntohs(client->sin.sin_port), msg, len);
	if (n < 0)
		return n;
	/* raw IPPROTO_RAW sockets want port 0 in the destination */
	*to = *client;
	if (to->sa.sa_family == AF_INET6)
		to->sin6.sin6_port = 0;
	else
		to->sin.sin_port = 0;
	return n;
}

static void udp_send_error(struct frontend *fe, const union sockaddr_any *client,
			   const union sockaddr_any *odst, int err)
{
	char a[64], b[64];

	fe->stats->reply_errors++;
	log_ratelimited(&fe->rl_reply, LOG_LVL_WARN, "cannot answer %s from %s: %s",
			addr_text(client, a, sizeof(a)), addr_text(odst, b, sizeof(b)),
			strerror(-err));
}

/* udp_send_raw - msg to client from odst as a raw packet on fd; 0 or -errno. */
static int udp_send_raw(struct frontend *fe, int fd, const union sockaddr_any *client,
			const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	union sockaddr_any to;
	int n = raw_build(fe->packet, sizeof(fe->packet), client, odst, msg, len, &to);

	if (n < 0)
		return n;
	if (sendto(fd, fe->packet, (size_t)n, 0, &to.sa, addr_len(&to)) < 0)
		return -errno;
	return 0;
}

/*
 * udp_send_reply_sock - send msg, too large for a raw packet, to client from odst through a
 * reply socket. From a local address, where no reply socket may be bound, it goes raw after
 * all, cut to header, question and OPT with TC set. 0 or -errno.
 */
static int udp_send_reply_sock(struct frontend *fe, const union sockaddr_any *client,
			       const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	bool raw = false;
	int fd = reply_sock_get(fe, odst, &raw), n;
	struct dns_msg r;
	uint8_t *cut;

	if (fd < 0)
		return fd;
	if (!raw) {
		if (sendto(fd, msg, len, 0, &client->sa, addr_len(client)) < 0)
			return -errno;
		return 0;
	}
	cut = malloc(len);
	if (!cut)
		return -ENOMEM;
	memcpy(cut, msg, len);
	n = dns_msg_parse(&r, cut, len);
	if (n == 0)
		n = dns_truncate(cut, &r, len);
	if (n >= 0)
		n = udp_send_raw(fe, fd, client, odst, cut, (size_t)n);
	if (n == 0)
		fe->stats->truncated++;
	free(cut);
	return n;
}

/*
 * udp_send_now - send an answer at once, outside the batch: raw injection when every answer is
 * raw or odst is local, else (or when the packet exceeds the path MTU: raw sends never
 * fragment, a reply socket does) a reply socket.
 */
static void udp_send_now(struct frontend *fe, const union sockaddr_any *client,
			 const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	int fd = fe->raw[client->sa.sa_family == AF_INET6], r;
	bool raw = fe->raw_all && fd >= 0;

	if (!raw)
		fd = reply_sock_get(fe, odst, &raw);
	if (fd < 0)
		r = fd;
	else if (raw)
		r = udp_send_raw(fe, fd, client, odst, msg, len);
	else
		r = sendto(fd, msg, len, 0, &client->sa, addr_len(client)) < 0 ? -errno : 0;
	if (raw && r == -EMSGSIZE)
		r = udp_send_reply_sock(fe, client, odst, msg, len);
	if (r < 0)
		udp_send_error(fe, client, odst, r);
}

/*
 * udp_flush - send the batch: one sendmmsg per run of answers for the same socket. Failures
 * are handled after every answer was tried, with the batch already empty: a raw packet over
 * the path MTU goes again through a reply socket, whose opening may evict another one.
 */
static void udp_flush(struct frontend *fe)
{
	unsigned int n = fe->nout, i = 0;

	loop_defer_cancel(fe->loop, &fe->udp_defer);
	for (unsigned int k = 0; k < n; k++) {
		struct udp_out *o = &fe->out[k];
		struct msghdr *mh = &fe->out_mmsg[k].msg_hdr;

		fe->out_iov[k].iov_base = o->buf;
		fe->out_iov[k].iov_len = o->len;
		memset(mh, 0, sizeof(*mh));
		mh->msg_name = &o->to;
		mh->msg_namelen = addr_len(&o->to);
		mh->msg_iov = &fe->out_iov[k];
		mh->msg_iovlen = 1;
		o->err = 0;
	}
	while (i < n) {
		unsigned int j = i + 1;
		int r;

		while (j < n && fe->out[j].fd == fe->out[i].fd)
			j++;
		/* a short count: the next answer failed; sent alone again, it tells why */
		r = sendmmsg(fe->out[i].fd, &fe->out_mmsg[i], j - i, MSG_DONTWAIT);
		if (r <= 0) {
			fe->out[i].err = r < 0 ? errno : EIO;
			i++;
			continue;
		}
		i += (unsigned int)r;
	}
	fe->nout = 0;
	for (unsigned int k = 0; k < n; k++) {
		struct udp_out *o = &fe->out[k];
		int r = -o->err;

		if (!r)
			continue;
		if (o->raw && r == -EMSGSIZE)
			r = udp_send_reply_sock(fe, &o->client, &o->odst, o->buf + o->payload_off,
						(size_t)(o->len - o->payload_off));
		if (r < 0)
			udp_send_error(fe, &o->client, &o->odst, r);
	}
}

static void udp_flush_deferred(struct loop_defer *d)
{
	udp_flush(container_of(d, struct frontend, udp_defer));
}

/*
 * udp_send_nat - answer a redirected query (see the top of this file): from the listener, with
 * the redirect's address as the source. At once: bridged clients are few, and this keeps the
 * batch free of control messages.
 */
static void udp_send_nat(struct frontend *fe, const union sockaddr_any *client,
			 const union sockaddr_any *odst, const union sockaddr_any *nat,
			 const uint8_t *msg, size_t len)
{
	bool v6 = client->sa.sa_family == AF_INET6;
	union {
		struct cmsghdr c;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = {
		.msg_name = (void *)&client->sa,
		.msg_namelen = addr_len(client),
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
	};
	struct cmsghdr *c;

	memset(&ctl, 0, sizeof(ctl));
	c = &ctl.c;
	if (v6) {
		struct in6_pktinfo pi = { .ipi6_addr = nat->sin6.sin6_addr,
					  .ipi6_ifindex = client->sin6.sin6_scope_id };

		c->cmsg_level = SOL_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	} else {
		struct in_pktinfo pi = { .ipi_spec_dst = nat->sin.sin_addr };

		c->cmsg_level = SOL_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	}
	if (fe->udp[v6].watch.fd < 0 || sendmsg(fe->udp[v6].watch.fd, &mh, MSG_DONTWAIT) < 0)
		udp_send_error(fe, client, odst, fe->udp[v6].watch.fd < 0 ? -EBADF : -errno);
}

/*
 * udp_send - answer a UDP client from odst: into the batch, sent at the end of this loop
 * iteration, unless it is too large for a batch slot.
 */
static void udp_send(struct frontend *fe, const union sockaddr_any *client,
		     const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	int fd = fe->raw[client->sa.sa_family == AF_INET6], n;
	bool raw = fe->raw_all && fd >= 0;
	struct udp_out *o;

	if (fe->nat) {
		udp_send_nat(fe, client, odst, fe->nat, msg, len);
		return;
	}
	if (len > UDP_OUT_PAYLOAD) {
		udp_send_now(fe, client, odst, msg, len);
		return;
	}
	if (fe->nout == UDP_OUT_BATCH)
		udp_flush(fe);
	if (!raw) {
		/* before taking a slot: opening a reply socket may flush the batch */
		fd = reply_sock_get(fe, odst, &raw);
		if (fd < 0) {
			udp_send_error(fe, client, odst, fd);
			return;
		}
	}
	o = &fe->out[fe->nout];
	o->raw = raw;
	if (raw) {
		n = raw_build(o->buf, sizeof(o->buf), client, odst, msg, len, &o->to);
		if (n < 0) {
			udp_send_error(fe, client, odst, n);
			return;
		}
		o->payload_off = (uint16_t)((size_t)n - len);
	} else {
		memcpy(o->buf, msg, len);
		o->to = *client;
		n = (int)len;
		o->payload_off = 0;
	}
	o->fd = fd;
	o->len = (uint16_t)n;
	o->client = *client;
	o->odst = *odst;
	fe->nout++;
	loop_defer(fe->loop, &fe->udp_defer);
}

/* --- the life of a query ------------------------------------------------------------- */

static void query_submit(struct query *q)
{
	q->held = QUERY_RUNNING;
	q->pool = q->fe->pool;
	upstream_pool_submit(q->pool, &q->uq); /* may complete (and free) q at once */
}

/* queries_ready_run - send the queries whose turn came upstream, oldest first. */
static void queries_ready_run(struct loop_defer *d)
{
	struct frontend *fe = container_of(d, struct frontend, ready_defer);

	while (fe->ready) {
		struct query *q = fe->ready;
		struct inflight_wait *next = q->share.next;

		fe->ready = next ? container_of(next, struct query, share) : NULL;
		if (!fe->ready)
			fe->ready_tail = NULL;
		else
			fe->ready->share.prev = NULL;
		q->share.next = q->share.prev = NULL;
		query_submit(q); /* may end other queries and make more ready */
	}
}

/* query_make_ready - q's turn came (it is counted): it goes upstream at the end of this
 * loop iteration, not here, deep in another query's completion. */
static void query_make_ready(struct query *q)
{
	struct frontend *fe = q->fe;

	q->held = QUERY_READY;
	q->share.next = NULL;
	q->share.prev = fe->ready_tail ? &fe->ready_tail->share : NULL;
	if (fe->ready_tail)
		fe->ready_tail->share.next = &q->share;
	else
		fe->ready = q;
	fe->ready_tail = q;
	loop_defer(fe->loop, &fe->ready_defer);
}

/* query_share_end - q no longer counts against its client's share, nor waits in it. */
static void query_share_end(struct query *q)
{
	struct frontend *fe = q->fe;
	struct inflight_wait *next;

	if (q->held == QUERY_WAITING) {
		inflight_unwait(fe->shares, &q->share);
		return;
	}
	if (q->held == QUERY_READY) {
		if (q->share.prev)
			q->share.prev->next = q->share.next;
		else
			fe->ready = q->share.next ? container_of(q->share.next, struct query, share)
						  : NULL;
		if (q->share.next)
			q->share.next->prev = q->share.prev;
		else
			fe->ready_tail = q->share.prev ? container_of(q->share.prev, struct query,
								       share)
						       : NULL;
	}
	if (q->share.slot >= 0 && (next = inflight_put(fe->shares, &q->share)))
		query_make_ready(container_of(next, struct query, share));
}

static void query_free(struct query *q)
{
	struct frontend *fe = q->fe;

	loop_timer_cancel(fe->loop, &q->deadline);
	if (q->prev)
		q->prev->next = q->next;
	else
		fe->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	fe->inflight--;
	query_share_end(q);
	if (q->tc) {
		struct tcp_client *tc = q->tc;

		if (q->tc_prev)
			q->tc_prev->tc_next = q->tc_next;
		else
			tc->queries = q->tc_next;
		if (q->tc_next)
			q->tc_next->tc_prev = q->tc_prev;
		tc->nqueries--;
	}
	free(q);
}

/* tap - a dnstap message for this query or response, when dnstap is on. */
static void tap(struct frontend *fe, bool response, struct tcp_client *tc,
		const union sockaddr_any *client, const union sockaddr_any *odst, const uint8_t *msg,
		size_t len)
{
	if (!fe->dnstap)
		return;
	if (!dnstap_log(fe->dnstap, response, tc != NULL, tc ? &tc->peer_addr.sa : &client->sa,
			tc ? &tc->local_addr.sa : &odst->sa, msg, len))
		fe->stats->dnstap_dropped++;
}

/* client_send - hand a finished answer to the client's transport. */
static void client_send(struct frontend *fe, struct tcp_client *tc, const union sockaddr_any *client,
			const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	size_t need;

	tap(fe, true, tc, client, odst, msg, len);

	if (!tc) {
		udp_send(fe, client, odst, msg, len);
		return;
	}
	/* the limit counts what the client has yet to take, not what it took already */
	need = tc->out_len - tc->out_off + 2 + len;
	if (need > TCP_CLIENT_OUT_MAX)
		goto out_dead;
	if (tc->out_len + 2 + len > tc->out_cap) {
		if (tc->out_off) {
			/* compact: what was sent makes room for what follows */
			memmove(tc->out, tc->out + tc->out_off, tc->out_len - tc->out_off);
			tc->out_len -= tc->out_off;
			tc->out_off = 0;
		}
		if (need > tc->out_cap) {
			size_t cap = tc->out_cap ? tc->out_cap : 1024;
			uint8_t *p;

			while (cap < need)
				cap *= 2;
			p = realloc(tc->out, cap);
			if (!p)
				goto out_dead;
			tc->out = p;
			tc->out_cap = cap;
		}
	}
	dns_put16(tc->out + tc->out_len, (uint16_t)len);
	memcpy(tc->out + tc->out_len + 2, msg, len);
	tc->out_len += 2 + len;
	return;

out_dead:
	fe->stats->reply_errors++;
	log_ratelimited(&fe->rl_tcp, LOG_LVL_WARN,
			"TCP client %s does not read its answers, closing", tc->peer);
	tc->eof = true;
	tc->dead = true;
}

static const char *rcode_name(unsigned int rcode)
{
	static const char *const names[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
					     "NOTIMP",	"REFUSED" };

	return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode] : "RCODE";
}

/* query_log - --query-log: client, name, type, rcode, where the answer came from, latency. */
static void query_log(struct frontend *fe, struct tcp_client *tc, const union sockaddr_any *client,
		      const struct dns_msg *m, const uint8_t *answer, const char *via,
		      uint64_t start_ms)
{
	char who[64], name[DNS_MAX_NAME * 4 + 1];

	if (!fe->cfg->query_log)
		return;
	if (dns_name_to_text(m->q.name, m->q.name_len, name, sizeof(name)) < 0)
		strcpy(name, "?");
	log_info("query %s %s %u %s %s%s %llu ms", tc ? tc->peer : addr_text(client, who, sizeof(who)),
		 name, m->q.qtype, rcode_name(dns_get16(answer + 2) & DNS_RCODE_MASK),
		 tc ? "tcp " : "udp ", via ? via : "-",
		 (unsigned long long)(loop_now_ms(fe->loop) - start_ms));
}

/*
 * deliver - send an answer (already carrying the client's id) in out, cut to udp_limit with
 * TC set when it is larger. view describes out when the caller has it (NULL: parsed here,
 * should it need cutting).
 */
static void deliver(struct frontend *fe, struct tcp_client *tc, const union sockaddr_any *client,
		    const union sockaddr_any *odst, size_t udp_limit, uint8_t *out, size_t len,
		    const struct dns_msg *view)
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
	client_send(fe, tc, client, odst, out, len);
}

/*
 * query_finish - answer q with msg (an answer from the upstream, any id, parsed into r), or
 * with rcode when msg is NULL (SERVFAIL: a stale cached answer instead, when serve-stale
 * allows); then free q.
 */
static void query_finish(struct query *q, const uint8_t *msg, const struct dns_msg *r,
			 int rcode)
{
	struct frontend *fe = q->fe;
	struct tcp_client *tc = q->tc;
	uint8_t *out = fe->reply;
	const char *via = "-";
	size_t len = 0;
	int n;

	if (msg) {
		if (answer_police(fe, query_group(q), msg, r->len, r, q->msg, q->len, &q->m, tc,
				  &q->client, &q->odst))
			goto out_free;
		len = r->len;
		memcpy(out, msg, len);
		dns_put16(out, q->m.id);
		via = q->uq.answered_by;
	} else if (rcode == DNS_RCODE_SERVFAIL && q->cache && fe->cfg->serve_stale &&
		   (n = cache_lookup(q->cache, &q->m, out, sizeof(fe->reply),
				     loop_now_ms(fe->loop), true)) >= 0) {
		if (answer_police(fe, query_group(q), out, (size_t)n, NULL, q->msg, q->len, &q->m,
				  tc, &q->client, &q->odst))
			goto out_free;
		fe->stats->cache_stale++;
		len = (size_t)n;
		via = "cache(stale)";
	} else {
		n = dns_build_error(out, sizeof(fe->reply), q->msg, q->len, &q->m, rcode);
		if (n < 0) {
			fe->stats->dropped++;
			goto out_free;
		}
		len = (size_t)n;
		if (rcode == DNS_RCODE_SERVFAIL)
			fe->stats->servfail++;
	}
	query_log(fe, tc, &q->client, &q->m, out, via, q->start_ms);
	fe->nat = q->nat.sa.sa_family ? &q->nat : NULL;
	deliver(fe, tc, &q->client, &q->odst, q->udp_limit, out, len, msg ? r : NULL);
	fe->nat = NULL;
out_free:
	query_free(q);
	if (tc && !tc->busy)
		tcp_client_write(tc);
}

static void query_complete(struct upstream_query *uq, const uint8_t *answer,
			   const struct dns_msg *r, int err)
{
	struct query *q = container_of(uq, struct query, uq);
	struct frontend *fe = q->fe;

	if (err) {
		log_debug("query id %u: %s, SERVFAIL", q->m.id, strerror(-err));
		query_finish(q, NULL, NULL, DNS_RCODE_SERVFAIL);
		return;
	}
	fe->stats->answered++;
	/* r came from the upstream module: the answer is parsed once, there */
	if (q->cache && cache_store(q->cache, &q->m, answer, r, loop_now_ms(fe->loop)) == 0)
		fe->stats->cache_stored++;
	query_finish(q, answer, r, 0);
}

static void query_deadline(struct loop_timer *t)
{
	struct query *q = container_of(t, struct query, deadline);

	upstream_query_cancel(q->pool, &q->uq, true);
	log_debug("query id %u: no answer within %u ms, SERVFAIL", q->m.id, q->fe->cfg->timeout_ms);
	query_finish(q, NULL, NULL, DNS_RCODE_SERVFAIL);
}

/*
 * query_reject - answer a message that will not go upstream, at once: rcode FORMERR (m NULL:
 * only its header could be read), REFUSED (rate limit, policy) or SERVFAIL (overload). Error
 * answers are small (header, question, OPT), within any client's UDP limit.
 */
static void query_reject(struct frontend *fe, const uint8_t *msg, size_t len,
			 const struct dns_msg *m, int rcode, struct tcp_client *tc,
			 const union sockaddr_any *client, const union sockaddr_any *odst)
{
	int n = dns_build_error(fe->reply, sizeof(fe->reply), msg, len, m, rcode);

	if (n < 0) {
		fe->stats->dropped++;
		return;
	}
	client_send(fe, tc, client, odst, fe->reply, (size_t)n);
}

static bool client_allowed(struct frontend *fe, const union sockaddr_any *a)
{
	return ratelimit_allow(fe->rl, a->sa.sa_family, addr_bytes(a), loop_now_ms(fe->loop));
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
	return client_group(q->fe, q->tc ? &q->tc->peer_addr : &q->client, q->ifindex);
}

/* policy_answer - answer the query msg (parsed into m) as action a of a group says. */
static void policy_answer(struct frontend *fe, const uint8_t *msg, size_t len,
			  const struct dns_msg *m, enum policy_action a,
			  const struct policy_rule *rule, struct tcp_client *tc,
			  const union sockaddr_any *client, const union sockaddr_any *odst)
{
	int n;

	fe->stats->policy_denied++;
	if (a == POLICY_SINKHOLE) {
		n = dns_build_address(fe->reply, sizeof(fe->reply), msg, m, rule->sink_family,
				      rule->sink, 60);
		if (n < 0)
			fe->stats->dropped++;
		else
			client_send(fe, tc, client, odst, fe->reply, (size_t)n);
	} else {
		query_reject(fe, msg, len, m,
			     a == POLICY_NXDOMAIN ? DNS_RCODE_NXDOMAIN : DNS_RCODE_REFUSED, tc,
			     client, odst);
	}
}

/*
 * query_police - apply the client's group rules to the query m. Returns true when the query
 * was answered here (denied, NXDOMAIN, sinkhole); else stores the group (or -1) in *group.
 */
static bool query_police(struct frontend *fe, const uint8_t *msg, size_t len,
			 const struct dns_msg *m, struct tcp_client *tc,
			 const union sockaddr_any *client, const union sockaddr_any *odst,
			 unsigned int ifindex, int *group)
{
	const struct policy_rule *rule;
	enum policy_action a;

	*group = client_group(fe, tc ? &tc->peer_addr : client, ifindex);
	if (*group == GROUP_IF_UNKNOWN) {
		char who[64];

		log_ratelimited(&fe->rl_malformed, LOG_LVL_WARN,
				"query from %s on interface %u, whose name is unknown: REFUSED",
				tc ? tc->peer : addr_text(client, who, sizeof(who)), ifindex);
		*group = -1;
		policy_answer(fe, msg, len, m, POLICY_REFUSED, NULL, tc, client, odst);
		return true;
	}
	if (*group < 0)
		return false;
	a = policy_check(&fe->cfg->groups.groups[*group], m->q.name, m->q.name_len, &rule);
	if (a == POLICY_PASS)
		return false;
	policy_answer(fe, msg, len, m, a, rule, tc, client, odst);
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
			  const struct dns_msg *qm, struct tcp_client *tc,
			  const union sockaddr_any *client, const union sockaddr_any *odst)
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
	policy_answer(fe, qmsg, qlen, qm, a, rule, tc, client, odst);
	return true;
}

/*
 * query_start - a message arrived from a client: answer bad ones at once, else make a query
 * and submit it. tc is NULL for UDP (then client and odst are set). For TCP the caller holds
 * tc->busy, so nothing here writes to or closes the client.
 */
static void query_start(struct frontend *fe, const uint8_t *msg, size_t len,
			struct tcp_client *tc, const union sockaddr_any *client,
			const union sockaddr_any *odst, unsigned int ifindex)
{
	struct cache *cache;
	struct dns_msg m;
	struct query *q;
	char a[64];
	int r, group;

	fe->stats->queries++;
	if (tc)
		fe->stats->queries_tcp++;
	else
		fe->stats->queries_udp++;
	if ((tc ? &tc->peer_addr : client)->sa.sa_family == AF_INET6)
		fe->stats->queries_ipv6++;
	else
		fe->stats->queries_ipv4++;
	if (fe->rl && !client_allowed(fe, tc ? &tc->peer_addr : client)) {
		fe->stats->rate_limited++;
		if (fe->cfg->rate_refuse && len >= DNS_HDR_LEN && !(dns_get16(msg + 2) & DNS_FLAG_QR) &&
		    dns_msg_parse(&m, msg, len) == 0 && dns_query_check(&m) == 0)
			query_reject(fe, msg, len, &m, DNS_RCODE_REFUSED, tc, client, odst);
		return;
	}
	if (len < DNS_HDR_LEN || (dns_get16(msg + 2) & DNS_FLAG_QR)) {
		/* Not a query at all: never answer it (no loops, no reflection). */
		fe->stats->malformed++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"dropped a %zu-octet non-query from %s", len,
				tc ? tc->peer : addr_text(client, a, sizeof(a)));
		return;
	}
	/* every opcode and a header-only query go upstream too: its answer, not one of ours */
	r = dns_msg_parse(&m, msg, len);
	if (r < 0) {
		fe->stats->malformed++;
		fe->stats->formerr++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"malformed %zu-octet query from %s, FORMERR", len,
				tc ? tc->peer : addr_text(client, a, sizeof(a)));
		query_reject(fe, msg, len, NULL, DNS_RCODE_FORMERR, tc, client, odst);
		return;
	}
	tap(fe, false, tc, client, odst, msg, len);
	if (tc)
		ifindex = tc->ifindex;
	if (query_police(fe, msg, len, &m, tc, client, odst, ifindex, &group))
		return;
	cache = group >= 0 && fe->group_cache[group] ? fe->group_cache[group] : fe->cache;
	if (cache) {
		int n = cache_lookup(cache, &m, fe->reply, sizeof(fe->reply),
				     loop_now_ms(fe->loop), false);

		if (n >= 0) {
			if (answer_police(fe, group, fe->reply, (size_t)n, NULL, msg, len, &m, tc,
					  client, odst))
				return;
			fe->stats->cache_hits++;
			query_log(fe, tc, client, &m, fe->reply, "cache", loop_now_ms(fe->loop));
			deliver(fe, tc, client, odst,
				tc ? DNS_MAX_MSG : dns_udp_limit(&m, fe->cfg->udp_size_cap),
				fe->reply, (size_t)n, NULL);
			return;
		}
		fe->stats->cache_misses++;
	}
	q = fe->inflight < fe->cfg->max_inflight ? malloc(sizeof(*q) + len) : NULL;
	if (!q) {
		fe->stats->overload++;
		fe->stats->servfail++;
		query_reject(fe, msg, len, &m, DNS_RCODE_SERVFAIL, tc, client, odst);
		return;
	}
	memset(q, 0, sizeof(*q));
	q->share.slot = -1;
	if (fe->shares) {
		const union sockaddr_any *who = tc ? &tc->peer_addr : client;

		r = inflight_take(fe->shares, who->sa.sa_family, addr_bytes(who), &q->share, false);
		if (r == -EBUSY) {
			/* its share is in flight and as many wait: the other clients keep theirs */
			free(q);
			fe->stats->client_overload++;
			fe->stats->servfail++;
			query_reject(fe, msg, len, &m, DNS_RCODE_SERVFAIL, tc, client, odst);
			return;
		}
		if (r == 1) {
			q->held = QUERY_WAITING;
			fe->stats->client_waited++;
		}
	}
	q->fe = fe;
	q->m = m;
	q->start_ms = loop_now_ms(fe->loop);
	q->ifindex = ifindex;
	q->cache = cache;
	if (group >= 0)
		q->uq.allowed = fe->cfg->groups.groups[group].upstreams;
	q->len = (uint16_t)len;
	memcpy(q->msg, msg, len);
	if (tc) {
		q->tc = tc;
		q->tc_next = tc->queries;
		if (tc->queries)
			tc->queries->tc_prev = q;
		tc->queries = q;
		tc->nqueries++;
		q->udp_limit = DNS_MAX_MSG;
	} else {
		q->client = *client;
		q->odst = *odst;
		if (fe->nat)
			q->nat = *fe->nat;
		q->udp_limit = dns_udp_limit(&m, fe->cfg->udp_size_cap);
	}
	q->next = fe->queries;
	if (fe->queries)
		fe->queries->prev = q;
	fe->queries = q;
	fe->inflight++;
	loop_timer_init(&q->deadline, query_deadline);
	if (log_enabled(LOG_LVL_DEBUG)) {
		char name[DNS_MAX_NAME * 4 + 1], b[64];

		if (dns_name_to_text(m.q.name, m.q.name_len, name, sizeof(name)) < 0)
			strcpy(name, "?");
		log_debug("query %s type %u from %s%s%s over %s", name, m.q.qtype,
			  tc ? tc->peer : addr_text(client, a, sizeof(a)), tc ? "" : " to ",
			  tc ? "" : addr_text(odst, b, sizeof(b)), tc ? "TCP" : "UDP");
	}
	q->uq.msg = q->msg;
	q->uq.len = q->len;
	q->uq.m = &q->m;
	q->uq.deadline_ms = loop_now_ms(fe->loop) + fe->cfg->timeout_ms;
	q->uq.complete = query_complete;
	if (loop_timer_set(fe->loop, &q->deadline, q->uq.deadline_ms) < 0) {
		query_finish(q, NULL, NULL, DNS_RCODE_SERVFAIL);
		return;
	}
	if (q->held == QUERY_RUNNING)
		query_submit(q);
}

/* --- UDP listener -------------------------------------------------------------------- */

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
	char a[64];
	int r = -ENOTCONN;

	if (!fe->dnstap && !log_enabled(LOG_LVL_DEBUG))
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
	if (odst->sa.sa_family == AF_INET6)
		odst->sin6.sin6_port = htons(53);
	else
		odst->sin.sin_port = htons(53);
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
			log_ratelimited(&fe->rl_reply, LOG_LVL_WARN, "UDP receive: %s",
					strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		struct msghdr *mh = &fe->mmsg[i].msg_hdr;
		union sockaddr_any odst;
		unsigned int ifindex;

		union sockaddr_any nat;

		if (!addr_cmsg_orig_dst(mh, &odst, &ifindex) || (mh->msg_flags & MSG_TRUNC)) {
			fe->stats->malformed++;
			continue;
		}
		/* TPROXY keeps port 53; only the bridge redirect makes it the listener's */
		if (addr_port(&odst) == fe->cfg->tproxy_port) {
			nat = odst;
			udp_nat_orig_dst(fe, &fe->from[i], &nat, &odst);
			fe->nat = &nat;
		}
		query_start(fe, fe->bufs[i], fe->mmsg[i].msg_len, NULL, &fe->from[i], &odst,
			    ifindex);
		fe->nat = NULL;
	}
}

bool frontend_queue_packet(void *data, const uint8_t *pkt, size_t len, unsigned int ifindex,
			   bool csum_ready)
{
	struct frontend *fe = data;
	union sockaddr_any client, odst;
	struct pkt_udp p;
	struct dns_msg m;

	if (pkt_udp_parse(&p, pkt, len) < 0 || p.dport != 53) {
		fe->stats->queries++;
		fe->stats->queries_udp++;
		fe->stats->malformed++;
		log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
				"dropped a queued %zu-octet packet that is not UDP to port 53", len);
		return false;
	}
	/* --non-recursive pass: what a resolver, a monitor or a primary sends to the server it
	 * names (RD=0, CH, AXFR/IXFR, NOTIFY...) goes there; only a running dotgw says so */
	if (fe->cfg->nonrec_pass && dns_msg_parse(&m, pkt + p.payload_off, p.payload_len) == 0 &&
	    !(m.flags & DNS_FLAG_QR) && !dns_query_is_stub(&m)) {
		log_debug("a query that is not a stub's (opcode %u, RD %u): let pass",
			  (m.flags & DNS_OPCODE_MASK) >> 11, !!(m.flags & DNS_FLAG_RD));
		return true;
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
	memset(&client, 0, sizeof(client));
	memset(&odst, 0, sizeof(odst));
	client.sa.sa_family = odst.sa.sa_family = (sa_family_t)p.family;
	if (p.family == AF_INET) {
		memcpy(&client.sin.sin_addr, p.src, 4);
		memcpy(&odst.sin.sin_addr, p.dst, 4);
		client.sin.sin_port = htons(p.sport);
		odst.sin.sin_port = htons(p.dport);
	} else {
		memcpy(&client.sin6.sin6_addr, p.src, 16);
		memcpy(&odst.sin6.sin6_addr, p.dst, 16);
		/* a link-local client is only reachable through the interface it came in on */
		if (IN6_IS_ADDR_LINKLOCAL(&client.sin6.sin6_addr))
			client.sin6.sin6_scope_id = odst.sin6.sin6_scope_id = ifindex;
		client.sin6.sin6_port = htons(p.sport);
		odst.sin6.sin6_port = htons(p.dport);
	}
	query_start(fe, pkt + p.payload_off, p.payload_len, NULL, &client, &odst, ifindex);
	return false;
}

/* --- TCP clients -------------------------------------------------------------------- */

static bool tcp_client_has_frame(const struct tcp_client *tc)
{
	return tc->in_len >= 2 && tc->in_len >= 2 + (size_t)dns_get16(tc->in);
}

static void tcp_client_update(struct tcp_client *tc)
{
	struct frontend *fe = tc->fe;
	uint32_t ev = 0;
	bool room = tc->nqueries < TCP_CLIENT_QUERIES;

	if (!tc->eof && room)
		ev |= EPOLLIN;
	if (tc->out_off < tc->out_len)
		ev |= EPOLLOUT;
	loop_watch_mod(fe->loop, &tc->watch, ev);
	/* Frames read while the client was at its query limit: take them up from the loop. */
	if (room && tcp_client_has_frame(tc) && !loop_timer_armed(&tc->resume))
		loop_timer_set(fe->loop, &tc->resume, loop_now_ms(fe->loop));
}

/* tcp_client_write - send what is pending; closes the client when it is finished. */
static void tcp_client_write(struct tcp_client *tc)
{
	if (tc->dead) {
		tcp_client_close(tc);
		return;
	}
	while (tc->out_off < tc->out_len) {
		ssize_t n = send(tc->watch.fd, tc->out + tc->out_off, tc->out_len - tc->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			tcp_client_close(tc);
			return;
		}
		tc->out_off += (size_t)n;
		tc->progress_ms = loop_now_ms(tc->fe->loop);
	}
	if (tc->out_off == tc->out_len)
		tc->out_off = tc->out_len = 0;
	if (tc->eof && tc->nqueries == 0 && tc->out_len == 0) {
		tcp_client_close(tc);
		return;
	}
	tcp_client_update(tc);
}

static void tcp_client_close(struct tcp_client *tc)
{
	struct frontend *fe = tc->fe;

	while (tc->queries) {
		struct query *q = tc->queries;

		upstream_query_cancel(q->pool, &q->uq, false);
		fe->stats->dropped++;
		query_free(q);
	}
	loop_watch_del(fe->loop, &tc->watch);
	close(tc->watch.fd);
	loop_timer_cancel(fe->loop, &tc->idle);
	loop_timer_cancel(fe->loop, &tc->resume);
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		fe->clients = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	if (--fe->nclients < fe->cfg->max_tcp_clients)
		listeners_enable(fe, true);
	free(tc->in);
	free(tc->out);
	free(tc);
}

static void tcp_client_idle(struct loop_timer *t)
{
	struct tcp_client *tc = container_of(t, struct tcp_client, idle);

	uint64_t now = loop_now_ms(tc->fe->loop);

	/* Output nobody takes for a whole idle period: the client stopped reading. */
	if (tc->out_len && now - tc->progress_ms >= tc->fe->cfg->tcp_idle_ms) {
		log_debug("TCP client %s takes none of its answers, closing", tc->peer);
		tcp_client_close(tc);
		return;
	}
	if (tc->nqueries || tc->out_len) {
		loop_timer_set(tc->fe->loop, &tc->idle, now + tc->fe->cfg->tcp_idle_ms);
		return;
	}
	log_debug("TCP client %s idle, closing", tc->peer);
	tcp_client_close(tc);
}

/*
 * tcp_client_frames - start a query for each complete frame, up to the client's query limit.
 * Returns false when the client was closed (a frame too short to be answered).
 */
static bool tcp_client_frames(struct tcp_client *tc)
{
	struct frontend *fe = tc->fe;
	size_t off = 0;

	tc->busy = true;
	while (tc->nqueries < TCP_CLIENT_QUERIES) {
		const uint8_t *msg;
		size_t mlen;
		int r = dns_frame_next(tc->in, tc->in_len, &off, &msg, &mlen);

		if (r < 0) {
			/* Nothing to answer: the stream cannot be trusted any more. */
			fe->stats->malformed++;
			log_ratelimited(&fe->rl_malformed, LOG_LVL_DEBUG,
					"TCP client %s sent a frame shorter than a header, closing",
					tc->peer);
			tcp_client_close(tc);
			return false;
		}
		if (r == 0)
			break;
		query_start(fe, msg, mlen, tc, NULL, NULL, 0);
	}
	tc->busy = false;
	if (off) {
		memmove(tc->in, tc->in + off, tc->in_len - off);
		tc->in_len -= off;
	}
	return true;
}

static void tcp_client_resume(struct loop_timer *t)
{
	struct tcp_client *tc = container_of(t, struct tcp_client, resume);

	if (tcp_client_frames(tc))
		tcp_client_write(tc);
}

static void tcp_client_event(struct loop_watch *w, uint32_t revents)
{
	struct tcp_client *tc = container_of(w, struct tcp_client, watch);
	struct frontend *fe = tc->fe;

	if (revents & EPOLLIN) {
		for (int rounds = 0; rounds < 16 && !tc->eof; rounds++) {
			size_t want = 2;
			ssize_t n;

			if (tc->in_len >= 2)
				want = 2 + (size_t)dns_get16(tc->in);
			if (want <= tc->in_len)
				want = tc->in_len + 512;
			if (want > tc->in_cap) {
				size_t cap = want < 512 ? 512 : want;
				uint8_t *p = realloc(tc->in, cap);

				if (!p) {
					tcp_client_close(tc);
					return;
				}
				tc->in = p;
				tc->in_cap = cap;
			}
			n = recv(w->fd, tc->in + tc->in_len, tc->in_cap - tc->in_len, MSG_DONTWAIT);
			if (n == 0) {
				tc->eof = true;
				break;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				tcp_client_close(tc);
				return;
			}
			tc->in_len += (size_t)n;
			tc->progress_ms = loop_now_ms(fe->loop);
			loop_timer_set(fe->loop, &tc->idle, loop_now_ms(fe->loop) + fe->cfg->tcp_idle_ms);
			if (!tcp_client_frames(tc))
				return;
			if (tc->nqueries >= TCP_CLIENT_QUERIES)
				break;
		}
	} else if (revents & (EPOLLERR | EPOLLHUP)) {
		tcp_client_close(tc);
		return;
	}
	tcp_client_write(tc);
}

/*
 * tcp_ifindex - the interface a TCP connection came in on: IP_PKTOPTIONS (Linux) returns the
 * IP_PKTINFO of the last segment received, here the handshake's. 0 when it cannot tell.
 */
static unsigned int tcp_ifindex(int fd, int family)
{
	uint8_t buf[256];
	socklen_t len = sizeof(buf);
	struct msghdr mh = { .msg_control = buf };
	unsigned int ifindex = 0;
	union sockaddr_any unused;

	if (getsockopt(fd, family == AF_INET ? SOL_IP : SOL_IPV6,
		       family == AF_INET ? IP_PKTOPTIONS : IPV6_2292PKTOPTIONS, buf, &len) < 0)
		return 0;
	mh.msg_controllen = len;
	addr_cmsg_orig_dst(&mh, &unused, &ifindex);
	return ifindex;
}

/*
 * tcp_orig_dst - a connection the bridge redirect brought here: replace *local with the
 * address the client asked (SO_ORIGINAL_DST), when the kernel knows it.
 */
static void tcp_orig_dst(int fd, union sockaddr_any *local)
{
	union sockaddr_any o;
	socklen_t len = sizeof(o);
	int r;

	memset(&o, 0, sizeof(o));
	if (local->sa.sa_family == AF_INET6)
		r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &o.sin6, &len);
	else
		r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &o.sin, &len);
	if (r == 0 && o.sa.sa_family == local->sa.sa_family)
		*local = o;
}

static void tcp_accept(struct loop_watch *w, uint32_t revents)
{
	struct listener *l = container_of(w, struct listener, watch);
	struct frontend *fe = l->fe;

	(void)revents;
	for (int i = 0; i < 16 && fe->nclients < fe->cfg->max_tcp_clients; i++) {
		union sockaddr_any peer;
		socklen_t plen = sizeof(peer);
		struct tcp_client *tc;
		int fd;

		fd = accept4(w->fd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Back off instead of spinning on a full fd table. */
				log_ratelimited(&fe->rl_tcp, LOG_LVL_WARN, "accept: %s",
						strerror(errno));
				listeners_enable(fe, false);
				loop_timer_set(fe->loop, &fe->accept_retry,
					       loop_now_ms(fe->loop) + ACCEPT_RETRY_MS);
			}
			return;
		}
		tc = calloc(1, sizeof(*tc));
		if (!tc) {
			close(fd);
			return;
		}
		tc->fe = fe;
		tc->watch.fd = fd;
		tc->watch.cb = tcp_client_event;
		addr_text(&peer, tc->peer, sizeof(tc->peer));
		tc->peer_addr = peer;
		tc->progress_ms = loop_now_ms(fe->loop);
		plen = sizeof(tc->local_addr);
		if (getsockname(fd, &tc->local_addr.sa, &plen) < 0)
			tc->local_addr.sa.sa_family = peer.sa.sa_family;
		else if (addr_port(&tc->local_addr) == fe->cfg->tproxy_port)
			tcp_orig_dst(fd, &tc->local_addr);
		if (fe->want_ifindex)
			tc->ifindex = tcp_ifindex(fd, peer.sa.sa_family);
		if (loop_watch_add(fe->loop, &tc->watch, EPOLLIN) < 0) {
			close(fd);
			free(tc);
			return;
		}
		loop_timer_init(&tc->idle, tcp_client_idle);
		loop_timer_init(&tc->resume, tcp_client_resume);
		loop_timer_set(fe->loop, &tc->idle, loop_now_ms(fe->loop) + fe->cfg->tcp_idle_ms);
		tc->next = fe->clients;
		if (fe->clients)
			fe->clients->prev = tc;
		fe->clients = tc;
		fe->stats->tcp_clients++;
		/* At the limit, further clients wait in the listen backlog. */
		if (++fe->nclients >= fe->cfg->max_tcp_clients)
			listeners_enable(fe, false);
	}
}

static void listeners_enable(struct frontend *fe, bool on)
{
	for (int i = 0; i < 2; i++)
		if (fe->tcp[i].watch.fd >= 0)
			loop_watch_mod(fe->loop, &fe->tcp[i].watch, on ? EPOLLIN : 0);
}

static void accept_retry(struct loop_timer *t)
{
	struct frontend *fe = container_of(t, struct frontend, accept_retry);

	if (fe->nclients < fe->cfg->max_tcp_clients)
		listeners_enable(fe, true);
}

/* --- setup ---------------------------------------------------------------------------- */

static int listener_open(struct frontend *fe, struct listener *l, int family, int type)
{
	union sockaddr_any a;
	int fd, one = 1, r;
	const char *what = type == SOCK_DGRAM ? "UDP" : "TCP";

	memset(&a, 0, sizeof(a));
	a.sa.sa_family = (sa_family_t)family;
	if (family == AF_INET) {
		a.sin.sin_port = htons(fe->cfg->tproxy_port);
		a.sin.sin_addr.s_addr = htonl(INADDR_ANY);
	} else {
		a.sin6.sin6_port = htons(fe->cfg->tproxy_port);
		a.sin6.sin6_addr = in6addr_any;
	}
	l->fe = fe;
	l->family = family;
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out_err;
	/*
	 * The bypass mark, like every socket of ours: in host scope the output chain would
	 * otherwise take this socket's packets to a client bound to port 53 (destination port
	 * 53) for queries and send them back to us. Accepted TCP sockets inherit it, and the
	 * SYN-ACK carries the listener's.
	 */
	if (set_transparent(fd, family) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &fe->cfg->bypass_mark,
		       sizeof(fe->cfg->bypass_mark)) < 0)
		goto out_close;
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto out_close;
	if (type == SOCK_DGRAM) {
		int rcvbuf = 4 << 20;

		if (family == AF_INET ? setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one))
				      : setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one,
						   sizeof(one)))
			goto out_close;
		/* the incoming interface, for client groups that name one */
		if (fe->want_ifindex &&
		    (family == AF_INET ? setsockopt(fd, SOL_IP, IP_PKTINFO, &one, sizeof(one))
				       : setsockopt(fd, SOL_IPV6, IPV6_RECVPKTINFO, &one,
						    sizeof(one))))
			goto out_close;
		/* best effort: a larger buffer absorbs bursts; capped by net.core.rmem_max */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	}
	if (bind(fd, &a.sa, addr_len(&a)) < 0)
		goto out_close;
	/* TCP: accepted sockets inherit it; IP_PKTOPTIONS then tells the SYN's interface */
	if (type == SOCK_STREAM && fe->want_ifindex &&
	    (family == AF_INET ? setsockopt(fd, SOL_IP, IP_PKTINFO, &one, sizeof(one))
			       : setsockopt(fd, SOL_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one))))
		goto out_close;
	if (type == SOCK_STREAM && listen(fd, 128) < 0)
		goto out_close;
	l->watch.fd = fd;
	l->watch.cb = type == SOCK_DGRAM ? udp_readable : tcp_accept;
	r = loop_watch_add(fe->loop, &l->watch, EPOLLIN);
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

/* frontend_tables_free - the caches and the rate limiter. */
static void frontend_tables_free(struct frontend *fe)
{
	cache_free(fe->cache);
	fe->cache = NULL;
	for (size_t i = 0; i < POLICY_MAX_GROUPS; i++) {
		cache_free(fe->group_cache[i]);
		fe->group_cache[i] = NULL;
	}
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

	if (cfg->cache_worker_size) {
		size_t views = 1, size;
		uint32_t seed;

		for (size_t i = 0; i < cfg->groups.n_groups; i++)
			views += cfg->groups.groups[i].upstreams != 0;
		size = cfg->cache_worker_size / views;
		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			seed = (uint32_t)getpid() ^ (uint32_t)loop_now_ms(fe->loop);
		r = cache_new(&fe->cache, size, cfg->cache_max_ttl, cfg->serve_stale, seed);
		for (size_t i = 0; r == 0 && i < cfg->groups.n_groups; i++)
			if (cfg->groups.groups[i].upstreams)
				r = cache_new(&fe->group_cache[i], size, cfg->cache_max_ttl,
					      cfg->serve_stale, seed ^ (uint32_t)(i + 1));
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
	struct inflight *t;
	int r;

	if (fe->shares && inflight_same(fe->shares, cfg->max_inflight, cfg->max_inflight_client,
					cfg->rate_prefix4, cfg->rate_prefix6))
		return 0;
	r = inflight_new(&t, cfg->max_inflight, cfg->max_inflight_client, cfg->rate_prefix4,
			 cfg->rate_prefix6, (uint32_t)loop_now_ms(fe->loop) ^ 0x9e3779b9);
	if (r < 0) {
		log_warn("no memory for the per-client in-flight shares%s",
			 fe->shares ? ": the old ones stay" : "");
		return r;
	}
	/* every query counts in the new table; those that waited in the old one go now */
	for (struct query *q = fe->queries; q; q = q->next) {
		const union sockaddr_any *who = q->tc ? &q->tc->peer_addr : &q->client;

		inflight_take(t, who->sa.sa_family, addr_bytes(who), &q->share, true);
		if (q->held == QUERY_WAITING)
			query_make_ready(q);
	}
	inflight_free(fe->shares);
	fe->shares = t;
	return 0;
}

struct upstream_pool *frontend_reload(struct frontend *fe, const struct config *cfg,
				      struct upstream_pool *pool)
{
	struct upstream_pool *old = fe->pool;
	int one = 1;

	/* Queries in flight keep their pool, their cache and their deadline; new ones use
	 * the new settings. The caches start empty: groups and sizes may have changed. */
	for (struct query *q = fe->queries; q; q = q->next)
		q->cache = NULL;
	frontend_tables_free(fe);
	fe->cfg = cfg;
	fe->pool = pool;
	listeners_enable(fe, fe->nclients < cfg->max_tcp_clients); /* the limit may have moved */
	if (frontend_tables_new(fe, cfg) < 0)
		log_warn("reload: no memory for the cache and rate limits: running without them");
	frontend_shares_renew(fe, cfg);
	if (!fe->want_ifindex && policy_has_interfaces(&cfg->groups)) {
		fe->want_ifindex = true;
		frontend_iftab_open(fe);
		for (int i = 0; i < 2; i++) {
			int fds[2] = { fe->udp[i].watch.fd, fe->tcp[i].watch.fd };

			for (int j = 0; j < 2; j++)
				if (fds[j] >= 0)
					setsockopt(fds[j], i ? SOL_IPV6 : SOL_IP,
						   i ? IPV6_RECVPKTINFO : IP_PKTINFO, &one,
						   sizeof(one));
		}
	}
	return old;
}

static void iftab_event(struct loop_watch *w, uint32_t revents)
{
	struct frontend *fe = container_of(w, struct frontend, iftab_watch);
	int r;

	(void)revents;
	r = iftab_process(fe->iftab);
	if (r < 0)
		log_ratelimited(&fe->rl_reply, LOG_LVL_WARN,
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

static int raw_open(struct frontend *fe, int family)
{
	int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);

	if (fd < 0)
		goto out_err;
	/* The mark exempts our answers from capture, and a notrack rule for it keeps them out
	 * of conntrack (an unconfirmed, reversed entry would break NAT and stateful firewalls). */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &fe->cfg->bypass_mark,
		       sizeof(fe->cfg->bypass_mark)) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		goto out_err;
	}
	fe->raw[family == AF_INET6] = fd;
	return 0;

out_err:
	log_error("raw %s socket: %s", family == AF_INET ? "IPv4" : "IPv6", strerror(errno));
	return -errno;
}

int frontend_open(struct frontend **out, struct loop *loop, const struct config *cfg,
		  struct upstream_pool *pool, struct stats *stats, unsigned int flags)
{
	struct frontend *fe = calloc(1, sizeof(*fe));
	int r;

	if (!fe)
		return -ENOMEM;
	fe->loop = loop;
	fe->cfg = cfg;
	fe->pool = pool;
	fe->stats = stats;
	loop_timer_init(&fe->accept_retry, accept_retry);
	loop_defer_init(&fe->udp_defer, udp_flush_deferred);
	loop_defer_init(&fe->ready_defer, queries_ready_run);
	fe->want_ifindex = policy_has_interfaces(&cfg->groups);
	for (int i = 0; i < 2; i++)
		fe->udp[i].watch.fd = fe->tcp[i].watch.fd = fe->raw[i] = -1;
	fe->raw_all = flags & FE_UDP_RAW;
	r = frontend_tables_new(fe, cfg);
	if (r == 0)
		r = frontend_shares_renew(fe, cfg);
	if (r == 0 && fe->want_ifindex)
		r = frontend_iftab_open(fe);
	if (r < 0) {
		frontend_close(fe);
		return r;
	}
	for (int i = 0; i < 2; i++) {
		int family = i ? AF_INET6 : AF_INET;

		r = 0;
		if (flags & FE_UDP_LISTEN)
			r = listener_open(fe, &fe->udp[i], family, SOCK_DGRAM);
		if (r == 0 && (flags & FE_TCP_LISTEN))
			r = listener_open(fe, &fe->tcp[i], family, SOCK_STREAM);
		if (r == 0 && (flags & (FE_UDP_RAW | FE_UDP_RAW_LOCAL)))
			r = raw_open(fe, family);
		if (r < 0) {
			frontend_close(fe);
			return r;
		}
	}
	/* without it, redirected UDP is still answered; only its logs name the bridge */
	if ((flags & FE_UDP_LISTEN) && (r = conntrack_open(&fe->ct)) < 0)
		log_warn("conntrack netlink socket: %s: logs and dnstap name the bridge's address "
			 "as the destination of bridged clients' UDP queries", strerror(-r));
	*out = fe;
	return 0;
}

void frontend_set_dnstap(struct frontend *fe, struct dnstap_queue *q)
{
	fe->dnstap = q;
}

unsigned int frontend_inflight(const struct frontend *fe)
{
	return atomic_load_explicit(&fe->inflight, memory_order_relaxed);
}

void frontend_close(struct frontend *fe)
{
	if (!fe)
		return;
	while (fe->clients)
		tcp_client_close(fe->clients);
	while (fe->queries) {
		struct query *q = fe->queries;

		upstream_query_cancel(q->pool, &q->uq, false);
		fe->stats->dropped++;
		query_free(q);
	}
	loop_defer_cancel(fe->loop, &fe->ready_defer); /* freeing them made some ready */
	udp_flush(fe); /* answers already given leave before their sockets close */
	for (int i = 0; i < 2; i++) {
		struct listener *ls[2] = { &fe->udp[i], &fe->tcp[i] };

		for (int j = 0; j < 2; j++) {
			if (ls[j]->watch.fd < 0)
				continue;
			loop_watch_del(fe->loop, &ls[j]->watch);
			close(ls[j]->watch.fd);
		}
	}
	for (size_t i = 0; i < fe->nreplies; i++)
		if (fe->replies[i].fd >= 0)
			close(fe->replies[i].fd);
	for (int i = 0; i < 2; i++)
		if (fe->raw[i] >= 0)
			close(fe->raw[i]);
	conntrack_close(fe->ct);
	loop_timer_cancel(fe->loop, &fe->accept_retry);
	frontend_tables_free(fe);
	inflight_free(fe->shares);
	if (fe->iftab) {
		loop_watch_del(fe->loop, &fe->iftab_watch);
		iftab_close(fe->iftab);
	}
	free(fe);
}

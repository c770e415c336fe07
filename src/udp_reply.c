/*
 * udp_reply.c - UDP answers, from the address and port each client asked.
 *
 * TPROXY: the answer leaves through a "reply socket", an IP_TRANSPARENT socket bound to the
 * query's original destination, kept in a small LRU cache (clients use few resolver
 * addresses), so the client sees it come from exactly the address and port it asked.
 * nfqueue mode (UDP_REPLY_RAW_ALL): the query was dropped and no socket ever saw it; the
 * answer is a whole IP packet injected through a raw socket. Raw sends never fragment: a
 * packet over the path MTU goes again through a reply socket, which does.
 *
 * Answers of up to UDP_OUT_PAYLOAD octets are copied into a batch that leaves in one
 * sendmmsg per socket at the end of the loop iteration (or when it is full); larger ones go
 * at once. A reply socket is never closed while the batch may name it.
 *
 * Bridged clients reach the listener through a conntrack redirect: an answer must leave from
 * the address and port the query was redirected to, so that the reverse NAT turns them back
 * into those the client asked. It goes out on the listener itself with IP(V6)_PKTINFO naming
 * that address, at once: bridged clients are few, and the batch stays free of control
 * messages.
 *
 * No reply socket is ever bound to one of this machine's own addresses: with SO_REUSEADDR on
 * both sides, the kernel would hand a DNS server on that address its new datagrams to our
 * socket, which never reads them. Answers from a local address (only captured with
 * --capture-local) are raw packets instead; one too large for a packet goes truncated (TC),
 * and the client asks again over TCP. Whether an address is local is checked when its cache
 * entry is made, and again once it is REPLY_RECHECK_MS old.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dotgw/dns.h"
#include "dotgw/log.h"
#include "dotgw/pkt.h"
#include "dotgw/udp_reply.h"

#define REPLY_SOCKS_MAX	 64
#define REPLY_RECHECK_MS 10000 /* an address may have become local (or stopped being) */
#define UDP_OUT_BATCH	 32
#define UDP_OUT_PAYLOAD	 1232 /* the default --udp-size-cap: nearly every UDP answer */

struct reply_sock {
	union sockaddr_any addr;
	int fd;	    /* -1 when local */
	bool local; /* addr is one of ours: answer through the raw socket */
	uint64_t last_used;
	uint64_t checked; /* when local was found out */
};

/* A UDP answer waiting for the batch's sendmmsg. */
struct udp_out {
	int fd;			   /* a reply socket, or a raw socket */
	int err;		   /* errno of its send, 0 when it left */
	bool raw;		   /* buf is a whole IP packet */
	uint16_t len, payload_off; /* the datagram in buf; where the DNS message starts */
	union sockaddr_any to;	   /* where sendmmsg sends it (port 0 for raw sockets) */
	union sockaddr_any client, odst;
	uint8_t buf[PKT_MAX_HDR + UDP_OUT_PAYLOAD];
};

struct udp_reply {
	struct loop *loop;
	struct stats *stats;
	uint32_t mark;
	int raw[2];	 /* IPPROTO_RAW sockets, IPv4 and IPv6; -1 when unused */
	bool raw_all;	 /* nfqueue mode: every answer is raw (else: only local ones) */
	int listener[2]; /* the UDP listeners, for bridged clients; -1: none */
	struct log_ratelimit rl;
	struct reply_sock replies[REPLY_SOCKS_MAX];
	size_t nreplies;
	struct loop_defer defer;
	unsigned int nout;
	struct mmsghdr out_mmsg[UDP_OUT_BATCH];
	struct iovec out_iov[UDP_OUT_BATCH];
	struct udp_out out[UDP_OUT_BATCH];
	uint8_t packet[PKT_MAX_HDR + DNS_MAX_MSG];
};

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

static void reply_sock_close(struct udp_reply *u, struct reply_sock *rs)
{
	/* the batch may hold answers for this socket: they leave first */
	if (rs->fd >= 0 && u->nout)
		udp_reply_flush(u);
	if (rs->fd >= 0)
		close(rs->fd);
	rs->fd = -1;
}

/* reply_sock_slot - a free cache entry, or the least recently used one, emptied. */
static struct reply_sock *reply_sock_slot(struct udp_reply *u)
{
	struct reply_sock *rs;

	if (u->nreplies < REPLY_SOCKS_MAX)
		return &u->replies[u->nreplies++];
	rs = &u->replies[0];
	for (size_t i = 1; i < u->nreplies; i++)
		if (u->replies[i].last_used < rs->last_used)
			rs = &u->replies[i];
	reply_sock_close(u, rs);
	return rs;
}

/* reply_sock_open - a new reply socket bound to odst; the fd or -errno. */
static int reply_sock_open(struct udp_reply *u, const union sockaddr_any *odst)
{
	int fd, one = 1, err;

	fd = socket(odst->sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (addr_set_transparent(fd, odst->sa.sa_family) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &u->mark, sizeof(u->mark)) < 0 ||
	    (odst->sa.sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, &odst->sa, addr_len(odst)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* raw_fd - the raw socket for answers from a's family, or -EADDRINUSE when there is none. */
static int raw_fd(const struct udp_reply *u, const union sockaddr_any *a)
{
	int fd = u->raw[a->sa.sa_family == AF_INET6];

	return fd >= 0 ? fd : -EADDRINUSE;
}

/*
 * reply_sock_get - what answers from odst leave through: the reply socket bound to it,
 * opened (evicting the LRU one) if needed; or, when odst is local, the raw socket of its
 * family, with *raw set (-EADDRINUSE when there is none). Returns the fd or -errno.
 */
static int reply_sock_get(struct udp_reply *u, const union sockaddr_any *odst, bool *raw)
{
	uint64_t now = loop_now_ms(u->loop);
	struct reply_sock *rs = NULL;
	bool local;
	int fd;

	for (size_t i = 0; i < u->nreplies && !rs; i++)
		if (addr_equal(&u->replies[i].addr, odst))
			rs = &u->replies[i];
	if (rs && now - rs->checked >= REPLY_RECHECK_MS) {
		local = addr_is_local(odst);
		rs->checked = now;
		if (local != rs->local) {
			reply_sock_close(u, rs);
			rs->local = local;
		}
	}
	if (rs && (rs->local || rs->fd >= 0)) {
		rs->last_used = now;
		*raw = rs->local;
		return rs->local ? raw_fd(u, odst) : rs->fd;
	}
	local = rs ? rs->local : addr_is_local(odst);
	fd = -1;
	if (!local) {
		fd = reply_sock_open(u, odst);
		if (fd < 0)
			return fd;
	}
	/* a new entry; or one whose socket a recheck closed */
	if (!rs) {
		rs = reply_sock_slot(u);
		rs->checked = now;
	}
	rs->addr = *odst;
	rs->fd = fd;
	rs->local = local;
	rs->last_used = now;
	*raw = local;
	return local ? raw_fd(u, odst) : fd;
}

/*
 * raw_build - the answer as an IP packet from odst to client, for a raw socket, in out; *to
 * becomes its destination. Returns the packet's length, or -errno.
 */
static int raw_build(uint8_t *out, size_t outlen, const union sockaddr_any *client,
		     const union sockaddr_any *odst, const uint8_t *msg, size_t len,
		     union sockaddr_any *to)
{
	int family = client->sa.sa_family, n;

	n = pkt_udp_build(out, outlen, family, addr_bytes(odst), addr_port(odst),
			  addr_bytes(client), addr_port(client), msg, len);
	if (n < 0)
		return n;
	/* raw IPPROTO_RAW sockets want port 0 in the destination */
	*to = *client;
	addr_set_port(to, 0);
	return n;
}

static void send_error(struct udp_reply *u, const union sockaddr_any *client,
		       const union sockaddr_any *odst, int err)
{
	char a[ADDR_TEXT_MAX], b[ADDR_TEXT_MAX];

	u->stats->reply_errors++;
	log_ratelimited(&u->rl, LOG_LVL_WARN, "cannot answer %s from %s: %s",
			addr_text(client, a, sizeof(a)), addr_text(odst, b, sizeof(b)),
			strerror(-err));
}

/* send_raw - msg to client from odst as a raw packet on fd; 0 or -errno. */
static int send_raw(struct udp_reply *u, int fd, const union sockaddr_any *client,
		    const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	union sockaddr_any to;
	int n = raw_build(u->packet, sizeof(u->packet), client, odst, msg, len, &to);

	if (n < 0)
		return n;
	if (sendto(fd, u->packet, (size_t)n, 0, &to.sa, addr_len(&to)) < 0)
		return -errno;
	return 0;
}

/*
 * send_reply_sock - send msg, too large for a raw packet, to client from odst through a
 * reply socket. From a local address, where no reply socket may be bound, it goes raw after
 * all, cut to header, question and OPT with TC set. 0 or -errno.
 */
static int send_reply_sock(struct udp_reply *u, const union sockaddr_any *client,
			   const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	bool raw = false;
	int fd = reply_sock_get(u, odst, &raw), n;
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
		n = send_raw(u, fd, client, odst, cut, (size_t)n);
	if (n == 0)
		u->stats->truncated++;
	free(cut);
	return n;
}

/*
 * send_now - send an answer at once, outside the batch: raw injection when every answer is
 * raw or odst is local, else (or when the packet exceeds the path MTU: raw sends never
 * fragment, a reply socket does) a reply socket.
 */
static void send_now(struct udp_reply *u, const union sockaddr_any *client,
		     const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	int fd = u->raw[client->sa.sa_family == AF_INET6], r;
	bool raw = u->raw_all && fd >= 0;

	if (!raw)
		fd = reply_sock_get(u, odst, &raw);
	if (fd < 0)
		r = fd;
	else if (raw)
		r = send_raw(u, fd, client, odst, msg, len);
	else
		r = sendto(fd, msg, len, 0, &client->sa, addr_len(client)) < 0 ? -errno : 0;
	if (raw && r == -EMSGSIZE)
		r = send_reply_sock(u, client, odst, msg, len);
	if (r < 0)
		send_error(u, client, odst, r);
}

/* batch_send - one sendmmsg per run of answers for the same socket; errors into each err. */
static void batch_send(struct udp_reply *u, unsigned int n)
{
	unsigned int i = 0;

	for (unsigned int k = 0; k < n; k++) {
		struct udp_out *o = &u->out[k];
		struct msghdr *mh = &u->out_mmsg[k].msg_hdr;

		u->out_iov[k].iov_base = o->buf;
		u->out_iov[k].iov_len = o->len;
		memset(mh, 0, sizeof(*mh));
		mh->msg_name = &o->to;
		mh->msg_namelen = addr_len(&o->to);
		mh->msg_iov = &u->out_iov[k];
		mh->msg_iovlen = 1;
		o->err = 0;
	}
	while (i < n) {
		unsigned int j = i + 1;
		int r;

		while (j < n && u->out[j].fd == u->out[i].fd)
			j++;
		/* a short count: the next answer failed; sent alone again, it tells why */
		r = sendmmsg(u->out[i].fd, &u->out_mmsg[i], j - i, MSG_DONTWAIT);
		if (r <= 0) {
			u->out[i].err = r < 0 ? errno : EIO;
			i++;
			continue;
		}
		i += (unsigned int)r;
	}
}

/*
 * udp_reply_flush - send the batch. Failures are handled after every answer was tried, with
 * the batch already empty: a raw packet over the path MTU goes again through a reply socket,
 * whose opening may evict another one.
 */
void udp_reply_flush(struct udp_reply *u)
{
	unsigned int n = u->nout;

	loop_defer_cancel(u->loop, &u->defer);
	batch_send(u, n);
	u->nout = 0;
	for (unsigned int k = 0; k < n; k++) {
		struct udp_out *o = &u->out[k];
		int r = -o->err;

		if (!r)
			continue;
		if (o->raw && r == -EMSGSIZE)
			r = send_reply_sock(u, &o->client, &o->odst, o->buf + o->payload_off,
					    (size_t)(o->len - o->payload_off));
		if (r < 0)
			send_error(u, &o->client, &o->odst, r);
	}
}

static void flush_deferred(struct loop_defer *d)
{
	udp_reply_flush(container_of(d, struct udp_reply, defer));
}

/* send_nat - answer a redirected query: from the listener, with nat as the source. */
static void send_nat(struct udp_reply *u, const union sockaddr_any *client,
		     const union sockaddr_any *odst, const union sockaddr_any *nat,
		     const uint8_t *msg, size_t len)
{
	bool v6 = client->sa.sa_family == AF_INET6;
	union {
		struct cmsghdr c;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {
		.msg_name = (void *)&client->sa,
		.msg_namelen = addr_len(client),
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
	};
	struct cmsghdr *c;
	int fd = u->listener[v6];

	memset(&ctl, 0, sizeof(ctl));
	c = &ctl.c;
	if (v6) {
		struct in6_pktinfo pi = {.ipi6_addr = nat->sin6.sin6_addr,
					 .ipi6_ifindex = client->sin6.sin6_scope_id};

		c->cmsg_level = SOL_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	} else {
		struct in_pktinfo pi = {.ipi_spec_dst = nat->sin.sin_addr};

		c->cmsg_level = SOL_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	}
	if (fd < 0 || sendmsg(fd, &mh, MSG_DONTWAIT) < 0)
		send_error(u, client, odst, fd < 0 ? -EBADF : -errno);
}

void udp_reply_send(struct udp_reply *u, const union sockaddr_any *client,
		    const union sockaddr_any *odst, const union sockaddr_any *nat,
		    const uint8_t *msg, size_t len)
{
	int fd = u->raw[client->sa.sa_family == AF_INET6], n;
	bool raw = u->raw_all && fd >= 0;
	struct udp_out *o;

	if (nat) {
		send_nat(u, client, odst, nat, msg, len);
		return;
	}
	if (len > UDP_OUT_PAYLOAD) {
		send_now(u, client, odst, msg, len);
		return;
	}
	if (u->nout == UDP_OUT_BATCH)
		udp_reply_flush(u);
	if (!raw) {
		/* before taking a slot: opening a reply socket may flush the batch */
		fd = reply_sock_get(u, odst, &raw);
		if (fd < 0) {
			send_error(u, client, odst, fd);
			return;
		}
	}
	o = &u->out[u->nout];
	o->raw = raw;
	if (raw) {
		n = raw_build(o->buf, sizeof(o->buf), client, odst, msg, len, &o->to);
		if (n < 0) {
			send_error(u, client, odst, n);
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
	u->nout++;
	loop_defer(u->loop, &u->defer);
}

static int raw_open(struct udp_reply *u, int family)
{
	int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW), err;

	if (fd < 0)
		goto out_err;
	/* The mark exempts our answers from capture, and a notrack rule for it keeps them out
	 * of conntrack (an unconfirmed, reversed entry would break NAT and stateful firewalls). */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &u->mark, sizeof(u->mark)) < 0) {
		err = errno;
		close(fd);
		errno = err;
		goto out_err;
	}
	u->raw[family == AF_INET6] = fd;
	return 0;

out_err:
	err = errno;
	log_error("raw %s socket: %s", family == AF_INET ? "IPv4" : "IPv6", strerror(err));
	return -err;
}

int udp_reply_new(struct udp_reply **out, struct loop *loop, struct stats *stats, uint32_t mark,
		  unsigned int flags)
{
	struct udp_reply *u = calloc(1, sizeof(*u));
	int r = 0;

	if (!u)
		return -ENOMEM;
	u->loop = loop;
	u->stats = stats;
	u->mark = mark;
	u->raw_all = flags & UDP_REPLY_RAW_ALL;
	u->raw[0] = u->raw[1] = u->listener[0] = u->listener[1] = -1;
	loop_defer_init(&u->defer, flush_deferred);
	if (flags & (UDP_REPLY_RAW_ALL | UDP_REPLY_RAW_LOCAL)) {
		r = raw_open(u, AF_INET);
		if (r == 0)
			r = raw_open(u, AF_INET6);
	}
	if (r < 0) {
		udp_reply_free(u);
		return r;
	}
	*out = u;
	return 0;
}

int udp_reply_forward(struct udp_reply *u, const union sockaddr_any *client,
		      const union sockaddr_any *odst, const uint8_t *msg, size_t len)
{
	int fd = u->raw[client->sa.sa_family == AF_INET6];

	if (fd < 0)
		return -EADDRNOTAVAIL;
	/* the other way round: to odst, from the client */
	return send_raw(u, fd, odst, client, msg, len);
}

void udp_reply_set_mark(struct udp_reply *u, uint32_t mark)
{
	u->mark = mark;
}

void udp_reply_set_listener(struct udp_reply *u, int family, int fd)
{
	u->listener[family == AF_INET6] = fd;
}

void udp_reply_free(struct udp_reply *u)
{
	if (!u)
		return;
	udp_reply_flush(u); /* answers already given leave before their sockets close */
	for (size_t i = 0; i < u->nreplies; i++)
		if (u->replies[i].fd >= 0)
			close(u->replies[i].fd);
	for (int i = 0; i < 2; i++)
		if (u->raw[i] >= 0)
			close(u->raw[i]);
	free(u);
}

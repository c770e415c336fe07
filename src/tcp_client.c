/*
 * tcp_client.c - DNS over TCP clients: accept, RFC 7766 framing, backpressure, idle.
 *
 * Every client is in its set's list from accept to tcp_client_close, which alone frees it.
 * While its input is walked (busy), frames go to the owner and answers are only queued: the
 * client is neither written to nor closed, so the owner may answer at once. A client with
 * TCP_CLIENT_WORK frames in work is not read (EPOLLIN off); frames already read wait for the
 * resume timer once work ends. Unsent output is capped at TCP_CLIENT_OUT_MAX octets (what
 * the client has yet to take): beyond it the client is dead, and closed as soon as nothing
 * walks its input. A client that takes none of its output for a whole idle period, or sends
 * nothing and waits for nothing that long, is closed. At the limit on clients, the listeners
 * stop accepting (new clients wait in the backlog), and so they do for ACCEPT_RETRY_MS when
 * accept runs out of fds or memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dotgw/dns.h"
#include "dotgw/log.h"
#include "dotgw/tcp_client.h"

#define TCP_CLIENT_OUT_MAX (256u << 10) /* unsent answer octets per client, then cut off */
#define ACCEPT_RETRY_MS	   100

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

struct tcp_listener {
	struct tcp_clients *set;
	struct loop_watch watch;
	int family;
};

struct tcp_client {
	struct tcp_clients *set;
	struct loop_watch watch;
	struct loop_timer idle;
	struct loop_timer resume;
	LIST_ENTRY(tcp_client) link;
	LIST_HEAD(, tcp_work) work;
	unsigned int nwork;
	bool eof;
	bool busy; /* its input is being walked: answers are only queued */
	bool dead; /* does not read its answers: close as soon as nothing walks its input */
	uint64_t progress_ms; /* when it last sent us something or took some of our output */
	union sockaddr_any peer_addr;
	union sockaddr_any local_addr; /* the address the client asked */
	unsigned int ifindex;	       /* where its SYN came in (0: unknown) */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	char peer[ADDR_TEXT_MAX];
};

struct tcp_clients {
	struct loop *loop;
	struct stats *stats;
	struct tcp_client_limits lim;
	const struct tcp_client_ops *ops;
	void *data;
	struct tcp_listener listeners[2];
	struct loop_timer accept_retry;
	LIST_HEAD(, tcp_client) clients;
	unsigned int nclients;
	struct log_ratelimit rl_malformed, rl_tcp;
};

static void tcp_client_close(struct tcp_client *tc);

static void listeners_enable(struct tcp_clients *s, bool on)
{
	for (int i = 0; i < 2; i++)
		if (s->listeners[i].watch.fd >= 0)
			loop_watch_mod(s->loop, &s->listeners[i].watch, on ? EPOLLIN : 0);
}

static bool has_frame(const struct tcp_client *tc)
{
	return tc->in_len >= 2 && tc->in_len >= 2 + (size_t)dns_get16(tc->in);
}

static void tcp_client_update(struct tcp_client *tc)
{
	struct loop *loop = tc->set->loop;
	uint32_t ev = 0;
	bool room = tc->nwork < TCP_CLIENT_WORK;

	if (!tc->eof && room)
		ev |= EPOLLIN;
	if (tc->out_off < tc->out_len)
		ev |= EPOLLOUT;
	loop_watch_mod(loop, &tc->watch, ev);
	/* Frames read while the client was at its limit: take them up from the loop. */
	if (room && has_frame(tc) && !loop_timer_armed(&tc->resume))
		loop_timer_set(loop, &tc->resume, loop_now_ms(loop));
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
		tc->progress_ms = loop_now_ms(tc->set->loop);
	}
	if (tc->out_off == tc->out_len)
		tc->out_off = tc->out_len = 0;
	if (tc->eof && tc->nwork == 0 && tc->out_len == 0) {
		tcp_client_close(tc);
		return;
	}
	tcp_client_update(tc);
}

void tcp_client_kick(struct tcp_client *tc)
{
	if (!tc->busy)
		tcp_client_write(tc);
}

static void tcp_client_close(struct tcp_client *tc)
{
	struct tcp_clients *s = tc->set;
	struct tcp_work *w;

	while ((w = LIST_FIRST(&tc->work)))
		s->ops->drop(s->data, w); /* it calls tcp_work_end(w) */
	loop_watch_del(s->loop, &tc->watch);
	close(tc->watch.fd);
	loop_timer_cancel(s->loop, &tc->idle);
	loop_timer_cancel(s->loop, &tc->resume);
	LIST_REMOVE(tc, link);
	if (--s->nclients < s->lim.max_clients)
		listeners_enable(s, true);
	free(tc->in);
	free(tc->out);
	free(tc);
}

/* out_room - room for need more octets in tc's output: compacted, else grown. 0 or -ENOMEM. */
static int out_room(struct tcp_client *tc, size_t need)
{
	size_t total = tc->out_len - tc->out_off + need, cap;
	uint8_t *p;

	if (tc->out_len + need <= tc->out_cap)
		return 0;
	if (tc->out_off) {
		/* compact: what was sent makes room for what follows */
		memmove(tc->out, tc->out + tc->out_off, tc->out_len - tc->out_off);
		tc->out_len -= tc->out_off;
		tc->out_off = 0;
	}
	if (total <= tc->out_cap)
		return 0;
	cap = tc->out_cap ? tc->out_cap : 1024;
	while (cap < total)
		cap *= 2;
	p = realloc(tc->out, cap);
	if (!p)
		return -ENOMEM;
	tc->out = p;
	tc->out_cap = cap;
	return 0;
}

void tcp_client_send(struct tcp_client *tc, const uint8_t *msg, size_t len)
{
	struct tcp_clients *s = tc->set;

	/* the limit counts what the client has yet to take, not what it took already */
	if (tc->out_len - tc->out_off + 2 + len > TCP_CLIENT_OUT_MAX || out_room(tc, 2 + len) < 0) {
		s->stats->reply_errors++;
		log_ratelimited(&s->rl_tcp, LOG_LVL_WARN,
				"TCP client %s does not read its answers, closing", tc->peer);
		tc->eof = true;
		tc->dead = true;
		return;
	}
	dns_put16(tc->out + tc->out_len, (uint16_t)len);
	memcpy(tc->out + tc->out_len + 2, msg, len);
	tc->out_len += 2 + len;
}

void tcp_work_begin(struct tcp_client *tc, struct tcp_work *w)
{
	w->tc = tc;
	LIST_INSERT_HEAD(&tc->work, w, link);
	tc->nwork++;
}

void tcp_work_end(struct tcp_work *w)
{
	LIST_REMOVE(w, link);
	w->tc->nwork--;
}

static void tcp_client_idle(struct loop_timer *t)
{
	struct tcp_client *tc = container_of(t, struct tcp_client, idle);
	struct tcp_clients *s = tc->set;
	uint64_t now = loop_now_ms(s->loop);

	/* Output nobody takes for a whole idle period: the client stopped reading. */
	if (tc->out_len && now - tc->progress_ms >= s->lim.idle_ms) {
		log_debug("TCP client %s takes none of its answers, closing", tc->peer);
		tcp_client_close(tc);
		return;
	}
	if (tc->nwork || tc->out_len) {
		loop_timer_set(s->loop, &tc->idle, now + s->lim.idle_ms);
		return;
	}
	log_debug("TCP client %s idle, closing", tc->peer);
	tcp_client_close(tc);
}

/*
 * tcp_client_frames - hand each complete frame to the owner, up to the client's limit of
 * work. Returns false when the client was closed (a frame too short to be answered).
 */
static bool tcp_client_frames(struct tcp_client *tc)
{
	struct tcp_clients *s = tc->set;
	size_t off = 0;

	tc->busy = true;
	while (tc->nwork < TCP_CLIENT_WORK) {
		const uint8_t *msg;
		size_t mlen;
		int r = dns_frame_next(tc->in, tc->in_len, &off, &msg, &mlen);

		if (r < 0) {
			/* Nothing to answer: the stream cannot be trusted any more. */
			s->stats->malformed++;
			log_ratelimited(&s->rl_malformed, LOG_LVL_DEBUG,
					"TCP client %s sent a frame shorter than a header, closing",
					tc->peer);
			tcp_client_close(tc);
			return false;
		}
		if (r == 0)
			break;
		s->ops->frame(s->data, tc, msg, mlen);
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

/* in_room - room in tc's input for the rest of the frame begun, or 512 more octets. */
static int in_room(struct tcp_client *tc)
{
	size_t want = 2, cap;
	uint8_t *p;

	if (tc->in_len >= 2)
		want = 2 + (size_t)dns_get16(tc->in);
	if (want <= tc->in_len)
		want = tc->in_len + 512;
	if (want <= tc->in_cap)
		return 0;
	cap = want < 512 ? 512 : want;
	p = realloc(tc->in, cap);
	if (!p)
		return -ENOMEM;
	tc->in = p;
	tc->in_cap = cap;
	return 0;
}

/* tcp_client_read - read and hand out frames; false when the client was closed. */
static bool tcp_client_read(struct tcp_client *tc)
{
	struct loop *loop = tc->set->loop;

	for (int rounds = 0; rounds < 16 && !tc->eof; rounds++) {
		ssize_t n;

		if (in_room(tc) < 0) {
			tcp_client_close(tc);
			return false;
		}
		n = recv(tc->watch.fd, tc->in + tc->in_len, tc->in_cap - tc->in_len, MSG_DONTWAIT);
		if (n == 0) {
			tc->eof = true;
			break;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			tcp_client_close(tc);
			return false;
		}
		tc->in_len += (size_t)n;
		tc->progress_ms = loop_now_ms(loop);
		loop_timer_set(loop, &tc->idle, loop_now_ms(loop) + tc->set->lim.idle_ms);
		if (!tcp_client_frames(tc))
			return false;
		if (tc->nwork >= TCP_CLIENT_WORK)
			break;
	}
	return true;
}

static void tcp_client_event(struct loop_watch *w, uint32_t revents)
{
	struct tcp_client *tc = container_of(w, struct tcp_client, watch);

	if (revents & EPOLLIN) {
		if (!tcp_client_read(tc))
			return;
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
	struct msghdr mh = {.msg_control = buf};
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

int tcp_clients_adopt(struct tcp_clients *s, int fd, const union sockaddr_any *peer)
{
	struct tcp_client *tc = calloc(1, sizeof(*tc));
	socklen_t len = sizeof(tc->local_addr);
	uint64_t now = loop_now_ms(s->loop);
	int r;

	if (!tc) {
		close(fd);
		return -ENOMEM;
	}
	tc->set = s;
	tc->watch.fd = fd;
	tc->watch.cb = tcp_client_event;
	LIST_INIT(&tc->work);
	addr_text(peer, tc->peer, sizeof(tc->peer));
	tc->peer_addr = *peer;
	tc->progress_ms = now;
	if (getsockname(fd, &tc->local_addr.sa, &len) < 0)
		tc->local_addr.sa.sa_family = peer->sa.sa_family;
	else if (addr_port(&tc->local_addr) == s->lim.redirect_port)
		tcp_orig_dst(fd, &tc->local_addr);
	if (s->lim.want_ifindex)
		tc->ifindex = tcp_ifindex(fd, peer->sa.sa_family);
	r = loop_watch_add(s->loop, &tc->watch, EPOLLIN);
	if (r < 0) {
		close(fd);
		free(tc);
		return r;
	}
	loop_timer_init(&tc->idle, tcp_client_idle);
	loop_timer_init(&tc->resume, tcp_client_resume);
	loop_timer_set(s->loop, &tc->idle, now + s->lim.idle_ms);
	LIST_INSERT_HEAD(&s->clients, tc, link);
	s->stats->tcp_clients++;
	/* At the limit, further clients wait in the listen backlog. */
	if (++s->nclients >= s->lim.max_clients)
		listeners_enable(s, false);
	return 0;
}

static void tcp_accept(struct loop_watch *w, uint32_t revents)
{
	struct tcp_listener *l = container_of(w, struct tcp_listener, watch);
	struct tcp_clients *s = l->set;

	(void)revents;
	for (int i = 0; i < 16 && s->nclients < s->lim.max_clients; i++) {
		union sockaddr_any peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(w->fd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Back off instead of spinning on a full fd table. */
				log_ratelimited(&s->rl_tcp, LOG_LVL_WARN, "accept: %s",
						strerror(errno));
				listeners_enable(s, false);
				loop_timer_set(s->loop, &s->accept_retry,
					       loop_now_ms(s->loop) + ACCEPT_RETRY_MS);
			}
			return;
		}
		if (tcp_clients_adopt(s, fd, &peer) < 0)
			return;
	}
}

static void accept_retry(struct loop_timer *t)
{
	struct tcp_clients *s = container_of(t, struct tcp_clients, accept_retry);

	if (s->nclients < s->lim.max_clients)
		listeners_enable(s, true);
}

int tcp_clients_new(struct tcp_clients **out, struct loop *loop, struct stats *stats,
		    const struct tcp_client_limits *lim, const struct tcp_client_ops *ops,
		    void *data)
{
	struct tcp_clients *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->stats = stats;
	s->lim = *lim;
	s->ops = ops;
	s->data = data;
	for (int i = 0; i < 2; i++) {
		s->listeners[i].set = s;
		s->listeners[i].watch.fd = -1;
	}
	loop_timer_init(&s->accept_retry, accept_retry);
	LIST_INIT(&s->clients);
	*out = s;
	return 0;
}

int tcp_clients_listen(struct tcp_clients *s, int fd, int family)
{
	struct tcp_listener *l = &s->listeners[family == AF_INET6];
	int r;

	if (l->watch.fd >= 0)
		return -EBUSY;
	if (s->lim.want_ifindex && (r = addr_set_pktinfo(fd, family)) < 0)
		return r;
	l->family = family;
	l->watch.fd = fd;
	l->watch.cb = tcp_accept;
	r = loop_watch_add(s->loop, &l->watch, s->nclients < s->lim.max_clients ? EPOLLIN : 0);
	if (r < 0)
		l->watch.fd = -1;
	return r;
}

void tcp_clients_set_limits(struct tcp_clients *s, const struct tcp_client_limits *lim)
{
	bool was = s->lim.want_ifindex;

	s->lim = *lim;
	s->lim.want_ifindex = was || lim->want_ifindex; /* never off again: no need */
	for (int i = 0; i < 2 && !was && lim->want_ifindex; i++)
		if (s->listeners[i].watch.fd >= 0)
			addr_set_pktinfo(s->listeners[i].watch.fd, s->listeners[i].family);
	listeners_enable(s, s->nclients < lim->max_clients); /* the limit may have moved */
}

unsigned int tcp_clients_count(const struct tcp_clients *s)
{
	return s->nclients;
}

void tcp_clients_unlisten(struct tcp_clients *s)
{
	if (!s)
		return;
	for (int i = 0; i < 2; i++) {
		struct tcp_listener *l = &s->listeners[i];

		if (l->watch.fd < 0)
			continue;
		/* what the kernel completed already is ours to serve: take it first (the
		 * backlog is 128, tcp_accept takes 16 a call) */
		for (int k = 0; k < 8; k++)
			tcp_accept(&l->watch, EPOLLIN);
		loop_watch_del(s->loop, &l->watch);
		close(l->watch.fd);
		l->watch.fd = -1;
	}
	loop_timer_cancel(s->loop, &s->accept_retry);
}

void tcp_clients_free(struct tcp_clients *s)
{
	if (!s)
		return;
	while (!LIST_EMPTY(&s->clients))
		tcp_client_close(LIST_FIRST(&s->clients));
	for (int i = 0; i < 2; i++) {
		if (s->listeners[i].watch.fd < 0)
			continue;
		loop_watch_del(s->loop, &s->listeners[i].watch);
		close(s->listeners[i].watch.fd);
	}
	loop_timer_cancel(s->loop, &s->accept_retry);
	free(s);
}

const union sockaddr_any *tcp_client_peer(const struct tcp_client *tc)
{
	return &tc->peer_addr;
}

const union sockaddr_any *tcp_client_local(const struct tcp_client *tc)
{
	return &tc->local_addr;
}

const char *tcp_client_name(const struct tcp_client *tc)
{
	return tc->peer;
}

unsigned int tcp_client_ifindex(const struct tcp_client *tc)
{
	return tc->ifindex;
}

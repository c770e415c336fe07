/*
 * tcp_client.h - DNS over TCP clients (RFC 7766): accepting them on the transparent TCP
 * listeners, with a limit on their number; two-octet length framing in both directions; at
 * most TCP_CLIENT_WORK frames in work per client (reading pauses beyond: backpressure); a
 * cap on unsent answer octets; closing idle clients and those that take none of their
 * answers. What a frame means is not this module's business: complete frames are handed to
 * the owner's callback, which later answers with tcp_client_send. Every frame in work is
 * tied to its client by a struct tcp_work the owner embeds; when a client closes, the owner's
 * drop callback ends each of them.
 */
#ifndef DOTGW_TCP_CLIENT_H
#define DOTGW_TCP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "dotgw/addr.h"
#include "dotgw/loop.h"
#include "dotgw/stats.h"

#define TCP_CLIENT_WORK 64 /* frames in work per client; reading pauses beyond */

struct tcp_clients;
struct tcp_client;

/* A frame in work, embedded in the owner's object (a query). */
struct tcp_work {
	struct tcp_client *tc;
	LIST_ENTRY(tcp_work) link;
};

struct tcp_client_ops {
	/*
	 * frame - a complete message from tc (msg, len: without its length prefix; valid during
	 * the call). The owner may call tcp_work_begin and tcp_client_send; the client is
	 * neither written to nor closed during the call.
	 */
	void (*frame)(void *data, struct tcp_client *tc, const uint8_t *msg, size_t len);
	/* drop - tc closes while w is in work: end it (tcp_work_end), with no answer. */
	void (*drop)(void *data, struct tcp_work *w);
};

/* Limits, from the configuration (tcp_clients_set_limits on reload). */
struct tcp_client_limits {
	unsigned int max_clients; /* beyond it, new clients wait in the listen backlog */
	unsigned int idle_ms;	  /* a client idle (or taking no answers) this long is closed */
	uint16_t redirect_port;	  /* local port of the listeners: bridge-redirected clients */
	bool want_ifindex;	  /* learn the interface each client came in on */
};

/*
 * tcp_clients_new - a set of clients served in loop; stats counts tcp_clients, malformed
 * (frames too short for a header) and reply_errors (clients cut off for not reading).
 * 0 or -ENOMEM.
 */
int tcp_clients_new(struct tcp_clients **out, struct loop *loop, struct stats *stats,
		    const struct tcp_client_limits *lim, const struct tcp_client_ops *ops,
		    void *data);

/*
 * tcp_clients_listen - accept clients on the listening socket fd of family (AF_INET or
 * AF_INET6; at most one each), which becomes the set's; 0 or -errno (fd stays the caller's).
 */
int tcp_clients_listen(struct tcp_clients *s, int fd, int family);

/*
 * tcp_clients_adopt - serve the connected stream socket fd (non-blocking; now the set's) of a
 * client at peer, as if it had been accepted (also for tests, over a socketpair). 0 or
 * -errno (fd then closed).
 */
int tcp_clients_adopt(struct tcp_clients *s, int fd, const union sockaddr_any *peer);

/* tcp_clients_set_limits - from now on; the clients already there stay. */
void tcp_clients_set_limits(struct tcp_clients *s, const struct tcp_client_limits *lim);

/*
 * tcp_clients_unlisten - accept what the listeners hold (up to the client limit), then close
 * them, leaving their SO_REUSEPORT groups to the other members (handover.h); the clients stay.
 * Accepts NULL.
 */
void tcp_clients_unlisten(struct tcp_clients *s);
/* tcp_clients_free - close every client (dropping its work) and the listeners. Accepts NULL. */
void tcp_clients_free(struct tcp_clients *s);

/* tcp_clients_count - clients open now. */
unsigned int tcp_clients_count(const struct tcp_clients *s);

/* tcp_work_begin - w is a frame of tc in work (it counts against TCP_CLIENT_WORK). */
void tcp_work_begin(struct tcp_client *tc, struct tcp_work *w);

/*
 * tcp_work_end - w is over (answered or not). Nothing is sent here: tcp_client_kick after
 * the owner has forgotten w.
 */
void tcp_work_end(struct tcp_work *w);

/*
 * tcp_client_send - queue msg (len octets) as one frame for tc. A client with too much
 * unsent already is marked to be closed (counted in reply_errors). Sent at the next
 * tcp_client_kick, or when the client is done with its frames.
 */
void tcp_client_send(struct tcp_client *tc, const uint8_t *msg, size_t len);

/*
 * tcp_client_kick - send what is pending and read on, unless tc's frames are being handed
 * out now. May close tc (then its remaining work is dropped, and tc freed).
 */
void tcp_client_kick(struct tcp_client *tc);

/* The client's address, the address it asked (SO_ORIGINAL_DST when redirected), its text
 * form, and the interface its SYN came in on (0: unknown). */
const union sockaddr_any *tcp_client_peer(const struct tcp_client *tc);
const union sockaddr_any *tcp_client_local(const struct tcp_client *tc);
const char *tcp_client_name(const struct tcp_client *tc);
unsigned int tcp_client_ifindex(const struct tcp_client *tc);

#endif

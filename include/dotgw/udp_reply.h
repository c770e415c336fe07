/*
 * udp_reply.h - UDP answers leave here: from the address and port each client asked, through
 * a cache of reply sockets (IP_TRANSPARENT sockets bound to that address), through raw
 * packets (nfqueue mode, and answers from this machine's own addresses), or, for bridged
 * clients whose query a conntrack redirect brought here, from the listener with the
 * redirect's address as the source. Small answers are batched into one sendmmsg per socket
 * at the end of the loop iteration.
 */
#ifndef DOTGW_UDP_REPLY_H
#define DOTGW_UDP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "dotgw/addr.h"
#include "dotgw/loop.h"
#include "dotgw/stats.h"

struct udp_reply;

#define UDP_REPLY_RAW_ALL   1u /* every answer is a raw packet (nfqueue mode) */
#define UDP_REPLY_RAW_LOCAL 2u /* raw sockets for answers from local addresses only */

/*
 * udp_reply_new - the reply side: raw sockets (IPv4 and IPv6, CAP_NET_RAW) when flags ask for
 * them; every socket carries mark (SO_MARK, the bypass mark). Send failures are counted in
 * stats->reply_errors, answers cut for a raw packet in stats->truncated. Returns 0 or -errno
 * after logging which socket failed.
 */
int udp_reply_new(struct udp_reply **out, struct loop *loop, struct stats *stats, uint32_t mark,
		  unsigned int flags);

/* udp_reply_set_mark - the SO_MARK of reply sockets opened from now on. */
void udp_reply_set_mark(struct udp_reply *u, uint32_t mark);

/*
 * udp_reply_set_listener - the UDP listener of family (AF_INET or AF_INET6), which answers
 * bridged clients (udp_reply_send with nat); fd stays the caller's. -1: none.
 */
void udp_reply_set_listener(struct udp_reply *u, int family, int fd);

/*
 * udp_reply_send - answer client from odst with msg. nat (NULL: not redirected) is the
 * address a bridge redirect sent the query to: the answer then leaves from the listener with
 * that source, at once. Otherwise it joins the batch, sent at the end of this loop iteration,
 * unless it is too large for a batch slot. Failures are counted and logged, rate-limited.
 */
void udp_reply_send(struct udp_reply *u, const union sockaddr_any *client,
		    const union sockaddr_any *odst, const union sockaddr_any *nat,
		    const uint8_t *msg, size_t len);

/*
 * udp_reply_forward - send the client's query msg on unchanged, as a raw packet from the
 * client's address and port to odst (the address it asked), carrying the bypass mark: the
 * server there answers the client directly (--forward SUFFIX=asked in tproxy mode). Needs the
 * raw sockets (UDP_REPLY_RAW_*). 0 or -errno (-EADDRNOTAVAIL: no raw socket; -EMSGSIZE: over
 * the path MTU).
 */
int udp_reply_forward(struct udp_reply *u, const union sockaddr_any *client,
		      const union sockaddr_any *odst, const uint8_t *msg, size_t len);

/* udp_reply_flush - send the batch now. */
void udp_reply_flush(struct udp_reply *u);

/* udp_reply_free - send the batch, then close every socket. Accepts NULL. */
void udp_reply_free(struct udp_reply *u);

#endif

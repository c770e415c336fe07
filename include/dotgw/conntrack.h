/*
 * conntrack.h - the original destination of a connection that a conntrack redirect brought
 * to one of dotgw's listeners (bridged clients, see ruleset.c), asked of the kernel over
 * ctnetlink (one request, one answer; CAP_NET_ADMIN).
 */
#ifndef DOTGW_CONNTRACK_H
#define DOTGW_CONNTRACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct conntrack;

/* conntrack_open - a ctnetlink socket of this thread's own; 0 and *out, or -errno. */
int conntrack_open(struct conntrack **out);

/* conntrack_close - accepts NULL. */
void conntrack_close(struct conntrack *ct);

/*
 * conntrack_orig_dst - look up the entry whose reply direction goes from local to peer
 * (IPPROTO_UDP or IPPROTO_TCP; both sockaddr_in, or both sockaddr_in6, ports included) and
 * store the destination its original direction had (address and port, the same family) in
 * *odst. Returns 0, -ENOENT when there is no such entry, or -errno.
 */
int conntrack_orig_dst(struct conntrack *ct, uint8_t l4proto, const struct sockaddr *local,
		       const struct sockaddr *peer, struct sockaddr_storage *odst);

/*
 * conntrack_flush_dns - delete the conntrack entry of every TCP flow (and UDP flow, when udp)
 * to port 53 that no DNAT has touched (redirect_port 0), or that was redirected to
 * redirect_port. Conntrack takes its NAT decision on a flow's first packet: a flow that began
 * before the bridge redirect was installed would go on past it, in plaintext; one it
 * redirected would still go to the listener port once the redirect is gone. Its next packet
 * starts a new entry. Opens its own sockets and blocks (CAP_NET_ADMIN; for start-up and exit).
 * Returns the number deleted, or -errno.
 */
int conntrack_flush_dns(bool udp, uint16_t redirect_port);

#endif

/*
 * frontend.h - the client side in TPROXY mode: transparent UDP and TCP listeners on
 * cfg->tproxy_port (IPv4 and IPv6), queries handed to the upstream pool, answers sent back
 * from the address and port each client asked.
 */
#ifndef DOTGW_FRONTEND_H
#define DOTGW_FRONTEND_H

#include "dotgw/addr.h"
#include "dotgw/config.h"
#include "dotgw/loop.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"

struct cache;
struct frontend;

/* The answer caches of one configuration, shared by every worker's frontend (--workers). */
struct frontend_caches {
	struct cache *cache;
	struct cache *group[POLICY_MAX_GROUPS];
	struct cache *fwd[FORWARD_MAX_TARGETS];
};

/*
 * frontend_caches_new - the caches cfg asks for, cfg->cache_size octets in all, for the
 * workers to share (set cfg->shared_caches before frontend_open or frontend_reload). 0 (*out
 * NULL when the cache is off) or -ENOMEM. frontend_caches_free: after every frontend that
 * used them switched to others or closed.
 */
int frontend_caches_new(struct frontend_caches **out, const struct config *cfg);
void frontend_caches_free(struct frontend_caches *c);

#define FE_UDP_LISTEN 1u /* transparent UDP listeners (tproxy mode) */
#define FE_TCP_LISTEN 2u /* transparent TCP listeners (both modes) */
#define FE_UDP_RAW    4u /* UDP answers injected through raw sockets (nfqueue mode) */
#define FE_UDP_RAW_LOCAL                                            \
	8u /* raw sockets for UDP answers from local addresses only \
	      (tproxy mode with --capture-local) */

/*
 * frontend_open - open the sockets that flags ask for (IP_TRANSPARENT needs CAP_NET_ADMIN or
 * CAP_NET_RAW, raw sockets CAP_NET_RAW) and start serving. Returns 0 or -errno after logging
 * which socket failed.
 */
int frontend_open(struct frontend **out, struct loop *loop, const struct config *cfg,
		  struct upstream_pool *pool, struct stats *stats, unsigned int flags);

/*
 * frontend_queue_packet - a queue_packet_fn: one IP packet from NFQUEUE (data is the
 * frontend). A UDP DNS query starts a query answered by raw injection. Dropped, as the kernel
 * and the UDP listener of tproxy mode would: anything that is not UDP to port 53, and datagrams
 * over 4096 octets (counted malformed); with csum_ready, a UDP checksum that does not verify
 * (counted bad_checksum). With --non-recursive pass, a query that is not a stub's
 * (dns_query_is_stub) from a client in no policy group is let pass untouched: returns true.
 * So is a query whose name goes to the address it asked (--forward SUFFIX=asked, a locally
 * served zone asked of a private address).
 */
bool frontend_queue_packet(void *data, const uint8_t *pkt, size_t len, unsigned int ifindex,
			   bool csum_ready);

/*
 * frontend_reload - from now on, answer with cfg and send queries to pool; queries in flight
 * finish on the pool they were sent to. Returns that old pool: the caller frees it once
 * upstream_pool_idle() says it is drained. Runs in the frontend's own thread.
 */
struct upstream_pool *frontend_reload(struct frontend *fe, const struct config *cfg,
				      struct upstream_pool *pool);

/*
 * frontend_tcp_adopt - serve the connected stream socket fd (non-blocking; now the frontend's)
 * of a DNS-over-TCP client at peer, as if a listener had accepted it; for tests, which need no
 * transparent listener (a socketpair will do). 0 or -errno (fd then closed).
 */
int frontend_tcp_adopt(struct frontend *fe, int fd, const union sockaddr_any *peer);

struct dnstap_queue;

/* frontend_set_dnstap - log client queries and responses to q (NULL: stop). */
void frontend_set_dnstap(struct frontend *fe, struct dnstap_queue *q);

struct nftset_link;
struct egress_gate_stats;

/*
 * frontend_set_egress - --egress: answers to the clients of egress groups wait until their
 * addresses are in the group's sets, added through link (shared by the workers).
 */
void frontend_set_egress(struct frontend *fe, struct nftset_link *link);

/* frontend_egress_stats - group's egress counters in this worker (zeros: none). */
void frontend_egress_stats(const struct frontend *fe, int group, struct egress_gate_stats *out);

/*
 * frontend_inflight - queries in flight now whose clients wait for them (read from another
 * thread: a snapshot); not those held after their SERVFAIL while an upstream has them.
 */
unsigned int frontend_inflight(const struct frontend *fe);

struct ddr;

/* frontend_ddr - the --upstream asked table (NULL: none), for the metrics. */
struct ddr *frontend_ddr(const struct frontend *fe);

/* frontend_close - close every socket and forget every query in flight. Accepts NULL. */
/* frontend_leave - handover: the listeners leave their SO_REUSEPORT groups (frontend.c). */
void frontend_leave(struct frontend *fe);
void frontend_close(struct frontend *fe);

#endif

/*
 * stats.h - the daemon's counters. One struct per worker, written only by its thread and read
 * by others (SIGUSR1, metrics): every counter is atomic. The writer adds with stats_add (a
 * relaxed load and store: it is the only writer, so no locked instruction is needed); a plain
 * "s->name++" is correct too, as a full atomic increment. Readers take each counter with
 * stats_get; counters read together are not one instant's. stats_format() renders them as
 * "key=value" pairs for the log.
 */
#ifndef DOTGW_STATS_H
#define DOTGW_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_FIELDS(X)                                                                            \
	X(queries)	       /* queries accepted from clients (UDP and TCP) */                   \
	X(queries_udp)	       /* ...of them over UDP */                                           \
	X(queries_tcp)	       /* ...of them over TCP */                                           \
	X(queries_ipv4)	       /* ...of them from IPv4 clients */                                  \
	X(queries_ipv6)	       /* ...of them from IPv6 clients */                                  \
	X(answered)	       /* answers from an upstream sent to the client */                   \
	X(truncated)	       /* UDP answers cut to the client's limit, TC set */                 \
	X(servfail)	       /* SERVFAIL sent: deadline passed, or no usable upstream */         \
	X(formerr)	       /* FORMERR sent to malformed queries */                             \
	X(notimp)	       /* NOTIMP sent to other opcodes */                                  \
	X(malformed)	       /* packets or frames that were not a valid DNS query */             \
	X(bad_checksum)	       /* queued UDP datagrams whose checksum failed (dropped) */          \
	X(dropped)	       /* queries dropped without an answer (see log) */                   \
	X(overload)	       /* queries refused because max-inflight was reached */              \
	X(client_overload)     /* refused: the client's share was in flight, as many waiting */    \
	X(client_waited)       /* queries that waited for their client's share first */            \
	X(rate_limited)	       /* queries over their client's --rate-limit (REFUSED or dropped) */ \
	X(policy_denied)       /* queries answered by a --deny rule or an allow list */            \
	X(policy_alias)	       /* ...of them for a name their answer's alias chain led to */       \
	X(reply_errors)	       /* answers the kernel refused to send */                            \
	X(tcp_clients)	       /* TCP client connections accepted */                               \
	X(upstream_handshakes) /* TLS handshakes completed */                                      \
	X(upstream_resumed)    /* ...of them resumed a session */                                  \
	X(upstream_failures)   /* connections that failed (connect, verification, I/O) */          \
	X(upstream_local_errors) /* connections not opened: no fd or memory here */                \
	X(upstream_bad_answers)	 /* answers that did not match a query (connection closed) */      \
	X(upstream_retries)	 /* queries sent again after their connection failed */            \
	X(upstream_stalled)	 /* connections closed because answers stopped coming */           \
	X(upstream_probes)	 /* health probes sent on silent connections */                    \
	X(upstream_idle_closed)	 /* idle connections closed by us (idle or keepalive timeout) */   \
	X(upstream_standby)	 /* standby connections opened after an idle close (--standby) */  \
	X(upstream_unverified)	 /* used unauthenticated (opportunistic) */                        \
	X(upstream_abandoned)	 /* timed-out queries left with the upstream, their slot held */   \
	X(upstream_late_answers) /* ...of them answered later (the answer is not used) */          \
	X(cache_hits)		 /* queries answered from the cache */                             \
	X(cache_misses)		 /* queries the cache could not answer */                          \
	X(cache_stale)		 /* expired answers served because no upstream answered */         \
	X(cache_stored)		 /* answers stored in the cache */                                 \
	X(prefetch_started)   /* cache entries near their end refreshed upstream (--prefetch) */   \
	X(prefetch_completed) /* ...whose new answer replaced the entry */                         \
	X(prefetch_failed)    /* ...that got no answer that could be stored */                     \
	X(dnstap_dropped)     /* dnstap messages dropped (reader slow or gone) */                  \
	X(queue_packets)      /* packets read from NFQUEUE (each got an NF_DROP verdict) */        \
	X(queue_enobufs)      /* ENOBUFS on a queue socket: the kernel dropped messages */         \
	X(local_answered)     /* answered by dotgw for a locally served zone */                    \
	X(local_asked)	      /* ...left to the private address the client asked instead */        \
	X(forward_errors)     /* plain or relayed forwarding that failed (SERVFAIL) */

#define STATS_FORWARD_TARGETS 16 /* FORWARD_MAX_TARGETS */

struct stats {
#define STATS_DECLARE(name) _Atomic uint64_t name;
	STATS_FIELDS(STATS_DECLARE)
#undef STATS_DECLARE
	_Atomic uint64_t forwarded[STATS_FORWARD_TARGETS]; /* by --forward target (forward.h) */
};

/* stats_add - add n to a counter that only the calling thread writes. */
static inline void stats_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* stats_get - a counter's value, from any thread. */
static inline uint64_t stats_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* stats_format - "queries=N answered=N ..." into buf; returns the length (truncated if small). */
size_t stats_format(const struct stats *s, char *buf, size_t len);

#endif

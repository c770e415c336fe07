/*
 * standby.h - when an upstream gets a standby connection (--standby).
 *
 * Resolvers close idle DoT connections early (Quad9 after about 2 s, Cloudflare after about
 * 10 s), and the next query would pay TCP and TLS handshakes first. So when the last open
 * connection of an upstream closes cleanly while idle and queries came recently, upstream.c
 * opens a fresh one at once. Bounded: one at a time (only when no other connection of the
 * upstream is open), one per STANDBY_GAP_MS at most (a server that closes every connection
 * at once costs one handshake a second, not a loop), and none once no query came for the
 * window: an upstream that closes after I ms gets at most window / I of them after the last
 * query.
 */
#ifndef DOTGW_STANDBY_H
#define DOTGW_STANDBY_H

#include <stdbool.h>
#include <stdint.h>

#define STANDBY_GAP_MS 1000 /* between two standby connections of one upstream, at least */

/*
 * standby_due - should an upstream whose connection just closed idle open a standby one now?
 * now_ms: the time; last_query_ms: when it last took a query (0: never); last_standby_ms:
 * when it last opened a standby connection (0: never); window_s: --standby (0: off); open:
 * its connections still open.
 */
bool standby_due(uint64_t now_ms, uint64_t last_query_ms, uint64_t last_standby_ms,
		 unsigned int window_s, unsigned int open);

#endif

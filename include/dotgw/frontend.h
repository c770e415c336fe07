/*
 * frontend.h - the client side in TPROXY mode: transparent UDP and TCP listeners on
 * cfg->tproxy_port (IPv4 and IPv6), queries handed to the upstream pool, answers sent back
 * from the address and port each client asked.
 */
#ifndef DOTGW_FRONTEND_H
#define DOTGW_FRONTEND_H

#include "dotgw/config.h"
#include "dotgw/loop.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"

struct frontend;

/*
 * frontend_open - open the listeners (needs CAP_NET_ADMIN or CAP_NET_RAW for IP_TRANSPARENT)
 * and start serving. Returns 0 or -errno after logging which socket failed.
 */
int frontend_open(struct frontend **out, struct loop *loop, const struct config *cfg,
		  struct upstream_pool *pool, struct stats *stats);

/* frontend_close - close every socket and forget every query in flight. Accepts NULL. */
void frontend_close(struct frontend *fe);

#endif

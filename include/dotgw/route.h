/*
 * route.h - the policy routing that TPROXY needs, over rtnetlink with libmnl:
 *   ip rule add fwmark MARK lookup TABLE priority PRIO          (and ip -6)
 *   ip route add local 0.0.0.0/0 dev lo table TABLE             (and local ::/0)
 * Installing first removes every rule of ours (same fwmark and table) left by an earlier run,
 * so a restart after a crash never duplicates them.
 */
#ifndef DOTGW_ROUTE_H
#define DOTGW_ROUTE_H

#include <stdint.h>

struct route_config {
	uint32_t mark;	   /* fwmark of captured packets */
	uint32_t table;	   /* routing table holding the local default routes */
	uint32_t priority; /* priority (preference) of the fwmark rules */
};

/* route_install - IPv4 and IPv6 rules and routes; 0 or -errno (nothing half-installed is left). */
int route_install(const struct route_config *cfg);

/* route_remove - remove every such rule and both routes; 0 (also when none existed) or -errno. */
int route_remove(const struct route_config *cfg);

#endif

/*
 * route.h - the policy routing that TPROXY needs, over rtnetlink with libmnl:
 *   ip rule add fwmark MARK lookup TABLE priority PRIO          (and ip -6)
 *   ip route add local 0.0.0.0/0 dev lo table TABLE             (and local ::/0)
 * Installing adds ours first, then removes the other rules of ours (same fwmark and table,
 * another priority) an earlier run left: a restart never has a moment without the rule, and
 * never duplicates it.
 */
#ifndef DOTGW_ROUTE_H
#define DOTGW_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct route_config {
	uint32_t mark;	   /* fwmark of captured packets */
	uint32_t table;	   /* routing table holding the local default routes */
	uint32_t priority; /* priority (preference) of the fwmark rules */
	bool no_ipv6;	   /* install IPv4 only (route_ipv6_usable() said no) */
};

/*
 * route_ipv6_usable - can IPv6 packets be delivered to local sockets through lo here? false
 * when the kernel has no IPv6 (ipv6.disable=1) or IPv6 is disabled on lo
 * (net.ipv6.conf.lo.disable_ipv6=1, which net.ipv6.conf.all.disable_ipv6=1 also sets): the
 * kernel then refuses the local route with EACCES.
 */
bool route_ipv6_usable(void);

/* route_install - IPv4 and IPv6 rules and routes; 0 or -errno (nothing half-installed is left). */
int route_install(const struct route_config *cfg);

/* route_remove - remove every such rule and both routes; 0 (also when none existed) or -errno. */
int route_remove(const struct route_config *cfg);

#endif

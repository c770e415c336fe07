/*
 * ruleset.h - dotgw's own nftables table (family inet), built with libnftnl and committed
 * with libmnl in one batch transaction whose every ACK is read.
 *
 * dotgw owns exactly one table, named by the caller, and never touches any other. Installing
 * replaces whatever a previous (crashed) run left under the same name, atomically: the batch
 * adds the table, deletes it, and creates it afresh with its chains and rules.
 */
#ifndef DOTGW_RULESET_H
#define DOTGW_RULESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/addr.h"

#define RULESET_SCOPE_HOST    1u /* this machine's own port-53 traffic (output path) */
#define RULESET_SCOPE_GATEWAY 2u /* forwarded port-53 traffic (prerouting) */

#define RULESET_MODE_TPROXY  0 /* UDP and TCP to the TPROXY listeners */
#define RULESET_MODE_NFQUEUE 1 /* UDP to NFQUEUE, TCP to the TPROXY listeners */

struct ruleset_config {
	const char *table;	       /* table name (family inet) */
	const char *comment;	       /* the table's comment (handover.h; NULL: none) */
	unsigned int mode;	       /* RULESET_MODE_* */
	unsigned int scope;	       /* RULESET_SCOPE_* bits, at least one */
	const char *const *interfaces; /* gateway scope: only these input interfaces... */
	size_t n_interfaces;	       /* ...or, when 0, every interface but lo */
	const struct cidr *clients;    /* gateway scope: only from these sources... */
	size_t n_clients;	       /* ...or, when 0, from any */
	const struct cidr *exempt;     /* never captured: packets from or to these */
	size_t n_exempt;
	/*
	 * Never captured: packets the routing table sends out through these interfaces (a VPN
	 * tunnel is already encrypted). Names, or prefixes written "wg*" (ruleset_ifpattern_valid).
	 * Host scope: "oifname" in output; gateway scope: "fib daddr oifname" in prerouting.
	 */
	const char *const *exempt_ifaces;
	size_t n_exempt_ifaces;
	uint16_t tproxy_port;  /* where the TPROXY listeners are bound */
	uint32_t capture_mark; /* set on captured packets; the policy route matches it */
	uint32_t bypass_mark;  /* SO_MARK of dotgw's own sockets: never captured */
	uint16_t queue_num;    /* nfqueue: the first queue... */
	uint16_t queue_total;  /* ...and how many (packets spread by flow hash) */
	bool queue_compat;     /* nfqueue: xtables NFQUEUE target through nft_compat */
	/*
	 * no_nat: the kernel has no NAT (no "nat" chain type or "redir" expression): clients
	 * behind a Linux bridge get no redirect and meet the TPROXY rules like any other, which
	 * br_netfilter defeats (see ruleset.c).
	 */
	bool no_nat;
	/*
	 * capture_local: also capture packets addressed to one of this machine's own addresses.
	 * Otherwise "fib daddr type local return" heads prerouting and output: a DNS server here
	 * gets its queries, and nothing beyond an uplink can use dotgw by asking the gateway.
	 */
	bool capture_local;
	/* no_ipv6: IPv6 cannot be routed to the listeners (disabled on lo): leave IPv6 alone */
	bool no_ipv6;
	/*
	 * fail_closed: captured packets that no dotgw socket takes are dropped (TPROXY: a drop
	 * rule after each tproxy rule; NFQUEUE: no bypass) and the table outlives the process.
	 * Otherwise (fail open) the table is created NFT_TABLE_F_OWNER, so the kernel deletes it
	 * when the process ends however it ends, queues get the bypass flag, and DNS passes.
	 */
	bool fail_closed;
};

/*
 * ruleset_ifpattern_valid - is p an interface name nftables can match: 1 to 15 characters,
 * none of them '/', ':' or white space, not "." or "..", and '*' at most once, as the last
 * character after at least one other (a prefix, as nft's "tun*")?
 */
bool ruleset_ifpattern_valid(const char *p);

/* ruleset_ifpattern_match - does interface name match the valid pattern p, as nft matches it? */
bool ruleset_ifpattern_match(const char *p, const char *name);

/* An installed table: with fail open, also the netlink socket that owns it. */
struct ruleset;

/*
 * ruleset_build - write the whole install batch (batch begin ... batch end) into buf.
 * seq is the sequence number of the first message; each later message takes the next one.
 * On success stores the batch length in *len and the number of messages in *nmsgs, returns 0;
 * -EINVAL for a bad config, -ENOSPC if buf is too small, -ENOMEM.
 */
int ruleset_build(const struct ruleset_config *cfg, void *buf, size_t buflen, uint32_t seq,
		  size_t *len, unsigned int *nmsgs);

/*
 * ruleset_install - build and commit the batch; 0 and *out, or -errno (the kernel's error,
 * e.g. -EPERM; -EPERM also when another live process owns a table of that name).
 */
int ruleset_install(struct ruleset **out, const struct ruleset_config *cfg);

/*
 * ruleset_replace - install cfg in place of the table rs holds, in one transaction (no moment
 * without rules), through the socket that owns it. cfg->fail_closed must be what rs was
 * installed with. Returns 0 or -errno (the old table then stays as it was).
 */
int ruleset_replace(struct ruleset *rs, const struct ruleset_config *cfg);

/*
 * ruleset_close - let go of an installed table: an owned (fail-open) table is deleted by the
 * kernel as its socket closes; a fail-closed one stays until ruleset_remove(). Accepts NULL.
 */
void ruleset_close(struct ruleset *rs);

/* ruleset_remove - delete a table by name; 0, -ENOENT when there was none, or -errno. */
int ruleset_remove(const char *table);

/*
 * ruleset_probe_queue - can this kernel run the native nftables "queue" expression? Sends a
 * batch that creates a scratch table, chain and queue rule but no batch end, so nothing is
 * ever committed. Returns 0 (yes), -ENOENT or -EOPNOTSUPP (no: use queue_compat), or -errno.
 */
int ruleset_probe_queue(void);

#endif

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

#include <stddef.h>
#include <stdint.h>

#define RULESET_SCOPE_HOST    1u /* this machine's own port-53 traffic (output path) */
#define RULESET_SCOPE_GATEWAY 2u /* forwarded port-53 traffic (prerouting) */

struct ruleset_config {
	const char *table;		 /* table name (family inet) */
	unsigned int scope;		 /* RULESET_SCOPE_* bits, at least one */
	const char *const *interfaces;	 /* gateway scope: only these input interfaces... */
	size_t n_interfaces;		 /* ...or, when 0, every interface but lo */
	uint16_t tproxy_port;		 /* where the TPROXY listeners are bound */
	uint32_t capture_mark;		 /* set on captured packets; the policy route matches it */
	uint32_t bypass_mark;		 /* SO_MARK of dotgw's own sockets: never captured */
};

/*
 * ruleset_build - write the whole install batch (batch begin ... batch end) into buf.
 * seq is the sequence number of the first message; each later message takes the next one.
 * On success stores the batch length in *len and the number of messages in *nmsgs, returns 0;
 * -EINVAL for a bad config, -ENOSPC if buf is too small, -ENOMEM.
 */
int ruleset_build(const struct ruleset_config *cfg, void *buf, size_t buflen, uint32_t seq,
		  size_t *len, unsigned int *nmsgs);

/* ruleset_install - build and commit the batch; 0 or -errno (the kernel's error, e.g. -EPERM). */
int ruleset_install(const struct ruleset_config *cfg);

/* ruleset_remove - delete the table; 0, -ENOENT when there was none, or -errno. */
int ruleset_remove(const char *table);

#endif

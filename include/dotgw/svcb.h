/*
 * svcb.h - SVCB records (RFC 9460) that designate an encrypted resolver (RFC 9461, RFC 9462):
 * the answer to "_dns.resolver.arpa SVCB" read for a DNS-over-TLS designation. Pure: no
 * sockets, no logging.
 */
#ifndef DOTGW_SVCB_H
#define DOTGW_SVCB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/dns.h"

#define DNS_TYPE_SVCB	 64
#define SVCB_DOT_PORT	 853
#define SVCB_MAX_HINTS	 8
#define SVCB_TARGET_TEXT 254 /* a host name, no trailing dot, and its NUL */

/* One DoT designation: where to connect and which name the certificate must carry. */
struct svcb_dot {
	uint16_t priority;		/* SvcPriority (1 or more: ServiceMode) */
	uint16_t port;			/* the port key, else 853 */
	uint32_t ttl;			/* the record's TTL */
	char target[SVCB_TARGET_TEXT];	/* TargetName as text, lower case, "dns.example" */
	uint8_t v4[SVCB_MAX_HINTS][4];	/* ipv4hint addresses (the first SVCB_MAX_HINTS) */
	uint8_t v6[SVCB_MAX_HINTS][16]; /* ipv6hint addresses */
	uint8_t n_v4, n_v6;
};

/*
 * svcb_dot_pick - read the answer buf (parsed into m by dns_msg_parse) to the question
 * "_dns.resolver.arpa SVCB IN" and pick the DoT designation of lowest SvcPriority: a
 * ServiceMode record owned by _dns.resolver.arpa whose alpn holds "dot", whose mandatory keys
 * are all ones this parser knows (alpn, no-default-alpn, port, ipv4hint, ipv6hint, dohpath),
 * and whose TargetName is a host name (not ".", printable letters, digits, '-', '_').
 * Records that break RFC 9460's wire rules (keys out of order or repeated, values of the wrong
 * size, a compressed or overlong TargetName) are skipped, as are AliasMode records (no
 * endpoint of their own to verify: dotgw does not follow them). Returns 1 and *out; 0 when the
 * answer holds no usable designation; -EBADMSG when the message is not an answer to that question.
 * *ttl (when not NULL) gets the smallest TTL of the answer's SVCB records for the question
 * (UINT32_MAX when there are none), so that a negative result can be cached as long as the positive
 * one would have been.
 */
int svcb_dot_pick(const uint8_t *buf, const struct dns_msg *m, struct svcb_dot *out, uint32_t *ttl);

/*
 * svcb_build_query - the query "_dns.resolver.arpa SVCB IN" with id and RD set, as stubs send
 * it, into out (at least SVCB_QUERY_LEN octets). Returns its length.
 */
#define SVCB_QUERY_LEN (DNS_HDR_LEN + 20 + 4)
size_t svcb_build_query(uint8_t *out, uint16_t id);

/* svcb_is_dns_resolver_arpa - is the wire-format name (name_len octets) _dns.resolver.arpa? */
bool svcb_is_dns_resolver_arpa(const uint8_t *name, size_t name_len);

#endif

/*
 * localzone.h - the locally served zones dotgw knows by default: the reverse zones of RFC 6303
 * section 4 (and RFC 7793's 100.64.0.0/10), home.arpa (RFC 8375), local (RFC 6762),
 * localhost and invalid (RFC 6761 6.3, 6.4) and resolver.arpa (RFC 9462 6.1), and the
 * answers dotgw gives for them itself. Pure code: no sockets, no logging.
 */
#ifndef DOTGW_LOCALZONE_H
#define DOTGW_LOCALZONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/dns.h"

/* What dotgw answers for the names of a zone. */
enum localzone_kind {
	LOCALZONE_EMPTY,     /* RFC 6303: apex SOA and NS, NODATA at the apex, NXDOMAIN below */
	LOCALZONE_NXDOMAIN,  /* invalid, local: NXDOMAIN for every name, the apex too */
	LOCALZONE_LOCALHOST, /* A 127.0.0.1 / AAAA ::1 for every name, other types NODATA */
	LOCALZONE_RESOLVER,  /* resolver.arpa: as EMPTY, and _dns.resolver.arpa NODATA */
};

struct localzone_match {
	enum localzone_kind kind;
	size_t apex_off;  /* where the zone's name starts in the query name */
	bool never_asked; /* answered here even when the client asked a private address */
	const char *zone; /* the zone's name (for logs; the numeric label of a range is "*") */
};

/*
 * localzone_find - the locally served zone that holds name (wire format, as parsed), the most
 * specific one; false when none.
 */
bool localzone_find(const uint8_t *name, size_t name_len, struct localzone_match *z);

/*
 * localzone_answer - dotgw's authoritative answer to query (parsed into m), whose name is in
 * zone z, written to out: NXDOMAIN, NODATA or the records above, with the zone's SOA in the
 * authority section of a negative answer (RFC 6303 3: MNAME the zone, RNAME nobody.invalid.,
 * serial 1, refresh 3600, retry 1200, expire 604800, minimum 10800; the SOA record's own TTL,
 * which bounds negative caching (RFC 2308 5), is LOCALZONE_TTL). Keeps the query's id, RD, CD
 * and EDNS as dns_build_error does. Returns the length, or -ENOSPC / -EINVAL.
 */
int localzone_answer(uint8_t *out, size_t outlen, const uint8_t *query, const struct dns_msg *m,
		     const struct localzone_match *z);

#define LOCALZONE_TTL 300

/*
 * localzone_private - is addr (4 or 16 octets of family) a private, shared, loopback or
 * link-local address: 10/8, 172.16/12, 192.168/16, 100.64/10, 127/8, 169.254/16, fc00::/7,
 * fe80::/10, ::1? A resolver there is the site's own.
 */
bool localzone_private(int family, const uint8_t *addr);

#endif

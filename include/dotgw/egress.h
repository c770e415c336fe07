/*
 * egress.h - what one client group may connect to: the addresses its answers gave, each until
 * its timeout. A mirror, in the worker, of the group's nftables sets (nftset.c writes those): it
 * tells whether an address needs a kernel update at all (new, or its element would expire
 * before half of the new timeout), bounds the element count, and counts adds, refreshes and
 * expirations. Pure code: the caller passes the time; nothing here does I/O or logs.
 *
 * Invariants: at most max entries per family; an entry's expiry is the latest the kernel was asked
 * for; an expired entry counts as absent and is reclaimed on the way (lookups, egress_sweep).
 */
#ifndef DOTGW_EGRESS_H
#define DOTGW_EGRESS_H

#include <stddef.h>
#include <stdint.h>

struct egress;

/* Written by the worker alone, read by the metrics thread too: atomic (stats.h). */
struct egress_stats {
	_Atomic uint64_t adds;	      /* addresses new to the group */
	_Atomic uint64_t refreshes;   /* present, but their element needed a later expiry */
	_Atomic uint64_t expirations; /* entries that expired */
	_Atomic uint64_t overflows;   /* addresses refused: the group had max entries */
	_Atomic uint64_t entries;
};

enum egress_verdict {
	EGRESS_COVERED, /* present long enough: no kernel update */
	EGRESS_ADD,	/* new: add the element */
	EGRESS_REFRESH, /* present: add it again with the new timeout */
	EGRESS_FULL,	/* no room: counted in overflows */
};

/*
 * egress_new - a table of at most max addresses of each family (> 0), as the kernel holds in
 * each of the group's two sets; seed randomises the hash. 0 or -errno.
 */
int egress_new(struct egress **out, size_t max, uint32_t seed);
void egress_free(struct egress *e);

/*
 * egress_note - an answer gave addr (family AF_INET or AF_INET6) with a timeout of timeout_ms
 * as of now_ms: record it and say what the kernel's set needs.
 */
enum egress_verdict egress_note(struct egress *e, int family, const uint8_t *addr, uint64_t now_ms,
				uint64_t timeout_ms);

/* egress_forget - the kernel refused the element the last egress_note asked for: drop it. */
void egress_forget(struct egress *e, int family, const uint8_t *addr);

/* egress_sweep - reclaim expired entries, looking at no more than budget buckets. */
void egress_sweep(struct egress *e, uint64_t now_ms, size_t budget);

const struct egress_stats *egress_stats(const struct egress *e);

#endif

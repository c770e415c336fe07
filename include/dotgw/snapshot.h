/*
 * snapshot.h - one reading of the daemon's counters, rendered two ways: as Prometheus text
 * (GET /metrics) and as the "stats:" log line (SIGUSR1, shutdown). Plain data; workers.c
 * fills it, this module only formats it.
 */
#ifndef DOTGW_SNAPSHOT_H
#define DOTGW_SNAPSHOT_H

#include <stdio.h>

#include "dotgw/config.h"
#include "dotgw/ddr.h"
#include "dotgw/egress_gate.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"

struct stats_snapshot {
	struct stats sum;	     /* every worker's counters added up */
	unsigned long long inflight; /* queries waiting for an upstream now */
	const char *mode;	     /* "tproxy" or "nfqueue" (the metrics' label) */
	size_t n_upstreams;	     /* 0 when the workers' pools did not agree */
	struct {
		char name[sizeof(((struct upstream_config *)0)->text)];
		struct upstream_snapshot s; /* added up over the workers */
	} up[CONFIG_MAX_UPSTREAMS];
	size_t n_ddr; /* --upstream asked: the asked addresses known (the first SNAPSHOT_DDR_MAX) */
#define SNAPSHOT_DDR_MAX 64
	struct ddr_snapshot ddr[SNAPSHOT_DDR_MAX]; /* counters added up over the workers */
	size_t n_fwd; /* --forward targets of the configuration in force */
	struct {
		char name[FORWARD_TEXT_MAX];
		const char *transport; /* "dot", "unencrypted" or "asked" */
	} fwd[FORWARD_MAX_TARGETS];
	size_t n_egress; /* --egress groups (the first n of egress[] that are set) */
	struct {
		char group[32];
		int index; /* the group's place among the --group options */
		unsigned long long elements, adds, refreshes, expirations, overflows, refused, held;
		unsigned long long dropped; /* the drop rule's counter; ~0ULL: not read */
		unsigned long long hold[EGRESS_HOLD_BUCKETS], hold_sum_us; /* egress_gate.h */
	} egress[POLICY_MAX_GROUPS];
};

/* snapshot_render - the Prometheus text exposition of s. */
void snapshot_render(const struct stats_snapshot *s, FILE *out);

/*
 * snapshot_log - the "stats: key=value ..." log line of s, then one line per upstream:
 * health, connections open, counters and smoothed RTT (the workers' pools added up; the
 * RTT is their mean).
 */
void snapshot_log(const struct stats_snapshot *s);

#endif

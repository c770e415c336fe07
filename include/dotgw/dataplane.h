/*
 * dataplane.h - does a BPF data plane take packets past the host's netfilter here? Cilium (its
 * kube-proxy replacement, BPF host routing) and Calico's eBPF mode attach BPF programs to the
 * interfaces of the node: tc (clsact) filters, tcx and netkit attachments (kernel >= 6.6/6.7),
 * XDP. Such a program can redirect a pod's packets straight to another device, so pod DNS never
 * reaches the prerouting hook where dotgw's rules capture it. This module looks for such
 * programs (dataplane_check, from the main thread: at start, on a timer, on reload), logs each
 * new one at warning level and each one that went at info level, and keeps a gauge per data
 * plane for the metrics thread (dataplane_render). It never changes anything, and a check that
 * fails only says so.
 */
#ifndef DOTGW_DATAPLANE_H
#define DOTGW_DATAPLANE_H

#include <stdio.h>

enum dataplane_kind {
	DATAPLANE_UNKNOWN,
	DATAPLANE_CILIUM,
	DATAPLANE_CALICO,
	DATAPLANE_KINDS,
};

struct dataplane;

/* dataplane_new - nothing seen yet, gauges off (rendered once a check ran); 0 or -ENOMEM. */
int dataplane_new(struct dataplane **out);
void dataplane_free(struct dataplane *dp);

/*
 * dataplane_check - list the BPF programs on this network namespace's interfaces now, log what
 * is new (warning) and what went (info) since the last check, and set the gauges. Returns the
 * number of programs found, or -errno when the interfaces could not be listed (logged once at
 * info level; the previous findings stay).
 */
int dataplane_check(struct dataplane *dp);

/* dataplane_off - the check is turned off: forget the findings, render nothing. */
void dataplane_off(struct dataplane *dp);

/* dataplane_render - the Prometheus lines (none before the first check); any thread. */
void dataplane_render(const struct dataplane *dp, FILE *out);

/*
 * dataplane_classify - the data plane that an interface name and a program name (either may be
 * "") point to: Cilium (programs cil_*, bpf_lxc*, bpf_host*, bpf_overlay*, bpf_netdev*;
 * interfaces cilium_*, lxc* but lxcbr*), Calico (programs calico_*, cali_*; interfaces
 * bpfin.cali, bpfout.cali, cali*), else unknown. The program's name wins.
 */
enum dataplane_kind dataplane_classify(const char *ifname, const char *prog);

/* dataplane_kind_name - "unknown", "cilium", "calico". */
const char *dataplane_kind_name(enum dataplane_kind k);

#endif

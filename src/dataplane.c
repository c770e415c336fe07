/*
 * dataplane.c - see dataplane.h. One check:
 *   RTM_GETLINK dump (names, kinds, IFLA_XDP program ids), then per interface
 *   RTM_GETTFILTER dumps of the clsact ingress and egress hooks (filters of kind "bpf":
 *   TCA_BPF_NAME, TCA_BPF_ID), then bpf(BPF_PROG_QUERY) for tcx ingress/egress (and netkit
 *   primary/peer on netkit devices): program ids only, as naming a program takes
 *   BPF_PROG_GET_FD_BY_ID, which needs CAP_SYS_ADMIN that dotgw does not keep.
 * All on a netlink socket of its own, opened and closed per check, from the main thread; each
 * read waits at most a second. The rtnetlink dumps need no privilege; BPF_PROG_QUERY needs
 * CAP_NET_ADMIN (kept) and a seccomp filter that lets it through (sandbox.c allows bpf() for
 * this command only; a container runtime's default profile denies bpf() altogether, and so
 * would systemd's @system-service without the "bpf" that packaging/dotgw.service adds). Where tcx
 * cannot be listed (EPERM), the interfaces a data plane always programs (cilium_host, bpfout.cali)
 * stand in for its programs: one finding each. A dump that an interface change interrupts
 * (NLM_F_DUMP_INTR) is taken as it came, and a filter dump that fails (its interface deleted
 * meanwhile) is skipped: the next check sees what they missed.
 *
 * Invariants: dp->known is sorted by (ifindex, hook, id) and holds what the last check that
 * listed the interfaces found; the gauges count it by data plane. Only the main thread checks;
 * the gauges and dp->on are atomic for the metrics thread.
 */
#include <errno.h>
#include <net/if.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "dotgw/dataplane.h"
#include "dotgw/log.h"
#include "dotgw/nldump.h"

#define DP_BUF_SIZE	 32768
#define DP_MAX_FINDINGS	 4096 /* more are not tracked (a check says so) */
#define DP_WARN_MAX	 8    /* warning lines per check; the rest at info, summed up once */
#define DP_QUERY_MAX	 64   /* program ids asked for per hook */
#define DP_PROG_NAME_MAX 64

/* bpf(2) numbers that Debian 12's 6.1 headers lack (uapi/linux/bpf.h, enum bpf_attach_type) */
#define DP_BPF_PROG_QUERY     16
#define DP_BPF_TCX_INGRESS    46
#define DP_BPF_TCX_EGRESS     47
#define DP_BPF_NETKIT_PRIMARY 54
#define DP_BPF_NETKIT_PEER    55

enum dp_hook {
	DP_TC_INGRESS,
	DP_TC_EGRESS,
	DP_TCX_INGRESS,
	DP_TCX_EGRESS,
	DP_NETKIT_PRIMARY,
	DP_NETKIT_PEER,
	DP_XDP,
	DP_UNLISTED, /* a data plane's interface, its tcx programs not listable */
};

static const char *const dp_hook_names[] = {
	[DP_TC_INGRESS] = "tc ingress",
	[DP_TC_EGRESS] = "tc egress",
	[DP_TCX_INGRESS] = "tcx ingress",
	[DP_TCX_EGRESS] = "tcx egress",
	[DP_NETKIT_PRIMARY] = "netkit primary",
	[DP_NETKIT_PEER] = "netkit peer",
	[DP_XDP] = "xdp",
	[DP_UNLISTED] = "tcx (not listable)",
};

struct dp_finding {
	unsigned int ifindex;
	uint32_t id; /* the kernel's program id (0: DP_UNLISTED) */
	uint8_t hook;
	uint8_t kind;
	char ifname[IFNAMSIZ];
	char prog[DP_PROG_NAME_MAX]; /* "" when not known */
};

struct dp_link {
	unsigned int ifindex;
	bool netkit;
	uint32_t xdp[3]; /* driver, generic (skb), offloaded program ids; 0: none */
	char name[IFNAMSIZ];
};

struct dataplane {
	struct dp_finding *known;
	size_t n_known;
	int last_err; /* the last check's error (logged when it changes) */
	int tcx_err;  /* tcx listing: 0 works, -errno not (logged when it changes) */
	bool overflow;
	_Atomic bool on;
	_Atomic unsigned int count[DATAPLANE_KINDS];
};

/* One check's state. */
struct dp_scan {
	struct mnl_socket *nl;
	uint32_t seq;
	void *buf;
	struct dp_link *links;
	size_t n_links, cap_links;
	struct dp_finding *f;
	size_t n, cap;
	bool overflow;
	const struct dp_link *cur; /* the interface a filter dump is for */
	uint8_t hook;
	int err;     /* a callback's -errno */
	int tcx_err; /* see dp_tcx */
};

static int dp_add(struct dp_scan *s, const struct dp_link *l, uint8_t hook, uint32_t id,
		  const char *prog);

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

enum dataplane_kind dataplane_classify(const char *ifname, const char *prog)
{
	static const char *const cilium_progs[] = {"cil_",	  "bpf_lxc",	"bpf_host",
						   "bpf_overlay", "bpf_netdev", "bpf_xdp"};

	for (size_t i = 0; i < sizeof(cilium_progs) / sizeof(cilium_progs[0]); i++)
		if (has_prefix(prog, cilium_progs[i]))
			return DATAPLANE_CILIUM;
	if (has_prefix(prog, "calico_") || has_prefix(prog, "cali_"))
		return DATAPLANE_CALICO;
	if (has_prefix(ifname, "cilium_") ||
	    (has_prefix(ifname, "lxc") && !has_prefix(ifname, "lxcbr")))
		return DATAPLANE_CILIUM;
	if (has_prefix(ifname, "cali") || !strcmp(ifname, "bpfin.cali") ||
	    !strcmp(ifname, "bpfout.cali"))
		return DATAPLANE_CALICO;
	return DATAPLANE_UNKNOWN;
}

const char *dataplane_kind_name(enum dataplane_kind k)
{
	switch (k) {
	case DATAPLANE_CILIUM:
		return "cilium";
	case DATAPLANE_CALICO:
		return "calico";
	default:
		return "unknown";
	}
}

/* dp_anchor - an interface that its data plane always attaches programs to. */
static bool dp_anchor(const char *ifname)
{
	return !strcmp(ifname, "cilium_host") || !strcmp(ifname, "bpfout.cali");
}

/* --- netlink ------------------------------------------------------------------------------ */

/* dp_dump - send the dump request nlh and run cb on each message of the answer; 0 or -errno. */
static int dp_dump(struct dp_scan *s, struct nlmsghdr *nlh, mnl_cb_t cb)
{
	int r;

	s->err = 0;
	r = nldump_run(s->nl, nlh, s->buf, DP_BUF_SIZE, ++s->seq, cb, s);
	return s->err ? s->err : r;
}

static int dp_xdp_attr(const struct nlattr *a, void *data)
{
	uint32_t *xdp = data;
	uint16_t type = mnl_attr_get_type(a);
	int slot = type == IFLA_XDP_DRV_PROG_ID	  ? 0
		   : type == IFLA_XDP_SKB_PROG_ID ? 1
		   : type == IFLA_XDP_HW_PROG_ID  ? 2
						  : -1;

	if (slot >= 0 && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
		xdp[slot] = mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int dp_info_attr(const struct nlattr *a, void *data)
{
	bool *netkit = data;

	if (mnl_attr_get_type(a) == IFLA_INFO_KIND &&
	    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		*netkit = !strcmp(mnl_attr_get_str(a), "netkit");
	return MNL_CB_OK;
}

static int dp_link_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, IFLA_MAX) < 0)
		return MNL_CB_OK; /* unknown: skipped */
	if (type == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
		return MNL_CB_OK;
	if ((type == IFLA_LINKINFO || type == IFLA_XDP) &&
	    mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

static int dp_link_msg(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[IFLA_MAX + 1] = {NULL};
	struct dp_scan *s = data;
	const struct ifinfomsg *ifm;
	struct dp_link *l;

	if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifm))
		return MNL_CB_OK;
	ifm = mnl_nlmsg_get_payload(nlh);
	mnl_attr_parse(nlh, sizeof(*ifm), dp_link_attr, tb);
	if (ifm->ifi_index <= 0 || !tb[IFLA_IFNAME])
		return MNL_CB_OK;
	if (s->n_links == s->cap_links) {
		size_t cap = s->cap_links ? s->cap_links * 2 : 64;
		struct dp_link *n = realloc(s->links, cap * sizeof(*n));

		if (!n) {
			s->err = -ENOMEM;
			return MNL_CB_ERROR;
		}
		s->links = n;
		s->cap_links = cap;
	}
	l = &s->links[s->n_links++];
	memset(l, 0, sizeof(*l));
	l->ifindex = (unsigned int)ifm->ifi_index;
	snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
	if (tb[IFLA_LINKINFO])
		mnl_attr_parse_nested(tb[IFLA_LINKINFO], dp_info_attr, &l->netkit);
	if (tb[IFLA_XDP])
		mnl_attr_parse_nested(tb[IFLA_XDP], dp_xdp_attr, l->xdp);
	return MNL_CB_OK;
}

static int dp_links_dump(struct dp_scan *s)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(s->buf);
	struct ifinfomsg *ifm;

	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	return dp_dump(s, nlh, dp_link_msg);
}

struct dp_bpf_opts {
	const char *name;
	uint32_t id;
};

static int dp_bpf_attr(const struct nlattr *a, void *data)
{
	struct dp_bpf_opts *o = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type == TCA_BPF_NAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		o->name = mnl_attr_get_str(a);
	else if (type == TCA_BPF_ID && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
		o->id = mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int dp_filter_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, TCA_MAX) < 0)
		return MNL_CB_OK;
	if (type == TCA_KIND && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
		return MNL_CB_OK;
	if (type == TCA_OPTIONS && mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

static int dp_filter_msg(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[TCA_MAX + 1] = {NULL};
	struct dp_bpf_opts o = {.name = ""};
	struct dp_scan *s = data;

	if (nlh->nlmsg_type != RTM_NEWTFILTER ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(struct tcmsg))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(struct tcmsg), dp_filter_attr, tb);
	if (!tb[TCA_KIND] || strcmp(mnl_attr_get_str(tb[TCA_KIND]), "bpf") || !tb[TCA_OPTIONS])
		return MNL_CB_OK;
	mnl_attr_parse_nested(tb[TCA_OPTIONS], dp_bpf_attr, &o);
	if (!o.id) /* the classifier's own entry, or a classic BPF (cBPF) filter */
		return MNL_CB_OK;
	s->err = dp_add(s, s->cur, s->hook, o.id, o.name);
	return s->err < 0 ? MNL_CB_ERROR : MNL_CB_OK;
}

/* dp_filters_dump - the bpf filters on l's clsact hook (DP_TC_INGRESS/EGRESS); 0 or -errno. */
static int dp_filters_dump(struct dp_scan *s, const struct dp_link *l, uint8_t hook)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(s->buf);
	struct tcmsg *tcm;

	nlh->nlmsg_type = RTM_GETTFILTER;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
	tcm->tcm_family = AF_UNSPEC;
	tcm->tcm_ifindex = (int)l->ifindex;
	tcm->tcm_parent =
		TC_H_MAKE(TC_H_CLSACT, hook == DP_TC_INGRESS ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
	s->cur = l;
	s->hook = hook;
	return dp_dump(s, nlh, dp_filter_msg);
}

/* --- bpf(2) ------------------------------------------------------------------------------- */

/* The BPF_PROG_QUERY member of union bpf_attr, as of kernel 6.6 (tcx). */
struct dp_bpf_query {
	uint32_t target_ifindex;
	uint32_t attach_type;
	uint32_t query_flags;
	uint32_t attach_flags;
	uint64_t prog_ids;
	uint32_t count;
	uint32_t pad;
	uint64_t prog_attach_flags;
	uint64_t link_ids;
	uint64_t link_attach_flags;
	uint64_t revision;
};

/*
 * dp_query - the programs attached to l at attach_type (a tcx or netkit one), as hook; 0 or
 * bpf()'s -errno: -ENODEV (the device is gone), -EINVAL (no such hook: a kernel before it, or
 * netkit's on another device), -EPERM.
 */
static int dp_query(struct dp_scan *s, const struct dp_link *l, uint32_t attach_type, uint8_t hook)
{
	uint32_t ids[DP_QUERY_MAX];
	struct dp_bpf_query q = {
		.target_ifindex = l->ifindex,
		.attach_type = attach_type,
		.prog_ids = (uint64_t)(uintptr_t)ids,
		.count = DP_QUERY_MAX,
	};
	int r = 0;

	if (syscall(SYS_bpf, DP_BPF_PROG_QUERY, &q, sizeof(q)) < 0 && errno != ENOSPC)
		return -errno;
	for (uint32_t i = 0; i < q.count && i < DP_QUERY_MAX && r == 0; i++)
		r = dp_add(s, l, hook, ids[i], "");
	return r;
}

/* --- findings ----------------------------------------------------------------------------- */

static int dp_add(struct dp_scan *s, const struct dp_link *l, uint8_t hook, uint32_t id,
		  const char *prog)
{
	struct dp_finding *f;

	if (s->n == DP_MAX_FINDINGS) {
		s->overflow = true;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;

		f = realloc(s->f, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		s->f = f;
		s->cap = cap;
	}
	f = &s->f[s->n++];
	memset(f, 0, sizeof(*f));
	f->ifindex = l->ifindex;
	f->id = id;
	f->hook = hook;
	snprintf(f->ifname, sizeof(f->ifname), "%s", l->name);
	snprintf(f->prog, sizeof(f->prog), "%s", prog);
	f->kind = (uint8_t)dataplane_classify(l->name, prog);
	return 0;
}

static int dp_cmp(const void *a, const void *b)
{
	const struct dp_finding *x = a, *y = b;

	if (x->ifindex != y->ifindex)
		return x->ifindex < y->ifindex ? -1 : 1;
	if (x->hook != y->hook)
		return x->hook < y->hook ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

/* dp_describe - "program 'NAME' (id N) on 'IF' tc ingress, data plane K" into buf. */
static const char *dp_describe(const struct dp_finding *f, char *buf, size_t len)
{
	if (f->hook == DP_UNLISTED)
		snprintf(buf, len,
			 "interface '%s' of data plane %s, whose tcx programs cannot be listed",
			 f->ifname, dataplane_kind_name(f->kind));
	else
		snprintf(buf, len, "BPF program %s%s%s(id %u) on '%s' %s, data plane %s",
			 f->prog[0] ? "'" : "", f->prog, f->prog[0] ? "' " : "", f->id, f->ifname,
			 dp_hook_names[f->hook], dataplane_kind_name(f->kind));
	return buf;
}

/*
 * dp_report - log the difference between dp->known and the scan's findings (both sorted).
 * A finding of a data plane that the last check found already (a new pod's interface) is
 * logged at info level; others at warning level, DP_WARN_MAX at most, the rest summed up.
 */
static void dp_report(const struct dataplane *dp, const struct dp_scan *s)
{
	size_t i = 0, j = 0, more = 0;
	unsigned int warned = 0;
	char what[256];

	while (i < dp->n_known || j < s->n) {
		int c = i == dp->n_known ? 1 : j == s->n ? -1 : dp_cmp(&dp->known[i], &s->f[j]);

		if (c == 0) {
			i++, j++;
			continue;
		}
		if (c < 0) {
			log_info("%s: gone", dp_describe(&dp->known[i++], what, sizeof(what)));
			continue;
		}
		dp_describe(&s->f[j], what, sizeof(what));
		if (s->f[j].kind != DATAPLANE_UNKNOWN &&
		    atomic_load_explicit(&dp->count[s->f[j].kind], memory_order_relaxed)) {
			log_info("%s: another of a data plane already reported", what);
		} else if (warned < DP_WARN_MAX) {
			warned++;
			log_warn(
				"%s: it sees packets before the host's netfilter and may route pod "
				"or host DNS around it, unseen by dotgw (see docs/kubernetes.md)",
				what);
		} else {
			more++;
			log_info("%s", what);
		}
		j++;
	}
	if (more)
		log_warn("%zu more new BPF programs that may route DNS around the host's netfilter "
			 "(listed at info level)",
			 more);
	if (s->overflow && !dp->overflow)
		log_warn("more than %d BPF programs on the interfaces: only %d are followed",
			 DP_MAX_FINDINGS, DP_MAX_FINDINGS);
}

/*
 * dp_tcx - l's tcx programs, and its netkit ones on a netkit device. s->tcx_err keeps the first
 * error that is not the device's own: -EINVAL (a kernel before tcx), -ENOSYS (no bpf()),
 * -EPERM or -EACCES (denied); the other interfaces are not asked then. 0 or -ENOMEM.
 */
static int dp_tcx(struct dp_scan *s, const struct dp_link *l)
{
	int r;

	if (s->tcx_err)
		return 0;
	r = dp_query(s, l, DP_BPF_TCX_INGRESS, DP_TCX_INGRESS);
	if (r == 0)
		r = dp_query(s, l, DP_BPF_TCX_EGRESS, DP_TCX_EGRESS);
	if (r == -ENODEV) /* deleted meanwhile */
		return 0;
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		s->tcx_err = r;
		return 0;
	}
	if (l->netkit) {
		r = dp_query(s, l, DP_BPF_NETKIT_PRIMARY, DP_NETKIT_PRIMARY);
		if (r == 0)
			r = dp_query(s, l, DP_BPF_NETKIT_PEER, DP_NETKIT_PEER);
	}
	return r == -ENOMEM ? r : 0;
}

/* dp_has - has s a finding on ifindex? */
static bool dp_has(const struct dp_scan *s, unsigned int ifindex)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->f[i].ifindex == ifindex)
			return true;
	return false;
}

/* dp_scan_run - fill s with this namespace's findings; 0 or -errno. */
static int dp_scan_run(struct dp_scan *s)
{
	int r = dp_links_dump(s);

	for (size_t i = 0; i < s->n_links && r == 0; i++) {
		const struct dp_link *l = &s->links[i];

		/* a filter dump of an interface deleted meanwhile fails: skip it */
		if (dp_filters_dump(s, l, DP_TC_INGRESS) == -ENOMEM ||
		    dp_filters_dump(s, l, DP_TC_EGRESS) == -ENOMEM)
			return -ENOMEM;
		for (int x = 0; x < 3 && r == 0; x++)
			if (l->xdp[x])
				r = dp_add(s, l, DP_XDP, l->xdp[x], "");
		if (r == 0)
			r = dp_tcx(s, l);
	}
	if (r == 0 && (s->tcx_err == -EPERM || s->tcx_err == -EACCES))
		for (size_t i = 0; i < s->n_links && r == 0; i++)
			if (dp_anchor(s->links[i].name) && !dp_has(s, s->links[i].ifindex))
				r = dp_add(s, &s->links[i], DP_UNLISTED, 0, "");
	return r;
}

int dataplane_check(struct dataplane *dp)
{
	struct dp_scan s = {0};
	unsigned int count[DATAPLANE_KINDS] = {0};
	int r;

	s.buf = malloc(DP_BUF_SIZE);
	if (!s.buf)
		return -ENOMEM;
	s.nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!s.nl) {
		r = -errno;
		goto out_free;
	}
	if (mnl_socket_bind(s.nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out_close;
	}
	s.seq = (uint32_t)time(NULL);
	r = dp_scan_run(&s);
	if (r < 0)
		goto out_close;
	if (s.tcx_err != dp->tcx_err) {
		if (s.tcx_err == -EPERM || s.tcx_err == -EACCES)
			log_info(
				"BPF data plane check: tcx and netkit programs cannot be listed "
				"here (bpf(BPF_PROG_QUERY): %s; a seccomp profile that denies "
				"bpf()?): interfaces cilium_host and bpfout.cali stand in for them",
				strerror(-s.tcx_err));
		else if (s.tcx_err == -EINVAL || s.tcx_err == -ENOSYS)
			log_debug("BPF data plane check: no tcx in this kernel (bpf(): %s)",
				  strerror(-s.tcx_err));
		else if (s.tcx_err < 0)
			log_info("BPF data plane check: tcx programs not listed (bpf(): %s)",
				 strerror(-s.tcx_err));
		dp->tcx_err = s.tcx_err;
	}
	if (s.n) /* s.f is NULL when nothing was found */
		qsort(s.f, s.n, sizeof(*s.f), dp_cmp);
	dp_report(dp, &s);
	free(dp->known);
	dp->known = s.f;
	dp->n_known = s.n;
	dp->overflow = s.overflow;
	s.f = NULL;
	for (size_t i = 0; i < dp->n_known; i++)
		count[dp->known[i].kind]++;
	for (int k = 0; k < DATAPLANE_KINDS; k++)
		atomic_store_explicit(&dp->count[k], count[k], memory_order_relaxed);
	atomic_store_explicit(&dp->on, true, memory_order_relaxed);
	log_debug("BPF data plane check: %zu interfaces, %zu BPF programs", s.n_links, dp->n_known);
	r = (int)dp->n_known;
out_close:
	mnl_socket_close(s.nl);
out_free:
	if (r < 0 && r != dp->last_err)
		log_info("BPF data plane check: cannot list the interfaces' programs: %s",
			 strerror(-r));
	dp->last_err = r < 0 ? r : 0;
	free(s.f);
	free(s.links);
	free(s.buf);
	return r;
}

int dataplane_new(struct dataplane **out)
{
	struct dataplane *dp = calloc(1, sizeof(*dp));

	if (!dp)
		return -ENOMEM;
	*out = dp;
	return 0;
}

void dataplane_off(struct dataplane *dp)
{
	atomic_store_explicit(&dp->on, false, memory_order_relaxed);
	for (int k = 0; k < DATAPLANE_KINDS; k++)
		atomic_store_explicit(&dp->count[k], 0, memory_order_relaxed);
	free(dp->known);
	dp->known = NULL;
	dp->n_known = 0;
	dp->tcx_err = 0;
	dp->last_err = 0;
}

void dataplane_free(struct dataplane *dp)
{
	if (!dp)
		return;
	free(dp->known);
	free(dp);
}

void dataplane_render(const struct dataplane *dp, FILE *out)
{
	if (!dp || !atomic_load_explicit(&dp->on, memory_order_relaxed))
		return;
	fputs("# HELP dotgw_bpf_dataplane_programs BPF programs on this namespace's interfaces "
	      "(tc, tcx, netkit, XDP) that may route DNS around the host's netfilter, by the "
	      "data plane they point to (docs/kubernetes.md)\n"
	      "# TYPE dotgw_bpf_dataplane_programs gauge\n",
	      out);
	for (int k = 0; k < DATAPLANE_KINDS; k++)
		fprintf(out, "dotgw_bpf_dataplane_programs{dataplane=\"%s\"} %u\n",
			dataplane_kind_name((enum dataplane_kind)k),
			atomic_load_explicit(&dp->count[k], memory_order_relaxed));
}

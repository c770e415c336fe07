/*
 * egress_gate.c - see egress_gate.h. An element's timeout is its record's TTL plus
 * --egress-grace, capped by --cache-max-ttl; the mirror (egress.c) says whether the kernel's
 * element needs it. The mirror bounds each family by --egress-max, as the kernel bounds each
 * set: an address beyond it is counted as overflow here and costs no kernel round trip (a
 * refused element would abort its whole batch).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "dotgw/config.h"
#include "dotgw/dns.h"
#include "dotgw/egress_gate.h"
#include "dotgw/egress_rules.h"
#include "dotgw/log.h"
#include "dotgw/loop.h"
#include "dotgw/stats.h"

struct egress_gate_req {
	struct nftset_req r;
	struct egress_hold *h;
	uint64_t timeout_ms;
	int family;
	uint8_t addr[16];
	bool pending;
};

struct egress_gate {
	struct loop *loop;
	struct nftset *ns;
	struct egress *mirror[POLICY_MAX_GROUPS]; /* NULL: the group has no egress policy */
	char set[POLICY_MAX_GROUPS][2][16];
	char name[POLICY_MAX_GROUPS][32];
	_Atomic uint64_t refused[POLICY_MAX_GROUPS], held[POLICY_MAX_GROUPS]; /* stats.h */
	_Atomic uint64_t hold[POLICY_MAX_GROUPS][EGRESS_HOLD_BUCKETS];
	_Atomic uint64_t hold_sum_us[POLICY_MAX_GROUPS];
	uint32_t grace_s, cap_s, max;
	struct log_ratelimit rl_full, rl_refused;
};

const unsigned int egress_hold_bounds_us[EGRESS_HOLD_BUCKETS - 1] = {
	50, 100, 200, 300, 500, 1000, 2000, 5000, 10000,
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* gate_hold_timed - h waited from its start until now: into its group's histogram. */
static void gate_hold_timed(struct egress_gate *g, const struct egress_hold *h)
{
	uint64_t us = mono_us() - h->start_us;
	size_t b = 0;

	while (b < EGRESS_HOLD_BUCKETS - 1 && us > egress_hold_bounds_us[b])
		b++;
	stats_add(&g->hold[h->group][b], 1);
	stats_add(&g->hold_sum_us[h->group], us);
}

static void gate_mirrors_free(struct egress_gate *g)
{
	for (size_t i = 0; i < POLICY_MAX_GROUPS; i++) {
		egress_free(g->mirror[i]);
		g->mirror[i] = NULL;
	}
}

int egress_gate_reload(struct egress_gate *g, const struct config *cfg)
{
	struct egress *m[POLICY_MAX_GROUPS] = {NULL};
	int r;

	for (size_t i = 0; i < cfg->groups.n_groups; i++) {
		if (!cfg->groups.groups[i].egress)
			continue;
		r = egress_new(&m[i], cfg->egress_max, (uint32_t)random());
		if (r < 0) {
			for (size_t k = 0; k < i; k++)
				egress_free(m[k]);
			return r;
		}
	}
	gate_mirrors_free(g);
	for (size_t i = 0; i < POLICY_MAX_GROUPS; i++) {
		g->mirror[i] = m[i];
		egress_rules_set_name(g->set[i][0], sizeof(g->set[i][0]), i, AF_INET);
		egress_rules_set_name(g->set[i][1], sizeof(g->set[i][1]), i, AF_INET6);
		snprintf(g->name[i], sizeof(g->name[i]), "%s",
			 i < cfg->groups.n_groups ? cfg->groups.groups[i].name : "");
	}
	g->grace_s = cfg->egress_grace;
	g->cap_s = cfg->cache_max_ttl;
	g->max = cfg->egress_max;
	return 0;
}

int egress_gate_new(struct egress_gate **out, struct loop *loop, struct nftset_link *link,
		    const char *table, const struct config *cfg)
{
	struct egress_gate *g = calloc(1, sizeof(*g));
	int r;

	if (!g)
		return -ENOMEM;
	g->loop = loop;
	r = nftset_new(&g->ns, loop, link, table);
	if (r == 0)
		r = egress_gate_reload(g, cfg);
	if (r < 0) {
		egress_gate_free(g);
		return r;
	}
	*out = g;
	return 0;
}

void egress_gate_free(struct egress_gate *g)
{
	if (!g)
		return;
	gate_mirrors_free(g);
	nftset_free(g->ns);
	free(g);
}

bool egress_gate_polices(const struct egress_gate *g, int group)
{
	return g && group >= 0 && group < POLICY_MAX_GROUPS && g->mirror[group];
}

void egress_gate_stats(const struct egress_gate *g, int group, struct egress_gate_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!egress_gate_polices(g, group))
		return;
	const struct egress_stats *m = egress_stats(g->mirror[group]);

	out->elements = stats_get(&m->entries);
	out->adds = stats_get(&m->adds);
	out->refreshes = stats_get(&m->refreshes);
	out->expirations = stats_get(&m->expirations);
	out->overflows = stats_get(&m->overflows);
	out->refused = stats_get(&g->refused[group]);
	out->held = stats_get(&g->held[group]);
	for (size_t b = 0; b < EGRESS_HOLD_BUCKETS; b++)
		out->hold[b] = stats_get(&g->hold[group][b]);
	out->hold_sum_us = stats_get(&g->hold_sum_us[group]);
}

static void gate_req_done(struct nftset_req *r, int err)
{
	struct egress_gate_req *q = container_of(r, struct egress_gate_req, r);
	struct egress_hold *h = q->h;
	struct egress_gate *g = h->gate;
	char a[INET6_ADDRSTRLEN];

	q->pending = false;
	if (err) {
		if (g->mirror[h->group])
			egress_forget(g->mirror[h->group], q->family, q->addr);
		stats_add(&g->refused[h->group], 1);
		log_ratelimited(&g->rl_refused, LOG_LVL_WARN,
				"egress: group %s: %s not added to its set (%s%s): connections to "
				"it are dropped",
				g->name[h->group], inet_ntop(q->family, q->addr, a, sizeof(a)),
				strerror(-err), err == -ENFILE ? ", the set is full" : "");
		if (!h->err)
			h->err = err;
	}
	if (--h->pending)
		return;
	gate_hold_timed(g, h);
	free(h->reqs);
	h->reqs = NULL;
	h->done(h, h->err);
}

/* What dns_answer_addrs gives, gathered for the hold. */
struct gate_addrs {
	struct egress_gate *g;
	struct egress *mirror;
	uint64_t now;
	struct egress_gate_req *reqs;
	unsigned int n, cap;
	int group;
};

static int gate_addr(void *data, int family, const uint8_t *addr, uint32_t ttl)
{
	struct gate_addrs *ga = data;
	struct egress_gate *g = ga->g;
	uint64_t secs = (uint64_t)ttl + g->grace_s;
	char a[INET6_ADDRSTRLEN];

	if (secs > g->cap_s)
		secs = g->cap_s;
	if (secs == 0) /* 0 would be the set's own timeout: none */
		secs = 1;
	switch (egress_note(ga->mirror, family, addr, ga->now, secs * 1000)) {
	case EGRESS_COVERED:
		return 0;
	case EGRESS_FULL:
		log_ratelimited(&g->rl_full, LOG_LVL_WARN,
				"egress: group %s holds --egress-max addresses: %s not added, "
				"connections to it are dropped",
				g->name[ga->group], inet_ntop(family, addr, a, sizeof(a)));
		return 0;
	default:
		break;
	}
	if (ga->n == ga->cap) {
		unsigned int cap = ga->cap ? 2 * ga->cap : 4;
		struct egress_gate_req *n = realloc(ga->reqs, cap * sizeof(*n));

		if (!n) {
			egress_forget(ga->mirror, family, addr);
			return -ENOMEM;
		}
		ga->reqs = n;
		ga->cap = cap;
	}
	memset(&ga->reqs[ga->n], 0, sizeof(ga->reqs[0]));
	ga->reqs[ga->n].family = family;
	ga->reqs[ga->n].timeout_ms = secs * 1000;
	memcpy(ga->reqs[ga->n].addr, addr, family == AF_INET6 ? 16 : 4);
	ga->n++;
	return 0;
}

int egress_gate_hold(struct egress_gate *g, int group, const uint8_t *ans, size_t len,
		     struct egress_hold *h)
{
	struct gate_addrs ga = {.g = g, .now = loop_now_ms(g->loop), .group = group};
	struct dns_msg m;
	int r;

	if (!egress_gate_polices(g, group))
		return 0;
	ga.mirror = g->mirror[group];
	if (dns_msg_parse(&m, ans, len) < 0)
		return -EBADMSG;
	if (!m.ancount || (m.flags & DNS_RCODE_MASK) != DNS_RCODE_NOERROR)
		return 0;
	r = dns_answer_addrs(ans, &m, gate_addr, &ga);
	if (r < 0) {
		/* what was noted before the failure never went to the kernel */
		for (unsigned int i = 0; i < ga.n; i++)
			egress_forget(ga.mirror, ga.reqs[i].family, ga.reqs[i].addr);
		free(ga.reqs);
		return r;
	}
	if (!ga.n) {
		free(ga.reqs);
		return 0;
	}
	h->gate = g;
	h->group = group;
	h->err = 0;
	h->reqs = ga.reqs;
	h->n = h->pending = ga.n;
	h->start_us = mono_us();
	stats_add(&g->held[group], 1);
	for (unsigned int i = 0; i < ga.n; i++) {
		struct egress_gate_req *q = &ga.reqs[i];

		q->h = h;
		q->pending = true;
		q->r.done = gate_req_done;
		nftset_add(g->ns, &q->r, g->set[group][q->family == AF_INET6], q->family, q->addr,
			   q->timeout_ms);
	}
	return 1;
}

void egress_gate_cancel(struct egress_hold *h)
{
	if (!h->reqs)
		return;
	for (unsigned int i = 0; i < h->n; i++)
		if (h->reqs[i].pending)
			nftset_cancel(h->gate->ns, &h->reqs[i].r);
	free(h->reqs);
	h->reqs = NULL;
	h->pending = 0;
}

/*
 * main.c - dotgw's start-up and shutdown order:
 *   parse options -> per worker: TLS context (reads the CA file), listeners / raw sockets /
 *   queue -> nftables table -> policy routing -> drop privileges -> start the worker threads
 *   -> "ready" -> wait for a signal
 *   SIGINT/SIGTERM -> stop the workers -> remove the table and policy routing (fail open) or
 *   leave them blocking DNS (fail closed) -> close -> "stats:" line.
 * Sockets open before the rules exist and the rules go before the sockets close, so no
 * captured query meets a closed port while dotgw runs. Everything privileged is opened in the
 * main thread, and privileges are dropped before any worker thread exists: capability sets are
 * per thread, and new threads inherit the dropped ones.
 */
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "dotgw/config.h"
#include "dotgw/conntrack.h"
#include "dotgw/dnstap.h"
#include "dotgw/frontend.h"
#include "dotgw/log.h"
#include "dotgw/metrics.h"
#include "dotgw/loop.h"
#include "dotgw/privs.h"
#include "dotgw/queue.h"
#include "dotgw/route.h"
#include "dotgw/ruleset.h"
#include "dotgw/sandbox.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"
#include "dotgw/version.h"

/*
 * A configuration shared by the main thread and the workers' pools; freed by whoever drops
 * the last reference (a pool retired by a reload is freed only once drained, and it points
 * into its configuration).
 */
struct config_ref {
	struct config cfg;
	int refs;
};

static struct config_ref *config_ref_new(void)
{
	struct config_ref *r = calloc(1, sizeof(*r));

	if (r) {
		config_init(&r->cfg);
		r->refs = 1;
	}
	return r;
}

static void config_ref_put(struct config_ref *r)
{
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(r);
}

#define WORKER_RETIRED_MAX 8

/* A pool a reload replaced, waiting for its queries to finish. */
struct retired_pool {
	struct upstream_pool *pool;
	struct config_ref *ref;
};

/* One event loop on its own thread, with its own upstream connections. */
struct worker {
	unsigned int idx;
	pthread_t thread;
	bool started;
	struct loop *loop;
	struct loop_watch stop; /* an eventfd: the main thread asks the worker to stop */
	struct upstream_pool *pool;
	struct frontend *fe;
	struct queue_source *queue;
	struct stats stats;
	struct config_ref *ref; /* what pool and frontend use */
	/* reload: the main thread leaves a new config and pool here and writes the eventfd */
	struct loop_watch reload;
	pthread_mutex_t lock;
	struct config_ref *pending_ref;
	struct upstream_pool *pending_pool;
	struct retired_pool retired[WORKER_RETIRED_MAX];
	size_t nretired;
	struct loop_timer reap;
};

struct daemon {
	struct loop *loop;
	struct loop_watch sig;
	struct worker *workers;
	unsigned int nworkers;
	int exit_signal;
	int argc;
	char **argv;
	struct config_ref *ref; /* the running configuration */
	struct ruleset *rs;
	bool queue_compat;
	bool no_nat; /* the kernel has no NAT: see rules_install */
	bool no_ipv6; /* IPv6 could not be routed to the listeners at start: not captured */
	const char *mode_name;
};

static void daemon_reload(struct daemon *d);
static void resolve_interfaces(struct config *cfg);

static void stats_sum(const struct daemon *d, struct stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned int i = 0; i < d->nworkers; i++) {
		/* read while the workers run (SIGUSR1, metrics): each counter whole, not all of
		 * them at the same instant */
#define STATS_ADD(name) stats_add(&sum->name, stats_get(&d->workers[i].stats.name));
		STATS_FIELDS(STATS_ADD)
#undef STATS_ADD
	}
}

/* Prometheus text exposition; runs on the metrics thread. */
static void metric(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP dotgw_%s %s\n# TYPE dotgw_%s %s\n", name, help, name, type);
}

static void daemon_render(void *data, FILE *out)
{
	struct daemon *d = data;
	struct upstream_snapshot *ups = NULL;
	char names[CONFIG_MAX_UPSTREAMS][sizeof(((struct upstream_config *)0)->text)];
	unsigned long long inflight = 0;
	size_t n = 0;
	struct stats s;

	stats_sum(d, &s);
	/* the workers' current pools; their lock keeps a reload from retiring one meanwhile */
	for (unsigned int w = 0; w < d->nworkers; w++) {
		struct worker *wk = &d->workers[w];

		pthread_mutex_lock(&wk->lock);
		inflight += frontend_inflight(wk->fe);
		if (w == 0) {
			n = upstream_pool_count(wk->pool);
			ups = calloc(n ? n : 1, sizeof(*ups));
			for (size_t i = 0; ups && i < n && i < CONFIG_MAX_UPSTREAMS; i++)
				snprintf(names[i], sizeof(names[i]), "%s",
					 upstream_pool_name(wk->pool, i));
		}
		if (ups && upstream_pool_count(wk->pool) == n)
			for (size_t i = 0; i < n; i++)
				upstream_pool_snapshot(wk->pool, i, &ups[i]);
		pthread_mutex_unlock(&wk->lock);
	}

	metric(out, "queries_total", "counter", "Queries accepted from clients, by transport.");
	fprintf(out, "dotgw_queries_total{mode=\"%s\",protocol=\"udp\"} %llu\n", d->mode_name,
		(unsigned long long)s.queries_udp);
	fprintf(out, "dotgw_queries_total{mode=\"%s\",protocol=\"tcp\"} %llu\n", d->mode_name,
		(unsigned long long)s.queries_tcp);
	metric(out, "queries_by_family_total", "counter", "Queries accepted, by client family.");
	fprintf(out, "dotgw_queries_by_family_total{family=\"ipv4\"} %llu\n",
		(unsigned long long)s.queries_ipv4);
	fprintf(out, "dotgw_queries_by_family_total{family=\"ipv6\"} %llu\n",
		(unsigned long long)s.queries_ipv6);
	metric(out, "responses_total", "counter", "Answers sent to clients, by result.");
#define RESULT(label, field)                                                                   \
	fprintf(out, "dotgw_responses_total{result=\"" label "\"} %llu\n",                      \
		(unsigned long long)s.field)
	RESULT("upstream", answered);
	RESULT("cache", cache_hits);
	RESULT("stale", cache_stale);
	RESULT("servfail", servfail);
	RESULT("formerr", formerr);
	RESULT("notimp", notimp);
	RESULT("policy", policy_denied);
	RESULT("truncated", truncated);
#undef RESULT
	metric(out, "drops_total", "counter", "Packets or queries dropped or refused, by cause.");
#define DROP(label, field)                                                                     \
	fprintf(out, "dotgw_drops_total{cause=\"" label "\"} %llu\n", (unsigned long long)s.field)
	DROP("malformed", malformed);
	DROP("bad_checksum", bad_checksum);
	DROP("rate_limited", rate_limited);
	DROP("overload", overload);
	DROP("client_inflight", client_overload);
	DROP("queue_overflow", queue_enobufs);
	DROP("reply_error", reply_errors);
	DROP("other", dropped);
#undef DROP
	metric(out, "upstream_local_errors_total", "counter",
	       "Upstream connections not opened for want of descriptors or memory here "
	       "(no upstream backed off).");
	fprintf(out, "dotgw_upstream_local_errors_total %llu\n",
		(unsigned long long)s.upstream_local_errors);
	metric(out, "policy_alias_total", "counter",
	       "Answers replaced by a policy answer: their CNAME/DNAME chain led to a denied name.");
	fprintf(out, "dotgw_policy_alias_total %llu\n", (unsigned long long)s.policy_alias);
	metric(out, "cache_lookups_total", "counter", "Cache lookups, by outcome.");
	fprintf(out, "dotgw_cache_lookups_total{outcome=\"hit\"} %llu\n",
		(unsigned long long)s.cache_hits);
	fprintf(out, "dotgw_cache_lookups_total{outcome=\"miss\"} %llu\n",
		(unsigned long long)s.cache_misses);
	metric(out, "inflight", "gauge", "Queries waiting for an upstream now.");
	fprintf(out, "dotgw_inflight %llu\n", inflight);
	metric(out, "upstream_up", "gauge", "1 when the upstream is usable (not backing off).");
	for (size_t i = 0; ups && i < n; i++)
		fprintf(out, "dotgw_upstream_up{upstream=\"%s\"} %d\n", names[i], ups[i].usable);
#define UPCOUNTER(name, field, help)                                                          \
	metric(out, "upstream_" name "_total", "counter", help);                               \
	for (size_t i = 0; ups && i < n; i++)                                                  \
		fprintf(out, "dotgw_upstream_" name "_total{upstream=\"%s\"} %llu\n", names[i], \
			(unsigned long long)ups[i].field)
	UPCOUNTER("handshakes", handshakes, "TLS handshakes completed.");
	UPCOUNTER("resumptions", resumed, "TLS handshakes that resumed a session.");
	UPCOUNTER("failures", failures, "Connections that failed (connect, authentication, I/O).");
	UPCOUNTER("answers", answers, "Answers received.");
#undef UPCOUNTER
	metric(out, "upstream_latency_seconds", "histogram", "Time from sending a query to its answer.");
	for (size_t i = 0; ups && i < n; i++) {
		unsigned long long cum = 0;

		for (size_t b = 0; b < UPSTREAM_RTT_BUCKETS; b++) {
			cum += ups[i].rtt[b];
			if (b < UPSTREAM_RTT_BUCKETS - 1)
				fprintf(out,
					"dotgw_upstream_latency_seconds_bucket{upstream=\"%s\","
					"le=\"%g\"} %llu\n",
					names[i], upstream_rtt_bounds_ms[b] / 1000.0, cum);
			else
				fprintf(out,
					"dotgw_upstream_latency_seconds_bucket{upstream=\"%s\","
					"le=\"+Inf\"} %llu\n",
					names[i], cum);
		}
		fprintf(out, "dotgw_upstream_latency_seconds_sum{upstream=\"%s\"} %.6f\n", names[i],
			ups[i].rtt_sum_us / 1e6);
		fprintf(out, "dotgw_upstream_latency_seconds_count{upstream=\"%s\"} %llu\n",
			names[i], cum);
	}
	free(ups);
}

static void daemon_log_stats(const struct daemon *d)
{
	struct stats sum;
	char buf[1024];

	stats_sum(d, &sum);
	stats_format(&sum, buf, sizeof(buf));
	log_info("stats: %s", buf);
}

static void daemon_signal(struct loop_watch *w, uint32_t revents)
{
	struct daemon *d = container_of(w, struct daemon, sig);
	struct signalfd_siginfo si;

	(void)revents;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			d->exit_signal = (int)si.ssi_signo;
			loop_stop(d->loop);
			break;
		case SIGUSR1:
			/* a snapshot read while the workers run; the lock keeps a reload from
			 * retiring the pool meanwhile */
			for (unsigned int i = 0; i < d->nworkers; i++) {
				pthread_mutex_lock(&d->workers[i].lock);
				upstream_pool_log(d->workers[i].pool);
				pthread_mutex_unlock(&d->workers[i].lock);
			}
			daemon_log_stats(d);
			break;
		case SIGHUP:
			daemon_reload(d);
			break;
		default:
			break;
		}
	}
}

static const char *scope_name(unsigned int scope)
{
	switch (scope) {
	case RULESET_SCOPE_HOST:
		return "host";
	case RULESET_SCOPE_GATEWAY:
		return "gateway";
	default:
		return "both";
	}
}

static int rules_remove(const struct config *cfg, const struct route_config *rc)
{
	int r = ruleset_remove(cfg->table), r2;

	if (r < 0 && r != -ENOENT)
		log_error("removing nftables table inet '%s': %s", cfg->table, strerror(-r));
	r2 = route_remove(rc);
	if (r2 < 0)
		log_error("removing policy routing (fwmark 0x%x, table %u): %s", rc->mark, rc->table,
			  strerror(-r2));
	return r < 0 && r != -ENOENT ? r : r2;
}

static struct ruleset_config ruleset_config_of(const struct config *cfg, bool queue_compat,
					       bool no_nat, bool no_ipv6)
{
	return (struct ruleset_config){
		.no_nat = no_nat,
		.table = cfg->table,
		.mode = cfg->mode == MODE_NFQUEUE ? RULESET_MODE_NFQUEUE : RULESET_MODE_TPROXY,
		.scope = cfg->scope,
		.interfaces = cfg->interfaces,
		.n_interfaces = cfg->n_interfaces,
		.clients = cfg->clients,
		.n_clients = cfg->n_clients,
		.exempt = cfg->exempt,
		.n_exempt = cfg->n_exempt,
		.tproxy_port = cfg->tproxy_port,
		.capture_mark = cfg->capture_mark,
		.bypass_mark = cfg->bypass_mark,
		.queue_num = cfg->queue_num,
		.queue_total = (uint16_t)cfg->queues,
		.queue_compat = queue_compat,
		.capture_local = cfg->capture_local,
		.no_ipv6 = no_ipv6,
		.fail_closed = cfg->fail_closed,
	};
}

/*
 * rules_install - the table, then the policy routing. In gateway scope the table redirects
 * bridged clients (ruleset.c), which needs the kernel's NAT; a kernel without it rejects the
 * batch with ENOENT or EOPNOTSUPP: then install the table without the redirect, say once what
 * that costs, and keep it so (*no_nat) for reloads.
 */
static int rules_install(const struct config *cfg, const struct route_config *rc,
			 bool queue_compat, bool *no_nat, struct ruleset **rs)
{
	struct ruleset_config rsc = ruleset_config_of(cfg, queue_compat, false, rc->no_ipv6);
	int r;

	*no_nat = false;
	r = ruleset_install(rs, &rsc);
	if ((r == -ENOENT || r == -EOPNOTSUPP) && (cfg->scope & RULESET_SCOPE_GATEWAY)) {
		rsc.no_nat = true;
		if (ruleset_install(rs, &rsc) == 0) {
			*no_nat = true;
			log_warn("the kernel has no NAT for nftables (%s): clients behind a Linux "
				 "bridge are not served where br_netfilter runs "
				 "(net.bridge.bridge-nf-call-iptables=1)",
				 strerror(-r));
			r = 0;
		}
	}
	if (r < 0) {
		log_error("installing nftables table inet '%s': %s%s", cfg->table, strerror(-r),
			  r == -EPERM ? " (dotgw needs root, and no other process may own the table)"
				      : "");
		return r;
	}
	r = route_install(rc);
	if (r < 0) {
		log_error("installing policy routing (fwmark 0x%x, table %u): %s", rc->mark,
			  rc->table, strerror(-r));
		ruleset_close(*rs);
		*rs = NULL;
		ruleset_remove(cfg->table);
		return r;
	}
	return 0;
}

/*
 * bridge_flows_restart - the bridge redirect (ruleset.c) acts on a flow's first packet: a DNS
 * flow that began before it was installed (conntrack runs already on a container host) would
 * go on past dotgw, in plaintext, while that entry lives. Delete such entries, so that their
 * next packet is redirected: TCP, and UDP in tproxy mode (nfqueue mode queues bridged UDP).
 */
static void bridge_flows_restart(const struct config *cfg)
{
	int r = conntrack_flush_dns(cfg->mode != MODE_NFQUEUE, 0);

	if (r < 0)
		log_warn("deleting the conntrack entries of DNS flows that began before dotgw: %s: "
			 "such a flow from behind a bridge passes dotgw until its entry expires",
			 strerror(-r));
	else if (r > 0)
		log_info("deleted the conntrack entries of %d DNS flows that began before dotgw "
			 "(their next packets are captured)",
			 r);
}

/*
 * bridge_flows_release - the redirect is gone (fail open, --remove-rules): the flows it took
 * would go on to the listener port, closed, while their entries live. Delete them, so that
 * DNS flows as it did before dotgw.
 */
static void bridge_flows_release(const struct config *cfg)
{
	int r;

	if (!(cfg->scope & RULESET_SCOPE_GATEWAY))
		return;
	r = conntrack_flush_dns(true, cfg->tproxy_port);
	if (r < 0)
		log_warn("deleting the conntrack entries of the DNS flows dotgw redirected: %s: "
			 "such a flow from behind a bridge gets no answer until its entry expires",
			 strerror(-r));
	else if (r > 0)
		log_info("deleted the conntrack entries of %d DNS flows dotgw redirected", r);
}

/* The kernel lacks nft_queue on some machines: fall back to the xtables NFQUEUE target. */
static int queue_compat_probe(bool *compat)
{
	int r = ruleset_probe_queue();

	if (r == 0) {
		*compat = false;
		log_info("NFQUEUE: native nftables queue expression");
		return 0;
	}
	if (r == -ENOENT || r == -EOPNOTSUPP) {
		*compat = true;
		log_info("NFQUEUE: the kernel has no nftables queue expression (%s); using the "
			 "xtables NFQUEUE target through nft_compat",
			 strerror(-r));
		return 0;
	}
	log_error("probing for the nftables queue expression: %s", strerror(-r));
	return r;
}

/*
 * reload_keep - settings a reload cannot change (sockets, queues, marks, tables, the fail
 * policy, the user): keep the running values, and say so when the file asked otherwise.
 */
static void reload_keep(struct config *n, const struct config *o)
{
#define KEEP(field, name)                                                                      \
	do {                                                                                   \
		if (n->field != o->field)                                                      \
			log_warn("reload: %s changed: that needs a restart; keeping the running " \
				 "value",                                                      \
				 name);                                                        \
		n->field = o->field;                                                           \
	} while (0)
	KEEP(mode, "--mode");
	KEEP(queues, "--queues");
	KEEP(queue_num, "--queue-num");
	KEEP(tproxy_port, "--tproxy-port");
	KEEP(capture_mark, "--mark");
	KEEP(bypass_mark, "--bypass-mark");
	KEEP(route_table, "--route-table");
	KEEP(rule_priority, "--rule-priority");
	KEEP(fail_closed, "--fail");
	KEEP(capture_local, "--capture-local");
#undef KEEP
	if (strcmp(n->table, o->table) != 0)
		log_warn("reload: --table changed: that needs a restart; keeping the running value");
	/* a copy: the old configuration is freed once its pools have drained */
	snprintf(n->table_buf, sizeof(n->table_buf), "%s", o->table);
	n->table = n->table_buf;
	if ((n->user == NULL) != (o->user == NULL) || (n->user && strcmp(n->user, o->user)))
		log_warn("reload: --user changed: that needs a restart");
	if (n->log_syslog != o->log_syslog)
		log_warn("reload: --log-target changed: that needs a restart");
	if ((n->dnstap == NULL) != (o->dnstap == NULL) || (n->dnstap && strcmp(n->dnstap, o->dnstap)))
		log_warn("reload: --dnstap changed: that needs a restart");
	if ((n->metrics == NULL) != (o->metrics == NULL) ||
	    (n->metrics && strcmp(n->metrics, o->metrics)))
		log_warn("reload: --metrics changed: that needs a restart");
}

/*
 * daemon_reload - SIGHUP: read the configuration again (file and command line). When it is
 * good: replace the rules in one transaction, give every worker a new upstream pool (queries
 * in flight finish on the old one, freed once drained). When it is not: say why and keep
 * running as before. No moment without rules, no query dropped.
 */
static void daemon_reload(struct daemon *d)
{
	struct config_ref *n = config_ref_new();
	struct upstream_pool **pools = NULL;
	struct ruleset_config rsc;
	char *text = NULL;
	size_t len = 0;
	FILE *err, *out;
	unsigned int i;
	int r;

	if (!n || !d->rs)
		goto out_put;
	sd_notify(0, "RELOADING=1");
	for (i = 0; i < d->nworkers; i++) {
		struct worker *w = &d->workers[i];
		bool busy;

		pthread_mutex_lock(&w->lock);
		busy = w->pending_ref || w->nretired >= WORKER_RETIRED_MAX;
		pthread_mutex_unlock(&w->lock);
		if (busy) {
			log_warn("reload: the previous reload is still draining; try again later");
			goto out_put;
		}
	}
	err = open_memstream(&text, &len);
	out = fopen("/dev/null", "we");
	r = err && out ? config_parse_args(&n->cfg, d->argc, d->argv, out, err) : -ENOMEM;
	if (out)
		fclose(out);
	if (err)
		fclose(err);
	if (r != 0) {
		for (char *line = text, *next; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			log_error("reload: %s", strncmp(line, "dotgw: ", 7) ? line : line + 7);
			if (!next)
				break;
		}
		log_error("reload failed: the running configuration stays");
		goto out_put;
	}
	reload_keep(&n->cfg, &d->ref->cfg);
	log_set_level((enum log_level)n->cfg.log_level);
	n->cfg.cache_worker_size = n->cfg.cache_size / d->nworkers;
	resolve_interfaces(&n->cfg);
	pools = calloc(d->nworkers, sizeof(*pools));
	if (!pools)
		goto out_put;
	for (i = 0; i < d->nworkers; i++) {
		r = upstream_pool_new(&pools[i], d->workers[i].loop, &n->cfg, &d->workers[i].stats);
		if (r < 0) {
			log_error("reload failed (upstreams: %s): the running configuration stays",
				  strerror(-r));
			goto out_free_pools;
		}
	}
	if (d->no_ipv6 && route_ipv6_usable())
		log_warn("reload: IPv6 is enabled on lo now; IPv6 DNS stays uncaptured until dotgw "
			 "restarts");
	rsc = ruleset_config_of(&n->cfg, d->queue_compat, d->no_nat, d->no_ipv6);
	r = ruleset_replace(d->rs, &rsc);
	if (r < 0) {
		log_error("reload failed (nftables: %s): the running configuration stays",
			  strerror(-r));
		goto out_free_pools;
	}
	for (i = 0; i < d->nworkers; i++) {
		struct worker *w = &d->workers[i];
		const uint64_t one = 1;

		__atomic_add_fetch(&n->refs, 1, __ATOMIC_ACQ_REL);
		pthread_mutex_lock(&w->lock);
		w->pending_ref = n;
		w->pending_pool = pools[i];
		pthread_mutex_unlock(&w->lock);
		if (write(w->reload.fd, &one, sizeof(one)) < 0)
			log_error("worker %u: eventfd: %s", i, strerror(errno));
	}
	free(pools);
	free(text);
	config_ref_put(d->ref);
	d->ref = n;
	log_info("reloaded%s%s: %zu upstreams, %zu client groups, rules replaced",
		 n->cfg.config_path[0] ? " " : "", n->cfg.config_path, n->cfg.n_upstreams,
		 n->cfg.groups.n_groups);
	sd_notify(0, "READY=1\nSTATUS=serving (reloaded)");
	return;

out_free_pools:
	for (i = 0; pools && i < d->nworkers; i++)
		upstream_pool_free(pools[i]);
	free(pools);
out_put:
	free(text);
	config_ref_put(n);
	sd_notify(0, "READY=1\nSTATUS=serving (reload refused: see the log)");
}

static int signals_open(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	/* blocked before any thread exists, so that only the signalfd sees them */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void worker_stop_event(struct loop_watch *w, uint32_t revents)
{
	struct worker *wk = container_of(w, struct worker, stop);
	uint64_t v;

	(void)revents;
	if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("worker %u: eventfd: %s", wk->idx, strerror(errno));
	loop_stop(wk->loop);
}

/*
 * resolve_interfaces - say which interfaces client groups name that do not exist now. Groups
 * match interfaces by name as packets arrive (frontend.c), so one made later counts at once.
 */
static void resolve_interfaces(struct config *cfg)
{
	for (size_t g = 0; g < cfg->groups.n_groups; g++) {
		struct policy_group *pg = &cfg->groups.groups[g];

		for (size_t i = 0; i < pg->n_ifs; i++)
			if (!if_nametoindex(pg->ifnames[i]))
				log_warn("--group %s: no interface '%s' now: its clients join the "
					 "group when it appears",
					 pg->name, pg->ifnames[i]);
	}
}

/* worker_reap - free the retired pools that have drained, with their configurations. */
static void worker_reap(struct loop_timer *t)
{
	struct worker *w = container_of(t, struct worker, reap);
	size_t n = 0;

	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->nretired; i++) {
		if (upstream_pool_idle(w->retired[i].pool)) {
			upstream_pool_free(w->retired[i].pool);
			config_ref_put(w->retired[i].ref);
		} else {
			w->retired[n++] = w->retired[i];
		}
	}
	w->nretired = n;
	pthread_mutex_unlock(&w->lock);
	if (n)
		loop_timer_set(w->loop, &w->reap, loop_now_ms(w->loop) + 500);
}

/* worker_reload_event - take up the configuration and pool the main thread left. */
static void worker_reload_event(struct loop_watch *lw, uint32_t revents)
{
	struct worker *w = container_of(lw, struct worker, reload);
	struct upstream_pool *pool, *old;
	struct config_ref *ref;
	uint64_t v;

	(void)revents;
	if (read(lw->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&w->lock);
	ref = w->pending_ref;
	pool = w->pending_pool;
	w->pending_ref = NULL;
	w->pending_pool = NULL;
	if (ref) {
		old = frontend_reload(w->fe, &ref->cfg, pool);
		w->retired[w->nretired].pool = old;
		w->retired[w->nretired].ref = w->ref;
		w->nretired++;
		w->pool = pool;
		w->ref = ref;
	}
	pthread_mutex_unlock(&w->lock);
	if (ref)
		worker_reap(&w->reap);
}

/* worker_open - everything privileged a worker needs, opened in the main thread. */
static int worker_open(struct worker *w, unsigned int idx, struct config_ref *ref)
{
	const struct config *cfg = &ref->cfg;
	unsigned int flags;
	int r;

	w->idx = idx;
	__atomic_add_fetch(&ref->refs, 1, __ATOMIC_ACQ_REL);
	w->ref = ref;
	r = loop_new(&w->loop);
	if (r < 0)
		return r;
	w->stop.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->stop.fd < 0)
		return -errno;
	w->stop.cb = worker_stop_event;
	r = loop_watch_add(w->loop, &w->stop, EPOLLIN);
	if (r < 0)
		return r;
	w->reload.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->reload.fd < 0)
		return -errno;
	w->reload.cb = worker_reload_event;
	r = loop_watch_add(w->loop, &w->reload, EPOLLIN);
	if (r < 0)
		return r;
	loop_timer_init(&w->reap, worker_reap);
	r = upstream_pool_new(&w->pool, w->loop, cfg, &w->stats);
	if (r < 0)
		return r;
	if (cfg->mode == MODE_TPROXY)
		flags = FE_UDP_LISTEN | FE_TCP_LISTEN | (cfg->capture_local ? FE_UDP_RAW_LOCAL : 0);
	else
		flags = FE_UDP_RAW | (idx == 0 ? FE_TCP_LISTEN : 0);
	r = frontend_open(&w->fe, w->loop, cfg, w->pool, &w->stats, flags);
	if (r < 0)
		return r;
	if (cfg->mode == MODE_NFQUEUE)
		r = queue_open(&w->queue, w->loop, (uint16_t)(cfg->queue_num + idx),
			       !cfg->fail_closed, &w->stats, frontend_queue_packet, w->fe);
	return r;
}

static void worker_close(struct worker *w)
{
	queue_close(w->queue);
	frontend_close(w->fe); /* cancels its queries on whatever pool they went to */
	upstream_pool_free(w->pool);
	for (size_t i = 0; i < w->nretired; i++) {
		upstream_pool_free(w->retired[i].pool);
		config_ref_put(w->retired[i].ref);
	}
	upstream_pool_free(w->pending_pool);
	config_ref_put(w->pending_ref);
	config_ref_put(w->ref);
	if (w->stop.fd >= 0)
		close(w->stop.fd);
	if (w->reload.fd >= 0)
		close(w->reload.fd);
	loop_free(w->loop);
	pthread_mutex_destroy(&w->lock);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	int r = loop_run(w->loop);

	if (r < 0)
		log_error("worker %u: event loop: %s", w->idx, strerror(-r));
	return NULL;
}

static void workers_stop(struct daemon *d)
{
	const uint64_t one = 1;

	for (unsigned int i = 0; i < d->nworkers; i++) {
		struct worker *w = &d->workers[i];

		if (!w->started)
			continue;
		if (write(w->stop.fd, &one, sizeof(one)) < 0)
			log_error("worker %u: eventfd: %s", i, strerror(errno));
		pthread_join(w->thread, NULL);
		w->started = false;
	}
}

int main(int argc, char **argv)
{
	struct config_ref *ref = config_ref_new();
	struct config *cfg;
	struct daemon d = { .exit_signal = 0 };
	struct ruleset *rs = NULL;
	struct metrics *metrics = NULL;
	struct dnstap *dnstap = NULL;
	struct route_config rc;
	bool queue_compat = false;
	char who[128], ups[512], mode[64];
	size_t n = 0;
	int r, status = EXIT_FAILURE;

	if (!ref)
		return EXIT_FAILURE;
	cfg = &ref->cfg;
	r = config_parse_args(cfg, argc, argv, stdout, stderr);
	if (r > 0)
		return EXIT_SUCCESS;
	if (r < 0)
		return 2;
	log_set_level((enum log_level)cfg->log_level);
	if (cfg->log_syslog && !cfg->check_config)
		log_use_syslog();
	if (cfg->check_config) {
		if (cfg->ca_file && access(cfg->ca_file, R_OK) < 0) {
			fprintf(stderr, "dotgw: --ca-file '%s': %s\n", cfg->ca_file, strerror(errno));
			return 2;
		}
		printf("dotgw: configuration OK (%s%s)\n",
		       cfg->config_path[0] ? cfg->config_path : "no config file",
		       cfg->config_path[0] ? " and the command line" : ", the command line only");
		return EXIT_SUCCESS;
	}
	rc = (struct route_config){
		.mark = cfg->capture_mark,
		.table = cfg->route_table,
		.priority = cfg->rule_priority,
		.no_ipv6 = !route_ipv6_usable(),
	};
	if (cfg->remove_rules) {
		r = rules_remove(cfg, &rc);
		if (r == 0)
			log_info("removed table inet '%s' and the policy routing of fwmark 0x%x",
				 cfg->table, rc.mark);
		if (r == 0 || r == -ENOENT)
			bridge_flows_release(cfg);
		return r < 0 && r != -ENOENT ? EXIT_FAILURE : EXIT_SUCCESS;
	}

	d.sig.fd = signals_open();
	if (d.sig.fd < 0) {
		log_error("signalfd: %s", strerror(-d.sig.fd));
		return EXIT_FAILURE;
	}
	d.sig.cb = daemon_signal;
	r = loop_new(&d.loop);
	if (r < 0) {
		log_error("epoll: %s", strerror(-r));
		goto out_close_sig;
	}
	if (loop_watch_add(d.loop, &d.sig, EPOLLIN) < 0)
		goto out_free_loop;
	if (cfg->mode == MODE_NFQUEUE && queue_compat_probe(&queue_compat) < 0)
		goto out_free_loop;
	d.nworkers = cfg->mode == MODE_NFQUEUE ? cfg->queues : 1;
	cfg->cache_worker_size = cfg->cache_size / d.nworkers;
	resolve_interfaces(cfg);
	d.workers = calloc(d.nworkers, sizeof(*d.workers));
	if (!d.workers)
		goto out_free_loop;
	for (unsigned int i = 0; i < d.nworkers; i++) {
		/* worker_close must not close fd 0 for a worker that never opened */
		d.workers[i].stop.fd = d.workers[i].reload.fd = -1;
		pthread_mutex_init(&d.workers[i].lock, NULL);
	}
	for (unsigned int i = 0; i < d.nworkers; i++) {
		r = worker_open(&d.workers[i], i, ref);
		if (r < 0) {
			if (r != -EINVAL) /* the modules log their own failures; this is the rest */
				log_error("worker %u: %s", i, strerror(-r));
			goto out_close_workers;
		}
	}
	if (rc.no_ipv6)
		log_warn("IPv6 is disabled here (no IPv6 in the kernel, or "
			 "net.ipv6.conf.lo.disable_ipv6=1, as net.ipv6.conf.all.disable_ipv6=1 "
			 "sets): IPv6 DNS is not captured%s; IPv4 is",
			 cfg->fail_closed ? " and not blocked either (--fail closed covers IPv4)"
					  : "");
	if (rules_install(cfg, &rc, queue_compat, &d.no_nat, &rs) < 0)
		goto out_close_workers;
	d.no_ipv6 = rc.no_ipv6;
	if ((cfg->scope & RULESET_SCOPE_GATEWAY) && !d.no_nat)
		bridge_flows_restart(cfg);
	d.argc = argc;
	d.argv = argv;
	d.ref = ref;
	d.rs = rs;
	d.queue_compat = queue_compat;
	r = privs_drop(cfg->user, who, sizeof(who));
	if (r < 0) {
		log_error("dropping privileges to user '%s': %s", cfg->user ? cfg->user : "dotgw",
			  strerror(-r));
		goto out_remove_rules;
	}
	/* before any thread starts, so that every thread inherits the filter */
#ifdef DOTGW_SANITIZE
	r = sandbox_apply(true);
#else
	r = sandbox_apply(false);
#endif
	/* A kernel without seccomp filters, or valgrind, which does not emulate them: go on. */
	if (r < 0)
		log_warn("seccomp filter not installed (%s): running without it", strerror(-r));
	/* after the drop: fstrm's I/O thread starts with no privileges */
	if (cfg->dnstap) {
		if (dnstap_open(&dnstap, cfg->dnstap, d.nworkers) < 0)
			goto out_remove_rules;
		for (unsigned int i = 0; i < d.nworkers; i++)
			frontend_set_dnstap(d.workers[i].fe, dnstap_queue(dnstap, i));
	}
	for (unsigned int i = 0; i < d.nworkers; i++) {
		r = pthread_create(&d.workers[i].thread, NULL, worker_run, &d.workers[i]);
		if (r != 0) {
			log_error("starting worker %u: %s", i, strerror(r));
			goto out_stop_workers;
		}
		d.workers[i].started = true;
	}
	d.mode_name = cfg->mode == MODE_NFQUEUE ? "nfqueue" : "tproxy";
	if (cfg->metrics &&
	    metrics_start(&metrics, cfg->metrics, cfg->bypass_mark, daemon_render, &d) < 0)
		goto out_stop_workers;
	for (size_t i = 0; i < cfg->n_upstreams && n < sizeof(ups); i++)
		n += (size_t)snprintf(ups + n, sizeof(ups) - n, "%s%s", i ? ", " : "",
				      cfg->upstreams[i].text);
	if (cfg->mode == MODE_NFQUEUE)
		snprintf(mode, sizeof(mode), "nfqueue (queues %u-%u%s)", cfg->queue_num,
			 cfg->queue_num + cfg->queues - 1, queue_compat ? ", xtables target" : "");
	else
		snprintf(mode, sizeof(mode), "tproxy");
	log_info("dotgw %s ready: mode %s, scope %s, fail %s, table inet '%s', TPROXY port %u; "
		 "upstreams %s; running as %s with CAP_NET_ADMIN, CAP_NET_BIND_SERVICE",
		 DOTGW_VERSION, mode, scope_name(cfg->scope), cfg->fail_closed ? "closed" : "open",
		 cfg->table, cfg->tproxy_port, ups, who);

	/* systemd (Type=notify): serving now. Does nothing without NOTIFY_SOCKET. */
	sd_notifyf(0, "READY=1\nSTATUS=serving: mode %s, scope %s, %zu upstreams", mode,
		   scope_name(cfg->scope), cfg->n_upstreams);
	r = loop_run(d.loop);
	sd_notify(0, "STOPPING=1");
	cfg = &d.ref->cfg; /* a reload may have replaced (and freed) the first one */
	if (r < 0)
		log_error("event loop: %s", strerror(-r));
	else
		log_info("signal %d (%s): shutting down", d.exit_signal, strsignal(d.exit_signal));
	status = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

out_stop_workers:
	metrics_stop(metrics);
	workers_stop(&d);
	for (unsigned int i = 0; i < d.nworkers; i++)
		if (d.workers[i].fe)
			frontend_set_dnstap(d.workers[i].fe, NULL);
	dnstap_close(dnstap); /* flushes what the workers queued */
out_remove_rules:
	if (cfg->fail_closed && status == EXIT_SUCCESS) {
		ruleset_close(rs);
		log_warn("fail closed: table inet '%s' stays and blocks captured DNS until dotgw "
			 "runs again or 'dotgw --remove-rules' removes it",
			 cfg->table);
	} else {
		ruleset_close(rs); /* fail open: the kernel deletes the owned table with it */
		if (rules_remove(cfg, &rc) < 0)
			status = EXIT_FAILURE;
		else if (!d.no_nat)
			bridge_flows_release(cfg);
	}
out_close_workers:
	for (unsigned int i = 0; i < d.nworkers; i++) {
		if (d.workers[i].pool && status == EXIT_SUCCESS)
			upstream_pool_log(d.workers[i].pool);
		worker_close(&d.workers[i]);
	}
out_free_loop:
	loop_free(d.loop);
out_close_sig:
	close(d.sig.fd);
	if (d.workers)
		daemon_log_stats(&d);
	free(d.workers);
	/* the running configuration, which a reload may have replaced */
	config_ref_put(d.ref ? d.ref : ref);
	return status;
}

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
 * per thread, and new threads inherit the dropped ones. The workers are worker.c's; this file
 * holds the order, the signals (SIGHUP reloads, SIGUSR1 logs the counters) and the rules.
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "dotgw/cfgwatch.h"
#include "dotgw/config.h"
#include "dotgw/conntrack.h"
#include "dotgw/dataplane.h"
#include "dotgw/dnstap.h"
#include "dotgw/frontend.h"
#include "dotgw/handover.h"
#include "dotgw/health.h"
#include "dotgw/ifkind.h"
#include "dotgw/log.h"
#include "dotgw/metrics.h"
#include "dotgw/notify.h"
#include "dotgw/loop.h"
#include "dotgw/privs.h"
#include "dotgw/queue.h"
#include "dotgw/route.h"
#include "dotgw/ruleset.h"
#include "dotgw/sandbox.h"
#include "dotgw/snapshot.h"
#include "dotgw/unreachable.h"
#include "dotgw/version.h"
#include "dotgw/worker.h"
#include "dotgw/egress_rules.h"
#include "dotgw/nftset.h"

struct daemon {
	struct loop *loop;
	struct loop_watch sig;
	struct workers *ws;
	int exit_signal;
	int argc;
	char **argv;
	struct config_ref *ref; /* the running configuration */
	struct ruleset *rs;
	bool queue_compat;
	bool no_nat;  /* the kernel has no NAT: see rules_install */
	bool no_ipv6; /* IPv6 could not be routed to the listeners at start: not captured */
	const char *mode_name;
	struct nftset_link *egress_link; /* the egress table's socket (NULL: none) */
	char egress_table[72];		 /* its name, for the metrics thread */
	struct health health;		 /* /healthz, /readyz: written by the beat below */
	struct loop_timer beat;		 /* the main loop's heartbeat (health.h) */
	bool handed_over;		 /* a newer run took over: its rules are left alone */
	struct dataplane *dp;		 /* --dataplane-check's findings (dataplane.h) */
	struct loop_timer dp_timer;	 /* its next check */
	struct cfgwatch *watch;		 /* --watch-config (NULL: off) */
};

static int daemon_reload(struct daemon *d);
static int reload_parse(const struct daemon *d, struct config *cfg);
static void log_forwards(const struct config *cfg);
static void resolve_interfaces(struct config *cfg);
static void check_exempt_interfaces(const struct config *cfg);

/* config_has_egress - does a client group of cfg have --egress? */
static bool config_has_egress(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->groups.n_groups; i++)
		if (cfg->groups.groups[i].egress)
			return true;
	return false;
}

/*
 * egress_apply - make the egress table what cfg's groups say, through link: keeping what
 * exists (keep: a reload, or a fail-closed start adopting what the last run left), or afresh.
 * 0 or -errno, logged.
 */
static int egress_apply(struct nftset_link *link, const struct config *cfg, bool keep)
{
	struct egress_rules_config ec = {
		.table = cfg->egress_table,
		.scope = cfg->scope,
		.fail_closed = cfg->fail_closed,
		.fresh = !keep,
		.bypass_mark = cfg->bypass_mark,
		.max = cfg->egress_max,
		.n_groups = cfg->groups.n_groups,
	};
	int r;

	for (size_t i = 0; i < cfg->groups.n_groups; i++) {
		const struct policy_group *g = &cfg->groups.groups[i];

		ec.groups[i] = (struct egress_rules_group){
			.egress = g->egress,
			.clients = g->cidrs,
			.n_clients = g->n_cidrs,
			.ifnames = (const char(*)[16])g->ifnames,
			.n_ifnames = g->n_ifs,
			.allow = g->egress_allow,
			.n_allow = g->n_egress_allow,
		};
	}
	r = egress_rules_apply(nftset_link_lock(link), &ec);
	nftset_link_unlock(link);
	if (r < 0)
		log_error("nftables table inet '%s' (--egress): %s", cfg->egress_table,
			  strerror(-r));
	return r;
}

/* daemon_render - GET /metrics; runs on the metrics thread. */
static void daemon_render(void *data, FILE *out)
{
	struct daemon *d = data;
	struct stats_snapshot *s = malloc(sizeof(*s));

	if (!s)
		return;
	workers_snapshot(d->ws, s);
	s->mode = d->mode_name;
	for (size_t i = 0; i < s->n_egress && d->egress_link; i++) {
		uint64_t v;

		if (egress_rules_counter(nftset_link_lock(d->egress_link), d->egress_table,
					 (size_t)s->egress[i].index, &v) == 0)
			s->egress[i].dropped = v;
		nftset_link_unlock(d->egress_link);
	}
	snapshot_render(s, out);
	unreachable_render(&unreachable_process, out);
	dataplane_render(d->dp, out);
	free(s);
}

/*
 * daemon_beat - once a second: the main loop is alive, and the totals /readyz judges by:
 * answers sent from an upstream, and SERVFAILs (deadline passed, or no usable upstream).
 */
static void daemon_beat(struct loop_timer *t)
{
	struct daemon *d = container_of(t, struct daemon, beat);
	struct stats_snapshot *s = malloc(sizeof(*s));

	if (s) {
		workers_snapshot(d->ws, s);
		health_sample(&d->health, health_now_ms(), s->sum.answered, s->sum.servfail);
		free(s);
	}
	loop_timer_set(d->loop, &d->beat, loop_now_ms(d->loop) + HEALTH_BEAT_MS);
}

/*
 * daemon_dataplane - --dataplane-check: look for BPF data planes now and again in SECONDS (at
 * start, from the timer, after a reload); with 0, forget what was found.
 */
static void daemon_dataplane(struct loop_timer *t)
{
	struct daemon *d = container_of(t, struct daemon, dp_timer);
	uint64_t every_ms = d->ref->cfg.dataplane_check * 1000ULL;

	loop_timer_cancel(d->loop, t);
	if (!every_ms) {
		dataplane_off(d->dp);
		return;
	}
	dataplane_check(d->dp);
	loop_timer_set(d->loop, t, loop_now_ms(d->loop) + every_ms);
}

/* daemon_health_start - the rules are in and the workers run: beat from now on. */
static void daemon_health_start(struct daemon *d)
{
	struct stats_snapshot *s = calloc(1, sizeof(*s));

	if (s)
		workers_snapshot(d->ws, s);
	health_init(&d->health, health_now_ms(), s ? s->sum.answered : 0, s ? s->sum.servfail : 0);
	free(s);
	health_set_rules(&d->health, true);
	loop_timer_init(&d->beat, daemon_beat);
	loop_timer_set(d->loop, &d->beat, loop_now_ms(d->loop) + HEALTH_BEAT_MS);
}

/*
 * health_mode - `dotgw --health URL` (or --health=URL), alone: probe and exit; -1 when the
 * command line is not that mode.
 */
static int health_mode(int argc, char **argv)
{
	if (argc < 2 || strncmp(argv[1], "--health", 8) != 0 ||
	    (argv[1][8] != '\0' && argv[1][8] != '='))
		return -1;
	if (argv[1][8] == '=' && argc == 2)
		return health_probe(argv[1] + 9, stderr);
	if (argv[1][8] == '\0' && argc == 3)
		return health_probe(argv[2], stderr);
	fprintf(stderr, "dotgw: --health URL: a mode of its own, with no other option\n");
	return 2;
}

static void daemon_log_stats(const struct daemon *d)
{
	struct stats_snapshot *s = malloc(sizeof(*s));

	if (!s)
		return;
	workers_snapshot(d->ws, s);
	s->mode = d->mode_name;
	snapshot_log(s);
	free(s);
	workers_log(d->ws);
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
			daemon_log_stats(d);
			break;
		case SIGHUP:
			(void)daemon_reload(d);
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
	/* the --egress table, when a run made one. Fail open: the egress socket owns it, and it
	 * goes with that socket, which may still be open here (EPERM: not ours to delete) */
	r2 = ruleset_remove(cfg->egress_table);
	if (r2 < 0 && r2 != -ENOENT && !(r2 == -EPERM && !cfg->fail_closed))
		log_error("removing nftables table inet '%s': %s", cfg->egress_table,
			  strerror(-r2));
	r2 = route_remove(rc);
	if (r2 < 0)
		log_error("removing policy routing (fwmark 0x%x, table %u): %s", rc->mark,
			  rc->table, strerror(-r2));
	return r < 0 && r != -ENOENT ? r : r2;
}

static struct ruleset_config ruleset_config_of(const struct config *cfg, bool queue_compat,
					       bool no_nat, bool no_ipv6)
{
	return (struct ruleset_config){
		.no_nat = no_nat,
		.table = cfg->table,
		.comment = handover_comment(),
		.mode = cfg->mode == MODE_NFQUEUE ? RULESET_MODE_NFQUEUE : RULESET_MODE_TPROXY,
		.scope = cfg->scope,
		.interfaces = cfg->interfaces,
		.n_interfaces = cfg->n_interfaces,
		.clients = cfg->clients,
		.n_clients = cfg->n_clients,
		.exempt = cfg->exempt,
		.n_exempt = cfg->n_exempt,
		.exempt_ifaces = cfg->exempt_ifaces,
		.n_exempt_ifaces = cfg->n_exempt_ifaces,
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
static int rules_install(const struct config *cfg, const struct route_config *rc, bool queue_compat,
			 bool *no_nat, struct ruleset **rs)
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
			  r == -EPERM
				  ? " (dotgw needs root, and no other process may own the table)"
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
#define KEEP(field, name)                                                                         \
	do {                                                                                      \
		if (n->field != o->field)                                                         \
			log_warn("reload: %s changed: that needs a restart; keeping the running " \
				 "value",                                                         \
				 name);                                                           \
		n->field = o->field;                                                              \
	} while (0)
	KEEP(mode, "--mode");
	KEEP(queues, "--queues");
	KEEP(workers, "--workers");
	KEEP(queue_num, "--queue-num");
	KEEP(tproxy_port, "--tproxy-port");
	KEEP(capture_mark, "--mark");
	KEEP(bypass_mark, "--bypass-mark");
	KEEP(route_table, "--route-table");
	KEEP(rule_priority, "--rule-priority");
	KEEP(fail_closed, "--fail");
	KEEP(capture_local, "--capture-local");
	KEEP(watch_config, "--watch-config");
#undef KEEP
	if (strcmp(n->table, o->table) != 0)
		log_warn(
			"reload: --table changed: that needs a restart; keeping the running value");
	/* a copy: the old configuration is freed once its pools have drained */
	snprintf(n->table_buf, sizeof(n->table_buf), "%s", o->table);
	n->table = n->table_buf;
	if ((n->user == NULL) != (o->user == NULL) || (n->user && strcmp(n->user, o->user)))
		log_warn("reload: --user changed: that needs a restart");
	if (n->log_syslog != o->log_syslog)
		log_warn("reload: --log-target changed: that needs a restart");
	if ((n->dnstap == NULL) != (o->dnstap == NULL) ||
	    (n->dnstap && strcmp(n->dnstap, o->dnstap)))
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
static int daemon_reload(struct daemon *d)
{
	struct config_ref *n = config_ref_new();
	struct upstream_pool **pools = NULL;
	struct ruleset_config rsc;
	int r, ret = 0;

	if (!n || !d->rs)
		goto out_put;
	notify_send("RELOADING=1");
	if (workers_reload_busy(d->ws)) {
		log_warn("reload: the previous reload is still draining; try again later");
		ret = -EAGAIN;
		goto out_put;
	}
	if (reload_parse(d, &n->cfg) != 0) {
		log_error("reload failed: the running configuration stays");
		goto out_put;
	}
	handover_apply(&n->cfg); /* this run's slot: its table name and queues */
	reload_keep(&n->cfg, &d->ref->cfg);
	log_set_level((enum log_level)n->cfg.log_level);
	n->cfg.cache_worker_size = n->cfg.cache_size / workers_count(d->ws);
	resolve_interfaces(&n->cfg);
	check_exempt_interfaces(&n->cfg);
	r = workers_reload_pools(d->ws, &n->cfg, &pools);
	if (r < 0) {
		log_error("reload failed (upstreams: %s): the running configuration stays",
			  strerror(-r));
		goto out_put;
	}
	if (d->no_ipv6 && route_ipv6_usable())
		log_warn("reload: IPv6 is enabled on lo now; IPv6 DNS stays uncaptured until dotgw "
			 "restarts");
	if (d->egress_link && (config_has_egress(&n->cfg) || config_has_egress(&d->ref->cfg)) &&
	    egress_apply(d->egress_link, &n->cfg, true) < 0) {
		log_error("reload failed (--egress): the running configuration stays");
		workers_reload_abort(d->ws, pools);
		goto out_put;
	}
	rsc = ruleset_config_of(&n->cfg, d->queue_compat, d->no_nat, d->no_ipv6);
	r = ruleset_replace(d->rs, &rsc);
	if (r < 0) {
		log_error("reload failed (nftables: %s): the running configuration stays",
			  strerror(-r));
		workers_reload_abort(d->ws, pools);
		goto out_put;
	}
	workers_reload_commit(d->ws, n, pools);
	config_ref_put(d->ref);
	d->ref = n;
	log_forwards(&n->cfg);
	daemon_dataplane(&d->dp_timer);
	log_info("reloaded%s%s: %zu upstreams, %zu client groups, rules replaced",
		 n->cfg.config_path[0] ? " " : "", n->cfg.config_path, n->cfg.n_upstreams,
		 n->cfg.groups.n_groups);
	notify_send("READY=1\nSTATUS=serving (reloaded)");
	return 0;

out_put:
	config_ref_put(n);
	notify_send("READY=1\nSTATUS=serving (reload refused: see the log)");
	return ret;
}

/* daemon_watch_reload - --watch-config saw the file change: as SIGHUP (cfgwatch.h). */
static int daemon_watch_reload(void *data)
{
	return daemon_reload(data);
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

/* reload_parse - the options again, into cfg; 0, or not (each error line logged). */
static int reload_parse(const struct daemon *d, struct config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *err, *out;
	int r;

	err = open_memstream(&text, &len);
	out = fopen("/dev/null", "we");
	r = err && out ? config_parse_args(cfg, d->argc, d->argv, out, err) : -ENOMEM;
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
	}
	free(text);
	return r;
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

struct exempt_check {
	const struct config *cfg;
	bool seen[CONFIG_MAX_INTERFACES];
};

static void exempt_check_link(const char *name, const char *kind, unsigned short type, void *data)
{
	struct exempt_check *c = data;

	for (size_t i = 0; i < c->cfg->n_exempt_ifaces; i++) {
		const char *p = c->cfg->exempt_ifaces[i];

		if (!ruleset_ifpattern_match(p, name))
			continue;
		c->seen[i] = true;
		if (!ifkind_is_tunnel(kind, type))
			log_warn("--exempt-interface '%s': interface '%s' (kind %s, link type %u) "
				 "is not a tunnel: DNS routed through it is not captured and "
				 "leaves in plaintext",
				 p, name, *kind ? kind : "none", type);
	}
}

/*
 * check_exempt_interfaces - warn about each existing interface that --exempt-interface takes in
 * and that is not a tunnel (an "eth*" given by mistake exempts plaintext DNS). It is obeyed all
 * the same: the rules match by name, now and for interfaces made later.
 */
static void check_exempt_interfaces(const struct config *cfg)
{
	struct exempt_check c = {.cfg = cfg};
	int r;

	if (!cfg->n_exempt_ifaces)
		return;
	r = ifkind_foreach(exempt_check_link, &c);
	if (r < 0) {
		log_warn("--exempt-interface: cannot list the interfaces to check their kind: %s",
			 strerror(-r));
		return;
	}
	for (size_t i = 0; i < cfg->n_exempt_ifaces; i++)
		if (!c.seen[i])
			log_info("--exempt-interface '%s': no such interface now; DNS routed "
				 "through one made later is not captured",
				 cfg->exempt_ifaces[i]);
}

/* check_config - --check-config: what only the running daemon would find, then say so. */
static int check_config(const struct config *cfg)
{
	if (cfg->ca_file && access(cfg->ca_file, R_OK) < 0) {
		fprintf(stderr, "dotgw: --ca-file '%s': %s\n", cfg->ca_file, strerror(errno));
		return 2;
	}
	check_exempt_interfaces(cfg);
	printf("dotgw: configuration OK (%s%s)\n",
	       cfg->config_path[0] ? cfg->config_path : "no config file",
	       cfg->config_path[0] ? " and the command line" : ", the command line only");
	return EXIT_SUCCESS;
}

/* remove_rules - --remove-rules: the table and policy routing a run left; an exit status. */
static int remove_rules(const struct config *cfg, const struct route_config *rc)
{
	int r = rules_remove(cfg, rc);

	if (r == 0)
		log_info("removed table inet '%s' and the policy routing of fwmark 0x%x",
			 cfg->table, rc->mark);
	if (r == 0 || r == -ENOENT)
		bridge_flows_release(cfg);
	return r < 0 && r != -ENOENT ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* show_egress - --show-egress NAME: what the group may reach now; an exit status. */
static int show_egress(const struct config *cfg)
{
	struct nftset_link *link;
	size_t i;
	int r;

	for (i = 0; i < cfg->groups.n_groups; i++)
		if (!strcmp(cfg->groups.groups[i].name, cfg->show_egress))
			break;
	if (i == cfg->groups.n_groups || !cfg->groups.groups[i].egress) {
		fprintf(stderr,
			"dotgw: --show-egress: no --egress group '%s' in the configuration\n",
			cfg->show_egress);
		return 2;
	}
	r = nftset_link_new(&link);
	if (r == 0) {
		r = egress_rules_show(nftset_link_lock(link), cfg->egress_table, i, stdout);
		nftset_link_unlock(link);
		nftset_link_free(link);
	}
	if (r < 0) {
		fprintf(stderr, "dotgw: --show-egress: table inet '%s': %s%s\n", cfg->egress_table,
			strerror(-r),
			r == -ENOENT ? " (is dotgw running with this configuration?)" : "");
		return EXIT_FAILURE;
	}
	fprintf(stderr, "%d addresses\n", r);
	return EXIT_SUCCESS;
}

/* daemon_loop_open - the main thread's loop, watching the signals; 0 or -errno (logged). */
static int daemon_loop_open(struct daemon *d)
{
	int r;

	d->sig.fd = signals_open();
	if (d->sig.fd < 0) {
		log_error("signalfd: %s", strerror(-d->sig.fd));
		return d->sig.fd;
	}
	d->sig.cb = daemon_signal;
	r = loop_new(&d->loop);
	if (r < 0) {
		log_error("epoll: %s", strerror(-r));
		goto out_close_sig;
	}
	r = loop_watch_add(d->loop, &d->sig, EPOLLIN);
	if (r < 0)
		goto out_free_loop;
	return 0;

out_free_loop:
	loop_free(d->loop);
	d->loop = NULL;
out_close_sig:
	close(d->sig.fd);
	d->sig.fd = -1;
	return r;
}

static void daemon_loop_close(struct daemon *d)
{
	cfgwatch_close(d->watch);
	loop_free(d->loop);
	if (d->sig.fd >= 0)
		close(d->sig.fd);
}

/*
 * privileges_drop - become the unprivileged user, then install the seccomp filter: before
 * any thread starts, so that every thread inherits both. 0 or -errno (logged).
 */
static int privileges_drop(const struct config *cfg, char *who, size_t len)
{
	int r = privs_drop(cfg->user, who, len);

	if (r < 0) {
		log_error("dropping privileges to user '%s': %s", cfg->user ? cfg->user : "dotgw",
			  strerror(-r));
		return r;
	}
#ifdef DOTGW_SANITIZE
	r = sandbox_apply(true);
#else
	r = sandbox_apply(false);
#endif
	/* A kernel without seccomp filters, or valgrind, which does not emulate them: go on. */
	if (r < 0)
		log_warn("seccomp filter not installed (%s): running without it", strerror(-r));
	return 0;
}

/* log_forwards - each --forward rule once; unencrypted ones as a warning. */
static void log_forwards(const struct config *cfg)
{
	const struct forward_table *ft = &cfg->forwards;
	char name[DNS_MAX_NAME * 4 + 1];

	for (size_t i = 0; i < ft->n_rules; i++) {
		const struct forward_rule *r = &ft->rules[i];
		const struct forward_target *t = &ft->targets[r->target];

		if (dns_name_to_text(r->name, r->name_len, name, sizeof(name)) < 0)
			strcpy(name, "?");
		if (t->kind == FORWARD_PLAIN)
			log_warn("--forward %s%s%s: to %s UNENCRYPTED (plain DNS, no TLS)",
				 r->group, r->group[0] ? ":" : "", name, t->text + 6);
		else
			log_info("--forward %s%s%s: to %s", r->group, r->group[0] ? ":" : "", name,
				 t->kind == FORWARD_ASKED ? "the address the client asked"
							  : t->text);
	}
	if (!cfg->local_zones)
		log_info("--no-local-zones: locally served zones are forwarded like other names");
	if (cfg->unreachable_plain)
		log_warn(
			"--unreachable plaintext: once queries have failed and no upstream has "
			"answered for %u s, captured queries go UNENCRYPTED to the address asked%s",
			cfg->unreachable_after,
			(cfg->scope & RULESET_SCOPE_GATEWAY)
				? " (gateway scope: every client's; meant for a laptop's own DNS)"
				: "");
}

/* log_ready - say what runs, to the log and to systemd (Type=notify). */
static void log_ready(const struct config *cfg, bool queue_compat, const char *who)
{
	char ups[512], mode[64], each[64] = "";
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_upstreams && n < sizeof(ups); i++)
		n += (size_t)snprintf(ups + n, sizeof(ups) - n, "%s%s", i ? ", " : "",
				      cfg->upstreams[i].text);
	if (cfg->upstream_asked && n < sizeof(ups))
		snprintf(ups + n, sizeof(ups) - n,
			 " (and asked: verified DDR, these the fallback)");
	log_forwards(cfg);
	if (cfg->mode == MODE_NFQUEUE)
		snprintf(mode, sizeof(mode), "nfqueue (queues %u-%u%s)", cfg->queue_num,
			 cfg->queue_num + cfg->queues - 1, queue_compat ? ", xtables target" : "");
	else
		snprintf(mode, sizeof(mode), "tproxy");
	if (cfg->pool_floor) /* the default: a budget the workers share (config.h) */
		snprintf(each, sizeof(each), " shared by the workers, at least %u each",
			 cfg->pool_floor);
	else if (cfg->workers > 1)
		snprintf(each, sizeof(each), " each");
	log_info("dotgw %s ready: mode %s, scope %s, fail %s, table inet '%s', TPROXY port %u, "
		 "%u worker%s, up to %u TLS connection%s per upstream%s; upstreams %s; running as "
		 "%s with CAP_NET_ADMIN, CAP_NET_BIND_SERVICE",
		 DOTGW_VERSION, mode, scope_name(cfg->scope), cfg->fail_closed ? "closed" : "open",
		 cfg->table, cfg->tproxy_port, cfg->workers, cfg->workers == 1 ? "" : "s",
		 cfg->pool_size, cfg->pool_size == 1 ? "" : "s", each, ups, who);
	/* systemd (Type=notify): serving now. Does nothing without NOTIFY_SOCKET. */
	notify_send("READY=1\nSTATUS=serving: mode %s, scope %s, %zu upstreams", mode,
		    scope_name(cfg->scope), cfg->n_upstreams);
}

/*
 * rules_leave - at exit: after a clean stop with --fail closed the table stays and blocks
 * DNS; otherwise it goes, with the policy routing. Returns status, or EXIT_FAILURE.
 */
static int rules_leave(const struct config *cfg, const struct route_config *rc, struct ruleset *rs,
		       bool no_nat, int status)
{
	ruleset_close(rs); /* fail open: the kernel deletes the owned table with it */
	if (cfg->fail_closed && status == EXIT_SUCCESS) {
		log_warn("fail closed: table inet '%s' stays and blocks captured DNS until dotgw "
			 "runs again or 'dotgw --remove-rules' removes it",
			 cfg->table);
		return status;
	}
	if (rules_remove(cfg, rc) < 0)
		return EXIT_FAILURE;
	if (!no_nat)
		bridge_flows_release(cfg);
	return status;
}

/*
 * handover_leave - SIGTERM while a newer run captures (handover.h): the listeners leave their
 * groups, our own table goes (fail open; fail closed: the newer run replaced it), the queries
 * in flight finish, and the shared policy routing stays for the newer run.
 */
static void handover_leave(struct daemon *d)
{
	unsigned long long left;

	log_info("a newer dotgw captures now: handing over");
	d->handed_over = true;
	workers_leave(d->ws);
	ruleset_close(d->rs); /* fail open: the kernel deletes our owned table with it */
	left = handover_drain(d->ws);
	if (left)
		log_warn("handover: %llu queries still in flight after %d ms are dropped", left,
			 HANDOVER_DRAIN_MS);
}

int main(int argc, char **argv)
{
	struct config_ref *ref = config_ref_new();
	struct daemon d = {.argc = argc, .argv = argv, .sig.fd = -1};
	struct metrics *metrics = NULL;
	struct dnstap *dnstap = NULL;
	struct route_config rc;
	struct config *cfg;
	char who[128];
	int r, status = EXIT_FAILURE;

	r = health_mode(argc, argv);
	if (r >= 0) {
		config_ref_put(ref);
		return r;
	}
	if (!ref)
		return EXIT_FAILURE;
	cfg = &ref->cfg;
	r = config_parse_args(cfg, argc, argv, stdout, stderr);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : 2;
	log_set_level((enum log_level)cfg->log_level);
	if (cfg->log_syslog && !cfg->check_config)
		log_use_syslog();
	if (cfg->check_config)
		return check_config(cfg);
	rc = (struct route_config){
		.mark = cfg->capture_mark,
		.table = cfg->route_table,
		.priority = cfg->rule_priority,
		.no_ipv6 = !route_ipv6_usable(),
	};
	if (cfg->remove_rules)
		return remove_rules(cfg, &rc);
	if (cfg->show_egress[0])
		return show_egress(cfg);

	d.ref = ref;
	d.no_ipv6 = rc.no_ipv6;
	d.mode_name = cfg->mode == MODE_NFQUEUE ? "nfqueue" : "tproxy";
	if (daemon_loop_open(&d) < 0)
		goto out_put;
	if (cfg->mode == MODE_NFQUEUE && queue_compat_probe(&d.queue_compat) < 0)
		goto out_close_loop;
	if (workers_new(&d.ws, cfg->workers) < 0)
		goto out_close_loop;
	cfg->cache_worker_size = cfg->cache_size / workers_count(d.ws);
	resolve_interfaces(cfg);
	check_exempt_interfaces(cfg);
	if (handover_prepare(cfg) < 0) /* before the queues open: a slot's numbers */
		goto out_close_workers;
	if (workers_open(d.ws, ref) < 0)
		goto out_close_workers;
	if (rc.no_ipv6)
		log_warn("IPv6 is disabled here (no IPv6 in the kernel, or "
			 "net.ipv6.conf.lo.disable_ipv6=1, as net.ipv6.conf.all.disable_ipv6=1 "
			 "sets): IPv6 DNS is not captured%s; IPv4 is",
			 cfg->fail_closed ? " and not blocked either (--fail closed covers IPv4)"
					  : "");
	if (rules_install(cfg, &rc, d.queue_compat, &d.no_nat, &d.rs) < 0)
		goto out_close_workers;
	if ((cfg->scope & RULESET_SCOPE_GATEWAY) && !d.no_nat)
		bridge_flows_restart(cfg);
	/* --egress (now, or after a reload): the sets' socket, shared by the workers */
	snprintf(d.egress_table, sizeof(d.egress_table), "%s", cfg->egress_table);
	r = nftset_link_new(&d.egress_link);
	if (r < 0 && config_has_egress(cfg)) {
		log_error("netfilter netlink socket for --egress: %s", strerror(-r));
		goto out_remove_rules;
	}
	if (config_has_egress(cfg) && egress_apply(d.egress_link, cfg, cfg->fail_closed) < 0)
		goto out_remove_rules;
	if (d.egress_link)
		workers_set_egress(d.ws, d.egress_link);
	if (cfg->metrics && metrics_load() < 0) /* code is loaded before the sandbox */
		goto out_remove_rules;
	/* the watch is made while the directory can surely be opened: before the drop */
	if (cfg->watch_config) {
		r = cfgwatch_open(&d.watch, d.loop, cfg->config_path, daemon_watch_reload, &d);
		if (r < 0) {
			log_error("--watch-config '%s': %s", cfg->config_path, strerror(-r));
			goto out_remove_rules;
		}
		log_info("--watch-config: a change of '%s' reloads it", cfg->config_path);
	}
	if (privileges_drop(cfg, who, sizeof(who)) < 0)
		goto out_remove_rules;
	/* after the drop: fstrm's I/O thread starts with no privileges */
	if (cfg->dnstap) {
		if (dnstap_open(&dnstap, cfg->dnstap, workers_count(d.ws)) < 0)
			goto out_remove_rules;
		workers_set_dnstap(d.ws, dnstap);
	}
	if (workers_start(d.ws) < 0)
		goto out_stop_workers;
	if (dataplane_new(&d.dp) < 0)
		goto out_stop_workers;
	if (cfg->metrics) /* the beat serves only /healthz and /readyz */
		daemon_health_start(&d);
	if (cfg->metrics && metrics_start(&metrics, cfg->metrics, cfg->bypass_mark, daemon_render,
					  &d, &d.health) < 0)
		goto out_stop_workers;
	log_ready(cfg, d.queue_compat, who);
	loop_timer_init(&d.dp_timer, daemon_dataplane);
	daemon_dataplane(&d.dp_timer);

	r = loop_run(d.loop);
	notify_send("STOPPING=1");
	health_set_rules(&d.health, false); /* /readyz: 503 from now on */
	cfg = &d.ref->cfg; /* a reload may have replaced (and freed) the first one */
	if (r < 0)
		log_error("event loop: %s", strerror(-r));
	else
		log_info("signal %d (%s): shutting down", d.exit_signal, strsignal(d.exit_signal));
	status = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	if (r >= 0 && handover_await(cfg->handover_wait)) {
		handover_leave(&d); /* a newer run captures: leave it everything, rules too */
		d.rs = NULL;
	}

out_stop_workers:
	metrics_stop(metrics);
	workers_stop(d.ws);
	workers_set_dnstap(d.ws, NULL);
	dnstap_close(dnstap); /* flushes what the workers queued */
out_remove_rules:
	if (!d.handed_over)
		status = rules_leave(cfg, &rc, d.rs, d.no_nat, status);
	nftset_link_free(d.egress_link); /* fail open: the egress table goes with it */
out_close_workers:
	/* the workers are stopped (or never started): their pools can be read, then closed */
	if (d.ws)
		daemon_log_stats(&d);
	workers_close(d.ws);
	workers_free(d.ws);
out_close_loop:
	daemon_loop_close(&d);
	dataplane_free(d.dp); /* after metrics_stop: the metrics thread renders it */
out_put:
	config_ref_put(d.ref); /* the running configuration, which a reload may have replaced */
	return status;
}

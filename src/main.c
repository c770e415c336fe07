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
#include <unistd.h>

#include "dotgw/config.h"
#include "dotgw/frontend.h"
#include "dotgw/log.h"
#include "dotgw/loop.h"
#include "dotgw/privs.h"
#include "dotgw/queue.h"
#include "dotgw/route.h"
#include "dotgw/ruleset.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"
#include "dotgw/version.h"

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
};

struct daemon {
	struct loop *loop;
	struct loop_watch sig;
	struct worker *workers;
	unsigned int nworkers;
	int exit_signal;
};

static void stats_sum(const struct daemon *d, struct stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned int i = 0; i < d->nworkers; i++) {
		/* read while the workers run (SIGUSR1): a snapshot, not an atomic one */
#define STATS_ADD(name) sum->name += d->workers[i].stats.name;
		STATS_FIELDS(STATS_ADD)
#undef STATS_ADD
	}
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
			/* a snapshot read while the workers run */
			for (unsigned int i = 0; i < d->nworkers; i++)
				upstream_pool_log(d->workers[i].pool);
			daemon_log_stats(d);
			break;
		case SIGHUP:
			log_warn("SIGHUP: reloading is not supported yet; restart dotgw to change "
				 "its settings");
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

static int rules_install(const struct config *cfg, const struct route_config *rc,
			 bool queue_compat, struct ruleset **rs)
{
	struct ruleset_config rsc = {
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
		.fail_closed = cfg->fail_closed,
	};
	int r;

	r = ruleset_install(rs, &rsc);
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
 * warn_bridge_netfilter - with br_netfilter on (net.bridge.bridge-nf-call-iptables=1, the
 * default where the module is loaded, as on Docker hosts), the IP hooks of bridged frames run
 * inside the bridge, and the socket TPROXY assigns there is lost before local delivery: queries
 * from clients behind a bridge of this machine then go unanswered. Say so, once, at start.
 */
static void warn_bridge_netfilter(const struct config *cfg)
{
	char path[128], v = '0';
	bool bridge = false;
	FILE *f;

	if (!(cfg->scope & RULESET_SCOPE_GATEWAY))
		return;
	f = fopen("/proc/sys/net/bridge/bridge-nf-call-iptables", "re");
	if (!f)
		return;
	if (fread(&v, 1, 1, f) != 1)
		v = '0';
	fclose(f);
	if (v != '1')
		return;
	for (size_t i = 0; i < cfg->n_interfaces && !bridge; i++) {
		snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", cfg->interfaces[i]);
		bridge = access(path, F_OK) == 0;
	}
	if (cfg->n_interfaces && !bridge)
		return;
	log_warn("net.bridge.bridge-nf-call-iptables is 1: TPROXY cannot capture %sDNS from "
		 "clients behind a Linux bridge of this machine (br_netfilter loses the socket). "
		 "Set it (and bridge-nf-call-ip6tables) to 0 if nothing here needs bridge "
		 "filtering%s",
		 cfg->mode == MODE_NFQUEUE ? "TCP " : "",
		 cfg->mode == MODE_NFQUEUE ? "" : ", or use --mode nfqueue for UDP");
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

/* worker_open - everything privileged a worker needs, opened in the main thread. */
static int worker_open(struct worker *w, unsigned int idx, const struct config *cfg)
{
	unsigned int flags;
	int r;

	w->idx = idx;
	w->stop.fd = -1;
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
	r = upstream_pool_new(&w->pool, w->loop, cfg, &w->stats);
	if (r < 0)
		return r;
	if (cfg->mode == MODE_TPROXY)
		flags = FE_UDP_LISTEN | FE_TCP_LISTEN;
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
	frontend_close(w->fe);
	upstream_pool_free(w->pool);
	if (w->stop.fd >= 0)
		close(w->stop.fd);
	loop_free(w->loop);
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
	static struct config cfg;
	struct daemon d = { .exit_signal = 0 };
	struct ruleset *rs = NULL;
	struct route_config rc;
	bool queue_compat = false;
	char who[128], ups[512], mode[64];
	size_t n = 0;
	int r, status = EXIT_FAILURE;

	config_init(&cfg);
	r = config_parse_args(&cfg, argc, argv, stdout, stderr);
	if (r > 0)
		return EXIT_SUCCESS;
	if (r < 0)
		return 2;
	log_set_level((enum log_level)cfg.log_level);
	if (cfg.check_config) {
		if (cfg.ca_file && access(cfg.ca_file, R_OK) < 0) {
			fprintf(stderr, "dotgw: --ca-file '%s': %s\n", cfg.ca_file, strerror(errno));
			return 2;
		}
		printf("dotgw: configuration OK (%s%s)\n",
		       cfg.config_path[0] ? cfg.config_path : "no config file",
		       cfg.config_path[0] ? " and the command line" : ", the command line only");
		return EXIT_SUCCESS;
	}
	rc = (struct route_config){
		.mark = cfg.capture_mark,
		.table = cfg.route_table,
		.priority = cfg.rule_priority,
	};
	if (cfg.remove_rules) {
		r = rules_remove(&cfg, &rc);
		if (r == 0)
			log_info("removed table inet '%s' and the policy routing of fwmark 0x%x",
				 cfg.table, rc.mark);
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
	if (cfg.mode == MODE_NFQUEUE && queue_compat_probe(&queue_compat) < 0)
		goto out_free_loop;
	d.nworkers = cfg.mode == MODE_NFQUEUE ? cfg.queues : 1;
	cfg.cache_worker_size = cfg.cache_size / d.nworkers;
	for (size_t g = 0; g < cfg.groups.n_groups; g++) {
		struct policy_group *pg = &cfg.groups.groups[g];

		for (size_t i = 0; i < pg->n_ifs; i++) {
			pg->ifindexes[i] = if_nametoindex(pg->ifnames[i]);
			if (!pg->ifindexes[i])
				log_warn("--group %s: no interface '%s' (yet): it holds no clients",
					 pg->name, pg->ifnames[i]);
		}
	}
	d.workers = calloc(d.nworkers, sizeof(*d.workers));
	if (!d.workers)
		goto out_free_loop;
	for (unsigned int i = 0; i < d.nworkers; i++) {
		r = worker_open(&d.workers[i], i, &cfg);
		if (r < 0) {
			if (r != -EINVAL) /* the modules log their own failures; this is the rest */
				log_error("worker %u: %s", i, strerror(-r));
			goto out_close_workers;
		}
	}
	if (rules_install(&cfg, &rc, queue_compat, &rs) < 0)
		goto out_close_workers;
	warn_bridge_netfilter(&cfg);
	r = privs_drop(cfg.user, who, sizeof(who));
	if (r < 0) {
		log_error("dropping privileges to user '%s': %s", cfg.user ? cfg.user : "dotgw",
			  strerror(-r));
		goto out_remove_rules;
	}
	for (unsigned int i = 0; i < d.nworkers; i++) {
		r = pthread_create(&d.workers[i].thread, NULL, worker_run, &d.workers[i]);
		if (r != 0) {
			log_error("starting worker %u: %s", i, strerror(r));
			goto out_stop_workers;
		}
		d.workers[i].started = true;
	}
	for (size_t i = 0; i < cfg.n_upstreams && n < sizeof(ups); i++)
		n += (size_t)snprintf(ups + n, sizeof(ups) - n, "%s%s", i ? ", " : "",
				      cfg.upstreams[i].text);
	if (cfg.mode == MODE_NFQUEUE)
		snprintf(mode, sizeof(mode), "nfqueue (queues %u-%u%s)", cfg.queue_num,
			 cfg.queue_num + cfg.queues - 1, queue_compat ? ", xtables target" : "");
	else
		snprintf(mode, sizeof(mode), "tproxy");
	log_info("dotgw %s ready: mode %s, scope %s, fail %s, table inet '%s', TPROXY port %u; "
		 "upstreams %s; running as %s with CAP_NET_ADMIN, CAP_NET_BIND_SERVICE",
		 DOTGW_VERSION, mode, scope_name(cfg.scope), cfg.fail_closed ? "closed" : "open",
		 cfg.table, cfg.tproxy_port, ups, who);

	r = loop_run(d.loop);
	if (r < 0)
		log_error("event loop: %s", strerror(-r));
	else
		log_info("signal %d (%s): shutting down", d.exit_signal, strsignal(d.exit_signal));
	status = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

out_stop_workers:
	workers_stop(&d);
out_remove_rules:
	if (cfg.fail_closed && status == EXIT_SUCCESS) {
		ruleset_close(rs);
		log_warn("fail closed: table inet '%s' stays and blocks captured DNS until dotgw "
			 "runs again or 'dotgw --remove-rules' removes it",
			 cfg.table);
	} else {
		ruleset_close(rs); /* fail open: the kernel deletes the owned table with it */
		if (rules_remove(&cfg, &rc) < 0)
			status = EXIT_FAILURE;
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
	return status;
}

/*
 * main.c - dotgw's start-up and shutdown order:
 *   parse options -> TLS context (reads the CA file) -> listeners -> nftables table ->
 *   policy routing -> drop privileges -> "ready" -> event loop
 *   SIGINT/SIGTERM -> remove the table and the policy routing -> close -> "stats:" line.
 * Listeners open before the rules exist, and the rules go before the listeners close, so no
 * captured query ever meets a closed port while dotgw runs.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "dotgw/config.h"
#include "dotgw/frontend.h"
#include "dotgw/log.h"
#include "dotgw/loop.h"
#include "dotgw/privs.h"
#include "dotgw/route.h"
#include "dotgw/ruleset.h"
#include "dotgw/stats.h"
#include "dotgw/upstream.h"
#include "dotgw/version.h"

struct daemon {
	struct loop_watch sig;
	struct loop *loop;
	struct stats stats;
	int exit_signal;
};

static void daemon_log_stats(const struct stats *stats)
{
	char buf[1024];

	stats_format(stats, buf, sizeof(buf));
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
			daemon_log_stats(&d->stats);
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

static int rules_remove(const struct config *cfg, const struct route_config *rc, bool quiet)
{
	int r = ruleset_remove(cfg->table), r2;

	if (r < 0 && !(r == -ENOENT && quiet))
		log_error("removing nftables table inet '%s': %s", cfg->table, strerror(-r));
	r2 = route_remove(rc);
	if (r2 < 0)
		log_error("removing policy routing (fwmark 0x%x, table %u): %s", rc->mark, rc->table,
			  strerror(-r2));
	return r < 0 && r != -ENOENT ? r : r2;
}

static int rules_install(const struct config *cfg, const struct route_config *rc)
{
	struct ruleset_config rs = {
		.table = cfg->table,
		.scope = cfg->scope,
		.interfaces = cfg->interfaces,
		.n_interfaces = cfg->n_interfaces,
		.tproxy_port = cfg->tproxy_port,
		.capture_mark = cfg->capture_mark,
		.bypass_mark = cfg->bypass_mark,
	};
	int r;

	r = ruleset_install(&rs);
	if (r < 0) {
		log_error("installing nftables table inet '%s': %s%s", cfg->table, strerror(-r),
			  r == -EPERM ? " (dotgw needs root)" : "");
		return r;
	}
	r = route_install(rc);
	if (r < 0) {
		log_error("installing policy routing (fwmark 0x%x, table %u): %s", rc->mark,
			  rc->table, strerror(-r));
		ruleset_remove(cfg->table);
		return r;
	}
	return 0;
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
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int main(int argc, char **argv)
{
	static struct config cfg;
	struct daemon d = { .exit_signal = 0 };
	struct upstream_pool *pool = NULL;
	struct frontend *fe = NULL;
	struct route_config rc;
	char who[128], ups[512];
	size_t n = 0;
	int r, status = EXIT_FAILURE;

	config_init(&cfg);
	r = config_parse_args(&cfg, argc, argv, stdout, stderr);
	if (r > 0)
		return EXIT_SUCCESS;
	if (r < 0)
		return 2;
	log_set_level((enum log_level)cfg.log_level);
	rc = (struct route_config){
		.mark = cfg.capture_mark,
		.table = cfg.route_table,
		.priority = cfg.rule_priority,
	};
	if (cfg.remove_rules) {
		r = rules_remove(&cfg, &rc, false);
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
	r = upstream_pool_new(&pool, d.loop, &cfg, &d.stats);
	if (r < 0)
		goto out_free_loop;
	r = frontend_open(&fe, d.loop, &cfg, pool, &d.stats);
	if (r < 0)
		goto out_free_pool;
	if (rules_install(&cfg, &rc) < 0)
		goto out_close_frontend;
	r = privs_drop(cfg.user, who, sizeof(who));
	if (r < 0) {
		log_error("dropping privileges to user '%s': %s", cfg.user ? cfg.user : "dotgw",
			  strerror(-r));
		goto out_remove_rules;
	}
	for (size_t i = 0; i < cfg.n_upstreams && n < sizeof(ups); i++)
		n += (size_t)snprintf(ups + n, sizeof(ups) - n, "%s%s", i ? ", " : "",
				      cfg.upstreams[i].text);
	log_info("dotgw %s ready: mode tproxy, scope %s, table inet '%s', listening on port %u; "
		 "upstreams %s; running as %s with CAP_NET_ADMIN, CAP_NET_BIND_SERVICE",
		 DOTGW_VERSION, scope_name(cfg.scope), cfg.table, cfg.tproxy_port, ups, who);

	r = loop_run(d.loop);
	if (r < 0)
		log_error("event loop: %s", strerror(-r));
	else
		log_info("signal %d (%s): shutting down", d.exit_signal, strsignal(d.exit_signal));
	status = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

out_remove_rules:
	if (rules_remove(&cfg, &rc, false) < 0)
		status = EXIT_FAILURE;
out_close_frontend:
	frontend_close(fe);
out_free_pool:
	upstream_pool_free(pool);
out_free_loop:
	loop_free(d.loop);
out_close_sig:
	close(d.sig.fd);
	daemon_log_stats(&d.stats);
	return status;
}

/* test_config.c - command-line parsing: upstream specs, defaults, and errors that name the option.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dotgw/config.h"
#include "dotgw/ruleset.h"

static struct config cfg;
static char errbuf[4096];

/* parse - run config_parse_args on a NULL-terminated list; stderr text lands in errbuf. */
static int parse(const char *const *args)
{
	char *argv[32];
	int argc = 0, r;
	FILE *err = fmemopen(errbuf, sizeof(errbuf), "w");
	FILE *out = fopen("/dev/null", "w");

	argv[argc++] = (char *)"dotgw";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	config_init(&cfg);
	memset(errbuf, 0, sizeof(errbuf));
	r = config_parse_args(&cfg, argc, argv, out, err);
	fclose(err);
	fclose(out);
	return r;
}

static void test_upstream_specs(void)
{
	struct upstream_config u;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&u.addr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&u.addr;
	char ip[INET6_ADDRSTRLEN];

	CHECK_EQ(config_parse_upstream(&u, "203.0.113.2#dot.test"), 0);
	CHECK_EQ(u.addr.ss_family, AF_INET);
	CHECK_EQ(ntohs(sin->sin_port), 853);
	CHECK(strcmp(u.auth_name, "dot.test") == 0);
	CHECK(strcmp(u.text, "203.0.113.2@853#dot.test") == 0);

	CHECK_EQ(config_parse_upstream(&u, "198.51.100.7@8853"), 0);
	CHECK_EQ(ntohs(sin->sin_port), 8853);
	CHECK(u.auth_name[0] == '\0');

	CHECK_EQ(config_parse_upstream(&u, "2001:db8::1#dns.example"), 0);
	CHECK_EQ(u.addr.ss_family, AF_INET6);
	CHECK_EQ(ntohs(sin6->sin6_port), 853);
	inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
	CHECK(strcmp(ip, "2001:db8::1") == 0);
	CHECK(strcmp(u.text, "[2001:db8::1]@853#dns.example") == 0);

	CHECK_EQ(config_parse_upstream(&u, "[2001:db8::2]@8853#a.b"), 0);
	CHECK_EQ(ntohs(sin6->sin6_port), 8853);
	CHECK_EQ(config_parse_upstream(&u, "[2001:db8::2]:853"), 0);
	CHECK_EQ(config_parse_upstream(&u, "2001:db8::2@5353"), 0);
	CHECK_EQ(ntohs(sin6->sin6_port), 5353);

	/* refused: bad address, port, name, brackets */
	const char *bad[] = {"",
			     "999.1.1.1",
			     "1.2.3.4@0",
			     "1.2.3.4@65536",
			     "1.2.3.4@",
			     "1.2.3.4@x",
			     "1.2.3.4#",
			     "1.2.3.4#bad name",
			     "1.2.3.4#a..b",
			     "[2001:db8::1",
			     "[2001:db8::1]x",
			     "dns.example",
			     "1.2.3.4@-5",
			     "1.2.3.4@ 53"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&u, 0x5a, sizeof(u));
		CHECK_EQ(config_parse_upstream(&u, bad[i]), -22);
		CHECK_EQ(((const unsigned char *)&u)[0], 0x5a); /* untouched on error */
	}
}

static void test_defaults(void)
{
	const char *args[] = {NULL};

	CHECK_EQ(parse(args), 0);
	CHECK_EQ(cfg.n_upstreams, 3);
	CHECK(strcmp(cfg.upstreams[0].text, "1.1.1.1@853#cloudflare-dns.com") == 0);
	CHECK(strcmp(cfg.upstreams[1].text, "1.0.0.1@853#cloudflare-dns.com") == 0);
	CHECK(strcmp(cfg.upstreams[2].text, "9.9.9.9@853#dns.quad9.net") == 0);
	CHECK_EQ(cfg.scope, RULESET_SCOPE_HOST);
	CHECK(strcmp(cfg.table, "dotgw") == 0);
	CHECK_EQ(cfg.tproxy_port, 10053);
	CHECK_EQ(cfg.udp_size_cap, 1232);
	CHECK(cfg.ca_file == NULL);
	CHECK(cfg.user == NULL);
	CHECK(!cfg.nonrec_pass);
	/* 1 MiB of answers, bucket array and malloc chunks counted (cache.c) */
	CHECK_EQ(cfg.cache_size, 1u << 20);
}

/* --upstream asked: alone, the defaults are the fallback; with upstreams, those are. */
static void test_upstream_asked(void)
{
	const char *alone[] = {"--config", "none", "--upstream", "asked", NULL};
	const char *with[] = {"--config",    "none",	   "--upstream",
			      "asked",	     "--upstream", "192.0.2.1#dot.test",
			      "--asked-max", "8",	   NULL};
	const char *none[] = {"--config", "none", NULL};

	CHECK_EQ(parse(alone), 0);
	CHECK(cfg.upstream_asked);
	CHECK_EQ(cfg.n_upstreams, 3);
	CHECK_EQ(cfg.asked_max, 64);
	CHECK_EQ(cfg.upstreams[0].also_ip_len, 0);
	CHECK_EQ(parse(with), 0);
	CHECK(cfg.upstream_asked);
	CHECK_EQ(cfg.n_upstreams, 1);
	CHECK_EQ(cfg.asked_max, 8);
	CHECK_EQ(parse(none), 0);
	CHECK(!cfg.upstream_asked);
}

static void test_options(void)
{
	const char *args[] = {"--scope",
			      "both",
			      "--interface",
			      "eth1",
			      "--interface",
			      "eth2",
			      "--upstream",
			      "192.0.2.9#x.test",
			      "--table",
			      "dgw2",
			      "--tproxy-port",
			      "5300",
			      "--mark",
			      "0x10",
			      "--timeout",
			      "1500",
			      "--log-level",
			      "debug",
			      NULL};

	CHECK_EQ(parse(args), 0);
	CHECK_EQ(cfg.scope, RULESET_SCOPE_HOST | RULESET_SCOPE_GATEWAY);
	CHECK_EQ(cfg.n_interfaces, 2);
	CHECK(strcmp(cfg.interfaces[1], "eth2") == 0);
	CHECK_EQ(cfg.n_upstreams, 1); /* no defaults added when one is given */
	CHECK(strcmp(cfg.table, "dgw2") == 0);
	CHECK_EQ(cfg.tproxy_port, 5300);
	CHECK_EQ(cfg.capture_mark, 0x10);
	CHECK_EQ(cfg.timeout_ms, 1500);
	CHECK_EQ(cfg.log_level, 3);

	const char *tunnels[] = {"--exempt-interface", "wg*", "--exempt-interface", "tun0", NULL};

	CHECK_EQ(parse(tunnels), 0);
	CHECK_EQ(cfg.n_exempt_ifaces, 2);
	CHECK(strcmp(cfg.exempt_ifaces[0], "wg*") == 0);
	CHECK(strcmp(cfg.exempt_ifaces[1], "tun0") == 0);

	const char *pass[] = {"--mode", "nfqueue", "--non-recursive", "pass", NULL};

	CHECK_EQ(parse(pass), 0);
	CHECK(cfg.nonrec_pass);
}

/* Each bad command line fails, and the message names the option or the value. */
static void test_errors(void)
{
	static const struct {
		const char *args[4];
		const char *named;
	} cases[] = {
		{{"--scope", "nowhere"}, "--scope"},
		{{"--upstream", "999.1.1.1"}, "'999.1.1.1'"},
		{{"--bogus"}, "'--bogus'"},
		{{"--mode", "magic"}, "--mode"},
		{{"--timeout", "5s"}, "--timeout"},
		{{"--timeout", "10"}, "--timeout"},
		{{"--tproxy-port", "53"}, "--tproxy-port"},
		{{"--tproxy-port", "70000"}, "--tproxy-port"},
		{{"--table", "bad name"}, "--table"},
		{{"--route-table", "254"}, "--route-table"},
		{{"--mark", "0"}, "--mark"},
		{{"--log-level", "loud"}, "--log-level"},
		{{"--interface", "eth0"}, "--interface"}, /* needs gateway scope */
		{{"--interface", "a-name-far-too-long", "--scope", "gateway"}, "--interface"},
		{{"--mark", "0xd08"}, "--bypass-mark"},
		{{"--non-recursive", "maybe"}, "--non-recursive"},
		{{"--non-recursive", "pass"}, "--mode nfqueue"}, /* tproxy cannot let go */
		/* gateway scope on every interface would be an open resolver */
		{{"--scope", "gateway"}, "--interface"},
		{{"--scope", "both"}, "--client"},
		{{"stray"}, "'stray'"},
		{{"--upstream"}, "'--upstream'"},
		{{"--max-inflight-per-client", "0"}, "--max-inflight-per-client"},
		{{"--hold-timeout", "99"}, "--hold-timeout"},
		{{"--hold-timeout", "600001"}, "--hold-timeout"},
		{{"--exempt-interface", "t*n"}, "--exempt-interface: invalid value 't*n'"},
		{{"--exempt-interface", "*"}, "--exempt-interface: invalid value '*'"},
		{{"--exempt-interface", "a-name-far-too-long"}, "'a-name-far-too-long'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i].args);

		CHECK_EQ(r, -22);
		if (!strstr(errbuf, cases[i].named)) {
			fprintf(stderr, "case %zu: message '%s' does not name %s\n", i, errbuf,
				cases[i].named);
			CHECK(0);
		}
	}
}

static void test_help_version(void)
{
	const char *h[] = {"--help", NULL}, *v[] = {"-V", NULL};

	CHECK_EQ(parse(h), 1);
	CHECK_EQ(parse(v), 1);
}

/* write_conf - a temporary config file with text; its path in path. */
static void write_conf(char *path, const char *text)
{
	int fd;
	FILE *f;

	strcpy(path, "/tmp/dotgw-test-conf-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

static void test_config_file(void)
{
	char path[64], arg[80];
	const char *args[8] = {"--config", path, NULL};

	write_conf(path, "# comment\n; another\nscope = both\ninterface = lan0\ntimeout=1500\n"
			 "capture-local = yes\n"
			 "upstream = 203.0.113.2#dot.test\n"
			 "pin = 3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
			 "upstream = 203.0.113.3@8853\nno-padding = yes\nfail = closed\n"
			 "group = kids=192.0.2.0/24,@br0\ndeny = kids:example.com=refused\n");
	CHECK_EQ(parse(args), 0);
	CHECK(strcmp(cfg.config_path, path) == 0);
	CHECK_EQ(cfg.scope, RULESET_SCOPE_HOST | RULESET_SCOPE_GATEWAY);
	CHECK_EQ(cfg.timeout_ms, 1500);
	CHECK(cfg.capture_local);
	CHECK_EQ(cfg.n_upstreams, 2);
	CHECK_EQ(cfg.upstreams[0].n_pins, 1);
	CHECK(!cfg.padding);
	CHECK(cfg.fail_closed);
	CHECK_EQ(cfg.groups.n_groups, 1);

	/* the command line overrides: a scalar, and the upstream list (with its pins) */
	const char *over[] = {"--config",   path,	    "--timeout", "900",
			      "--upstream", "198.51.100.9", NULL};
	CHECK_EQ(parse(over), 0);
	CHECK_EQ(cfg.timeout_ms, 900);
	CHECK_EQ(cfg.n_upstreams, 1);
	CHECK_EQ(cfg.upstreams[0].n_pins, 0);
	CHECK_EQ(cfg.groups.n_groups, 1); /* not given on the command line: the file's */
	CHECK(cfg.prefetch);		  /* the default */
	/* "no" undoes a flag that is on by default; the command line still wins */
	unlink(path);
	write_conf(path, "prefetch = no\n");
	CHECK_EQ(parse(args), 0);
	CHECK(!cfg.prefetch);
	const char *pf_on[] = {"--config", path, "--prefetch", NULL};
	CHECK_EQ(parse(pf_on), 0);
	CHECK(cfg.prefetch);
	unlink(path);
	write_conf(path, "no-prefetch = yes\n");
	CHECK_EQ(parse(args), 0);
	CHECK(!cfg.prefetch);
	/* --config none reads nothing */
	const char *none[] = {"--config", "none", NULL};
	CHECK_EQ(parse(none), 0);
	CHECK(cfg.config_path[0] == '\0');
	unlink(path);

	/* bad files: each message names the file, the line and the key */
	static const struct {
		const char *text;
		const char *expect;
	} bad[] = {
		{"scope = both\nbogus = 1\n", ":2: bogus: unknown key"},
		{"upstream = 999.1.1.1\n", ":1: upstream: invalid value '999.1.1.1'"},
		{"\n\ntimeout = soon\n", ":3: timeout: invalid value 'soon'"},
		{"[dotgw]\nscope = host\n", ":2: sections are not used"},
		{"no-padding = maybe\n", ":1: no-padding: expected yes or no"},
		{"scope = host\njust words\n", ":2: not a 'key = value' line"},
		{"config = /etc/other.conf\n", ":1: config: unknown key"},
		{"help = yes\n", ":1: help: unknown key"},
		{"remove-rules = yes\n", ":1: remove-rules: unknown key"},
		{"pin = 3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", ":1: pin: give it after"},
		{"deny = nogroup:example.com\n", ":1: deny 'nogroup:example.com': no --group"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf(path, bad[i].text);
		CHECK_EQ(parse(args), -22);
		snprintf(arg, sizeof(arg), "%s%s", path, bad[i].expect);
		if (!strstr(errbuf, arg)) {
			fprintf(stderr, "bad file %zu: '%s' does not contain '%s'\n", i, errbuf,
				arg);
			CHECK(0);
		}
		unlink(path);
	}
	const char *missing[] = {"--config", "/nonexistent/dotgw.conf", NULL};
	CHECK_EQ(parse(missing), -22);
	CHECK(strstr(errbuf, "--config '/nonexistent/dotgw.conf'") != NULL);
}

/* A sample value for each option the file can hold, with what it needs before it. */
static const struct {
	const char *name, *value, *before, *before_value;
} samples[] = {
	{"mode", "nfqueue", NULL, NULL},
	{"fail", "closed", NULL, NULL},
	{"non-recursive", "pass", "mode", "nfqueue"},
	{"queues", "3", NULL, NULL},
	{"workers", "3", NULL, NULL},
	{"queue-num", "7", NULL, NULL},
	{"handover-wait", "10", NULL, NULL},
	{"dataplane-check", "0", NULL, NULL},
	{"scope", "both", "client", "192.0.2.0/24"},
	{"interface", "lan0", "scope", "gateway"},
	{"client", "2001:db8::/32", "scope", "gateway"},
	{"capture-local", NULL, NULL, NULL},
	{"exempt", "198.51.100.1", NULL, NULL},
	{"exempt-interface", "wg*", NULL, NULL},
	{"table", "dgw2", NULL, NULL},
	{"tproxy-port", "5300", NULL, NULL},
	{"mark", "0x10", NULL, NULL},
	{"bypass-mark", "0x11", NULL, NULL},
	{"route-table", "900", NULL, NULL},
	{"rule-priority", "900", NULL, NULL},
	{"upstream", "[2001:db8::2]@8853#dot.test", NULL, NULL},
	{"pin", "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "upstream", "203.0.113.2"},
	{"doh-fallback", "no", "upstream", "203.0.113.2"},
	{"doh-reprobe", "5", NULL, NULL},
	{"ca-file", "/etc/ssl/ca.pem", NULL, NULL},
	{"tls-auth", "opportunistic", NULL, NULL},
	{"upstream-policy", "round-robin", NULL, NULL},
	{"pool-size", "5", NULL, NULL},
	{"asked-max", "8", NULL, NULL},
	{"conn-inflight", "64", NULL, NULL},
	{"idle-timeout", "2000", NULL, NULL},
	{"stall-timeout", "700", NULL, NULL},
	{"no-padding", NULL, NULL, NULL},
	{"standby", "30", NULL, NULL},
	{"tcp-fastopen", NULL, NULL, NULL},
	{"timeout", "1500", NULL, NULL},
	{"unreachable", "plaintext", NULL, NULL},
	{"unreachable-after", "30", NULL, NULL},
	{"cache-size", "512k", NULL, NULL},
	{"cache-max-ttl", "600", NULL, NULL},
	{"serve-stale", "3600", NULL, NULL},
	{"prefetch", NULL, NULL, NULL},
	{"no-prefetch", NULL, NULL, NULL},
	{"group", "kids=192.0.2.0/24,@br0", NULL, NULL},
	{"deny", "kids:example.com=192.0.2.53", "group", "kids=192.0.2.0/24"},
	{"allow", "kids:example.org", "group", "kids=192.0.2.0/24"},
	{"group-upstreams", "kids=2", "group", "kids=192.0.2.0/24"},
	{"egress", "kids", "group", "kids=192.0.2.0/24"},
	{"egress-allow", "kids:203.0.113.0/28", "group", "kids=192.0.2.0/24"},
	{"egress-grace", "60", NULL, NULL},
	{"egress-max", "1000", NULL, NULL},
	{"forward", "kids:corp.example=plain:10.8.0.1@5353", "group", "kids=192.0.2.0/24"},
	{"no-local-zones", NULL, NULL, NULL},
	{"rate-limit", "50", NULL, NULL},
	{"rate-burst", "70", NULL, NULL},
	{"rate-limit-prefix4", "24", NULL, NULL},
	{"rate-limit-prefix6", "48", NULL, NULL},
	{"rate-limit-action", "drop", NULL, NULL},
	{"udp-size-cap", "4096", NULL, NULL},
	{"tcp-idle-timeout", "5000", NULL, NULL},
	{"max-tcp-clients", "10", NULL, NULL},
	{"max-inflight", "100", NULL, NULL},
	{"max-inflight-per-client", "9", NULL, NULL},
	{"hold-timeout", "5000", NULL, NULL},
	{"user", "daemon", NULL, NULL},
	{"log-level", "debug", NULL, NULL},
	{"log-target", "syslog", NULL, NULL},
	{"query-log", NULL, NULL, NULL},
	{"watch-config", NULL, NULL, NULL},
	{"dnstap", "/run/dnstap.sock", NULL, NULL},
	{"metrics", "[::1]:9153", NULL, NULL},
};

/* normalise - what differs between two parses of the same settings: where strings point. */
static void normalise(struct config *c)
{
	c->ca_file = c->ca_file ? "set" : NULL;
	c->user = c->user ? "set" : NULL;
	c->table = "set";
	c->dnstap = c->dnstap ? "set" : NULL;
	c->metrics = c->metrics ? "set" : NULL;
	for (size_t i = 0; i < c->n_interfaces; i++)
		c->interfaces[i] = "set";
	for (size_t i = 0; i < c->n_exempt_ifaces; i++)
		c->exempt_ifaces[i] = "set";
	memset(c->config_path, 0, sizeof(c->config_path));
}

/*
 * Every row of the option table has help text, and a file key unless it is one of the options
 * of the command line alone (cli_only); every option with a key reads the same
 * from the file as from the command line.
 */
static void test_option_table(void)
{
	static const char *const cli_only[] = {"config",      "check-config", "help",
					       "version",     "show-egress",  "health",
					       "remove-rules"};
	static struct config from_file;
	char path[64], text[512];
	size_t n = 0;

	for (const struct config_option *o = config_options; o->name; o++, n++) {
		bool cli = false;

		for (size_t i = 0; i < sizeof(cli_only) / sizeof(cli_only[0]); i++)
			cli |= strcmp(o->name, cli_only[i]) == 0;
		CHECK(o->help && o->help[0]);
		CHECK(cli ? o->key == NULL : o->key && strcmp(o->key, o->name) == 0);
		if (cli)
			continue;
		size_t s;

		for (s = 0; s < sizeof(samples) / sizeof(samples[0]); s++)
			if (strcmp(samples[s].name, o->name) == 0)
				break;
		if (s == sizeof(samples) / sizeof(samples[0])) {
			fprintf(stderr, "--%s: no sample value in test_option_table\n", o->name);
			CHECK(0);
			continue;
		}
		/* the file */
		snprintf(text, sizeof(text), "%s%s%s%s%s = %s\n",
			 samples[s].before ? samples[s].before : "", samples[s].before ? " = " : "",
			 samples[s].before ? samples[s].before_value : "",
			 samples[s].before ? "\n" : "", o->key,
			 samples[s].value ? samples[s].value : "yes");
		write_conf(path, text);
		const char *fargs[] = {"--config", path, NULL};

		CHECK_EQ(parse(fargs), 0);
		unlink(path);
		if (errbuf[0])
			fprintf(stderr, "--%s in a file: %s", o->name, errbuf);
		from_file = cfg;
		/* the command line */
		char before[64], opt[64];
		const char *cargs[8] = {"--config", "none"};
		bool watch = strcmp(o->name, "watch-config") == 0;
		int k = 2;

		if (watch) { /* it needs a file: an empty one */
			write_conf(path, "");
			cargs[1] = path;
		}

		if (samples[s].before) {
			snprintf(before, sizeof(before), "--%s", samples[s].before);
			cargs[k++] = before;
			cargs[k++] = samples[s].before_value;
		}
		snprintf(opt, sizeof(opt), "--%s", o->name);
		cargs[k++] = opt;
		if (samples[s].value)
			cargs[k++] = samples[s].value;
		cargs[k] = NULL;
		CHECK_EQ(parse(cargs), 0);
		if (watch)
			unlink(path);
		if (errbuf[0])
			fprintf(stderr, "--%s on the command line: %s", o->name, errbuf);
		normalise(&cfg);
		normalise(&from_file);
		if (memcmp(&cfg, &from_file, sizeof(cfg)) != 0) {
			fprintf(stderr, "--%s: the file and the command line differ\n", o->name);
			CHECK(0);
		}
		/* and the sample changed something: the option reached its field */
		struct config def;
		const char *none[] = {"--config", "none", NULL};

		CHECK_EQ(parse(none), 0);
		def = cfg;
		normalise(&def);
		/* --prefetch states the default (its --no- form changes it) */
		if (memcmp(&def, &from_file, sizeof(def)) == 0 &&
		    strcmp(o->name, "prefetch") != 0) {
			fprintf(stderr, "--%s: the sample changed nothing\n", o->name);
			CHECK(0);
		}
	}
	CHECK_EQ(n, 78);
	/* --watch-config watches the file that was read: without one it is refused */
	const char *watch_none[] = {"--config", "none", "--watch-config", NULL};

	CHECK(parse(watch_none) < 0);
	CHECK(strstr(errbuf, "--watch-config: no configuration file was read") != NULL);
	/* --health is a mode main() runs before parsing: reaching the parser, it is refused */
	const char *health[] = {"--config", "none", "--health", "http://127.0.0.1:9/", NULL};

	CHECK(parse(health) < 0);
	CHECK(strstr(errbuf, "--health URL: a mode of its own") != NULL);
}

/* --workers: tproxy mode takes it (default 1); nfqueue mode runs one per queue, says
 * so. */
static void test_workers(void)
{
	const char *d[] = {"--config", "none", NULL};
	const char *w[] = {"--config", "none", "--workers", "4", NULL};
	const char *q[] = {"--config", "none", "--mode", "nfqueue", "--queues", "3", NULL};
	const char *qw[] = {"--config", "none",	     "--mode", "nfqueue", "--queues",
			    "3",	"--workers", "5",      NULL};
	const char *bad[] = {"--config", "none", "--workers", "0", NULL};

	CHECK_EQ(parse(d), 0);
	CHECK_EQ(cfg.workers, 1u);
	CHECK_EQ(parse(w), 0);
	CHECK_EQ(cfg.workers, 4u);
	CHECK_EQ(parse(q), 0);
	CHECK_EQ(cfg.workers, 3u);
	CHECK_EQ(parse(qw), 0);
	CHECK_EQ(cfg.workers, 3u);
	CHECK(strstr(errbuf, "--workers: ignored in nfqueue mode") != NULL);
	CHECK_EQ(parse(bad), -22);
	CHECK(strstr(errbuf, "--workers") != NULL);
}

/* A refused value leaves the field as it was (the default here). */
static void test_refused_untouched(void)
{
	const char *t[] = {"--timeout", "5s", NULL}, *p[] = {"--tproxy-port", "53", NULL};
	const char *s[] = {"--scope", "nowhere", NULL};

	CHECK_EQ(parse(t), -22);
	CHECK_EQ(cfg.timeout_ms, 3000);
	CHECK_EQ(parse(p), -22);
	CHECK_EQ(cfg.tproxy_port, 10053);
	CHECK_EQ(parse(s), -22);
	CHECK_EQ(cfg.scope, RULESET_SCOPE_HOST);
}

/* --unreachable: servfail and 10 s by default; a wrong word or range is named. */
static void test_unreachable_options(void)
{
	const char *u[] = {"--unreachable", "plain", NULL};
	const char *a[] = {"--unreachable-after", "0", NULL};

	CHECK_EQ(parse(u), -22);
	CHECK(strstr(errbuf, "--unreachable: invalid value 'plain'") != NULL);
	CHECK_EQ(cfg.unreachable_plain, false);
	CHECK_EQ(parse(a), -22);
	CHECK(strstr(errbuf, "--unreachable-after") != NULL);
	CHECK_EQ(cfg.unreachable_after, 10);
}

/* --doh-reprobe: 60 s by default, 1 to 3600; an error names the option and the range. */
static void test_doh_reprobe(void)
{
	const char *none[] = {NULL};
	const char *ok[] = {"--doh-reprobe", "2", NULL};
	const char *zero[] = {"--doh-reprobe", "0", NULL};
	const char *big[] = {"--doh-reprobe", "3601", NULL};

	CHECK_EQ(parse(none), 0);
	CHECK_EQ(cfg.doh_reprobe_s, 60);
	CHECK_EQ(parse(ok), 0);
	CHECK_EQ(cfg.doh_reprobe_s, 2);
	CHECK_EQ(parse(zero), -22);
	CHECK(strstr(errbuf, "--doh-reprobe") != NULL);
	CHECK(strstr(errbuf, "1 to 3600 seconds") != NULL);
	CHECK_EQ(parse(big), -22);
	CHECK(strstr(errbuf, "--doh-reprobe") != NULL);
}

/* --max-inflight-per-client: half of --max-inflight or of the connections' slots by default */
static void test_inflight_share(void)
{
	const char *none[] = {NULL};
	const char *small[] = {"--max-inflight", "100", NULL};
	const char *set[] = {"--max-inflight-per-client", "7", NULL};

	const char *two[] = {"--workers", "2", NULL};

	CHECK_EQ(parse(none), 0);
	CHECK_EQ(cfg.max_inflight_client, 256); /* half of 4 connections x 128 */
	CHECK_EQ(parse(two), 0);
	CHECK_EQ(cfg.max_inflight_client, 128); /* half of 2 connections x 128 */
	CHECK_EQ(parse(small), 0);
	CHECK_EQ(cfg.max_inflight_client, 50);
	CHECK_EQ(parse(set), 0);
	CHECK_EQ(cfg.max_inflight_client, 7);
}

/*
 * --pool-size: by default 4 connections per upstream shared by the workers: each worker's pool
 * may open 4, and 4 / workers (at least 1) whatever the others hold (pool_floor); given, or
 * with one worker, that many per worker and nothing shared (floor 0)
 */
static void test_pool_size(void)
{
	const char *none[] = {NULL};
	const char *two[] = {"--workers", "2", NULL};
	const char *three[] = {"--workers", "3", NULL};
	const char *eight[] = {"--workers", "8", NULL};
	const char *nfq[] = {"--mode", "nfqueue", "--queues", "2", NULL};
	const char *set[] = {"--pool-size", "3", "--workers", "2", NULL};
	const char *one[] = {"--pool-size", "4", "--workers", "2", NULL};

	CHECK_EQ(parse(none), 0);
	CHECK_EQ(cfg.pool_size, 4);
	CHECK_EQ(cfg.pool_floor, 0);
	CHECK_EQ(parse(two), 0);
	CHECK_EQ(cfg.pool_size, 4);
	CHECK_EQ(cfg.pool_floor, 2);
	CHECK_EQ(parse(three), 0);
	CHECK_EQ(cfg.pool_size, 4);
	CHECK_EQ(cfg.pool_floor, 1);
	CHECK_EQ(parse(eight), 0);
	CHECK_EQ(cfg.pool_size, 4);
	CHECK_EQ(cfg.pool_floor, 1);
	CHECK_EQ(parse(nfq), 0);
	CHECK_EQ(cfg.pool_size, 4);
	CHECK_EQ(cfg.pool_floor, 2);
	CHECK_EQ(parse(set), 0);
	CHECK_EQ(cfg.pool_size, 3); /* given: per worker, as it says */
	CHECK_EQ(cfg.pool_floor, 0);
	CHECK_EQ(parse(one), 0);
	CHECK_EQ(cfg.pool_size, 4); /* given, even as the default's number: nothing shared */
	CHECK_EQ(cfg.pool_floor, 0);
}

int main(void)
{
	test_upstream_specs();
	test_pool_size();
	test_defaults();
	test_options();
	test_errors();
	test_help_version();
	test_config_file();
	test_inflight_share();
	test_upstream_asked();
	test_option_table();
	test_refused_untouched();
	test_unreachable_options();
	test_doh_reprobe();
	test_workers();
	return check_done("config");
}

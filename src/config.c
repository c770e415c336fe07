/*
 * config.c - command-line and configuration-file parsing into struct config. Every error
 * message names the option and quotes the value that was refused. What it reads of the system:
 * the configuration file (fopen) and the number of online CPUs (sysconf, the default
 * --queues); nothing else, and it changes nothing. libcrypto's EVP_DecodeBlock decodes SPKI
 * pins (base64): the one OpenSSL call outside upstream.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dotgw/config.h"
#include "dotgw/log.h"
#include "dotgw/metrics.h"
#include "dotgw/ruleset.h"
#include "dotgw/version.h"

#define DEFAULT_DOT_PORT 853

static const char *const default_upstreams[] = {
	"1.1.1.1#cloudflare-dns.com",
	"1.0.0.1#cloudflare-dns.com",
	"9.9.9.9#dns.quad9.net",
};

enum {
	OPT_MODE = 0x100,
	OPT_SCOPE,
	OPT_INTERFACE,
	OPT_UPSTREAM,
	OPT_CA_FILE,
	OPT_USER,
	OPT_LOG_LEVEL,
	OPT_TABLE,
	OPT_TPROXY_PORT,
	OPT_MARK,
	OPT_BYPASS_MARK,
	OPT_ROUTE_TABLE,
	OPT_RULE_PRIORITY,
	OPT_TIMEOUT,
	OPT_UDP_SIZE_CAP,
	OPT_TCP_IDLE,
	OPT_MAX_TCP,
	OPT_MAX_INFLIGHT,
	OPT_MAX_INFLIGHT_CLIENT,
	OPT_REMOVE_RULES,
	OPT_QUEUES,
	OPT_QUEUE_NUM,
	OPT_FAIL,
	OPT_NON_RECURSIVE,
	OPT_PIN,
	OPT_TLS_AUTH,
	OPT_POLICY,
	OPT_POOL_SIZE,
	OPT_CONN_INFLIGHT,
	OPT_IDLE_TIMEOUT,
	OPT_STALL_TIMEOUT,
	OPT_NO_PADDING,
	OPT_CACHE_SIZE,
	OPT_CACHE_MAX_TTL,
	OPT_SERVE_STALE,
	OPT_RATE_LIMIT,
	OPT_RATE_BURST,
	OPT_RATE_PREFIX4,
	OPT_RATE_PREFIX6,
	OPT_RATE_ACTION,
	OPT_CLIENT,
	OPT_EXEMPT,
	OPT_GROUP,
	OPT_ALLOW,
	OPT_DENY,
	OPT_GROUP_UPSTREAMS,
	OPT_METRICS,
	OPT_QUERY_LOG,
	OPT_CAPTURE_LOCAL,
	OPT_LOG_TARGET,
	OPT_DNSTAP,
	OPT_CONFIG,
	OPT_CHECK_CONFIG,
};

static const struct option long_options[] = {
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "scope", required_argument, NULL, OPT_SCOPE },
	{ "interface", required_argument, NULL, OPT_INTERFACE },
	{ "upstream", required_argument, NULL, OPT_UPSTREAM },
	{ "ca-file", required_argument, NULL, OPT_CA_FILE },
	{ "user", required_argument, NULL, OPT_USER },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "table", required_argument, NULL, OPT_TABLE },
	{ "tproxy-port", required_argument, NULL, OPT_TPROXY_PORT },
	{ "mark", required_argument, NULL, OPT_MARK },
	{ "bypass-mark", required_argument, NULL, OPT_BYPASS_MARK },
	{ "route-table", required_argument, NULL, OPT_ROUTE_TABLE },
	{ "rule-priority", required_argument, NULL, OPT_RULE_PRIORITY },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "udp-size-cap", required_argument, NULL, OPT_UDP_SIZE_CAP },
	{ "tcp-idle-timeout", required_argument, NULL, OPT_TCP_IDLE },
	{ "max-tcp-clients", required_argument, NULL, OPT_MAX_TCP },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
	{ "max-inflight-per-client", required_argument, NULL, OPT_MAX_INFLIGHT_CLIENT },
	{ "remove-rules", no_argument, NULL, OPT_REMOVE_RULES },
	{ "queues", required_argument, NULL, OPT_QUEUES },
	{ "queue-num", required_argument, NULL, OPT_QUEUE_NUM },
	{ "fail", required_argument, NULL, OPT_FAIL },
	{ "non-recursive", required_argument, NULL, OPT_NON_RECURSIVE },
	{ "pin", required_argument, NULL, OPT_PIN },
	{ "tls-auth", required_argument, NULL, OPT_TLS_AUTH },
	{ "upstream-policy", required_argument, NULL, OPT_POLICY },
	{ "pool-size", required_argument, NULL, OPT_POOL_SIZE },
	{ "conn-inflight", required_argument, NULL, OPT_CONN_INFLIGHT },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT },
	{ "no-padding", no_argument, NULL, OPT_NO_PADDING },
	{ "cache-size", required_argument, NULL, OPT_CACHE_SIZE },
	{ "cache-max-ttl", required_argument, NULL, OPT_CACHE_MAX_TTL },
	{ "serve-stale", required_argument, NULL, OPT_SERVE_STALE },
	{ "rate-limit", required_argument, NULL, OPT_RATE_LIMIT },
	{ "client", required_argument, NULL, OPT_CLIENT },
	{ "exempt", required_argument, NULL, OPT_EXEMPT },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "allow", required_argument, NULL, OPT_ALLOW },
	{ "deny", required_argument, NULL, OPT_DENY },
	{ "group-upstreams", required_argument, NULL, OPT_GROUP_UPSTREAMS },
	{ "rate-burst", required_argument, NULL, OPT_RATE_BURST },
	{ "rate-limit-prefix4", required_argument, NULL, OPT_RATE_PREFIX4 },
	{ "rate-limit-prefix6", required_argument, NULL, OPT_RATE_PREFIX6 },
	{ "rate-limit-action", required_argument, NULL, OPT_RATE_ACTION },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "query-log", no_argument, NULL, OPT_QUERY_LOG },
	{ "capture-local", no_argument, NULL, OPT_CAPTURE_LOCAL },
	{ "dnstap", required_argument, NULL, OPT_DNSTAP },
	{ "log-target", required_argument, NULL, OPT_LOG_TARGET },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const char usage_text[] =
	"Usage: dotgw [OPTION]...\n"
	"Capture plain DNS (port 53, UDP and TCP, IPv4 and IPv6) with nftables and answer it over\n"
	"DNS-over-TLS (RFC 7858), replying from the address the client asked.\n"
	"\n"
	"Capture:\n"
	"  --mode MODE              tproxy: UDP and TCP through TPROXY; nfqueue: UDP through\n"
	"                           NFQUEUE with raw-socket answers, TCP through TPROXY\n"
	"                           (default: tproxy)\n"
	"  --fail open|closed       while dotgw is not serving (stopped, crashed, killed, queue\n"
	"                           full): open lets DNS pass in plaintext; closed blocks it\n"
	"                           until dotgw serves again or --remove-rules (default: open)\n"
	"  --non-recursive forward|pass\n"
	"                           queries that are not a stub's (RD=0, CH class, AXFR/IXFR,\n"
	"                           NOTIFY/UPDATE, no question): forward them to the upstream like\n"
	"                           the others, or (nfqueue mode, UDP) let them pass untouched to\n"
	"                           the address they were sent to (default: forward)\n"
	"  --queues N               nfqueue mode: queues and worker threads (default: CPUs)\n"
	"  --queue-num N            nfqueue mode: number of the first queue (default: 0)\n"
	"  --scope SCOPE            host: this machine's own DNS; gateway: forwarded DNS;\n"
	"                           both (default: host)\n"
	"  --interface IFACE        gateway scope: capture only DNS arriving on IFACE\n"
	"                           (repeatable); gateway scope needs it or --client\n"
	"  --client CIDR            gateway scope: capture only DNS from these sources\n"
	"                           (repeatable; default: from any)\n"
	"  --capture-local          also capture DNS addressed to this machine's own addresses\n"
	"                           (default: a DNS server here gets its queries untouched)\n"
	"  --exempt CIDR            never capture DNS from or to these addresses, e.g. a\n"
	"                           local resolver (repeatable)\n"
	"  --table NAME             name of dotgw's nftables table, family inet (default: dotgw)\n"
	"  --tproxy-port PORT       port of the transparent listeners (default: 10053)\n"
	"  --mark VALUE             firewall mark of captured packets (default: 0xd07)\n"
	"  --bypass-mark VALUE      firewall mark of dotgw's own sockets (default: 0xd08)\n"
	"  --route-table N          policy-routing table for captured packets (default: 853)\n"
	"  --rule-priority N        priority of the fwmark policy rules (default: 853)\n"
	"  --remove-rules           remove the table and policy routing a run left (with\n"
	"                           --fail closed: the block), and exit\n"
	"\n"
	"Upstreams:\n"
	"  --upstream ADDR[@PORT][#AUTH-NAME]\n"
	"                           a DNS-over-TLS resolver (repeatable; port 853 by default;\n"
	"                           IPv6 as ADDR or [ADDR]@PORT). The certificate must be valid\n"
	"                           for AUTH-NAME (also sent as SNI), or for ADDR when no name is\n"
	"                           given. Default: 1.1.1.1 and 1.0.0.1 (cloudflare-dns.com),\n"
	"                           9.9.9.9 (dns.quad9.net)\n"
	"  --pin BASE64             SHA-256 SPKI pin of the upstream given just before\n"
	"                           (repeatable; RFC 7858 4.2). With an auth name both must\n"
	"                           hold; without one the pin alone authenticates\n"
	"  --ca-file PATH           trust anchors in PEM (default: the system trust store)\n"
	"  --tls-auth MODE          strict: never use an upstream that fails authentication;\n"
	"                           opportunistic: use it anyway, with a warning per\n"
	"                           connection (default: strict)\n"
	"  --upstream-policy P      ordered, round-robin or fastest (lowest smoothed RTT)\n"
	"                           (default: ordered)\n"
	"  --pool-size N            TLS connections per upstream and worker (default: 2)\n"
	"  --conn-inflight N        queries in flight per connection (default: 128)\n"
	"  --idle-timeout MS        close idle upstream connections; shortened by the server's\n"
	"                           edns-tcp-keepalive (default: 30000)\n"
	"  --stall-timeout MS       queries in flight and no answer for MS/2: probe the\n"
	"                           connection; none by MS: close it, retry elsewhere\n"
	"                           (default: 1000)\n"
	"  --no-padding             do not pad queries to 128 octets (RFC 8467)\n"
	"  --timeout MS             deadline of each query; SERVFAIL after it (default: 3000)\n"
	"\n"
	"Cache:\n"
	"  --cache-size N[k|M]      answer cache in all, shared out among the workers;\n"
	"                           0 turns it off (default: 4M)\n"
	"  --cache-max-ttl SECONDS  cache answers this long at most (default: 86400)\n"
	"  --serve-stale SECONDS    when no upstream answers, serve an expired answer up to\n"
	"                           SECONDS past its expiry, with TTL 30 (RFC 8767);\n"
	"                           0 is off, at most 604800 (default: 0)\n"
	"\n"
	"Policy (client groups; clients in no group are not policed):\n"
	"  --group NAME=CIDR|@IFACE[,...]  a client group: sources in these prefixes, or\n"
	"                           arriving on these interfaces (the first group that holds\n"
	"                           a client is its group)\n"
	"  --deny NAME:SUFFIX[=ACTION]  names at or under SUFFIX: ACTION is nxdomain (default),\n"
	"                           refused, or an IPv4/IPv6 address to answer with (sinkhole)\n"
	"  --allow NAME:SUFFIX      names at or under SUFFIX resolve; a group with allow rules\n"
	"                           gets REFUSED for everything else (longest suffix wins)\n"
	"  --group-upstreams NAME=N[,N]...  the group's queries go only to these upstreams\n"
	"                           (1 = the first --upstream)\n"
	"\n"
	"Clients:\n"
	"  --rate-limit QPS         queries per second per client (address, or prefix below)\n"
	"                           and worker; 0 is off (default: 0)\n"
	"  --rate-burst N           queries a client may send at once (default: 2 x QPS)\n"
	"  --rate-limit-prefix4 N   IPv4 clients counted per /N (default: 32)\n"
	"  --rate-limit-prefix6 N   IPv6 clients counted per /N (default: 56)\n"
	"  --rate-limit-action A    refused (answer REFUSED) or drop (default: refused)\n"
	"  --udp-size-cap N         largest UDP answer sent, whatever the client advertises;\n"
	"                           larger answers are truncated (TC) (default: 1232)\n"
	"  --tcp-idle-timeout MS    close idle TCP client connections after MS (default: 10000)\n"
	"  --max-tcp-clients N      TCP client connections at once (default: 256)\n"
	"  --max-inflight N         queries in flight at once, per worker; more get SERVFAIL\n"
	"                           (default: 4096)\n"
	"  --max-inflight-per-client N\n"
	"                           of them, what one client (counted as for --rate-limit)\n"
	"                           may have in flight; as many more wait, the rest get\n"
	"                           SERVFAIL (default: half of --max-inflight or of\n"
	"                           --pool-size x --conn-inflight, the smaller: 128)\n"
	"\n"
	"Process:\n"
	"  --config PATH            read settings from PATH first: 'key = value' lines, a key\n"
	"                           for each long option; the command line overrides them\n"
	"                           (default: " CONFIG_DEFAULT_PATH " if it exists; none:\n"
	"                           read no file)\n"
	"  --check-config           check the file and the options, say so, and exit\n"
	"  --user NAME              run as NAME after setup (default: dotgw if it exists,\n"
	"                           else nobody)\n"
	"  --log-level LEVEL        error, warn, info or debug (default: info)\n"
	"  --log-target T           stderr (with journald priority prefixes under systemd) or\n"
	"                           syslog (facility daemon) (default: stderr)\n"
	"  --query-log              log a line per answered query: client, name, type, rcode,\n"
	"                           where the answer came from, latency\n"
	"  --dnstap SOCKET          send client queries and responses as dnstap to the Frame\n"
	"                           Streams unix socket SOCKET (default: off)\n"
	"  --metrics [ADDR:]PORT    serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	"                           (address default 127.0.0.1; default: off)\n"
	"  -h, --help               show this help and exit\n"
	"  -V, --version            show the version and exit\n"
	"\n"
	"dotgw installs its own nftables table and fwmark policy routing, and removes them on\n"
	"SIGINT or SIGTERM (with --fail closed they stay and block DNS). SIGUSR1 logs the\n"
	"counters. It needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE, CAP_SETUID,\n"
	"CAP_SETGID, CAP_SETPCAP) to start, and keeps only CAP_NET_ADMIN and\n"
	"CAP_NET_BIND_SERVICE.\n";

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->scope = RULESET_SCOPE_HOST;
	cfg->mode = MODE_TPROXY;
	cfg->log_level = LOG_LVL_INFO;
	cfg->table = "dotgw";
	cfg->tproxy_port = 10053;
	cfg->capture_mark = 0xd07;
	cfg->bypass_mark = 0xd08;
	cfg->route_table = 853;
	cfg->rule_priority = 853;
	cfg->timeout_ms = 3000;
	cfg->udp_size_cap = 1232;
	cfg->tcp_idle_ms = 10000;
	cfg->max_tcp_clients = 256;
	cfg->max_inflight = 4096;
	cfg->queues = 0; /* the number of CPUs, decided in config_parse_args */
	cfg->policy = POLICY_ORDERED;
	cfg->pool_size = 2;
	cfg->conn_inflight = 128;
	cfg->idle_ms = 30000;
	cfg->stall_ms = 1000;
	cfg->padding = true;
	cfg->cache_size = 4u << 20;
	cfg->cache_max_ttl = 86400;
	cfg->serve_stale = 0;
	cfg->rate_limit = 0;
	cfg->rate_burst = 0; /* 2 x rate_limit, decided in config_parse_args */
	cfg->rate_prefix4 = 32;
	cfg->rate_prefix6 = 56;
	cfg->rate_refuse = true;
	cfg->queue_num = 0;
}

static bool valid_auth_name(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > CONFIG_AUTH_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

/* parse_u32 - a whole decimal (or 0x hex) number within [min, max]; 0 or -EINVAL. */
static int parse_u32(const char *s, unsigned long min, unsigned long max, uint32_t *out)
{
	unsigned long v;
	char *end;

	if (!*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int config_parse_upstream(struct upstream_config *u, const char *spec)
{
	char buf[INET6_ADDRSTRLEN + 8 + CONFIG_AUTH_NAME_MAX + 4];
	struct upstream_config r;
	union sockaddr_any a;
	char *name;
	uint32_t portnum;

	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	strcpy(buf, spec);
	name = strchr(buf, '#');
	if (name) {
		*name++ = '\0';
		if (!valid_auth_name(name))
			return -EINVAL;
		strcpy(r.auth_name, name);
	}
	if (addr_parse(&a, buf, NULL, DEFAULT_DOT_PORT) < 0)
		return -EINVAL;
	memcpy(&r.addr, &a, sizeof(a));
	r.addrlen = addr_len(&a);
	portnum = addr_port(&a);

	struct sockaddr_in *sin = (struct sockaddr_in *)&r.addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r.addr;
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(r.addr.ss_family,
		  r.addr.ss_family == AF_INET ? (const void *)&sin->sin_addr
					      : (const void *)&sin6->sin6_addr,
		  ip, sizeof(ip));
	snprintf(r.text, sizeof(r.text), "%s%s%s@%u%s%s", r.addrlen == sizeof(*sin6) ? "[" : "",
		 ip, r.addrlen == sizeof(*sin6) ? "]" : "", (unsigned int)portnum,
		 r.auth_name[0] ? "#" : "", r.auth_name);
	*u = r;
	return 0;
}

static bool valid_table_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64 || !isalpha((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return true;
}

static int bad_value(FILE *err, const char *opt, const char *value, const char *expected)
{
	fprintf(err, "dotgw: --%s: invalid value '%s' (expected %s)\n", opt, value, expected);
	return -EINVAL;
}

static int parse_number(FILE *err, const char *opt, const char *value, unsigned long min,
			unsigned long max, const char *expected, uint32_t *out)
{
	if (parse_u32(value, min, max, out) < 0)
		return bad_value(err, opt, value, expected);
	return 0;
}

static struct policy_group *group_find(struct config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->groups.n_groups; i++)
		if (strlen(cfg->groups.groups[i].name) == len &&
		    strncmp(cfg->groups.groups[i].name, name, len) == 0)
			return &cfg->groups.groups[i];
	return NULL;
}

/* parse_policy - the --group, --allow, --deny and --group-upstreams values. */
static int parse_policy(struct config *cfg, int opt, const char *name, const char *arg, FILE *err)
{
	const char *sep = strchr(arg, opt == OPT_ALLOW || opt == OPT_DENY ? ':' : '=');
	struct policy_group *g;
	char list[1024], *tok, *save;

	if (!sep || sep == arg || sep - arg >= (long)sizeof(g->name))
		return bad_value(err, name, arg,
				 opt == OPT_GROUP	      ? "NAME=CIDR[,CIDR]..."
				 : opt == OPT_GROUP_UPSTREAMS ? "NAME=N[,N]..."
							      : "NAME:SUFFIX");
	g = group_find(cfg, arg, (size_t)(sep - arg));
	if (opt == OPT_GROUP) {
		if (g) {
			fprintf(err, "dotgw: --group: group '%.*s' is defined twice\n",
				(int)(sep - arg), arg);
			return -EINVAL;
		}
		if (cfg->groups.n_groups == POLICY_MAX_GROUPS) {
			fprintf(err, "dotgw: --group: at most %d groups\n", POLICY_MAX_GROUPS);
			return -EINVAL;
		}
		g = &cfg->groups.groups[cfg->groups.n_groups];
		memset(g, 0, sizeof(*g));
		memcpy(g->name, arg, (size_t)(sep - arg));
		if (strlen(sep + 1) >= sizeof(list))
			return bad_value(err, name, arg, "a shorter list");
		strcpy(list, sep + 1);
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (tok[0] == '@') {
				if (g->n_ifs == POLICY_MAX_CIDRS || strlen(tok + 1) == 0 ||
				    strlen(tok + 1) >= sizeof(g->ifnames[0]))
					return bad_value(err, name, arg,
							 "NAME=CIDR|@IFACE[,...] (16 of each at most)");
				strcpy(g->ifnames[g->n_ifs++], tok + 1);
				continue;
			}
			if (g->n_cidrs == POLICY_MAX_CIDRS ||
			    cidr_parse(&g->cidrs[g->n_cidrs], tok) < 0)
				return bad_value(err, name, arg,
						 "NAME=CIDR|@IFACE[,...] (16 of each at most)");
			g->n_cidrs++;
		}
		if (!g->n_cidrs && !g->n_ifs)
			return bad_value(err, name, arg, "NAME=CIDR|@IFACE[,...]");
		cfg->groups.n_groups++;
		return 0;
	}
	if (!g) {
		fprintf(err, "dotgw: --%s '%s': no --group '%.*s' before it\n", name, arg,
			(int)(sep - arg), arg);
		return -EINVAL;
	}
	if (opt == OPT_GROUP_UPSTREAMS) {
		if (strlen(sep + 1) >= sizeof(list))
			return bad_value(err, name, arg, "a shorter list");
		strcpy(list, sep + 1);
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			uint32_t idx;

			if (parse_u32(tok, 1, CONFIG_MAX_UPSTREAMS, &idx) < 0)
				return bad_value(err, name, arg, "NAME=N[,N]... with N from 1 to 16");
			g->upstreams |= 1u << (idx - 1);
		}
		return 0;
	}
	/* --allow / --deny NAME:SUFFIX[=ACTION] */
	struct policy_rule *r;
	char suffix[DNS_MAX_NAME * 4 + 2];
	const char *action = strchr(sep + 1, '=');
	size_t slen = action ? (size_t)(action - sep - 1) : strlen(sep + 1);

	if (g->n_rules == POLICY_MAX_RULES) {
		fprintf(err, "dotgw: --%s: at most %d rules per group\n", name, POLICY_MAX_RULES);
		return -EINVAL;
	}
	r = &g->rules[g->n_rules];
	memset(r, 0, sizeof(*r));
	if (slen == 0 || slen >= sizeof(suffix) || (opt == OPT_ALLOW && action))
		return bad_value(err, name, arg, opt == OPT_ALLOW ? "NAME:SUFFIX"
								   : "NAME:SUFFIX[=ACTION]");
	memcpy(suffix, sep + 1, slen);
	suffix[slen] = '\0';
	if (policy_name_parse(suffix, r->name, &r->name_len) < 0)
		return bad_value(err, name, arg, "a domain name after NAME:");
	if (opt == OPT_ALLOW) {
		r->action = POLICY_PASS;
		g->allow_list = true;
	} else if (!action || strcmp(action + 1, "nxdomain") == 0) {
		r->action = POLICY_NXDOMAIN;
	} else if (strcmp(action + 1, "refused") == 0) {
		r->action = POLICY_REFUSED;
	} else if (inet_pton(AF_INET, action + 1, r->sink) == 1) {
		r->action = POLICY_SINKHOLE;
		r->sink_family = AF_INET;
	} else if (inet_pton(AF_INET6, action + 1, r->sink) == 1) {
		r->action = POLICY_SINKHOLE;
		r->sink_family = AF_INET6;
	} else {
		return bad_value(err, name, arg, "an ACTION of nxdomain, refused or an address");
	}
	g->n_rules++;
	return 0;
}

static int parse_one(struct config *cfg, int opt, const char *name, const char *arg, FILE *err)
{
	uint32_t v;
	int r;

	switch (opt) {
	case OPT_MODE:
		if (strcmp(arg, "tproxy") == 0)
			cfg->mode = MODE_TPROXY;
		else if (strcmp(arg, "nfqueue") == 0)
			cfg->mode = MODE_NFQUEUE;
		else
			return bad_value(err, name, arg, "tproxy or nfqueue");
		return 0;
	case OPT_FAIL:
		if (strcmp(arg, "open") == 0)
			cfg->fail_closed = false;
		else if (strcmp(arg, "closed") == 0)
			cfg->fail_closed = true;
		else
			return bad_value(err, name, arg, "open or closed");
		return 0;
	case OPT_NON_RECURSIVE:
		if (strcmp(arg, "forward") == 0)
			cfg->nonrec_pass = false;
		else if (strcmp(arg, "pass") == 0)
			cfg->nonrec_pass = true;
		else
			return bad_value(err, name, arg, "forward or pass");
		return 0;
	case OPT_PIN: {
		struct upstream_config *u;
		uint8_t raw[64];
		int n;

		if (cfg->n_upstreams == 0) {
			fprintf(err, "dotgw: --pin: give it after the --upstream it belongs to\n");
			return -EINVAL;
		}
		u = &cfg->upstreams[cfg->n_upstreams - 1];
		/* 32 octets are 44 base64 characters, one '=' of padding */
		n = strlen(arg) == 44 ? EVP_DecodeBlock(raw, (const unsigned char *)arg, 44) : -1;
		if (n != 33 || arg[43] != '=' || arg[42] == '=')
			return bad_value(err, name, arg, "the base64 of a SHA-256 digest");
		if (u->n_pins == CONFIG_MAX_PINS) {
			fprintf(err, "dotgw: --pin: at most %d pins per upstream\n", CONFIG_MAX_PINS);
			return -EINVAL;
		}
		memcpy(u->pins[u->n_pins++], raw, 32);
		return 0;
	}
	case OPT_TLS_AUTH:
		if (strcmp(arg, "strict") == 0)
			cfg->tls_opportunistic = false;
		else if (strcmp(arg, "opportunistic") == 0)
			cfg->tls_opportunistic = true;
		else
			return bad_value(err, name, arg, "strict or opportunistic");
		return 0;
	case OPT_POLICY:
		if (strcmp(arg, "ordered") == 0)
			cfg->policy = POLICY_ORDERED;
		else if (strcmp(arg, "round-robin") == 0)
			cfg->policy = POLICY_ROUND_ROBIN;
		else if (strcmp(arg, "fastest") == 0)
			cfg->policy = POLICY_FASTEST;
		else
			return bad_value(err, name, arg, "ordered, round-robin or fastest");
		return 0;
	case OPT_POOL_SIZE:
		r = parse_number(err, name, arg, 1, CONFIG_MAX_POOL, "1 to 16", &v);
		cfg->pool_size = v;
		return r;
	case OPT_CONN_INFLIGHT:
		r = parse_number(err, name, arg, 1, 1024, "1 to 1024", &v);
		cfg->conn_inflight = v;
		return r;
	case OPT_IDLE_TIMEOUT:
		r = parse_number(err, name, arg, 100, 3600000, "100 to 3600000 milliseconds", &v);
		cfg->idle_ms = v;
		return r;
	case OPT_STALL_TIMEOUT:
		r = parse_number(err, name, arg, 50, 60000, "50 to 60000 milliseconds", &v);
		cfg->stall_ms = v;
		return r;
	case OPT_NO_PADDING:
		cfg->padding = false;
		return 0;
	case OPT_CACHE_SIZE: {
		char num[32], *suffix;
		unsigned long mult = 1;
		size_t len = strlen(arg);

		strncpy(num, arg, sizeof(num) - 1);
		num[sizeof(num) - 1] = '\0';
		suffix = len && len < sizeof(num) ? num + len - 1 : NULL;
		if (suffix && (*suffix == 'k' || *suffix == 'K'))
			mult = 1024;
		else if (suffix && (*suffix == 'm' || *suffix == 'M'))
			mult = 1024 * 1024;
		if (mult > 1)
			*suffix = '\0';
		if (len >= sizeof(num) || parse_u32(num, 0, (1ul << 30) / mult, &v) < 0)
			return bad_value(err, name, arg, "0 to 1024M octets, e.g. 4M or 512k");
		cfg->cache_size = (size_t)v * mult;
		return 0;
	}
	case OPT_CACHE_MAX_TTL:
		r = parse_number(err, name, arg, 1, 604800, "1 to 604800 seconds", &v);
		cfg->cache_max_ttl = v;
		return r;
	case OPT_SERVE_STALE:
		r = parse_number(err, name, arg, 0, 604800, "0 to 604800 seconds", &v);
		cfg->serve_stale = v;
		return r;
	case OPT_QUERY_LOG:
		cfg->query_log = true;
		return 0;
	case OPT_CAPTURE_LOCAL:
		cfg->capture_local = true;
		return 0;
	case OPT_DNSTAP:
		if (!*arg || strlen(arg) >= sizeof(cfg->dnstap_buf))
			return bad_value(err, name, arg, "a unix socket path of at most 107 octets");
		strcpy(cfg->dnstap_buf, arg);
		cfg->dnstap = cfg->dnstap_buf;
		return 0;
	case OPT_LOG_TARGET:
		if (strcmp(arg, "stderr") == 0)
			cfg->log_syslog = false;
		else if (strcmp(arg, "syslog") == 0)
			cfg->log_syslog = true;
		else
			return bad_value(err, name, arg, "stderr or syslog");
		return 0;
	case OPT_METRICS: {
		struct sockaddr_storage ss;

		if (strlen(arg) >= sizeof(cfg->metrics_buf) || metrics_parse_addr(arg, &ss) < 0)
			return bad_value(err, name, arg, "PORT, ADDR:PORT or [ADDR]:PORT");
		strcpy(cfg->metrics_buf, arg);
		cfg->metrics = cfg->metrics_buf;
		return 0;
	}
	case OPT_GROUP:
	case OPT_ALLOW:
	case OPT_DENY:
	case OPT_GROUP_UPSTREAMS:
		return parse_policy(cfg, opt, name, arg, err);
	case OPT_CLIENT:
	case OPT_EXEMPT: {
		struct cidr *list = opt == OPT_CLIENT ? cfg->clients : cfg->exempt;
		size_t *n = opt == OPT_CLIENT ? &cfg->n_clients : &cfg->n_exempt;

		if (*n == CONFIG_MAX_CIDRS) {
			fprintf(err, "dotgw: --%s: at most %d prefixes\n", name, CONFIG_MAX_CIDRS);
			return -EINVAL;
		}
		if (cidr_parse(&list[*n], arg) < 0)
			return bad_value(err, name, arg, "an address or ADDR/LEN");
		(*n)++;
		return 0;
	}
	case OPT_RATE_LIMIT:
		r = parse_number(err, name, arg, 0, 10000000, "0 to 10000000 queries per second", &v);
		cfg->rate_limit = v;
		return r;
	case OPT_RATE_BURST:
		r = parse_number(err, name, arg, 1, 20000000, "1 to 20000000 queries", &v);
		cfg->rate_burst = v;
		return r;
	case OPT_RATE_PREFIX4:
		r = parse_number(err, name, arg, 1, 32, "a prefix length from 1 to 32", &v);
		cfg->rate_prefix4 = v;
		return r;
	case OPT_RATE_PREFIX6:
		r = parse_number(err, name, arg, 1, 128, "a prefix length from 1 to 128", &v);
		cfg->rate_prefix6 = v;
		return r;
	case OPT_RATE_ACTION:
		if (strcmp(arg, "refused") == 0)
			cfg->rate_refuse = true;
		else if (strcmp(arg, "drop") == 0)
			cfg->rate_refuse = false;
		else
			return bad_value(err, name, arg, "refused or drop");
		return 0;
	case OPT_QUEUES:
		r = parse_number(err, name, arg, 1, CONFIG_MAX_QUEUES, "1 to 64", &v);
		cfg->queues = v;
		return r;
	case OPT_QUEUE_NUM:
		r = parse_number(err, name, arg, 0, 65535, "0 to 65535", &v);
		cfg->queue_num = (uint16_t)v;
		return r;
	case OPT_SCOPE:
		if (strcmp(arg, "host") == 0)
			cfg->scope = RULESET_SCOPE_HOST;
		else if (strcmp(arg, "gateway") == 0)
			cfg->scope = RULESET_SCOPE_GATEWAY;
		else if (strcmp(arg, "both") == 0)
			cfg->scope = RULESET_SCOPE_HOST | RULESET_SCOPE_GATEWAY;
		else
			return bad_value(err, name, arg, "host, gateway or both");
		return 0;
	case OPT_INTERFACE:
		if (strlen(arg) == 0 || strlen(arg) >= 16 || strchr(arg, '/') || strchr(arg, ' '))
			return bad_value(err, name, arg, "an interface name of 1 to 15 characters");
		if (cfg->n_interfaces == CONFIG_MAX_INTERFACES) {
			fprintf(err, "dotgw: --interface: at most %d interfaces\n",
				CONFIG_MAX_INTERFACES);
			return -EINVAL;
		}
		strcpy(cfg->interfaces_buf[cfg->n_interfaces], arg);
		cfg->interfaces[cfg->n_interfaces] = cfg->interfaces_buf[cfg->n_interfaces];
		cfg->n_interfaces++;
		return 0;
	case OPT_UPSTREAM:
		if (cfg->n_upstreams == CONFIG_MAX_UPSTREAMS) {
			fprintf(err, "dotgw: --upstream: at most %d upstreams\n",
				CONFIG_MAX_UPSTREAMS);
			return -EINVAL;
		}
		if (config_parse_upstream(&cfg->upstreams[cfg->n_upstreams], arg) < 0)
			return bad_value(err, name, arg, "ADDR[@PORT][#AUTH-NAME]");
		cfg->n_upstreams++;
		return 0;
	case OPT_CA_FILE:
		if (!*arg || strlen(arg) >= sizeof(cfg->ca_file_buf))
			return bad_value(err, name, arg, "a file name");
		strcpy(cfg->ca_file_buf, arg);
		cfg->ca_file = cfg->ca_file_buf;
		return 0;
	case OPT_USER:
		if (!*arg || strlen(arg) >= sizeof(cfg->user_buf))
			return bad_value(err, name, arg, "a user name");
		strcpy(cfg->user_buf, arg);
		cfg->user = cfg->user_buf;
		return 0;
	case OPT_LOG_LEVEL:
		r = log_level_parse(arg);
		if (r < 0)
			return bad_value(err, name, arg, "error, warn, info or debug");
		cfg->log_level = r;
		return 0;
	case OPT_TABLE:
		if (!valid_table_name(arg))
			return bad_value(err, name, arg,
					 "a letter then up to 63 letters, digits, '_' or '-'");
		strcpy(cfg->table_buf, arg); /* valid_table_name: at most 64 */
		cfg->table = cfg->table_buf;
		return 0;
	case OPT_TPROXY_PORT:
		r = parse_number(err, name, arg, 1, 65535, "a port from 1 to 65535, not 53", &v);
		if (r == 0 && v == 53)
			return bad_value(err, name, arg, "a port from 1 to 65535, not 53");
		cfg->tproxy_port = (uint16_t)v;
		return r;
	case OPT_MARK:
		r = parse_number(err, name, arg, 1, UINT32_MAX, "a non-zero 32-bit mark", &v);
		cfg->capture_mark = v;
		return r;
	case OPT_BYPASS_MARK:
		r = parse_number(err, name, arg, 1, UINT32_MAX, "a non-zero 32-bit mark", &v);
		cfg->bypass_mark = v;
		return r;
	case OPT_ROUTE_TABLE:
		r = parse_number(err, name, arg, 1, 0xfffffff0,
				 "a table number from 1 to 4294967280, not 253, 254 or 255", &v);
		if (r == 0 && v >= 253 && v <= 255)
			return bad_value(err, name, arg,
					 "a table number from 1 to 4294967280, not 253, 254 or 255");
		cfg->route_table = v;
		return r;
	case OPT_RULE_PRIORITY:
		r = parse_number(err, name, arg, 1, 32765, "a priority from 1 to 32765", &v);
		cfg->rule_priority = v;
		return r;
	case OPT_TIMEOUT:
		r = parse_number(err, name, arg, 100, 60000, "100 to 60000 milliseconds", &v);
		cfg->timeout_ms = v;
		return r;
	case OPT_UDP_SIZE_CAP:
		r = parse_number(err, name, arg, 512, 65535, "512 to 65535 octets", &v);
		cfg->udp_size_cap = v;
		return r;
	case OPT_TCP_IDLE:
		r = parse_number(err, name, arg, 100, 3600000, "100 to 3600000 milliseconds", &v);
		cfg->tcp_idle_ms = v;
		return r;
	case OPT_MAX_TCP:
		r = parse_number(err, name, arg, 1, 65536, "1 to 65536", &v);
		cfg->max_tcp_clients = v;
		return r;
	case OPT_MAX_INFLIGHT:
		r = parse_number(err, name, arg, 1, 1000000, "1 to 1000000", &v);
		cfg->max_inflight = v;
		return r;
	case OPT_MAX_INFLIGHT_CLIENT:
		r = parse_number(err, name, arg, 1, 1000000, "1 to 1000000", &v);
		cfg->max_inflight_client = v;
		return r;
	case OPT_REMOVE_RULES:
		cfg->remove_rules = true;
		return 0;
	default:
		return -EINVAL;
	}
}

static const char *option_name(int opt)
{
	for (const struct option *o = long_options; o->name; o++)
		if (o->val == opt)
			return o->name;
	return "?";
}

static bool option_repeatable(int opt)
{
	switch (opt) {
	case OPT_UPSTREAM:
	case OPT_PIN:
	case OPT_INTERFACE:
	case OPT_CLIENT:
	case OPT_EXEMPT:
	case OPT_GROUP:
	case OPT_ALLOW:
	case OPT_DENY:
	case OPT_GROUP_UPSTREAMS:
		return true;
	default:
		return false;
	}
}

#define ON_CLI(on_cli, opt) ((on_cli)[(opt)-OPT_MODE])

/*
 * cli_replaces - does the command line replace the file's entries of option opt? Pins belong
 * to their upstreams, and rules and upstream sets to their groups: they go together.
 */
static bool cli_replaces(const bool *on_cli, int opt)
{
	switch (opt) {
	case OPT_UPSTREAM:
	case OPT_PIN:
		return ON_CLI(on_cli, OPT_UPSTREAM) || ON_CLI(on_cli, OPT_PIN);
	case OPT_GROUP:
	case OPT_ALLOW:
	case OPT_DENY:
	case OPT_GROUP_UPSTREAMS:
		return ON_CLI(on_cli, OPT_GROUP) || ON_CLI(on_cli, OPT_ALLOW) ||
		       ON_CLI(on_cli, OPT_DENY) || ON_CLI(on_cli, OPT_GROUP_UPSTREAMS);
	default:
		return ON_CLI(on_cli, opt);
	}
}

struct ini_ctx {
	struct config *cfg;
	FILE *file;
	const char *path;
	unsigned int lineno;
	FILE *err;
	int failed;
	const bool *on_cli; /* by option value - OPT_MODE: given on the command line */
};

/* Count lines as inih reads them: the Debian build gives handlers no line number. */
static char *conf_reader(char *str, int num, void *stream)
{
	struct ini_ctx *c = stream;
	char *r = fgets(str, num, c->file);

	if (r)
		c->lineno++;
	return r;
}

static void ini_error(struct ini_ctx *c, const char *key, const char *msg)
{
	fprintf(c->err, "dotgw: %s:%u: %s%s%s\n", c->path, c->lineno, key ? key : "",
		key ? ": " : "", msg);
	c->failed = -EINVAL;
}

static int conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *c = user;
	const struct option *o;
	char *msg = NULL;
	size_t msglen = 0;
	FILE *mem;
	int r;

	if (*section) {
		ini_error(c, NULL, "sections are not used: write 'key = value' lines");
		return 1;
	}
	for (o = long_options; o->name; o++)
		if (strcmp(o->name, name) == 0)
			break;
	if (!o->name || o->val < OPT_MODE || o->val == OPT_CONFIG ||
	    o->val == OPT_CHECK_CONFIG) {
		ini_error(c, name, "unknown key (keys are the long options, see dotgw --help)");
		return 1;
	}
	if (option_repeatable(o->val) && cli_replaces(c->on_cli, o->val))
		return 1; /* the command line's list replaces the file's */
	if (o->has_arg == no_argument) {
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0)
			value = NULL;
		else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0)
			return 1;
		else {
			ini_error(c, name, "expected yes or no");
			return 1;
		}
	}
	mem = open_memstream(&msg, &msglen);
	if (!mem)
		return 0;
	r = parse_one(c->cfg, o->val, o->name, value, mem);
	fclose(mem);
	if (r < 0) {
		/* the message is "dotgw: --key: ...\n": say "key: ..." */
		char invalid[] = "invalid";
		char *m = msg && strncmp(msg, "dotgw: ", 7) == 0 ? msg + 7 : invalid;

		if (strncmp(m, "--", 2) == 0)
			m += 2;
		if (*m && m[strlen(m) - 1] == '\n')
			m[strlen(m) - 1] = '\0';
		ini_error(c, NULL, m);
	}
	free(msg);
	return 1;
}

static int config_read_file(struct config *cfg, const char *path, bool explicit,
			    const bool *on_cli, FILE *err)
{
	struct ini_ctx c = { .cfg = cfg, .path = path, .err = err, .on_cli = on_cli };
	int r;

	c.file = fopen(path, "re");
	if (!c.file) {
		if (!explicit && errno == ENOENT)
			return 0;
		fprintf(err, "dotgw: --config '%s': %s\n", path, strerror(errno));
		return -EINVAL;
	}
	snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", path);
	r = ini_parse_stream(conf_reader, &c, conf_handler, &c);
	fclose(c.file);
	if (r > 0 && !c.failed) {
		fprintf(err, "dotgw: %s:%d: not a 'key = value' line\n", path, r);
		return -EINVAL;
	}
	return c.failed ? c.failed : r < 0 ? -ENOMEM : 0;
}

int config_parse_args(struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
	bool on_cli[OPT_CHECK_CONFIG - OPT_MODE + 1] = { false };
	const char *path = CONFIG_DEFAULT_PATH;
	bool explicit = false;
	int opt, r;

	/* First pass: which options the command line gives, and where the file is. */
	optind = 0; /* full re-initialisation: parsing may run more than once (tests, reload) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		if (opt >= OPT_MODE && opt <= OPT_CHECK_CONFIG)
			on_cli[opt - OPT_MODE] = true;
		if (opt == OPT_CONFIG) {
			path = optarg;
			explicit = true;
		}
	}
	if (strcmp(path, "none") != 0) {
		r = config_read_file(cfg, path, explicit, on_cli, err);
		if (r < 0)
			return r;
	}

	optind = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage_text, out);
			return 1;
		case 'V':
			fprintf(out, "dotgw %s\n", DOTGW_VERSION);
			return 1;
		case ':':
			fprintf(err, "dotgw: option '%s' needs a value\n", argv[optind - 1]);
			return -EINVAL;
		case '?':
			if (optopt)
				fprintf(err, "dotgw: unknown option '-%c' (see --help)\n", optopt);
			else
				fprintf(err, "dotgw: unknown option '%s' (see --help)\n",
					argv[optind - 1]);
			return -EINVAL;
		case OPT_CONFIG:
			break;
		case OPT_CHECK_CONFIG:
			cfg->check_config = true;
			break;
		default:
			r = parse_one(cfg, opt, option_name(opt), optarg, err);
			if (r < 0)
				return r;
		}
	}
	if (optind < argc) {
		fprintf(err, "dotgw: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	if (cfg->n_clients && !(cfg->scope & RULESET_SCOPE_GATEWAY)) {
		fprintf(err, "dotgw: --client: needs --scope gateway or --scope both\n");
		return -EINVAL;
	}
	if (cfg->n_interfaces && !(cfg->scope & RULESET_SCOPE_GATEWAY)) {
		fprintf(err, "dotgw: --interface: needs --scope gateway or --scope both\n");
		return -EINVAL;
	}
	/* TPROXY hands dotgw a socket, not a packet it could still let go */
	if (cfg->nonrec_pass && cfg->mode != MODE_NFQUEUE) {
		fprintf(err, "dotgw: --non-recursive pass: needs --mode nfqueue\n");
		return -EINVAL;
	}
	/*
	 * Gateway scope on every interface would answer whoever reaches this machine, the
	 * uplink's side included: an open resolver. Refuse rather than guess which interface
	 * faces the internet (the default route may be absent, change, or be one of several).
	 */
	if ((cfg->scope & RULESET_SCOPE_GATEWAY) && !cfg->n_interfaces && !cfg->n_clients) {
		fprintf(err, "dotgw: --scope %s: name the clients' side with --interface IFACE "
			     "(or --client CIDR); capturing on every interface would answer the "
			     "internet side too (an open resolver)\n",
			cfg->scope & RULESET_SCOPE_HOST ? "both" : "gateway");
		return -EINVAL;
	}
	if (cfg->rate_limit && cfg->rate_burst == 0)
		cfg->rate_burst = cfg->rate_limit * 2;
	if (cfg->max_inflight_client == 0) {
		/* half of what can be in flight, or of what one upstream's connections can take:
		 * past that, queries wait for a connection behind the flooder's */
		unsigned int cap = cfg->pool_size * cfg->conn_inflight;

		if (cap > cfg->max_inflight)
			cap = cfg->max_inflight;
		cfg->max_inflight_client = cap > 1 ? cap / 2 : 1;
	}
	if (cfg->queues == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		cfg->queues = n < 1 ? 1 : n > CONFIG_MAX_QUEUES ? CONFIG_MAX_QUEUES : (unsigned int)n;
	}
	if ((unsigned long)cfg->queue_num + cfg->queues > 65536) {
		fprintf(err, "dotgw: --queue-num: queues %u to %lu do not exist (at most 65535)\n",
			cfg->queue_num, (unsigned long)cfg->queue_num + cfg->queues - 1);
		return -EINVAL;
	}
	if (cfg->capture_mark == cfg->bypass_mark) {
		fprintf(err, "dotgw: --bypass-mark: must differ from --mark (0x%x)\n",
			cfg->capture_mark);
		return -EINVAL;
	}
	if (cfg->n_upstreams == 0) {
		for (size_t i = 0; i < sizeof(default_upstreams) / sizeof(default_upstreams[0]); i++)
			if (config_parse_upstream(&cfg->upstreams[cfg->n_upstreams++],
						  default_upstreams[i]) < 0)
				return -EINVAL;
	}
	for (size_t i = 0; i < cfg->groups.n_groups; i++) {
		uint32_t all = cfg->n_upstreams ? (1u << cfg->n_upstreams) - 1 : 0;

		if (cfg->groups.groups[i].upstreams & ~all) {
			fprintf(err, "dotgw: --group-upstreams: group '%s' names an upstream that "
				     "does not exist (there are %zu)\n",
				cfg->groups.groups[i].name, cfg->n_upstreams);
			return -EINVAL;
		}
	}
	return 0;
}

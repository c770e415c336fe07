/*
 * config.c - command-line and configuration-file parsing into struct config. Every error
 * message names the option and quotes the value that was refused. What it reads of the system:
 * the configuration file (fopen) and the number of online CPUs (sysconf, the default
 * --queues); nothing else, and it changes nothing. SPKI pins are decoded by tls.c
 * (tls_pin_parse), where every OpenSSL call is.
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

#include "dotgw/config.h"
#include "dotgw/doh.h"
#include "dotgw/log.h"
#include "dotgw/metrics.h"
#include "dotgw/ruleset.h"
#include "dotgw/tls.h"
#include "dotgw/version.h"

#define DEFAULT_DOT_PORT 853
#define DEFAULT_DOH_PORT 443
#define DEFAULT_DOH_PATH "/dns-query"

static const char *const default_upstreams[] = {
	"1.1.1.1#cloudflare-dns.com",
	"1.0.0.1#cloudflare-dns.com",
	"9.9.9.9#dns.quad9.net",
};

/* Repeatable options: the command line's entries replace the file's list as a whole. Pins
 * belong to their upstreams, and rules and upstream sets to their groups: they go together. */
enum {
	LIST_NONE,
	LIST_UPSTREAMS,
	LIST_INTERFACES,
	LIST_CLIENTS,
	LIST_EXEMPT,
	LIST_GROUPS,
	LIST_EXEMPT_IFACES,
	LIST_FORWARDS,
};

static int parse_interface(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_upstream(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_pin(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_doh_fallback(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_ca_file(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_user(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_log_level(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_table(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_cache_size(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_client(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_exempt(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_exempt_iface(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_group(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_allow(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_egress(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_egress_allow(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_show_egress(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_deny(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_group_upstreams(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_metrics(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_dnstap(struct config *cfg, const char *name, const char *arg, FILE *err);
static int parse_forward(struct config *cfg, const char *name, const char *arg, FILE *err);
static int forward_finish(struct config *cfg, FILE *err);
static int config_finish(struct config *cfg, FILE *err);

/* A row per option reads better than clang-format's field per line. */
/* clang-format off */
#define FIELD(f) .off = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define NUMBER(f, lo, hi, exp) \
	.type = CONFIG_OPT_NUMBER, FIELD(f), .min = (lo), .max = (hi), .expected = (exp)
#define FLAG(f, v) .type = CONFIG_OPT_FLAG, FIELD(f), .min = (v)
#define WORDS(f, ...) \
	.type = CONFIG_OPT_WORDS, FIELD(f), \
	.words = (const struct config_word[]){ __VA_ARGS__, { NULL, 0 } }

const struct config_option config_options[] = {
	/* Capture */
	{ .name = "mode", .key = "mode", .arg = "MODE", .section = "Capture:",
	  WORDS(mode, { "tproxy", MODE_TPROXY }, { "nfqueue", MODE_NFQUEUE }),
	  .help = "tproxy: UDP and TCP through TPROXY; nfqueue: UDP through\n"
		  "NFQUEUE with raw-socket answers, TCP through TPROXY\n"
		  "(default: tproxy)" },
	{ .name = "fail", .key = "fail", .arg = "open|closed",
	  WORDS(fail_closed, { "open", 0 }, { "closed", 1 }),
	  .help = "while dotgw is not serving (stopped, crashed, killed, queue\n"
		  "full): open lets DNS pass in plaintext; closed blocks it\n"
		  "until dotgw serves again or --remove-rules (default: open)" },
	{ .name = "handover-wait", .key = "handover-wait", .arg = "SECONDS",
	  NUMBER(handover_wait, 0, 300, "0 to 300"),
	  .help = "on SIGTERM, keep serving up to SECONDS until a newer\n"
		  "dotgw captures, then hand over to it (default: 0: hand over\n"
		  "only to one that captures already)" },
	{ .name = "non-recursive", .key = "non-recursive", .arg = "forward|pass",
	  WORDS(nonrec_pass, { "forward", 0 }, { "pass", 1 }),
	  .help = "\n"
		  "queries that are not a stub's (RD=0, CH class, AXFR/IXFR,\n"
		  "NOTIFY/UPDATE, no question): forward them to the upstream like\n"
		  "the others, or (nfqueue mode, UDP) let them pass untouched to\n"
		  "the address they were sent to (default: forward)" },
	{ .name = "queues", .key = "queues", .arg = "N",
	  NUMBER(queues, 1, CONFIG_MAX_QUEUES, "1 to 64"),
	  .help = "nfqueue mode: queues and worker threads (default: CPUs)" },
	{ .name = "workers", .key = "workers", .arg = "N",
	  NUMBER(workers, 1, CONFIG_MAX_QUEUES, "1 to 64"),
	  .help = "tproxy mode: worker threads, each with SO_REUSEPORT\n"
		  "listeners, sharing one cache (default: 1);\n"
		  "nfqueue mode runs one per queue (--queues)" },
	{ .name = "queue-num", .key = "queue-num", .arg = "N",
	  NUMBER(queue_num, 0, 65535, "0 to 65535"),
	  .help = "nfqueue mode: number of the first queue (default: 0)" },
	{ .name = "scope", .key = "scope", .arg = "SCOPE",
	  WORDS(scope, { "host", RULESET_SCOPE_HOST }, { "gateway", RULESET_SCOPE_GATEWAY },
		{ "both", RULESET_SCOPE_HOST | RULESET_SCOPE_GATEWAY }),
	  .help = "host: this machine's own DNS; gateway: forwarded DNS;\n"
		  "both (default: host)" },
	{ .name = "interface", .key = "interface", .arg = "IFACE", .list = LIST_INTERFACES,
	  .parse = parse_interface,
	  .help = "gateway scope: capture only DNS arriving on IFACE\n"
		  "(repeatable); gateway scope needs it or --client" },
	{ .name = "client", .key = "client", .arg = "CIDR", .list = LIST_CLIENTS,
	  .parse = parse_client,
	  .help = "gateway scope: capture only DNS from these sources\n"
		  "(repeatable; default: from any)" },
	{ .name = "capture-local", .key = "capture-local", FLAG(capture_local, 1),
	  .help = "also capture DNS addressed to this machine's own addresses\n"
		  "(default: a DNS server here gets its queries untouched)" },
	{ .name = "exempt", .key = "exempt", .arg = "CIDR", .list = LIST_EXEMPT,
	  .parse = parse_exempt,
	  .help = "never capture DNS from or to these addresses, e.g. a\n"
		  "local resolver (repeatable)" },
	{ .name = "exempt-interface", .key = "exempt-interface", .arg = "IFACE",
	  .list = LIST_EXEMPT_IFACES, .parse = parse_exempt_iface,
	  .help = "\n"
		  "never capture DNS that the routing table sends out\n"
		  "through IFACE, a VPN tunnel (repeatable; a trailing *\n"
		  "matches the names that start so: 'wg*', 'tun*')" },
	{ .name = "table", .key = "table", .arg = "NAME", .parse = parse_table,
	  .help = "name of dotgw's nftables table, family inet (default: dotgw)" },
	{ .name = "tproxy-port", .key = "tproxy-port", .arg = "PORT",
	  NUMBER(tproxy_port, 1, 65535, "a port from 1 to 65535, not 53"), .not_min = 53,
	  .not_max = 53,
	  .help = "port of the transparent listeners (default: 10053)" },
	{ .name = "mark", .key = "mark", .arg = "VALUE",
	  NUMBER(capture_mark, 1, UINT32_MAX, "a non-zero 32-bit mark"),
	  .help = "firewall mark of captured packets (default: 0xd07)" },
	{ .name = "bypass-mark", .key = "bypass-mark", .arg = "VALUE",
	  NUMBER(bypass_mark, 1, UINT32_MAX, "a non-zero 32-bit mark"),
	  .help = "firewall mark of dotgw's own sockets (default: 0xd08)" },
	{ .name = "route-table", .key = "route-table", .arg = "N",
	  NUMBER(route_table, 1, 0xfffffff0,
		 "a table number from 1 to 4294967280, not 253, 254 or 255"),
	  .not_min = 253, .not_max = 255,
	  .help = "policy-routing table for captured packets (default: 853)" },
	{ .name = "rule-priority", .key = "rule-priority", .arg = "N",
	  NUMBER(rule_priority, 1, 32765, "a priority from 1 to 32765"),
	  .help = "priority of the fwmark policy rules (default: 853)" },
	/* a command, not a setting: in a file it would remove the rules at every start */
	{ .name = "remove-rules", .key = NULL, FLAG(remove_rules, 1),
	  .help = "remove the table and policy routing a run left (with\n"
		  "--fail closed: the block), and exit" },
	/* Upstreams */
	{ .name = "upstream", .key = "upstream", .arg = "ADDR[@PORT][#AUTH-NAME]",
	  .list = LIST_UPSTREAMS, .section = "Upstreams:", .parse = parse_upstream,
	  .help = "\n"
		  "a DNS-over-TLS resolver (repeatable; port 853 by default;\n"
		  "IPv6 as ADDR or [ADDR]@PORT). The certificate must be valid\n"
		  "for AUTH-NAME (also sent as SNI), or for ADDR when no name is\n"
		  "given. Default: 1.1.1.1 and 1.0.0.1 (cloudflare-dns.com),\n"
		  "9.9.9.9 (dns.quad9.net). 'asked': send each query to the DoT\n"
		  "resolver that the address the client asked designates by\n"
		  "verified DDR (RFC 9462); the other upstreams (or the\n"
		  "defaults) serve the rest. https://ADDR[:PORT]/PATH#AUTH-NAME:\n"
		  "a DNS-over-HTTPS resolver (RFC 8484, HTTP/2 only; port 443\n"
		  "by default), with the same checks and --pin" },
	{ .name = "asked-max", .key = "asked-max", .arg = "N",
	  NUMBER(asked_max, 1, 4096, "1 to 4096"),
	  .help = "--upstream asked: resolver addresses remembered per\n"
		  "worker, least recently used forgotten first (default: 64)" },
	{ .name = "pin", .key = "pin", .arg = "BASE64", .list = LIST_UPSTREAMS, .parse = parse_pin,
	  .help = "SHA-256 SPKI pin of the upstream given just before\n"
		  "(repeatable; RFC 7858 4.2). With an auth name both must\n"
		  "hold; without one the pin alone authenticates" },
	{ .name = "doh-fallback", .key = "doh-fallback", .arg = "PATH|no", .list = LIST_UPSTREAMS,
	  .parse = parse_doh_fallback,
	  .help = "the DNS-over-HTTPS fallback of the DoT upstream given just\n"
		  "before: when its port 853 cannot be reached, the same\n"
		  "address, name and pins at port 443, PATH (default:\n"
		  "/dns-query); 853 is tried again every --doh-reprobe\n"
		  "seconds. 'no': none" },
	{ .name = "doh-reprobe", .key = "doh-reprobe", .arg = "SECONDS",
	  NUMBER(doh_reprobe_s, 1, 3600, "1 to 3600 seconds"),
	  .help = "on a DoH fallback: try port 853 again this often\n"
		  "(default: 60)" },
	{ .name = "ca-file", .key = "ca-file", .arg = "PATH", .parse = parse_ca_file,
	  .help = "trust anchors in PEM (default: the system trust store)" },
	{ .name = "tls-auth", .key = "tls-auth", .arg = "MODE",
	  WORDS(tls_opportunistic, { "strict", 0 }, { "opportunistic", 1 }),
	  .help = "strict: never use an upstream that fails authentication;\n"
		  "opportunistic: use it anyway, with a warning per\n"
		  "connection (default: strict)" },
	{ .name = "upstream-policy", .key = "upstream-policy", .arg = "P",
	  WORDS(upstream_choice, { "ordered", UPSTREAM_CHOICE_ORDERED },
		{ "round-robin", UPSTREAM_CHOICE_ROUND_ROBIN }, { "fastest", UPSTREAM_CHOICE_FASTEST }),
	  .help = "ordered, round-robin or fastest (lowest smoothed RTT)\n"
		  "(default: ordered)" },
	{ .name = "pool-size", .key = "pool-size", .arg = "N",
	  NUMBER(pool_size, 1, CONFIG_MAX_POOL, "1 to 16"),
	  .help = "TLS connections per upstream and worker, at most\n"
		  "(default: 4 per upstream shared by the workers: each\n"
		  "has 4 / workers (at least 1), and opens more while\n"
		  "all of them together hold fewer than 4);\n"
		  "past 2 only for an upstream 5 ms away or more,\n"
		  "or when the open ones have no room" },
	{ .name = "conn-inflight", .key = "conn-inflight", .arg = "N",
	  NUMBER(conn_inflight, 1, 1024, "1 to 1024"),
	  .help = "queries in flight per connection at least; the window\n"
		  "grows to twice the measured bandwidth-delay product,\n"
		  "and while queries wait for as long as the answers per\n"
		  "second rise with it, up to 1008 (default: 128)" },
	{ .name = "idle-timeout", .key = "idle-timeout", .arg = "MS",
	  NUMBER(idle_ms, 100, 3600000, "100 to 3600000 milliseconds"),
	  .help = "close idle upstream connections; shortened by the server's\n"
		  "edns-tcp-keepalive (default: 30000)" },
	{ .name = "stall-timeout", .key = "stall-timeout", .arg = "MS",
	  NUMBER(stall_ms, 50, 60000, "50 to 60000 milliseconds"),
	  .help = "queries in flight and no answer for MS/2: probe the\n"
		  "connection; none by MS: close it, retry elsewhere\n"
		  "(default: 1000)" },
	{ .name = "standby", .key = "standby", .arg = "SECONDS",
	  NUMBER(standby_s, 0, 3600, "0 to 3600 seconds"),
	  .help = "an upstream connection closed idle while queries came in\n"
		  "the last SECONDS: open a fresh one at once, so that the\n"
		  "next query finds it ready; 0: off (default: 10)" },
	{ .name = "tcp-fastopen", .key = "tcp-fastopen", FLAG(tcp_fastopen, 1),
	  .help = "TCP Fast Open to the upstreams: once a server gave a\n"
		  "cookie, the TLS ClientHello rides in the SYN" },
	{ .name = "no-padding", .key = "no-padding", FLAG(padding, 0),
	  .help = "do not pad queries to 128 octets (RFC 8467)" },
	{ .name = "timeout", .key = "timeout", .arg = "MS",
	  NUMBER(timeout_ms, 100, 60000, "100 to 60000 milliseconds"),
	  .help = "deadline of each query; SERVFAIL after it (default: 3000)" },
	{ .name = "unreachable", .key = "unreachable", .arg = "servfail|plaintext",
	  WORDS(unreachable_plain, { "servfail", 0 }, { "plaintext", 1 }),
	  .help = "\n"
		  "when no upstream answers: servfail keeps encrypted-or-\n"
		  "nothing; plaintext lets queries pass UNENCRYPTED to the\n"
		  "address asked (captive portals) while queries have failed\n"
		  "and no upstream answered for --unreachable-after, until\n"
		  "one answers (default: servfail)" },
	{ .name = "unreachable-after", .key = "unreachable-after", .arg = "SECONDS",
	  NUMBER(unreachable_after, 1, 3600, "1 to 3600 seconds"),
	  .help = "--unreachable plaintext: how long (default: 10)" },
	/* Cache */
	{ .name = "cache-size", .key = "cache-size", .arg = "N[k|M]", .section = "Cache:",
	  .parse = parse_cache_size,
	  .help = "answer cache in all (its heap: entries and table),\n"
		  "shared by the workers; 0 turns it off (default: 1M)" },
	{ .name = "cache-max-ttl", .key = "cache-max-ttl", .arg = "SECONDS",
	  NUMBER(cache_max_ttl, 1, 604800, "1 to 604800 seconds"),
	  .help = "cache answers this long at most (default: 86400)" },
	{ .name = "serve-stale", .key = "serve-stale", .arg = "SECONDS",
	  NUMBER(serve_stale, 0, 604800, "0 to 604800 seconds"),
	  .help = "when no upstream answers, serve an expired answer up to\n"
		  "SECONDS past its expiry, with TTL 30 (RFC 8767);\n"
		  "0 is off, at most 604800 (default: 0)" },
	{ .name = "prefetch", .key = "prefetch", FLAG(prefetch, 1),
	  .help = "refresh a cached answer in the background when a query\n"
		  "hits it in the last tenth of its TTL (at least its last\n"
		  "2 s): popular names never expire (default: on)" },
	{ .name = "no-prefetch", .key = "no-prefetch", FLAG(prefetch, 0),
	  .help = "let cached answers expire; the next query waits for the\n"
		  "upstream" },
	/* Policy */
	{ .name = "group", .key = "group", .arg = "NAME=CIDR|@IFACE[,...]", .list = LIST_GROUPS,
	  .section = "Policy (client groups; clients in no group are not policed):",
	  .parse = parse_group,
	  .help = "a client group: sources in these prefixes, or\n"
		  "arriving on these interfaces (the first group that holds\n"
		  "a client is its group)" },
	{ .name = "deny", .key = "deny", .arg = "NAME:SUFFIX[=ACTION]", .list = LIST_GROUPS,
	  .parse = parse_deny,
	  .help = "names at or under SUFFIX: ACTION is nxdomain (default),\n"
		  "refused, or an IPv4/IPv6 address to answer with (sinkhole)" },
	{ .name = "allow", .key = "allow", .arg = "NAME:SUFFIX", .list = LIST_GROUPS,
	  .parse = parse_allow,
	  .help = "names at or under SUFFIX resolve; a group with allow rules\n"
		  "gets REFUSED for everything else (longest suffix wins)" },
	{ .name = "group-upstreams", .key = "group-upstreams", .arg = "NAME=N[,N]...",
	  .list = LIST_GROUPS, .parse = parse_group_upstreams,
	  .help = "the group's queries go only to these upstreams\n"
		  "(1 = the first --upstream)" },
	{ .name = "egress", .key = "egress", .arg = "NAME", .list = LIST_GROUPS,
	  .parse = parse_egress,
	  .help = "the group may open connections only to addresses that\n"
		  "answers dotgw gave it contained (nftables sets, see\n"
		  "docs/egress.md); everything else is dropped and counted" },
	{ .name = "egress-allow", .key = "egress-allow", .arg = "NAME:CIDR", .list = LIST_GROUPS,
	  .parse = parse_egress_allow,
	  .help = "the group may always reach CIDR (repeatable; implies\n"
		  "--egress NAME)" },
	{ .name = "egress-grace", .key = "egress-grace", .arg = "SECONDS",
	  NUMBER(egress_grace, 0, 86400, "0 to 86400 seconds"),
	  .help = "an address stays allowed this long past its record's TTL\n"
		  "(capped by --cache-max-ttl) (default: 300)" },
	{ .name = "egress-max", .key = "egress-max", .arg = "N",
	  NUMBER(egress_max, 1, 1048576, "1 to 1048576"),
	  .help = "addresses per group and family at most; more are refused,\n"
		  "counted and logged (default: 65536)" },
	{ .name = "show-egress", .arg = "NAME", .parse = parse_show_egress,
	  .help = "print what the --egress group NAME may reach now, and exit" },
	/* Forwarding */
	{ .name = "forward", .key = "forward", .arg = "[GROUP:]SUFFIX=TARGET", .list = LIST_FORWARDS,
	  .section = "Forwarding (per domain; the longest suffix wins):", .parse = parse_forward,
	  .help = "\n"
		  "names at or under SUFFIX (of GROUP's clients only, when\n"
		  "given) go to TARGET: N (the Nth --upstream), ADDR[@PORT]#NAME\n"
		  "(a DoT upstream of their own), plain:ADDR[@PORT] (UNENCRYPTED\n"
		  "DNS to an internal resolver), or asked (left alone, to the\n"
		  "address the client asked) (repeatable)" },
	{ .name = "no-local-zones", .key = "no-local-zones", FLAG(local_zones, 0),
	  .help = "\n"
		  "forward the locally served zones (RFC 6303 reverse zones,\n"
		  "home.arpa, local, localhost, invalid, resolver.arpa) like\n"
		  "any name; by default they go to the asked address when it\n"
		  "is private or link-local, else dotgw answers them" },
	/* Clients */
	{ .name = "rate-limit", .key = "rate-limit", .arg = "QPS", .section = "Clients:",
	  NUMBER(rate_limit, 0, 10000000, "0 to 10000000 queries per second"),
	  .help = "queries per second per client (address, or prefix below)\n"
		  "and worker; 0 is off (default: 0)" },
	{ .name = "rate-burst", .key = "rate-burst", .arg = "N",
	  NUMBER(rate_burst, 1, 20000000, "1 to 20000000 queries"),
	  .help = "queries a client may send at once (default: 2 x QPS)" },
	{ .name = "rate-limit-prefix4", .key = "rate-limit-prefix4", .arg = "N",
	  NUMBER(rate_prefix4, 1, 32, "a prefix length from 1 to 32"),
	  .help = "IPv4 clients counted per /N (default: 32)" },
	{ .name = "rate-limit-prefix6", .key = "rate-limit-prefix6", .arg = "N",
	  NUMBER(rate_prefix6, 1, 128, "a prefix length from 1 to 128"),
	  .help = "IPv6 clients counted per /N (default: 56)" },
	{ .name = "rate-limit-action", .key = "rate-limit-action", .arg = "A",
	  WORDS(rate_refuse, { "refused", 1 }, { "drop", 0 }),
	  .help = "refused (answer REFUSED) or drop (default: refused)" },
	{ .name = "udp-size-cap", .key = "udp-size-cap", .arg = "N",
	  NUMBER(udp_size_cap, 512, 65535, "512 to 65535 octets"),
	  .help = "largest UDP answer sent, whatever the client advertises;\n"
		  "larger answers are truncated (TC) (default: 1232)" },
	{ .name = "tcp-idle-timeout", .key = "tcp-idle-timeout", .arg = "MS",
	  NUMBER(tcp_idle_ms, 100, 3600000, "100 to 3600000 milliseconds"),
	  .help = "close idle TCP client connections after MS (default: 10000)" },
	{ .name = "max-tcp-clients", .key = "max-tcp-clients", .arg = "N",
	  NUMBER(max_tcp_clients, 1, 65536, "1 to 65536"),
	  .help = "TCP client connections at once (default: 256)" },
	{ .name = "max-inflight", .key = "max-inflight", .arg = "N",
	  NUMBER(max_inflight, 1, 1000000, "1 to 1000000"),
	  .help = "queries in flight at once, per worker; more get SERVFAIL\n"
		  "(default: 4096)" },
	{ .name = "max-inflight-per-client", .key = "max-inflight-per-client", .arg = "N",
	  NUMBER(max_inflight_client, 1, 1000000, "1 to 1000000"),
	  .help = "\n"
		  "of them, what one client (counted as for --rate-limit)\n"
		  "may have in flight; as many more wait, the rest get\n"
		  "SERVFAIL (default: half of --max-inflight or of\n"
		  "--pool-size x --conn-inflight, the smaller: 256 with\n"
		  "one worker, 128 with two;\n"
		  "growing while its answers come back)" },
	{ .name = "hold-timeout", .key = "hold-timeout", .arg = "MS",
	  NUMBER(hold_ms, 100, 600000, "100 to 600000 milliseconds"),
	  .help = "a query answered SERVFAIL at its deadline while an\n"
		  "upstream connection still has it keeps its place in its\n"
		  "client's share until the upstream ends it, MS at most\n"
		  "(default: 30000)" },
	/* Process */
	{ .name = "config", .key = NULL, .arg = "PATH", .section = "Process:", .type = CONFIG_OPT_CLI,
	  .help = "read settings from PATH first: 'key = value' lines, a key\n"
		  "for each long option; the command line overrides them\n"
		  "(default: " CONFIG_DEFAULT_PATH " if it exists; none:\n"
		  "read no file)" },
	{ .name = "watch-config", .key = "watch-config", FLAG(watch_config, 1),
	  .help = "reload when the --config file changes (inotify on its\n"
		  "directory: edits in place, files renamed over it, and\n"
		  "Kubernetes ConfigMap volumes), as SIGHUP does; only when\n"
		  "its content changed (default: off; restart to change)" },
	{ .name = "check-config", .key = NULL, FLAG(check_config, 1),
	  .help = "check the file and the options, say so, and exit" },
	{ .name = "user", .key = "user", .arg = "NAME", .parse = parse_user,
	  .help = "run as NAME after setup (default: dotgw if it exists,\n"
		  "else nobody)" },
	{ .name = "log-level", .key = "log-level", .arg = "LEVEL", .parse = parse_log_level,
	  .help = "error, warn, info or debug (default: info)" },
	{ .name = "log-target", .key = "log-target", .arg = "T",
	  WORDS(log_syslog, { "stderr", 0 }, { "syslog", 1 }),
	  .help = "stderr (with journald priority prefixes under systemd) or\n"
		  "syslog (facility daemon) (default: stderr)" },
	{ .name = "query-log", .key = "query-log", FLAG(query_log, 1),
	  .help = "log a line per answered query: client, name, type, rcode,\n"
		  "where the answer came from, latency" },
	{ .name = "dnstap", .key = "dnstap", .arg = "SOCKET", .parse = parse_dnstap,
	  .help = "send client queries and responses as dnstap to the Frame\n"
		  "Streams unix socket SOCKET (default: off)" },
	{ .name = "metrics", .key = "metrics", .arg = "[ADDR:]PORT", .parse = parse_metrics,
	  .help = "serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		  "(address default 127.0.0.1; default: off)" },
	{ .name = "dataplane-check", .key = "dataplane-check", .arg = "SECONDS",
	  NUMBER(dataplane_check, 0, 86400, "0 to 86400 seconds"),
	  .help = "\n"
		  "look for BPF programs (Cilium, Calico eBPF) that may route\n"
		  "DNS around the host's netfilter, at start, on reload and\n"
		  "every SECONDS, and warn of them; 0: off (default: 60)" },
	{ .name = "health", .key = NULL, .arg = "URL", .type = CONFIG_OPT_CLI,
	  .help = "a mode of its own: GET URL (http://ADDR:PORT/PATH, e.g.\n"
		  "the /readyz of --metrics), exit 0 on status 200, else 1\n"
		  "with the reason on stderr" },
	{ .name = "help", .key = NULL, .short_name = 'h', .type = CONFIG_OPT_CLI,
	  .help = "show this help and exit" },
	{ .name = "version", .key = NULL, .short_name = 'V', .type = CONFIG_OPT_CLI,
	  .help = "show the version and exit" },
	{ .name = NULL },
};
/* clang-format on */

#define N_OPTIONS (sizeof(config_options) / sizeof(config_options[0]) - 1)
#define OPT_VAL0  0x100 /* getopt's value of config_options[i]: OPT_VAL0 + i */
#define HELP_COL  27	/* where --help's explanations start */

static const char usage_head[] =
	"Usage: dotgw [OPTION]...\n"
	"Capture plain DNS (port 53, UDP and TCP, IPv4 and IPv6) with nftables and answer it over\n"
	"DNS-over-TLS (RFC 7858), replying from the address the client asked.\n";

static const char usage_tail[] =
	"\n"
	"dotgw installs its own nftables table and fwmark policy routing, and removes them on\n"
	"SIGINT or SIGTERM (with --fail closed they stay and block DNS). SIGUSR1 logs the\n"
	"counters. It needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE, CAP_SETUID,\n"
	"CAP_SETGID, CAP_SETPCAP) to start, and keeps only CAP_NET_ADMIN and\n"
	"CAP_NET_BIND_SERVICE.\n";

/* usage_print - --help, from the table: "  --name ARG", then the help lines at HELP_COL. */
static void usage_print(FILE *out)
{
	fputs(usage_head, out);
	for (const struct config_option *o = config_options; o->name; o++) {
		int len;

		if (o->section)
			fprintf(out, "\n%s\n", o->section);
		if (o->short_name)
			len = fprintf(out, "  -%c, --%s", o->short_name, o->name);
		else
			len = fprintf(out, "  --%s%s%s", o->name, o->arg ? " " : "",
				      o->arg ? o->arg : "");
		/* a long head: the help goes below it, or two spaces after it */
		if (o->help[0] != '\n')
			fprintf(out, "%*s", len <= HELP_COL - 2 ? HELP_COL - len : 2, "");
		for (const char *p = o->help; *p; p++) {
			fputc(*p, out);
			if (*p == '\n')
				fprintf(out, "%*s", HELP_COL, "");
		}
		fputc('\n', out);
	}
	fputs(usage_tail, out);
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	config_init_zeroed(cfg);
}

void config_init_zeroed(struct config *cfg)
{
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
	cfg->unreachable_after = 10;
	cfg->udp_size_cap = 1232;
	cfg->tcp_idle_ms = 10000;
	cfg->max_tcp_clients = 256;
	cfg->max_inflight = 4096;
	cfg->hold_ms = 30000;
	cfg->queues = 0;  /* the number of CPUs, decided in config_parse_args */
	cfg->workers = 0; /* likewise */
	cfg->upstream_choice = UPSTREAM_CHOICE_ORDERED;
	cfg->pool_size = 0; /* CONFIG_POOL_TOTAL shared by the workers, in config_finish */
	cfg->asked_max = 64;
	cfg->conn_inflight = 128;
	cfg->idle_ms = 30000;
	cfg->standby_s = 10;
	cfg->stall_ms = 1000;
	cfg->doh_reprobe_s = 60;
	cfg->padding = true;
	cfg->cache_size = 1u << 20;
	cfg->cache_max_ttl = 86400;
	cfg->egress_grace = 300;
	cfg->egress_max = 65536;
	cfg->serve_stale = 0;
	cfg->prefetch = true;
	cfg->rate_limit = 0;
	cfg->rate_burst = 0; /* 2 x rate_limit, decided in config_parse_args */
	cfg->rate_prefix4 = 32;
	cfg->rate_prefix6 = 56;
	cfg->rate_refuse = true;
	cfg->queue_num = 0;
	cfg->local_zones = true;
	cfg->dataplane_check = 60;
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

/*
 * config_parse_doh - a DoH upstream, "ADDR[:PORT]/PATH#AUTH-NAME" after "https://" (IPv6 in
 * brackets), port 443 by default. 0 or -EINVAL.
 */
static int config_parse_doh(struct upstream_config *u, const char *spec)
{
	char host[INET6_ADDRSTRLEN + 8], ip[INET6_ADDRSTRLEN];
	const char *path = strchr(spec, '/'), *name = strchr(spec, '#');
	struct upstream_config r;
	union sockaddr_any a;
	size_t plen;

	if (!path || (name && name < path) || (size_t)(path - spec) >= sizeof(host))
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	memcpy(host, spec, (size_t)(path - spec));
	host[path - spec] = '\0';
	plen = name ? (size_t)(name - path) : strlen(path);
	if (plen > CONFIG_DOH_PATH_MAX)
		return -EINVAL;
	memcpy(r.doh_path, path, plen);
	r.doh_path[plen] = '\0';
	if (!doh_path_valid(r.doh_path))
		return -EINVAL;
	if (name) {
		if (strlen(name + 1) > CONFIG_AUTH_NAME_MAX || !valid_auth_name(name + 1))
			return -EINVAL;
		strcpy(r.auth_name, name + 1);
	}
	if (addr_parse(&a, host, NULL, DEFAULT_DOH_PORT) < 0)
		return -EINVAL;
	memcpy(&r.addr, &a, sizeof(a));
	r.addrlen = addr_len(&a);
	inet_ntop(a.sa.sa_family, addr_bytes(&a), ip, sizeof(ip));
	if (snprintf(r.text, sizeof(r.text), "https://%s%s%s:%u%s%s%s",
		     r.addrlen == sizeof(a.sin6) ? "[" : "", ip,
		     r.addrlen == sizeof(a.sin6) ? "]" : "", (unsigned int)addr_port(&a),
		     r.doh_path, r.auth_name[0] ? "#" : "", r.auth_name) >= (int)sizeof(r.text))
		return -EINVAL; /* too long to name */
	*u = r;
	return 0;
}

int config_parse_upstream(struct upstream_config *u, const char *spec)
{
	char buf[INET6_ADDRSTRLEN + 8 + CONFIG_AUTH_NAME_MAX + 4];
	struct upstream_config r;
	union sockaddr_any a;
	char *name;
	uint32_t portnum;

	if (strncmp(spec, "https://", 8) == 0)
		return config_parse_doh(u, spec + 8);
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
	strcpy(r.doh_fallback, DEFAULT_DOH_PATH); /* issue 21: on by default */

	struct sockaddr_in *sin = (struct sockaddr_in *)&r.addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r.addr;
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(r.addr.ss_family,
		  r.addr.ss_family == AF_INET ? (const void *)&sin->sin_addr
					      : (const void *)&sin6->sin6_addr,
		  ip, sizeof(ip));
	snprintf(r.text, sizeof(r.text), "%s%s%s@%u%s%s", r.addrlen == sizeof(*sin6) ? "[" : "", ip,
		 r.addrlen == sizeof(*sin6) ? "]" : "", (unsigned int)portnum,
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

static struct policy_group *group_find(struct config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->groups.n_groups; i++)
		if (strlen(cfg->groups.groups[i].name) == len &&
		    strncmp(cfg->groups.groups[i].name, name, len) == 0)
			return &cfg->groups.groups[i];
	return NULL;
}

/* The options parse_policy reads. */
enum { OPT_GROUP, OPT_ALLOW, OPT_DENY, OPT_GROUP_UPSTREAMS, OPT_EGRESS, OPT_EGRESS_ALLOW };

/* parse_policy - the --group, --allow, --deny and --group-upstreams values. */
static int parse_policy(struct config *cfg, int opt, const char *name, const char *arg, FILE *err)
{
	const char *sep =
		opt == OPT_EGRESS
			? arg + strlen(arg)
			: strchr(arg, opt == OPT_GROUP || opt == OPT_GROUP_UPSTREAMS ? '=' : ':');
	struct policy_group *g;
	char list[1024], *tok, *save;

	if (!sep || sep == arg || sep - arg >= (long)sizeof(g->name))
		return bad_value(err, name, arg,
				 opt == OPT_GROUP	      ? "NAME=CIDR[,CIDR]..."
				 : opt == OPT_GROUP_UPSTREAMS ? "NAME=N[,N]..."
				 : opt == OPT_EGRESS	      ? "NAME"
				 : opt == OPT_EGRESS_ALLOW    ? "NAME:CIDR"
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
					return bad_value(
						err, name, arg,
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
	if (opt == OPT_EGRESS) {
		g->egress = true;
		return 0;
	}
	if (opt == OPT_EGRESS_ALLOW) {
		if (g->n_egress_allow == POLICY_MAX_CIDRS ||
		    cidr_parse(&g->egress_allow[g->n_egress_allow], sep + 1) < 0)
			return bad_value(err, name, arg, "NAME:CIDR (16 per group at most)");
		g->n_egress_allow++;
		g->egress = true; /* an exception means nothing without the policy */
		return 0;
	}
	if (opt == OPT_GROUP_UPSTREAMS) {
		if (strlen(sep + 1) >= sizeof(list))
			return bad_value(err, name, arg, "a shorter list");
		strcpy(list, sep + 1);
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			uint32_t idx;

			if (parse_u32(tok, 1, CONFIG_MAX_UPSTREAMS, &idx) < 0)
				return bad_value(err, name, arg,
						 "NAME=N[,N]... with N from 1 to 16");
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
		return bad_value(err, name, arg,
				 opt == OPT_ALLOW ? "NAME:SUFFIX" : "NAME:SUFFIX[=ACTION]");
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

static int parse_group(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_policy(cfg, OPT_GROUP, name, arg, err);
}

static int parse_allow(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_policy(cfg, OPT_ALLOW, name, arg, err);
}

static int parse_deny(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_policy(cfg, OPT_DENY, name, arg, err);
}

static int parse_group_upstreams(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_policy(cfg, OPT_GROUP_UPSTREAMS, name, arg, err);
}

static int parse_egress(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_policy(cfg, OPT_EGRESS, name, arg, err);
}

static int parse_egress_allow(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_policy(cfg, OPT_EGRESS_ALLOW, name, arg, err);
}

static int parse_show_egress(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (!*arg || strlen(arg) >= sizeof(cfg->show_egress))
		return bad_value(err, name, arg, "a group's NAME");
	strcpy(cfg->show_egress, arg);
	return 0;
}

static int parse_pin(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	struct upstream_config *u;
	uint8_t raw[32];

	if (cfg->n_upstreams == 0) {
		fprintf(err, "dotgw: --pin: give it after the --upstream it belongs to\n");
		return -EINVAL;
	}
	u = &cfg->upstreams[cfg->n_upstreams - 1];
	if (tls_pin_parse(raw, arg) < 0)
		return bad_value(err, name, arg, "the base64 of a SHA-256 digest");
	if (u->n_pins == CONFIG_MAX_PINS) {
		fprintf(err, "dotgw: --pin: at most %d pins per upstream\n", CONFIG_MAX_PINS);
		return -EINVAL;
	}
	memcpy(u->pins[u->n_pins++], raw, 32);
	return 0;
}

static int parse_doh_fallback(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	struct upstream_config *u;

	if (cfg->n_upstreams == 0) {
		fprintf(err, "dotgw: --%s: give it after the --upstream it belongs to\n", name);
		return -EINVAL;
	}
	u = &cfg->upstreams[cfg->n_upstreams - 1];
	if (u->doh_path[0]) {
		fprintf(err, "dotgw: --%s: the upstream before it is DoH already\n", name);
		return -EINVAL;
	}
	if (strcmp(arg, "no") == 0) {
		u->doh_fallback[0] = '\0';
		return 0;
	}
	if (!doh_path_valid(arg))
		return bad_value(err, name, arg, "a path such as /dns-query, or no");
	strcpy(u->doh_fallback, arg);
	return 0;
}

static int parse_cache_size(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	char num[32], *suffix;
	unsigned long mult = 1;
	size_t len = strlen(arg);
	uint32_t v;

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

static int parse_dnstap(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (!*arg || strlen(arg) >= sizeof(cfg->dnstap_buf))
		return bad_value(err, name, arg, "a unix socket path of at most 107 octets");
	strcpy(cfg->dnstap_buf, arg);
	cfg->dnstap = cfg->dnstap_buf;
	return 0;
}

static int parse_metrics(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	struct sockaddr_storage ss;

	if (strlen(arg) >= sizeof(cfg->metrics_buf) || metrics_parse_addr(arg, &ss) < 0)
		return bad_value(err, name, arg, "PORT, ADDR:PORT or [ADDR]:PORT");
	strcpy(cfg->metrics_buf, arg);
	cfg->metrics = cfg->metrics_buf;
	return 0;
}

/* parse_cidr_list - --client, --exempt: one more prefix. */
static int parse_cidr_list(struct cidr *list, size_t *n, const char *name, const char *arg,
			   FILE *err)
{
	if (*n == CONFIG_MAX_CIDRS) {
		fprintf(err, "dotgw: --%s: at most %d prefixes\n", name, CONFIG_MAX_CIDRS);
		return -EINVAL;
	}
	if (cidr_parse(&list[*n], arg) < 0)
		return bad_value(err, name, arg, "an address or ADDR/LEN");
	(*n)++;
	return 0;
}

static int parse_client(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_cidr_list(cfg->clients, &cfg->n_clients, name, arg, err);
}

static int parse_exempt(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	return parse_cidr_list(cfg->exempt, &cfg->n_exempt, name, arg, err);
}

static int parse_exempt_iface(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (!ruleset_ifpattern_valid(arg))
		return bad_value(err, name, arg,
				 "an interface name of 1 to 15 characters, or a prefix "
				 "followed by a final '*' (e.g. 'wg*')");
	if (cfg->n_exempt_ifaces == CONFIG_MAX_INTERFACES) {
		fprintf(err, "dotgw: --%s: at most %d interfaces\n", name, CONFIG_MAX_INTERFACES);
		return -EINVAL;
	}
	strcpy(cfg->exempt_ifaces_buf[cfg->n_exempt_ifaces], arg);
	cfg->exempt_ifaces[cfg->n_exempt_ifaces] = cfg->exempt_ifaces_buf[cfg->n_exempt_ifaces];
	cfg->n_exempt_ifaces++;
	return 0;
}

static int parse_interface(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (strlen(arg) == 0 || strlen(arg) >= 16 || strchr(arg, '/') || strchr(arg, ' '))
		return bad_value(err, name, arg, "an interface name of 1 to 15 characters");
	if (cfg->n_interfaces == CONFIG_MAX_INTERFACES) {
		fprintf(err, "dotgw: --interface: at most %d interfaces\n", CONFIG_MAX_INTERFACES);
		return -EINVAL;
	}
	strcpy(cfg->interfaces_buf[cfg->n_interfaces], arg);
	cfg->interfaces[cfg->n_interfaces] = cfg->interfaces_buf[cfg->n_interfaces];
	cfg->n_interfaces++;
	return 0;
}

static int parse_upstream(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (strcmp(arg, "asked") == 0) {
		cfg->upstream_asked = true;
		return 0;
	}
	if (cfg->n_upstreams == CONFIG_MAX_UPSTREAMS) {
		fprintf(err, "dotgw: --upstream: at most %d upstreams\n", CONFIG_MAX_UPSTREAMS);
		return -EINVAL;
	}
	if (config_parse_upstream(&cfg->upstreams[cfg->n_upstreams], arg) < 0)
		return bad_value(err, name, arg,
				 "ADDR[@PORT][#AUTH-NAME] or https://ADDR[:PORT]/PATH#AUTH-NAME");
	cfg->n_upstreams++;
	return 0;
}

static int parse_ca_file(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (!*arg || strlen(arg) >= sizeof(cfg->ca_file_buf))
		return bad_value(err, name, arg, "a file name");
	strcpy(cfg->ca_file_buf, arg);
	cfg->ca_file = cfg->ca_file_buf;
	return 0;
}

static int parse_user(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (!*arg || strlen(arg) >= sizeof(cfg->user_buf))
		return bad_value(err, name, arg, "a user name");
	strcpy(cfg->user_buf, arg);
	cfg->user = cfg->user_buf;
	return 0;
}

static int parse_log_level(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	int r = log_level_parse(arg);

	if (r < 0)
		return bad_value(err, name, arg, "error, warn, info or debug");
	cfg->log_level = r;
	return 0;
}

static int parse_table(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	if (!valid_table_name(arg))
		return bad_value(err, name, arg,
				 "a letter then up to 63 letters, digits, '_' or '-'");
	strcpy(cfg->table_buf, arg); /* valid_table_name: at most 64 */
	cfg->table = cfg->table_buf;
	return 0;
}

/* field_store - write v to the option's field, as wide as the field is. */
static void field_store(struct config *cfg, const struct config_option *o, unsigned long v)
{
	char *p = (char *)cfg + o->off;

	switch (o->size) {
	case sizeof(bool): { /* the one-octet fields are all bool */
		bool b = v != 0;

		memcpy(p, &b, sizeof(b));
		break;
	}
	case sizeof(uint16_t): {
		uint16_t x = (uint16_t)v;

		memcpy(p, &x, sizeof(x));
		break;
	}
	case sizeof(uint32_t): {
		uint32_t x = (uint32_t)v;

		memcpy(p, &x, sizeof(x));
		break;
	}
	default: {
		uint64_t x = v;

		memcpy(p, &x, sizeof(x));
		break;
	}
	}
}

/* parse_words - one of the option's words; the message lists them: "a, b or c". */
static int parse_words(struct config *cfg, const struct config_option *o, const char *arg,
		       FILE *err)
{
	char expected[128];
	size_t n = 0, len = 0;

	for (const struct config_word *w = o->words; w->word; w++, n++) {
		if (strcmp(arg, w->word) == 0) {
			field_store(cfg, o, w->value);
			return 0;
		}
	}
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(expected + len, sizeof(expected) - len, "%s%s",
					i == 0	    ? ""
					: i + 1 < n ? ", "
						    : " or ",
					o->words[i].word);
	return bad_value(err, o->name, arg, expected);
}

/* parse_one - one option's value (NULL for a flag); 0, or -EINVAL after a message to err. */
static int parse_one(struct config *cfg, const struct config_option *o, const char *arg, FILE *err)
{
	uint32_t v;

	switch (o->type) {
	case CONFIG_OPT_NUMBER:
		if (parse_u32(arg, o->min, o->max, &v) < 0 ||
		    (o->not_max && v >= o->not_min && v <= o->not_max))
			return bad_value(err, o->name, arg, o->expected);
		field_store(cfg, o, v);
		return 0;
	case CONFIG_OPT_FLAG:
		field_store(cfg, o, o->min);
		return 0;
	case CONFIG_OPT_WORDS:
		return parse_words(cfg, o, arg, err);
	case CONFIG_OPT_SPECIAL:
		return o->parse(cfg, o->name, arg, err);
	default:
		return -EINVAL;
	}
}

/* cli_replaces - does the command line replace the file's entries of repeatable option o? */
static bool cli_replaces(const bool *on_cli, const struct config_option *o)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (on_cli[i] && config_options[i].list == o->list)
			return true;
	return false;
}

struct ini_ctx {
	struct config *cfg;
	FILE *file;
	const char *path;
	unsigned int lineno;
	FILE *err;
	int failed;
	const bool *on_cli; /* by row of config_options: given on the command line */
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
	const struct config_option *o;
	char *msg = NULL;
	size_t msglen = 0;
	FILE *mem;
	int r;

	if (*section) {
		ini_error(c, NULL, "sections are not used: write 'key = value' lines");
		return 1;
	}
	for (o = config_options; o->name; o++)
		if (o->key && strcmp(o->key, name) == 0)
			break;
	if (!o->name) {
		ini_error(c, name, "unknown key (keys are the long options, see dotgw --help)");
		return 1;
	}
	if (o->list && cli_replaces(c->on_cli, o))
		return 1; /* the command line's list replaces the file's */
	if (!o->arg) {
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0)
			value = NULL;
		else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0) {
			/* "prefetch = no" undoes a default that is on */
			field_store(c->cfg, o, !o->min);
			return 1;
		} else {
			ini_error(c, name, "expected yes or no");
			return 1;
		}
	}
	mem = open_memstream(&msg, &msglen);
	if (!mem)
		return 0;
	r = parse_one(c->cfg, o, value, mem);
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

static int config_read_file(struct config *cfg, const char *path, bool explicit, const bool *on_cli,
			    FILE *err)
{
	struct ini_ctx c = {.cfg = cfg, .path = path, .err = err, .on_cli = on_cli};
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

/* long_options_fill - getopt's list from the table: config_options[i] is OPT_VAL0 + i. */
static void long_options_fill(struct option *lo)
{
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &config_options[i];

		lo[i] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL,
					o->short_name ? o->short_name : OPT_VAL0 + (int)i};
	}
	lo[N_OPTIONS] = (struct option){NULL, 0, NULL, 0};
}

/* option_of - the table's row of a getopt value; NULL for 'h', 'V', ':' and '?'. */
static const struct config_option *option_of(int opt)
{
	return opt >= OPT_VAL0 && opt < OPT_VAL0 + (int)N_OPTIONS ? &config_options[opt - OPT_VAL0]
								  : NULL;
}

int config_parse_args(struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
	struct option long_options[N_OPTIONS + 1];
	bool on_cli[N_OPTIONS] = {false};
	const char *path = CONFIG_DEFAULT_PATH;
	const struct config_option *o;
	bool explicit = false;
	int opt, r;

	long_options_fill(long_options);

	/* First pass: which options the command line gives, and where the file is. */
	optind = 0; /* full re-initialisation: parsing may run more than once (tests, reload) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		o = option_of(opt);
		if (o)
			on_cli[o - config_options] = true;
		if (o && strcmp(o->name, "config") == 0) {
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
			usage_print(out);
			return 1;
		case 'V':
			fprintf(out, "dotgw %s\n", DOTGW_VERSION);
			return 1;
		case ':':
			fprintf(err, "dotgw: option '%s' needs a value\n", argv[optind - 1]);
			return -EINVAL;
		case '?':
			if (option_of(optopt)) /* "--flag=value" */
				fprintf(err, "dotgw: option '%s' takes no value\n",
					argv[optind - 1]);
			else if (optopt)
				fprintf(err, "dotgw: unknown option '-%c' (see --help)\n", optopt);
			else
				fprintf(err, "dotgw: unknown option '%s' (see --help)\n",
					argv[optind - 1]);
			return -EINVAL;
		default:
			o = option_of(opt);
			if (!o)
				return -EINVAL;
			if (o->type == CONFIG_OPT_CLI && !strcmp(o->name, "health")) {
				fprintf(err, "dotgw: --health URL: a mode of its own, with no "
					     "other option\n");
				return -EINVAL;
			}
			if (o->type == CONFIG_OPT_CLI) /* --config: read above */
				break;
			r = parse_one(cfg, o, optarg, err);
			if (r < 0)
				return r;
		}
	}
	if (optind < argc) {
		fprintf(err, "dotgw: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	return config_finish(cfg, err);
}

/*
 * config_finish - what no single option decides: the options that need each other, and the
 * defaults that follow from others. 0, or -EINVAL after a message to err.
 */
static int config_finish(struct config *cfg, FILE *err)
{
	snprintf(cfg->egress_table, sizeof(cfg->egress_table), "%s_egress", cfg->table);
	for (size_t i = 0; i < cfg->groups.n_groups; i++) {
		const struct policy_group *g = &cfg->groups.groups[i];

		/* in the output path a packet has no input interface: only prefixes match */
		if (g->egress && !g->n_cidrs && !(cfg->scope & RULESET_SCOPE_GATEWAY)) {
			fprintf(err,
				"dotgw: --egress: group '%s' names only interfaces, which host "
				"scope cannot match (give it prefixes, or --scope gateway)\n",
				g->name);
			return -EINVAL;
		}
	}
	if (cfg->n_clients && !(cfg->scope & RULESET_SCOPE_GATEWAY)) {
		fprintf(err, "dotgw: --client: needs --scope gateway or --scope both\n");
		return -EINVAL;
	}
	if (cfg->n_interfaces && !(cfg->scope & RULESET_SCOPE_GATEWAY)) {
		fprintf(err, "dotgw: --interface: needs --scope gateway or --scope both\n");
		return -EINVAL;
	}
	if (cfg->watch_config && !cfg->config_path[0]) {
		fprintf(err, "dotgw: --watch-config: no configuration file was read (--config "
			     "PATH)\n");
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
		fprintf(err,
			"dotgw: --scope %s: name the clients' side with --interface IFACE "
			"(or --client CIDR); capturing on every interface would answer the "
			"internet side too (an open resolver)\n",
			cfg->scope & RULESET_SCOPE_HOST ? "both" : "gateway");
		return -EINVAL;
	}
	if (cfg->rate_limit && cfg->rate_burst == 0)
		cfg->rate_burst = cfg->rate_limit * 2;
	if (cfg->queues == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		cfg->queues = n < 1		      ? 1
			      : n > CONFIG_MAX_QUEUES ? CONFIG_MAX_QUEUES
						      : (unsigned int)n;
	}
	if (cfg->mode == MODE_NFQUEUE) {
		/* one worker per queue: --queues decides */
		if (cfg->workers && cfg->workers != cfg->queues)
			fprintf(err,
				"dotgw: --workers: ignored in nfqueue mode, which runs one "
				"worker per queue (--queues %u)\n",
				cfg->queues);
		cfg->workers = cfg->queues;
	} else if (cfg->workers == 0) {
		/* one: tests and users count one worker's upstream connections (see README) */
		cfg->workers = 1;
	}
	cfg->pool_floor = 0;
	if (cfg->pool_size == 0) {
		/*
		 * Each worker opens its own connections. Across a WAN more than two carry a
		 * server's pauses better (its congestion control's, bench/RESULTS.md 2026-12-05):
		 * CONFIG_POOL_TOTAL per upstream in all, which one busy worker may hold alone (the
		 * kernel may send one busy client to one worker), and never fewer than one per
		 * worker, its floor, whatever the others hold.
		 */
		cfg->pool_size = CONFIG_POOL_TOTAL;
		if (cfg->workers > 1) {
			cfg->pool_floor = CONFIG_POOL_TOTAL / cfg->workers;
			if (cfg->pool_floor == 0)
				cfg->pool_floor = 1;
		}
	}
	if (cfg->max_inflight_client == 0) {
		/* half of what can be in flight, or of what one upstream's connections can take
		 * (a worker's, as sure as its floor): past that, queries wait for a connection
		 * behind the flooder's */
		unsigned int cap =
			(cfg->pool_floor ? cfg->pool_floor : cfg->pool_size) * cfg->conn_inflight;

		if (cap > cfg->max_inflight)
			cap = cfg->max_inflight;
		cfg->max_inflight_client = cap > 1 ? cap / 2 : 1;
		cfg->inflight_client_auto = true; /* inflight.h: it grows while answers come */
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
		for (size_t i = 0; i < sizeof(default_upstreams) / sizeof(default_upstreams[0]);
		     i++)
			if (config_parse_upstream(&cfg->upstreams[cfg->n_upstreams++],
						  default_upstreams[i]) < 0)
				return -EINVAL;
	}
	for (size_t i = 0; i < cfg->groups.n_groups; i++) {
		uint32_t all = cfg->n_upstreams ? (1u << cfg->n_upstreams) - 1 : 0;

		if (cfg->groups.groups[i].upstreams & ~all) {
			fprintf(err,
				"dotgw: --group-upstreams: group '%s' names an upstream that "
				"does not exist (there are %zu)\n",
				cfg->groups.groups[i].name, cfg->n_upstreams);
			return -EINVAL;
		}
	}
	return forward_finish(cfg, err);
}

/* parse_forward - --forward [GROUP:]SUFFIX=TARGET; see forward.h. */
static int parse_forward(struct config *cfg, const char *name, const char *arg, FILE *err)
{
	const char *eq = strchr(arg, '='), *colon, *s = arg;
	char group[32] = "", suffix[DNS_MAX_NAME * 4 + 2];
	struct forward_target t;
	struct upstream_config u;
	size_t k;
	int r;

	colon = eq ? memchr(arg, ':', (size_t)(eq - arg)) : NULL;
	if (colon) {
		if (colon == arg || (size_t)(colon - arg) >= sizeof(group))
			return bad_value(err, name, arg, "[GROUP:]SUFFIX=TARGET");
		memcpy(group, arg, (size_t)(colon - arg));
		s = colon + 1;
	}
	if (!eq || eq == s || (size_t)(eq - s) >= sizeof(suffix))
		return bad_value(err, name, arg, "[GROUP:]SUFFIX=TARGET");
	memcpy(suffix, s, (size_t)(eq - s));
	suffix[eq - s] = '\0';
	r = forward_target_parse(&t, eq + 1);
	if (r == -ENOENT) { /* a DoT upstream of its own */
		if (config_parse_upstream(&u, eq + 1) < 0)
			r = -EINVAL;
		for (k = 0; r == -ENOENT && k < cfg->n_fwd_upstreams; k++)
			if (strcmp(cfg->fwd_upstreams[k].text, u.text) == 0)
				break;
		if (r == -ENOENT && k == CONFIG_MAX_UPSTREAMS) {
			fprintf(err, "dotgw: --%s: at most %d upstreams\n", name,
				CONFIG_MAX_UPSTREAMS);
			return -EINVAL;
		}
		if (r == -ENOENT) {
			memset(&t, 0, sizeof(t));
			t.kind = FORWARD_UPSTREAM;
			t.is_new = true;
			t.upstream = (unsigned int)k;
			snprintf(t.text, sizeof(t.text), "%s", u.text);
			r = 0;
		}
	}
	if (r < 0)
		return bad_value(err, name, arg,
				 "a TARGET of N, ADDR[@PORT]#NAME, plain:ADDR[@PORT] or asked");
	r = forward_rule_add(&cfg->forwards, colon ? group : NULL, suffix, &t);
	if (r == -ENOSPC) {
		fprintf(err, "dotgw: --%s: at most %d rules and %d targets\n", name,
			FORWARD_MAX_RULES, FORWARD_MAX_TARGETS);
		return -EINVAL;
	}
	if (r < 0)
		return bad_value(err, name, arg, "a domain name, each at most once per group");
	if (t.is_new && t.upstream == cfg->n_fwd_upstreams)
		cfg->fwd_upstreams[cfg->n_fwd_upstreams++] = u;
	return 0;
}

/*
 * forward_finish - --forward's own upstreams join the list after the --upstream ones (outside
 * the default set), targets get their upstreams' indexes, rules their groups'. 0 or -EINVAL.
 */
static int forward_finish(struct config *cfg, FILE *err)
{
	struct forward_table *ft = &cfg->forwards;
	size_t base = cfg->n_upstreams;

	if (base + cfg->n_fwd_upstreams > CONFIG_MAX_UPSTREAMS) {
		fprintf(err,
			"dotgw: --forward: at most %d upstreams in all, --upstream's included\n",
			CONFIG_MAX_UPSTREAMS);
		return -EINVAL;
	}
	for (size_t k = 0; k < cfg->n_fwd_upstreams; k++)
		cfg->upstreams[base + k] = cfg->fwd_upstreams[k];
	cfg->n_upstreams += cfg->n_fwd_upstreams;
	if (cfg->n_fwd_upstreams)
		cfg->default_upstreams = (1u << base) - 1;
	for (size_t i = 0; i < ft->n_targets; i++) {
		struct forward_target *t = &ft->targets[i];

		if (t->kind != FORWARD_UPSTREAM)
			continue;
		if (t->is_new) {
			t->upstream += (unsigned int)base;
		} else if (t->upstream >= base) {
			fprintf(err,
				"dotgw: --forward: upstream %u does not exist (there are %zu)\n",
				t->upstream + 1, base);
			return -EINVAL;
		} else {
			snprintf(t->text, sizeof(t->text), "%s", cfg->upstreams[t->upstream].text);
		}
	}
	for (size_t i = 0; i < ft->n_rules; i++) {
		struct forward_rule *r = &ft->rules[i];
		const struct policy_group *g;

		if (!r->group[0])
			continue;
		g = group_find(cfg, r->group, strlen(r->group));
		if (!g) {
			fprintf(err, "dotgw: --forward: no --group '%s'\n", r->group);
			return -EINVAL;
		}
		r->group_idx = (int)(g - cfg->groups.groups);
	}
	return 0;
}

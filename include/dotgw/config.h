/*
 * config.h - the daemon's settings, from the command line. Plain data; config_parse_args()
 * fills it and reports the first bad option by name.
 */
#ifndef DOTGW_CONFIG_H
#define DOTGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "dotgw/forward.h"
#include "dotgw/policy.h"
#include "dotgw/ruleset.h"

#define CONFIG_MAX_UPSTREAMS  16
#define CONFIG_MAX_INTERFACES 32
#define CONFIG_AUTH_NAME_MAX  253
#define CONFIG_MAX_PINS	      8
#define CONFIG_DOH_PATH_MAX   128 /* a DoH upstream's request path */
#define CONFIG_MAX_POOL	      16
#define CONFIG_POOL_TOTAL     4 /* default: connections per upstream, all workers together */
#define CONFIG_MAX_CIDRS      64

enum upstream_choice {
	UPSTREAM_CHOICE_ORDERED,     /* the first usable upstream, in the order given */
	UPSTREAM_CHOICE_ROUND_ROBIN, /* each query to the next usable upstream */
	UPSTREAM_CHOICE_FASTEST,     /* the usable upstream with the lowest smoothed RTT */
};

enum capture_mode {
	MODE_TPROXY,  /* UDP and TCP through TPROXY listeners */
	MODE_NFQUEUE, /* UDP through NFQUEUE with raw-socket answers, TCP through TPROXY */
};

#define CONFIG_MAX_QUEUES 64

struct frontend_caches;

/* One DoT (or DoH) upstream: address and port, and the name its certificate must carry. */
struct upstream_config {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char auth_name[CONFIG_AUTH_NAME_MAX + 1]; /* "" = verify the address (or only pins) */
	uint8_t pins[CONFIG_MAX_PINS][32];	  /* SHA-256 of the SubjectPublicKeyInfo */
	size_t n_pins;
	uint8_t also_ip[16]; /* verified DDR: an address the certificate must also cover... */
	uint8_t also_ip_len; /* ...4 or 16 octets of it (0: none; never set from options) */
	char doh_path[CONFIG_DOH_PATH_MAX + 1]; /* DoH (RFC 8484): the path; "": DoT */
	/* DoT: the path of the DoH fallback at port 443 ("": none; --doh-fallback) */
	char doh_fallback[CONFIG_DOH_PATH_MAX + 1];
	char text[INET6_ADDRSTRLEN + 8 +
		  CONFIG_AUTH_NAME_MAX]; /* "[2001:db8::1]@853#dot.test", for logs */
};

struct config {
	struct upstream_config upstreams[CONFIG_MAX_UPSTREAMS];
	size_t n_upstreams;
	const char *ca_file; /* NULL: the system trust store */
	unsigned int scope;  /* RULESET_SCOPE_* bits */
	const char *interfaces[CONFIG_MAX_INTERFACES];
	size_t n_interfaces;
	struct cidr clients[CONFIG_MAX_CIDRS]; /* gateway scope: only these sources */
	size_t n_clients;
	struct cidr exempt[CONFIG_MAX_CIDRS]; /* never captured, from or to */
	size_t n_exempt;
	const char *exempt_ifaces[CONFIG_MAX_INTERFACES]; /* never captured: routed out there */
	size_t n_exempt_ifaces;
	bool capture_local; /* also capture DNS to this machine's own addresses */
	enum capture_mode mode;
	struct policy groups;	       /* client groups: domain rules, upstreams */
	struct forward_table forwards; /* --forward: where names go */
	/* --forward's ADDR#NAME upstreams, appended to upstreams once parsing is done */
	struct upstream_config fwd_upstreams[CONFIG_MAX_UPSTREAMS];
	size_t n_fwd_upstreams;
	uint32_t default_upstreams; /* bit i: upstream i serves other names too (0: all do) */
	bool local_zones;	    /* answer (or pass) the locally served zones (localzone.h) */
	const char *user;	    /* NULL: "dotgw" if it exists, else "nobody" */
	int log_level;
	const char *table;
	uint16_t tproxy_port;
	uint32_t capture_mark;
	uint32_t bypass_mark;
	uint32_t route_table;
	uint32_t rule_priority;
	unsigned int timeout_ms;   /* per-query deadline */
	unsigned int udp_size_cap; /* largest UDP answer, whatever the client advertises */
	unsigned int tcp_idle_ms;  /* idle TCP client connections are closed after this */
	unsigned int max_tcp_clients;
	/* --unreachable plaintext, and --unreachable-after in seconds (unreachable.h) */
	bool unreachable_plain;
	unsigned int unreachable_after;
	unsigned int max_inflight;	      /* queries in flight at once; more get SERVFAIL */
	unsigned int max_inflight_client;     /* ...of them one client may hold (0 before parsing:
					       * see config_parse_args) */
	bool inflight_client_auto;	      /* not given: a client's share grows while answered */
	unsigned int hold_ms;		      /* --hold-timeout: a held query counts this long */
	enum upstream_choice upstream_choice; /* --upstream-policy */
	bool upstream_asked;		      /* --upstream asked: verified DDR (ddr.c) */
	unsigned int asked_max;		      /* --asked-max: its table's size per worker */
	bool tls_opportunistic;		      /* use upstreams that fail authentication (loudly) */
	unsigned int pool_size; /* TLS connections per upstream (per worker), at most */
	/*
	 * --pool-size not given, several workers: pool_size is CONFIG_POOL_TOTAL, a budget per
	 * upstream that the workers share: a worker's pool opens a connection past pool_floor
	 * only while all of them together have fewer than pool_size open (pool_open), and
	 * gives one back when they have more (upstream.c). 0: nothing shared (--pool-size
	 * given, or one worker): pool_size per worker.
	 */
	unsigned int pool_floor;
	/* per upstream index: the connections open in all of this configuration's pools (set
	 * by config_ref_new, worker.h; NULL: nothing shared, pool_size per pool) */
	_Atomic unsigned int *pool_open;
	unsigned int conn_inflight; /* queries in flight per connection */
	unsigned int idle_ms;	    /* idle upstream connections are closed after this */
	unsigned int stall_ms;	    /* no answer for this long: probe, then give up */
	unsigned int standby_s;	    /* --standby: reopen after an idle close (0: off) */
	unsigned int doh_reprobe_s; /* --doh-reprobe: on a DoH fallback, try 853 this often */
	bool tcp_fastopen;	    /* --tcp-fastopen: TCP_FASTOPEN_CONNECT to the upstreams */
	bool padding;		    /* RFC 8467 padding of queries */
	size_t cache_size;	    /* octets of answer cache in all (0: no cache) */
	size_t cache_worker_size;   /* ...of them per worker (set by main) */
	uint32_t cache_max_ttl;	    /* answers are cached this long at most */
	uint32_t egress_grace;	    /* --egress: seconds an element outlives its record's TTL */
	uint32_t egress_max;	    /* --egress: elements per group and family at most */
	char show_egress[32];	    /* --show-egress NAME: print the group's sets, exit */
	uint32_t serve_stale;	    /* seconds an expired answer may still be served */
	bool prefetch;		    /* refresh entries hit near their end (prefetch.h) */
	unsigned int rate_limit;    /* queries per second per client and worker (0: off) */
	unsigned int rate_burst;
	unsigned int rate_prefix4, rate_prefix6;
	bool rate_refuse;    /* REFUSED over the limit (else: drop) */
	unsigned int queues; /* nfqueue mode: queues (one worker thread each) */
	uint16_t queue_num;  /* nfqueue mode: number of the first queue */
	bool fail_closed;    /* while dotgw is not serving: block DNS (else let it pass) */
	bool nonrec_pass;    /* nfqueue UDP: queries not a stub's pass untouched */
	bool remove_rules;   /* --remove-rules: remove a table and routes left behind, exit */
	bool check_config;   /* --check-config: validate, say so, exit */
	bool watch_config;   /* --watch-config: reload when the file changes (cfgwatch.h) */
	const char *metrics; /* --metrics ADDR:PORT (NULL: off) */
	bool query_log;	     /* a log line per answered query */
	const char *dnstap;  /* --dnstap SOCKET (NULL: off) */
	char dnstap_buf[108];
	/* worker threads: --workers in tproxy mode, --queues in nfqueue mode */
	unsigned int workers;
	unsigned int handover_wait; /* --handover-wait: seconds (handover.h) */
	/* --dataplane-check: seconds between checks for BPF data planes (dataplane.h; 0: off) */
	unsigned int dataplane_check;
	/* the caches the workers share (set by worker.c; NULL: one set per worker) */
	struct frontend_caches *shared_caches;
	bool log_syslog; /* --log-target syslog */
	char metrics_buf[64];
	char config_path[256]; /* the file that was read ("" when none) */
	/* the strings above point here: values read from a file do not outlive their line */
	char ca_file_buf[4096];
	char user_buf[64];
	char table_buf[65];
	char egress_table[72]; /* the egress table: table "_egress" (derived) */
	char interfaces_buf[CONFIG_MAX_INTERFACES][16];
	char exempt_ifaces_buf[CONFIG_MAX_INTERFACES][16];
};

/*
 * The option table (config.c): one row per option. It generates the getopt list, --help and
 * the configuration-file keys, and parses the numbers, flags and keywords itself; the rest
 * have a parse function. A value is stored only once it parsed.
 */
enum config_opt_type {
	CONFIG_OPT_SPECIAL, /* .parse does the work */
	CONFIG_OPT_NUMBER,  /* a number within [min, max], outside [not_min, not_max] */
	CONFIG_OPT_FLAG,    /* no value: stores min */
	CONFIG_OPT_WORDS,   /* one of .words: stores its value */
	CONFIG_OPT_CLI,	    /* handled by config_parse_args itself (--config, --help, ...) */
};

struct config_word {
	const char *word;
	unsigned long value;
};

struct config_option {
	const char *name;    /* --NAME */
	const char *key;     /* the configuration-file key (NULL: command line only) */
	char short_name;     /* -h, -V; 0: none */
	const char *arg;     /* the value's name in --help; NULL: the option takes none */
	unsigned char list;  /* repeatable: the command line replaces the file's list (0: not) */
	const char *section; /* --help: a heading before this option */
	const char *help;    /* --help lines, '\n' between them (a leading one: below the name) */
	enum config_opt_type type;
	size_t off, size; /* the field in struct config (number, flag, words) */
	unsigned long min, max, not_min, not_max; /* not_max 0: no hole in the range */
	const char *expected;			  /* number: "expected ..." in the error message */
	const struct config_word *words;	  /* ended by a NULL word */
	/* special: 0, or -EINVAL after writing to err a message naming --name */
	int (*parse)(struct config *cfg, const char *name, const char *arg, FILE *err);
};

/* Every option, in --help order, ended by a row whose name is NULL. */
extern const struct config_option config_options[];

/* config_init - fill cfg with the defaults (no upstreams yet: see config_parse_args). */
void config_init(struct config *cfg);
/*
 * config_init_zeroed - the same for a cfg that is all zeros already (calloc): struct config is
 * about 360 KiB, mostly tables that few options fill, and zeroing it again would make all of
 * those pages resident.
 */
void config_init_zeroed(struct config *cfg);

/*
 * config_parse_upstream - parse "ADDR[@PORT][#AUTH-NAME]" (IPv6 may be written
 * [ADDR]@PORT, [ADDR]:PORT or bare). Returns 0, or -EINVAL; *u is written only on success.
 */
int config_parse_upstream(struct upstream_config *u, const char *spec);

#define CONFIG_DEFAULT_PATH "/etc/dotgw/dotgw.conf"

/*
 * config_parse_args - fill cfg (after config_init) from the config file, then the command
 * line, which overrides it: a scalar given on both takes the command line's value, and a
 * repeatable option (upstream, pin, interface, client, exempt, exempt-interface, group,
 * allow, deny, group-upstreams, forward) given on the command line replaces all of the
 * file's. The file is --config PATH, else CONFIG_DEFAULT_PATH when it exists; --config none
 * reads none. Its
 * lines are "key = value" with every long option as a key (flags take yes or no); '#' and
 * ';' start comments. Adds the default upstreams when none is given. Returns 0 to run, 1 when
 * the program should exit with success (--help, --version: the text is written to out), or
 * -EINVAL after writing to err a message that names the bad option, or the file, line and key.
 */
int config_parse_args(struct config *cfg, int argc, char **argv, FILE *out, FILE *err);

#endif

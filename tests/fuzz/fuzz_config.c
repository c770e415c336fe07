/*
 * fuzz_config.c - libFuzzer target for the option parser (src/config.c).
 *
 * The input, split on NUL octets, is an argv after "dotgw" (at most MAX_ARGS arguments, each
 * in its own heap block so ASan sees a read past its end; never a --config file, see
 * fuzz_args). The same input is then the contents of a config file given as --config. Either
 * way config_parse_args must return 0, 1 or -EINVAL, and when it accepts, the settings must
 * hold every invariant the daemon relies on (see check_config), with every string they keep
 * still valid after the parse. The whole input, as one string, also goes through
 * config_parse_upstream, cidr_parse and addr_parse, which must write their output only on success.
 * Anything else abort()s.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dotgw/addr.h"
#include "dotgw/config.h"
#include "dotgw/metrics.h"

#define MAX_ARGS    64
#define TABLE_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_bounded(const char *s, size_t size);
static bool wire_name_ok(const uint8_t *name, size_t name_len);
static void check_cidr(const struct cidr *c);
static void check_upstream(const struct upstream_config *u);
static void check_config(const struct config *cfg);
static void stack_scribble(void);
static bool is_config_option(const char *arg);
static void parse_and_check(int argc, char **argv);
static void fuzz_args(const uint8_t *data, size_t size);
static void fuzz_file(const uint8_t *data, size_t size);
static void fuzz_strings(const uint8_t *data, size_t size);

/* s is NUL-terminated within size octets. */
static bool str_bounded(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* An uncompressed wire-format name of exactly name_len octets: labels of 1 to 63, the root. */
static bool wire_name_ok(const uint8_t *name, size_t name_len)
{
	size_t pos = 0;

	if (name_len < 1 || name_len > DNS_MAX_NAME)
		return false;
	while (pos < name_len && name[pos]) {
		if (name[pos] > 63)
			return false;
		pos += 1 + (size_t)name[pos];
	}
	return pos == name_len - 1;
}

static void check_cidr(const struct cidr *c)
{
	if (c->family == AF_INET) {
		if (c->plen > 32)
			abort();
	} else if (c->family == AF_INET6) {
		if (c->plen > 128)
			abort();
	} else {
		abort();
	}
}

static void check_upstream(const struct upstream_config *u)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&u->addr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&u->addr;

	if (u->addr.ss_family == AF_INET) {
		if (u->addrlen != sizeof(*sin) || sin->sin_port == 0)
			abort();
	} else if (u->addr.ss_family == AF_INET6) {
		if (u->addrlen != sizeof(*sin6) || sin6->sin6_port == 0)
			abort();
	} else {
		abort();
	}
	if (u->n_pins > CONFIG_MAX_PINS || !str_bounded(u->auth_name, sizeof(u->auth_name)) ||
	    !str_bounded(u->text, sizeof(u->text)) || u->text[0] == '\0')
		abort();
	if (u->auth_name[0] && !strstr(u->text, u->auth_name))
		abort();
}

/* What an accepted command line must give the daemon. */
static void check_config(const struct config *cfg)
{
	struct sockaddr_storage ss;
	uint32_t all;
	size_t i, j;

	if (cfg->n_upstreams < 1 || cfg->n_upstreams > CONFIG_MAX_UPSTREAMS)
		abort();
	for (i = 0; i < cfg->n_upstreams; i++)
		check_upstream(&cfg->upstreams[i]);
	if (cfg->scope == 0 || (cfg->scope & ~(RULESET_SCOPE_HOST | RULESET_SCOPE_GATEWAY)))
		abort();
	if (cfg->capture_mark == 0 || cfg->bypass_mark == 0 ||
	    cfg->capture_mark == cfg->bypass_mark)
		abort();
	if (cfg->queues < 1 || cfg->queues > CONFIG_MAX_QUEUES ||
	    (unsigned long)cfg->queue_num + cfg->queues > 65536)
		abort();
	if (cfg->n_interfaces > CONFIG_MAX_INTERFACES ||
	    (cfg->n_interfaces && !(cfg->scope & RULESET_SCOPE_GATEWAY)))
		abort();
	for (i = 0; i < cfg->n_interfaces; i++)
		if (!cfg->interfaces[i] || !cfg->interfaces[i][0] ||
		    strlen(cfg->interfaces[i]) > 15 || strpbrk(cfg->interfaces[i], "/ "))
			abort();
	if (cfg->n_clients > CONFIG_MAX_CIDRS || cfg->n_exempt > CONFIG_MAX_CIDRS ||
	    (cfg->n_clients && !(cfg->scope & RULESET_SCOPE_GATEWAY)))
		abort();
	for (i = 0; i < cfg->n_clients; i++)
		check_cidr(&cfg->clients[i]);
	for (i = 0; i < cfg->n_exempt; i++)
		check_cidr(&cfg->exempt[i]);
	if (cfg->tproxy_port == 0 || cfg->tproxy_port == 53 || cfg->udp_size_cap < 512 ||
	    cfg->udp_size_cap > 65535 || (cfg->rate_limit && !cfg->rate_burst))
		abort();
	/* what parse_one accepted, still there: the strings must outlive the parse */
	if (!cfg->table || !isalpha((unsigned char)cfg->table[0]) || strlen(cfg->table) > 64 ||
	    strspn(cfg->table, TABLE_CHARS) != strlen(cfg->table))
		abort();
	if ((cfg->ca_file && !cfg->ca_file[0]) || (cfg->user && !cfg->user[0]) ||
	    !str_bounded(cfg->config_path, sizeof(cfg->config_path)))
		abort();
	if (cfg->metrics && metrics_parse_addr(cfg->metrics, &ss) < 0)
		abort();

	all = (uint32_t)((1ull << cfg->n_upstreams) - 1);
	if (cfg->groups.n_groups > POLICY_MAX_GROUPS)
		abort();
	for (i = 0; i < cfg->groups.n_groups; i++) {
		const struct policy_group *g = &cfg->groups.groups[i];

		if (g->upstreams & ~all)
			abort();
		if (!str_bounded(g->name, sizeof(g->name)) || !g->name[0] ||
		    g->n_cidrs + g->n_ifs < 1 || g->n_cidrs > POLICY_MAX_CIDRS ||
		    g->n_ifs > POLICY_MAX_CIDRS || g->n_rules > POLICY_MAX_RULES)
			abort();
		for (j = 0; j < g->n_cidrs; j++)
			check_cidr(&g->cidrs[j]);
		for (j = 0; j < g->n_ifs; j++)
			if (!str_bounded(g->ifnames[j], sizeof(g->ifnames[j])) || !g->ifnames[j][0])
				abort();
		for (j = 0; j < g->n_rules; j++) {
			const struct policy_rule *r = &g->rules[j];

			if (!wire_name_ok(r->name, r->name_len))
				abort();
			if (r->action == POLICY_SINKHOLE && r->sink_family != AF_INET &&
			    r->sink_family != AF_INET6)
				abort();
			if (r->action == POLICY_PASS && !g->allow_list)
				abort();
		}
		/* group names are unique */
		for (j = 0; j < i; j++)
			if (!strcmp(g->name, cfg->groups.groups[j].name))
				abort();
	}
}

/*
 * Overwrite the stack below the caller's frame, where the parser's callees had theirs. Not
 * instrumented, so that junk is on the real stack (not ASan's fake stack), where inih's
 * frames were.
 */
static void __attribute__((noinline, no_sanitize("address"))) stack_scribble(void)
{
	char junk[16384];

	explicit_bzero(junk, sizeof(junk));
}

/* Would getopt_long take arg as --config (an unambiguous abbreviation, maybe with "=")? */
static bool is_config_option(const char *arg)
{
	size_t len;

	if (strncmp(arg, "--", 2))
		return false;
	arg += 2;
	len = strcspn(arg, "=");
	return len >= 4 && len <= 6 && !strncmp(arg, "config", len);
}

/*
 * parse_and_check - config_parse_args over argv, whose strings it frees. Strings that cfg
 * keeps must stay valid after the parse: the stack the parser used is overwritten before
 * the checks.
 */
static void parse_and_check(int argc, char **argv)
{
	static struct config *cfg; /* some 300 KiB: allocated once */
	static FILE *out, *err;
	int i, rc;

	if (!out) {
		out = fopen("/dev/null", "w");
		err = fopen("/dev/null", "w");
		cfg = malloc(sizeof(*cfg));
	}
	if (!out || !err || !cfg)
		abort();
	for (i = 0; i < argc; i++)
		if (!argv[i])
			abort();
	config_init(cfg);
	rc = config_parse_args(cfg, argc, argv, out, err);
	stack_scribble();
	if (rc == 0)
		check_config(cfg);
	else if (rc != 1 && rc != -EINVAL)
		abort();
	for (i = 0; i < argc; i++)
		free(argv[i]);
}

/*
 * The input split on NUL octets as the arguments. No file is ever read: "--config=none"
 * comes first (or CONFIG_DEFAULT_PATH would be read when it exists), and any argument that
 * getopt_long would take as --config is replaced by "--config=none" as well.
 */
static void fuzz_args(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 3];
	size_t off = 0;
	int argc = 0;

	argv[argc++] = strdup("dotgw");
	argv[argc++] = strdup("--config=none");
	while (off < size && argc < MAX_ARGS + 2) {
		const uint8_t *nul = memchr(data + off, '\0', size - off);
		size_t len = nul ? (size_t)(nul - (data + off)) : size - off;
		char *arg = malloc(len + 1);

		if (!arg)
			abort();
		memcpy(arg, data + off, len);
		arg[len] = '\0';
		if (is_config_option(arg)) {
			free(arg);
			arg = strdup("--config=none");
		}
		argv[argc++] = arg;
		off += len + 1;
	}
	argv[argc] = NULL;
	parse_and_check(argc, argv);
}

/*
 * The input as the contents of a config file (a memfd, as the only option), which goes
 * through the same option parser line by line.
 */
static void fuzz_file(const uint8_t *data, size_t size)
{
	static char option[64];
	static int fd = -1;
	char *argv[3];

	if (fd < 0) {
		fd = memfd_create("fuzz_config", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(option, sizeof(option), "--config=/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	argv[0] = strdup("dotgw");
	argv[1] = strdup(option);
	argv[2] = NULL;
	parse_and_check(2, argv);
}

/* The whole input, cut at its first NUL, as an --upstream, a CIDR value and an address. */
static void fuzz_strings(const uint8_t *data, size_t size)
{
	struct upstream_config *u = malloc(sizeof(*u)), *before = malloc(sizeof(*u));
	struct cidr c, cbefore;
	union sockaddr_any a, abefore;
	char *s = malloc(size + 1);

	if (!u || !before || !s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';

	memset(u, 0xa5, sizeof(*u));
	memcpy(before, u, sizeof(*u));
	if (config_parse_upstream(u, s) == 0)
		check_upstream(u);
	else if (memcmp(u, before, sizeof(*u)))
		abort();

	memset(&c, 0xa5, sizeof(c));
	cbefore = c;
	if (cidr_parse(&c, s) == 0)
		check_cidr(&c);
	else if (memcmp(&c, &cbefore, sizeof(c)))
		abort();

	memset(&a, 0xa5, sizeof(a));
	abefore = a;
	if (addr_parse(&a, s, NULL, 853) == 0) {
		if (addr_port(&a) == 0 || (a.sa.sa_family != AF_INET && a.sa.sa_family != AF_INET6))
			abort();
	} else if (memcmp(&a, &abefore, sizeof(a))) {
		abort();
	}

	free(s);
	free(before);
	free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_args(data, size);
	fuzz_file(data, size);
	fuzz_strings(data, size);
	return 0;
}

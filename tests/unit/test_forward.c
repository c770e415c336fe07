/* test_forward.c - --forward parsing, targets shared by rules, longest suffix, groups first. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "dotgw/config.h"
#include "dotgw/forward.h"

static struct config cfg;

static int parse(const char *const *args)
{
	char *argv[32];
	int argc = 0;
	FILE *null = fopen("/dev/null", "w");
	int r;

	argv[argc++] = (char *)"dotgw";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	config_init(&cfg);
	r = config_parse_args(&cfg, argc, argv, null, null);
	fclose(null);
	return r;
}

/* lookup - the target text for name asked by a client of group, or "-" */
static const char *lookup(int group, const char *name)
{
	uint8_t wire[DNS_MAX_NAME], len;
	const struct forward_rule *r;

	if (policy_name_parse(name, wire, &len) < 0)
		return "?";
	r = forward_lookup(&cfg.forwards, group, wire, len);
	return r ? cfg.forwards.targets[r->target].text : "-";
}

int main(void)
{
	struct forward_target t;

	CHECK_EQ(forward_target_parse(&t, "asked"), 0);
	CHECK_EQ(t.kind, FORWARD_ASKED);
	CHECK_EQ(forward_target_parse(&t, "plain:10.8.0.1"), 0);
	CHECK_EQ(t.kind, FORWARD_PLAIN);
	CHECK(strcmp(t.text, "plain:10.8.0.1:53") == 0 || strcmp(t.text, "plain:10.8.0.1@53") == 0);
	CHECK_EQ(forward_target_parse(&t, "plain:[2001:db8::1]@5353"), 0);
	CHECK_EQ(addr_port(&t.addr), 5353);
	CHECK_EQ(forward_target_parse(&t, "plain:nonsense"), -EINVAL);
	CHECK_EQ(forward_target_parse(&t, "2"), 0);
	CHECK_EQ(t.kind, FORWARD_UPSTREAM);
	CHECK_EQ(t.upstream, 1);
	CHECK_EQ(forward_target_parse(&t, "0"), -EINVAL);
	CHECK_EQ(forward_target_parse(&t, "192.0.2.1#dot.test"), -ENOENT);

	/* the default set: no --forward, all upstreams */
	CHECK_EQ(parse((const char *const[]){"--config", "none", NULL}), 0);
	CHECK_EQ(cfg.forwards.n_rules, 0);
	CHECK_EQ(cfg.default_upstreams, 0);
	CHECK(cfg.local_zones);
	CHECK_EQ(parse((const char *const[]){"--config", "none", "--no-local-zones", NULL}), 0);
	CHECK(!cfg.local_zones);

	CHECK_EQ(parse((const char *const[]){"--config",   "none",
					     "--upstream", "192.0.2.1#a.test",
					     "--upstream", "192.0.2.2#b.test",
					     "--group",	   "kids=198.51.100.0/24",
					     "--forward",  "corp.example=plain:10.8.0.1",
					     "--forward",  "a.corp.example=asked",
					     "--forward",  "x.test=2",
					     "--forward",  "y.test=203.0.113.9#y.test",
					     "--forward",  "z.test=203.0.113.9#y.test",
					     "--forward",  "kids:corp.example=1",
					     "--forward",  "other.example=plain:10.8.0.1@53",
					     NULL}),
		 0);
	/* y.test's upstream joined the list, outside the default set */
	CHECK_EQ(cfg.n_upstreams, 3);
	CHECK_EQ(cfg.default_upstreams, 3);
	CHECK(strstr(cfg.upstreams[2].text, "203.0.113.9") != NULL);
	CHECK_EQ(cfg.forwards.n_rules, 7);
	CHECK_EQ(cfg.forwards.n_targets, 5); /* plain shared, asked, 2, y, 1 */
	CHECK(strncmp(lookup(-1, "www.corp.example"), "plain:10.8.0.1", 14) == 0);
	CHECK(strncmp(lookup(-1, "CORP.example."), "plain:10.8.0.1", 14) == 0);
	CHECK(strcmp(lookup(-1, "b.a.corp.example"), "asked") == 0);
	CHECK(strcmp(lookup(-1, "notcorp.example"), "-") == 0);
	CHECK(strcmp(lookup(-1, "example"), "-") == 0);
	CHECK(strncmp(lookup(-1, "x.test"), "192.0.2.2", 9) == 0);
	CHECK(strncmp(lookup(-1, "q.y.test"), "203.0.113.9", 11) == 0);
	CHECK(strcmp(lookup(-1, "q.y.test"), lookup(-1, "z.test")) == 0);
	/* the group's rule wins over the global one of equal length, not over a longer one */
	CHECK(strncmp(lookup(0, "www.corp.example"), "192.0.2.1", 9) == 0);
	CHECK(strcmp(lookup(0, "a.corp.example"), "asked") == 0);
	CHECK(strncmp(lookup(1, "www.corp.example"), "plain:", 6) == 0);

	/* errors */
	CHECK(parse((const char *const[]){"--config", "none", "--forward", "x.test", NULL}) < 0);
	CHECK(parse((const char *const[]){"--config", "none", "--forward", "x.test=9", NULL}) < 0);
	CHECK(parse((const char *const[]){"--config", "none", "--forward", "nobody:x.test=asked",
					  NULL}) < 0);
	CHECK(parse((const char *const[]){"--config", "none", "--forward", "x.test=asked",
					  "--forward", "X.test.=1", NULL}) < 0);
	CHECK(parse((const char *const[]){"--config", "none", "--forward", "x..test=asked", NULL}) <
	      0);
	CHECK(parse((const char *const[]){"--config", "none", "--forward", "x.test=plain:", NULL}) <
	      0);
	return check_done("forward");
}

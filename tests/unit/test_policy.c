/* test_policy.c - client groups by prefix, suffix rules on label boundaries, name parsing. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/config.h"
#include "dotgw/policy.h"

static struct config cfg;

static enum policy_action check_name(const struct policy_group *g, const char *name)
{
	const struct policy_rule *r;
	uint8_t wire[DNS_MAX_NAME], len;

	if (policy_name_parse(name, wire, &len) < 0)
		return (enum policy_action) - 1;
	return policy_check(g, wire, len, &r);
}

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

int main(void)
{
	uint8_t wire[DNS_MAX_NAME], len, a[16];
	const struct policy_group *kids, *web;
	const struct policy_rule *rule;

	/* names */
	CHECK_EQ(policy_name_parse("Example.COM", wire, &len), 0);
	CHECK_EQ(len, 13);
	CHECK(memcmp(wire, "\7example\3com\0", 13) == 0);
	CHECK_EQ(policy_name_parse("example.com.", wire, &len), 0);
	CHECK_EQ(len, 13);
	CHECK_EQ(policy_name_parse(".", wire, &len), 0);
	CHECK_EQ(len, 1);
	CHECK_EQ(policy_name_parse("a..b", wire, &len), -22);
	CHECK_EQ(policy_name_parse("", wire, &len), -22);
	CHECK_EQ(policy_name_parse("a b", wire, &len), -22);
	{
		char longname[300];

		memset(longname, 'a', sizeof(longname));
		longname[299] = '\0';
		for (int i = 60; i < 299; i += 61)
			longname[i] = '.';
		CHECK_EQ(policy_name_parse(longname, wire, &len), -22); /* over 255 octets */
	}

	const char *args[] = {"--upstream",
			      "192.0.2.1#a.test",
			      "--upstream",
			      "192.0.2.2#b.test",
			      "--group",
			      "kids=198.51.100.0/25,2001:db8:1::/48",
			      "--deny",
			      "kids:example.com",
			      "--deny",
			      "kids:ads.example.net=192.0.2.99",
			      "--deny",
			      "kids:tracker.example.net=refused",
			      "--allow",
			      "kids:ok.example.com",
			      "--group",
			      "web=198.51.100.128/25",
			      "--allow",
			      "web:example.org",
			      "--group-upstreams",
			      "web=2",
			      NULL};
	CHECK_EQ(parse(args), 0);
	CHECK_EQ(cfg.groups.n_groups, 2);
	kids = &cfg.groups.groups[0];
	web = &cfg.groups.groups[1];
	CHECK_EQ(web->upstreams, 2);
	CHECK_EQ(kids->upstreams, 0);

	/* groups by prefix, first match */
	inet_pton(AF_INET, "198.51.100.7", a);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, NULL), 0);
	inet_pton(AF_INET, "198.51.100.200", a);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, NULL), 1);
	inet_pton(AF_INET, "203.0.113.1", a);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, NULL), -1);
	inet_pton(AF_INET6, "2001:db8:1:ffff::1", a);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET6, a, NULL), 0);
	inet_pton(AF_INET6, "2001:db8:2::1", a);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET6, a, NULL), -1);

	/* kids: has an allow rule, so an allow list: only ok.example.com passes */
	CHECK(kids->allow_list);
	CHECK_EQ(check_name(kids, "example.com"), POLICY_NXDOMAIN);
	CHECK_EQ(check_name(kids, "WWW.Example.Com"), POLICY_NXDOMAIN);
	CHECK_EQ(check_name(kids, "ok.example.com"), POLICY_PASS); /* longer suffix wins */
	CHECK_EQ(check_name(kids, "a.ok.example.com"), POLICY_PASS);
	CHECK_EQ(check_name(kids, "notok.example.com"), POLICY_NXDOMAIN); /* label boundary */
	CHECK_EQ(check_name(kids, "x.ads.example.net"), POLICY_SINKHOLE);
	CHECK_EQ(check_name(kids, "tracker.example.net"), POLICY_REFUSED);
	CHECK_EQ(check_name(kids, "example.org"), POLICY_REFUSED); /* off the allow list */
	policy_name_parse("x.ads.example.net", wire, &len);
	CHECK_EQ(policy_check(kids, wire, len, &rule), POLICY_SINKHOLE);
	CHECK(rule && rule->sink_family == AF_INET && rule->sink[3] == 99);
	CHECK_EQ(check_name(web, "www.example.org"), POLICY_PASS);
	CHECK_EQ(check_name(web, "example.org.evil.test"), POLICY_REFUSED);
	CHECK_EQ(check_name(web, "xexample.org"), POLICY_REFUSED);

	/* answers: every owner and CNAME target of the answer section is held to the rules */
	{
		/* www.example.org CNAME cdn.example.org (compressed); cdn.example.org A */
		uint8_t msg[128] = {0,	 1,    0x81, 0x80, 0,  1,   0,	 2,   0,   0,	 0,   0,
				    3,	 'w',  'w',  'w',  7,  'e', 'x', 'a', 'm', 'p',	 'l', 'e',
				    3,	 'o',  'r',  'g',  0,  0,   1,	 0,   1,   0xc0, 12,  0,
				    5,	 0,    1,    0,	   0,  0,   60,	 0,   6,   3,	 'c', 'd',
				    'n', 0xc0, 16,   0xc0, 45, 0,   1,	 0,   1,   0,	 0,   0,
				    60,	 0,    4,    192,  0,  2,   1};
		size_t mlen = 67;
		struct dns_msg m;

		CHECK_EQ(dns_msg_parse(&m, msg, mlen), 0);
		CHECK_EQ(policy_check_answer(web, msg, &m, &rule), POLICY_PASS);
		/* the same chain into a name off the allow list: "cdn" -> "cdx", under .net */
		memcpy(msg + 45, "\3cdx\3net\0", 9);
		msg[43] = 0, msg[44] = 9;
		msg[54] = 0xc0, msg[55] = 45;
		memcpy(msg + 56, "\0\1\0\1\0\0\0\x3c\0\4\xc0\0\2\1", 14);
		mlen = 70;
		CHECK_EQ(dns_msg_parse(&m, msg, mlen), 0);
		CHECK_EQ(policy_check_answer(web, msg, &m, &rule), POLICY_REFUSED);
		CHECK(rule == NULL);
		/* a target that does not fill its RDATA: unreadable, refused */
		msg[44] = 10;
		msg[43] = 0;
		CHECK(dns_msg_parse(&m, msg, mlen) < 0 ||
		      policy_check_answer(web, msg, &m, &rule) == POLICY_REFUSED);
	}

	/* groups by interface: @IFACE entries, matched by name */
	const char *ifargs[] = {"--group", "ctr=@br0,@veth7,192.0.2.0/24", "--group", "lan=@eth1",
				NULL};
	CHECK_EQ(parse(ifargs), 0);
	CHECK_EQ(cfg.groups.groups[0].n_ifs, 2);
	CHECK(strcmp(cfg.groups.groups[0].ifnames[1], "veth7") == 0);
	CHECK(policy_has_interfaces(&cfg.groups));
	inet_pton(AF_INET, "203.0.113.1", a);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, "br0"), 0);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, "veth7"), 0);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, "eth1"), 1);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, NULL), -1); /* unknown interface */
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, "eth2"), -1);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, "br"), -1); /* whole names only */
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, "br00"), -1);
	inet_pton(AF_INET, "192.0.2.9", a);
	CHECK_EQ(policy_group_of(&cfg.groups, AF_INET, a, "eth1"), 0); /* first group holds it */
	const char *badif[] = {"--group", "g=@", NULL};
	CHECK_EQ(parse(badif), -22);
	const char *badif2[] = {"--group", "g=@a-name-far-too-long", NULL};
	CHECK_EQ(parse(badif2), -22);

	/* bad policy options */
	const char *bad1[] = {"--deny", "nogroup:example.com", NULL};
	const char *bad2[] = {"--group", "g=not-an-address", NULL};
	const char *bad3[] = {"--group", "g=192.0.2.0/24", "--deny", "g:example.com=maybe", NULL};
	const char *bad4[] = {"--group", "g=192.0.2.0/24", "--group-upstreams", "g=4", NULL};
	const char *bad5[] = {"--group", "g=192.0.2.0/24", "--group", "g=192.0.2.0/25", NULL};
	const char *bad6[] = {"--client", "192.0.2.0/33", "--scope", "gateway", NULL};
	const char *bad7[] = {"--client", "192.0.2.0/24", NULL}; /* host scope */
	const char *bad8[] = {"--group", "g=192.0.2.0/24", "--allow", "g:ok.test=refused", NULL};
	CHECK_EQ(parse(bad1), -22);
	CHECK_EQ(parse(bad2), -22);
	CHECK_EQ(parse(bad3), -22);
	CHECK_EQ(parse(bad4), -22); /* three default upstreams only */
	CHECK_EQ(parse(bad5), -22);
	CHECK_EQ(parse(bad6), -22);
	CHECK_EQ(parse(bad7), -22);
	CHECK_EQ(parse(bad8), -22);
	const char *good[] = {"--scope",  "gateway",	  "--client", "192.0.2.0/24",
			      "--exempt", "2001:db8::53", NULL};
	CHECK_EQ(parse(good), 0);
	CHECK_EQ(cfg.n_clients, 1);
	CHECK_EQ(cfg.clients[0].plen, 24);
	CHECK_EQ(cfg.exempt[0].plen, 128);
	return check_done("policy");
}

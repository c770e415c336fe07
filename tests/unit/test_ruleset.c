/*
 * test_ruleset.c - round trip of the install batch (no root, no kernel): build it for several
 * configurations, walk it message by message, parse each message back with libnftnl and compare
 * with what was meant: message types, flags and sequence numbers in order, the table, the
 * chains, and each rule's expressions as libnftnl prints them. The expected expression text is
 * what `nft --debug=netlink -f nftables/dotgw.nft` prints for the same rules, so these tests
 * also pin the builder to nft's own encoding. That text shows data as host-order 32-bit words:
 * the expression comparison runs on little-endian machines only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "check.h"
#include "dotgw/ruleset.h"

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EXPR_TEXT_COMPARABLE 1
#else
#define EXPR_TEXT_COMPARABLE 0
#endif

#define MAX_RULES     64
#define NFT_TYPE(msg) ((NFNL_SUBSYS_NFTABLES << 8) | (msg))

/* Pieces of libnftnl's rule text, one line per expression. */
#define X_META(key)  "  [ meta load " key " => reg 1 ]\n"
#define X_CMP_U32    "  [ cmp eq reg 1 0x%08x ]\n"
#define X_TH_DPORT   "  [ payload load 2b @ transport header + 2 => reg 1 ]\n"
#define X_DPORT	     X_META("l4proto") X_CMP_U32 X_TH_DPORT X_CMP_U32
#define X_COUNTER    "  [ counter pkts 0 bytes 0 ]\n"
#define X_MARK_SET   "  [ immediate reg 1 0x%08x ]\n  [ meta set mark with reg 1 ]\n"
#define X_TPROXY     "  [ immediate reg 1 0x%08x ]\n  [ tproxy port reg 1 ]\n"
#define X_IIF_LO     X_META("iif") "  [ cmp eq reg 1 0x00000001 ]\n"
#define X_IIF_NOT_LO X_META("iif") "  [ cmp neq reg 1 0x00000001 ]\n"
#define X_IIFNAME    X_META("iifname") "  [ cmp eq reg 1 0x%08x 0x%08x 0x%08x 0x%08x ]\n"
#define X_IIFKIND_BR \
	X_META("iifkind") "  [ cmp eq reg 1 0x64697262 0x00006567 0x00000000 0x00000000 ]\n"
#define X_REDIRECT "  [ immediate reg 1 0x%08x ]\n  [ redir proto_min reg 1 flags 0x2 ]\n"
#define X_CT_DNAT                                                     \
	"  [ ct load status => reg 1 ]\n"                             \
	"  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n" \
	"  [ cmp neq reg 1 0x00000000 ]\n"
#define X_RETURN "  [ immediate reg 0 return ]\n"
#define X_ACCEPT "  [ immediate reg 0 accept ]\n"
#define X_DROP	 "  [ immediate reg 0 drop ]\n"
/* fib daddr type local (RTN_LOCAL), meta nfproto ipv6 */
#define X_FIB_LOCAL "  [ fib daddr type => reg 1 ]\n  [ cmp eq reg 1 0x00000002 ]\n"
#define X_NFPROTO6  X_META("nfproto") "  [ cmp eq reg 1 0x0000000a ]\n"
/* ip daddr 127.0.0.0/8 (nft compares the first byte only), ip6 daddr ::1 */
#define X_IP4_LOOPNET                                            \
	X_META("nfproto")                                        \
	"  [ cmp eq reg 1 0x00000002 ]\n"                        \
	"  [ payload load 1b @ network header + 16 => reg 1 ]\n" \
	"  [ cmp eq reg 1 0x0000007f ]\n"
#define X_IP6_LOOPBACK                                            \
	X_META("nfproto")                                         \
	"  [ cmp eq reg 1 0x0000000a ]\n"                         \
	"  [ payload load 16b @ network header + 24 => reg 1 ]\n" \
	"  [ cmp eq reg 1 0x00000000 0x00000000 0x00000000 0x01000000 ]\n"

struct expect_chain {
	const char *name;
	const char *type;
	uint32_t hooknum;
	int32_t prio;
};

struct expect {
	unsigned int nchains, nrules;
	struct expect_chain chain[4];
	struct {
		const char *chain;
		char exprs[1024];
	} rule[MAX_RULES];
};

static const struct expect_chain chain_output = {"output", "route", NF_INET_LOCAL_OUT, -150};
static const struct expect_chain chain_prerouting = {"prerouting", "filter", NF_INET_PRE_ROUTING,
						     -150};
static const struct expect_chain chain_bridge_nat = {"bridge_nat", "nat", NF_INET_PRE_ROUTING,
						     -100};
static const struct expect_chain chain_input = {"input", "filter", NF_INET_LOCAL_IN, 0};

static const char *const two_ifaces[] = {"eth0", "wlan-guest-1234"};
/* a prefix of 3 characters (one word), one of 5 (two words), a whole name */
static const char *const tunnels[] = {"tun*", "wg-vp*", "ppp0"};

static uint32_t port_word(uint16_t port)
{
	return htons(port);
}

static void __attribute__((format(printf, 3, 4)))
expect_rule(struct expect *e, const char *chain, const char *fmt, ...)
{
	va_list ap;

	if (e->nrules == MAX_RULES)
		return;
	e->rule[e->nrules].chain = chain;
	va_start(ap, fmt);
	vsnprintf(e->rule[e->nrules].exprs, sizeof(e->rule[0].exprs), fmt, ap);
	va_end(ap);
	e->nrules++;
}

/*
 * "[ cmp eq reg 1 ... ]" for an interface pattern, as nft prints it: a prefix ("tun*") as its
 * characters alone, padded to whole words; a name as all IFNAMSIZ octets.
 */
static void ifpattern_cmp(char *out, size_t size, const char *p)
{
	size_t len = strlen(p), n, pos;
	uint32_t w[4] = {0};

	if (p[len - 1] == '*')
		len--;
	else
		len = IFNAMSIZ;
	memcpy(w, p, len < strlen(p) ? len : strlen(p));
	pos = (size_t)snprintf(out, size, "  [ cmp eq reg 1");
	for (n = 0; n < (len + 3) / 4 && pos < size; n++)
		pos += (size_t)snprintf(out + pos, size - pos, " 0x%08x", w[n]);
	if (pos < size)
		snprintf(out + pos, size - pos, " ]\n");
}

/* The exemption rules for cfg's exempt interfaces in chain: oifname, or fib daddr oifname. */
static void expect_exempt_ifaces(struct expect *e, const struct ruleset_config *cfg,
				 const char *chain)
{
	bool output = strcmp(chain, "output") == 0;
	char cmp[128];

	for (size_t i = 0; i < cfg->n_exempt_ifaces; i++) {
		ifpattern_cmp(cmp, sizeof(cmp), cfg->exempt_ifaces[i]);
		expect_rule(e, chain, "%s%s" X_RETURN,
			    output ? X_META("oifname") : "  [ fib daddr oifname => reg 1 ]\n", cmp);
	}
}

/* What nftables/dotgw.nft says, for any configuration. */
static void expect_build(struct expect *e, const struct ruleset_config *cfg)
{
	const uint8_t protos[] = {IPPROTO_UDP, IPPROTO_TCP};
	uint32_t tp = port_word(cfg->tproxy_port), p53 = port_word(53);
	uint32_t cm = cfg->capture_mark;
	bool bridge = (cfg->scope & RULESET_SCOPE_GATEWAY) && !cfg->no_nat;
	size_t i, j;

	memset(e, 0, sizeof(*e));
	if (cfg->scope & RULESET_SCOPE_HOST)
		e->chain[e->nchains++] = chain_output;
	e->chain[e->nchains++] = chain_prerouting;
	if (bridge)
		e->chain[e->nchains++] = chain_bridge_nat;
	e->chain[e->nchains++] = chain_input;

	if (cfg->scope & RULESET_SCOPE_HOST) {
		expect_rule(e, "output", X_META("mark") X_CMP_U32 X_RETURN, cfg->bypass_mark);
		if (!cfg->capture_local)
			expect_rule(e, "output", X_FIB_LOCAL X_RETURN);
		if (cfg->no_ipv6)
			expect_rule(e, "output", X_NFPROTO6 X_RETURN);
		expect_exempt_ifaces(e, cfg, "output");
		expect_rule(e, "output", X_IP4_LOOPNET X_RETURN);
		expect_rule(e, "output", X_IP6_LOOPBACK X_RETURN);
		for (i = 0; i < 2; i++)
			expect_rule(e, "output", X_DPORT X_COUNTER X_MARK_SET, protos[i], p53, cm);
	}
	if (!cfg->capture_local)
		expect_rule(e, "prerouting", X_FIB_LOCAL X_RETURN);
	if (cfg->no_ipv6)
		expect_rule(e, "prerouting", X_NFPROTO6 X_RETURN);
	if (bridge)
		expect_rule(e, "prerouting", X_IIFKIND_BR X_RETURN);
	if (cfg->scope & RULESET_SCOPE_GATEWAY)
		expect_exempt_ifaces(e, cfg, "prerouting");
	if (cfg->scope & RULESET_SCOPE_HOST) {
		for (i = 0; i < 2; i++)
			expect_rule(e, "prerouting",
				    X_IIF_LO X_META("mark")
					    X_CMP_U32 X_DPORT X_COUNTER X_TPROXY X_ACCEPT,
				    cm, protos[i], p53, tp);
	}
	if (cfg->scope & RULESET_SCOPE_GATEWAY && cfg->n_interfaces == 0) {
		for (i = 0; i < 2; i++)
			expect_rule(e, "prerouting",
				    X_IIF_NOT_LO X_DPORT X_COUNTER X_TPROXY X_MARK_SET X_ACCEPT,
				    protos[i], p53, tp, cm);
	}
	for (j = 0; j < cfg->n_interfaces; j++) {
		uint32_t w[4] = {0};

		memcpy(w, cfg->interfaces[j], strlen(cfg->interfaces[j]));
		for (i = 0; i < 2; i++)
			expect_rule(e, "prerouting",
				    X_IIFNAME X_DPORT X_COUNTER X_TPROXY X_MARK_SET X_ACCEPT, w[0],
				    w[1], w[2], w[3], protos[i], p53, tp, cm);
	}
	if (bridge && !cfg->capture_local)
		expect_rule(e, "bridge_nat", X_FIB_LOCAL X_RETURN);
	if (bridge && cfg->no_ipv6)
		expect_rule(e, "bridge_nat", X_NFPROTO6 X_RETURN);
	if (bridge)
		expect_exempt_ifaces(e, cfg, "bridge_nat");
	if (bridge && cfg->n_interfaces == 0) {
		for (i = 0; i < 2; i++)
			expect_rule(e, "bridge_nat", X_IIFKIND_BR X_DPORT X_COUNTER X_REDIRECT,
				    protos[i], p53, tp);
	}
	for (j = 0; bridge && j < cfg->n_interfaces; j++) {
		uint32_t w[4] = {0};

		memcpy(w, cfg->interfaces[j], strlen(cfg->interfaces[j]));
		for (i = 0; i < 2; i++)
			expect_rule(e, "bridge_nat",
				    X_IIFNAME X_IIFKIND_BR X_DPORT X_COUNTER X_REDIRECT, w[0], w[1],
				    w[2], w[3], protos[i], p53, tp);
	}
	if (bridge)
		expect_rule(e, "input", X_CT_DNAT X_ACCEPT);
	for (i = 0; i < 2; i++)
		expect_rule(e, "input", X_DPORT X_DROP, protos[i], tp);
}

static void check_table_msg(const struct nlmsghdr *nlh, const char *table)
{
	struct nftnl_table *t = nftnl_table_alloc();

	CHECK(t != NULL);
	if (!t)
		return;
	CHECK_EQ(nftnl_table_nlmsg_parse(nlh, t), 0);
	CHECK(strcmp(nftnl_table_get_str(t, NFTNL_TABLE_NAME), table) == 0);
	CHECK_EQ(nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY), NFPROTO_INET);
	nftnl_table_free(t);
}

static void check_chain_msg(const struct nlmsghdr *nlh, const char *table,
			    const struct expect_chain *ec)
{
	struct nftnl_chain *c = nftnl_chain_alloc();

	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_EQ(nftnl_chain_nlmsg_parse(nlh, c), 0);
	CHECK(strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), table) == 0);
	CHECK_EQ(nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY), NFPROTO_INET);
	CHECK(strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), ec->name) == 0);
	CHECK(strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), ec->type) == 0);
	CHECK_EQ(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM), ec->hooknum);
	CHECK_EQ(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO), ec->prio);
	CHECK_EQ(nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY), NF_ACCEPT);
	nftnl_chain_free(c);
}

static void check_rule_msg(const struct nlmsghdr *nlh, const char *table, const char *chain,
			   const char *exprs)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	const char *body;
	char text[2048];

	CHECK(r != NULL);
	if (!r)
		return;
	CHECK_EQ(nftnl_rule_nlmsg_parse(nlh, r), 0);
	CHECK(strcmp(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), table) == 0);
	CHECK(strcmp(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), chain) == 0);
	CHECK_EQ(nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY), NFPROTO_INET);
	if (EXPR_TEXT_COMPARABLE) {
		/* a first line names the rule ("inet TABLE CHAIN"), then one per expression */
		nftnl_rule_snprintf(text, sizeof(text), r, NFTNL_OUTPUT_DEFAULT, 0);
		body = strchr(text, '\n');
		body = body ? body + 1 : text;
		CHECK(strcmp(body, exprs) == 0);
		if (strcmp(body, exprs) != 0)
			fprintf(stderr, "rule in %s:\n%sexpected:\n%s", chain, body, exprs);
	}
	nftnl_rule_free(r);
}

static bool is_batch_marker(const struct nlmsghdr *nlh, uint16_t type)
{
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);

	return nlh->nlmsg_type == type && nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(*nfg)) &&
	       nfg->res_id == htons(NFNL_SUBSYS_NFTABLES);
}

/* Build the batch for cfg and check every message in it. */
static void check_batch(const char *what, const struct ruleset_config *cfg)
{
	static uint32_t buf[16384], again[16384];
	const uint32_t seq = 4000000000u; /* crosses UINT32_MAX: wrap must not matter */
	size_t len = 0, len2 = 0, i, sum = 0;
	unsigned int nmsgs = 0, nmsgs2 = 0, idx = 0, want;
	static struct expect e;
	struct nlmsghdr *nlh;
	int left, err;

	printf("batch: %s\n", what);
	expect_build(&e, cfg);
	err = ruleset_build(cfg, buf, sizeof(buf), seq, &len, &nmsgs);
	CHECK_EQ(err, 0);
	if (err)
		return;
	want = 1 + 3 + e.nchains + e.nrules + 1;
	CHECK_EQ(nmsgs, want);

	/* deterministic: the same config and seq give the same bytes */
	CHECK_EQ(ruleset_build(cfg, again, sizeof(again), seq, &len2, &nmsgs2), 0);
	CHECK_EQ(len2, len);
	CHECK_EQ(nmsgs2, nmsgs);
	CHECK(memcmp(buf, again, len) == 0);

	left = (int)len;
	for (nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, left);
	     nlh = mnl_nlmsg_next(nlh, &left), idx++) {
		uint16_t flags = nlh->nlmsg_flags;

		sum += nlh->nlmsg_len;
		CHECK_EQ(nlh->nlmsg_seq, (uint32_t)(seq + idx));
		if (idx == 0) {
			CHECK(is_batch_marker(nlh, NFNL_MSG_BATCH_BEGIN));
			continue;
		}
		if (idx == want - 1) {
			CHECK(is_batch_marker(nlh, NFNL_MSG_BATCH_END));
			continue;
		}
		CHECK_EQ(flags & (NLM_F_REQUEST | NLM_F_ACK), NLM_F_REQUEST | NLM_F_ACK);
		if (idx <= 3) {
			static const uint16_t types[] = {NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE,
							 NFT_MSG_NEWTABLE};
			static const uint16_t cflags[] = {NLM_F_CREATE, 0,
							  NLM_F_CREATE | NLM_F_EXCL};

			CHECK_EQ(nlh->nlmsg_type, NFT_TYPE(types[idx - 1]));
			CHECK_EQ(flags & (NLM_F_CREATE | NLM_F_EXCL), cflags[idx - 1]);
			check_table_msg(nlh, cfg->table);
		} else if (idx < 4 + e.nchains) {
			CHECK_EQ(nlh->nlmsg_type, NFT_TYPE(NFT_MSG_NEWCHAIN));
			CHECK_EQ(flags & NLM_F_CREATE, NLM_F_CREATE);
			check_chain_msg(nlh, cfg->table, &e.chain[idx - 4]);
		} else {
			i = idx - 4 - e.nchains;
			CHECK_EQ(nlh->nlmsg_type, NFT_TYPE(NFT_MSG_NEWRULE));
			CHECK_EQ(flags & (NLM_F_CREATE | NLM_F_APPEND),
				 NLM_F_CREATE | NLM_F_APPEND);
			check_rule_msg(nlh, cfg->table, e.rule[i].chain, e.rule[i].exprs);
		}
	}
	CHECK_EQ(idx, want);
	CHECK_EQ(left, 0);
	CHECK_EQ(sum, len);
}

/* Buffers too small by any amount fail cleanly; the exact size works. */
static void check_nospc(const struct ruleset_config *cfg)
{
	static uint32_t buf[16384];
	size_t len = 0, len2 = 12345;
	unsigned int nmsgs = 0, nmsgs2 = 77;

	CHECK_EQ(ruleset_build(cfg, buf, sizeof(buf), 1, &len, &nmsgs), 0);
	CHECK_EQ(ruleset_build(cfg, buf, len - 1, 1, &len2, &nmsgs2), -ENOSPC);
	CHECK_EQ(ruleset_build(cfg, buf, 100, 1, &len2, &nmsgs2), -ENOSPC);
	CHECK_EQ(ruleset_build(cfg, buf, 0, 1, &len2, &nmsgs2), -ENOSPC);
	CHECK_EQ(len2, 12345); /* outputs untouched on failure */
	CHECK_EQ(nmsgs2, 77);
	CHECK_EQ(ruleset_build(cfg, buf, len, 1, &len2, &nmsgs2), 0);
	CHECK_EQ(len2, len);
	CHECK_EQ(nmsgs2, nmsgs);
}

static int build_err(const struct ruleset_config *cfg)
{
	static uint32_t buf[16384];
	unsigned int nmsgs;
	size_t len;

	return ruleset_build(cfg, buf, sizeof(buf), 1, &len, &nmsgs);
}

static void check_einval(const struct ruleset_config *good)
{
	static const char *const bad16[] = {"eth0", "abcdefghijklmnop"};
	static const char *const empty[] = {""};
	static const char *const null_name[] = {NULL};
	struct ruleset_config c;
	char long_table[300];

	c = *good;
	c.scope = 0;
	CHECK_EQ(build_err(&c), -EINVAL);
	c.scope = 4;
	CHECK_EQ(build_err(&c), -EINVAL);

	c = *good;
	c.interfaces = bad16;
	c.n_interfaces = 2;
	CHECK_EQ(build_err(&c), -EINVAL);
	c.interfaces = empty;
	c.n_interfaces = 1;
	CHECK_EQ(build_err(&c), -EINVAL);
	c.interfaces = null_name;
	CHECK_EQ(build_err(&c), -EINVAL);
	c.interfaces = NULL;
	CHECK_EQ(build_err(&c), -EINVAL);
	c.interfaces = two_ifaces; /* interfaces without gateway scope */
	c.n_interfaces = 2;
	c.scope = RULESET_SCOPE_HOST;
	CHECK_EQ(build_err(&c), -EINVAL);

	c = *good;
	c.exempt_ifaces = (const char *const[]){"tun*", "t*n"};
	c.n_exempt_ifaces = 2;
	CHECK_EQ(build_err(&c), -EINVAL);
	c.exempt_ifaces = null_name;
	c.n_exempt_ifaces = 1;
	CHECK_EQ(build_err(&c), -EINVAL);
	c.exempt_ifaces = NULL;
	CHECK_EQ(build_err(&c), -EINVAL);

	c = *good;
	c.tproxy_port = 0;
	CHECK_EQ(build_err(&c), -EINVAL);
	c = *good;
	c.capture_mark = 0;
	CHECK_EQ(build_err(&c), -EINVAL);
	c = *good;
	c.bypass_mark = c.capture_mark;
	CHECK_EQ(build_err(&c), -EINVAL);

	c = *good;
	c.table = "";
	CHECK_EQ(build_err(&c), -EINVAL);
	c.table = NULL;
	CHECK_EQ(build_err(&c), -EINVAL);
	memset(long_table, 'x', sizeof(long_table) - 1);
	long_table[sizeof(long_table) - 1] = '\0';
	c.table = long_table;
	CHECK_EQ(build_err(&c), -EINVAL);
	long_table[NFT_TABLE_MAXNAMELEN - 1] = '\0'; /* 255 characters: the longest allowed */
	CHECK_EQ(build_err(&c), 0);

	/* ruleset_remove validates before it talks to the kernel */
	CHECK_EQ(ruleset_remove(""), -EINVAL);
	CHECK_EQ(ruleset_remove(NULL), -EINVAL);
}

/*
 * The expectation generator against text copied verbatim from `nft --debug=netlink -f` of
 * nftables/dotgw.nft and of `iifname "wlan-guest-1234" tcp dport 53 ...`.
 */
static const char bridge_udp[] = "  [ meta load iifkind => reg 1 ]\n"
				 "  [ cmp eq reg 1 0x64697262 0x00006567 0x00000000 0x00000000 ]\n"
				 "  [ meta load l4proto => reg 1 ]\n"
				 "  [ cmp eq reg 1 0x00000011 ]\n"
				 "  [ payload load 2b @ transport header + 2 => reg 1 ]\n"
				 "  [ cmp eq reg 1 0x00003500 ]\n"
				 "  [ counter pkts 0 bytes 0 ]\n"
				 "  [ immediate reg 1 0x00004527 ]\n"
				 "  [ redir proto_min reg 1 flags 0x2 ]\n";
static const char fib_local_return[] = "  [ fib daddr type => reg 1 ]\n"
				       "  [ cmp eq reg 1 0x00000002 ]\n"
				       "  [ immediate reg 0 return ]\n";
static const char ct_dnat_accept[] = "  [ ct load status => reg 1 ]\n"
				     "  [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]\n"
				     "  [ cmp neq reg 1 0x00000000 ]\n"
				     "  [ immediate reg 0 accept ]\n";

static void check_generator(const struct ruleset_config *defaults)
{
	static const char gateway_udp[] = "  [ meta load iif => reg 1 ]\n"
					  "  [ cmp neq reg 1 0x00000001 ]\n"
					  "  [ meta load l4proto => reg 1 ]\n"
					  "  [ cmp eq reg 1 0x00000011 ]\n"
					  "  [ payload load 2b @ transport header + 2 => reg 1 ]\n"
					  "  [ cmp eq reg 1 0x00003500 ]\n"
					  "  [ counter pkts 0 bytes 0 ]\n"
					  "  [ immediate reg 1 0x00004527 ]\n"
					  "  [ tproxy port reg 1 ]\n"
					  "  [ immediate reg 1 0x00000d07 ]\n"
					  "  [ meta set mark with reg 1 ]\n"
					  "  [ immediate reg 0 accept ]\n";
	static const char iifname_tcp[] =
		"  [ meta load iifname => reg 1 ]\n"
		"  [ cmp eq reg 1 0x6e616c77 0x6575672d 0x312d7473 0x00343332 ]\n"
		"  [ meta load l4proto => reg 1 ]\n"
		"  [ cmp eq reg 1 0x00000006 ]\n";
	static struct expect e;
	struct ruleset_config c = *defaults;

	if (!EXPR_TEXT_COMPARABLE)
		return;
	expect_build(&e, &c);
	CHECK_EQ(e.nrules, 18);
	CHECK(strcmp(e.rule[6].chain, "prerouting") == 0);
	CHECK(strcmp(e.rule[6].exprs, fib_local_return) == 0);
	CHECK(strcmp(e.rule[10].chain, "prerouting") == 0);
	CHECK(strcmp(e.rule[10].exprs, gateway_udp) == 0);
	CHECK(strcmp(e.rule[12].chain, "bridge_nat") == 0);
	CHECK(strcmp(e.rule[12].exprs, fib_local_return) == 0);
	CHECK(strcmp(e.rule[13].exprs, bridge_udp) == 0);
	CHECK(strcmp(e.rule[15].chain, "input") == 0);
	CHECK(strcmp(e.rule[15].exprs, ct_dnat_accept) == 0);
	c.interfaces = two_ifaces;
	c.n_interfaces = 2;
	expect_build(&e, &c);
	CHECK_EQ(e.nrules, 22);
	CHECK(strncmp(e.rule[13].exprs, iifname_tcp, strlen(iifname_tcp)) == 0);

	/* `oifname "tun*" return` in output, `fib daddr oifname "wg0" return` in prerouting */
	c = *defaults;
	c.exempt_ifaces = (const char *const[]){"tun*", "wg0"};
	c.n_exempt_ifaces = 2;
	expect_build(&e, &c);
	CHECK_EQ(e.nrules, 18 + 6);
	CHECK(strcmp(e.rule[2].chain, "output") == 0);
	CHECK(strcmp(e.rule[2].exprs, "  [ meta load oifname => reg 1 ]\n"
				      "  [ cmp eq reg 1 0x006e7574 ]\n"
				      "  [ immediate reg 0 return ]\n") == 0);
	CHECK(strcmp(e.rule[11].chain, "prerouting") == 0);
	CHECK(strcmp(e.rule[11].exprs,
		     "  [ fib daddr oifname => reg 1 ]\n"
		     "  [ cmp eq reg 1 0x00306777 0x00000000 0x00000000 0x00000000 ]\n"
		     "  [ immediate reg 0 return ]\n") == 0);
}

/*
 * Every mode: in each chain the exemption of a tunnel comes before anything that captures
 * (queue, tproxy, mark set, redirect), so it holds for UDP and TCP alike.
 */
static void check_exempt_first(const char *what, const struct ruleset_config *cfg)
{
	static const char *const chains[] = {"output", "prerouting", "bridge_nat"};
	static const char *const capture[] = {"queue", "target", "tproxy", "set mark", "redir"};
	static uint32_t buf[16384];
	int first_exempt[3], first_capture[3], idx = 0, left;
	unsigned int nmsgs;
	struct nlmsghdr *nlh;
	size_t len;
	char text[2048];

	printf("exempt interfaces first: %s\n", what);
	for (int k = 0; k < 3; k++)
		first_exempt[k] = first_capture[k] = -1;
	CHECK_EQ(ruleset_build(cfg, buf, sizeof(buf), 1, &len, &nmsgs), 0);
	left = (int)len;
	for (nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, left);
	     nlh = mnl_nlmsg_next(nlh, &left), idx++) {
		struct nftnl_rule *r;
		const char *chain;

		if (nlh->nlmsg_type != NFT_TYPE(NFT_MSG_NEWRULE))
			continue;
		r = nftnl_rule_alloc();
		if (!r || nftnl_rule_nlmsg_parse(nlh, r) < 0) {
			CHECK(false);
			nftnl_rule_free(r);
			continue;
		}
		chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
		nftnl_rule_snprintf(text, sizeof(text), r, NFTNL_OUTPUT_DEFAULT, 0);
		for (int k = 0; k < 3; k++) {
			if (strcmp(chain, chains[k]) != 0)
				continue;
			if (strstr(text, "oifname") && first_exempt[k] < 0)
				first_exempt[k] = idx;
			for (size_t j = 0; j < sizeof(capture) / sizeof(capture[0]); j++)
				if (strstr(text, capture[j]) && first_capture[k] < 0)
					first_capture[k] = idx;
		}
		nftnl_rule_free(r);
	}
	for (int k = 0; k < 3; k++) {
		bool want =
			k == 0 ? (cfg->scope & RULESET_SCOPE_HOST)
			       : (cfg->scope & RULESET_SCOPE_GATEWAY) && (k == 1 || !cfg->no_nat);

		CHECK_EQ(first_exempt[k] >= 0, want);
		if (want) {
			CHECK(first_capture[k] > first_exempt[k]);
			if (first_capture[k] <= first_exempt[k])
				fprintf(stderr, "chain %s: capture at %d, exemption at %d\n",
					chains[k], first_capture[k], first_exempt[k]);
		}
	}
}

static void check_ifpattern(void)
{
	static const char *const good[] = {
		"tun0", "tun*", "w*", "wg-vpn*", "abcdefghijklmno", "abcdefghijklmn*",
		"a.b",	"..."};
	static const char *const bad[] = {
		"",  "*",  "t*n", "**",	 "tun**", "*tun", "abcdefghijklmnop", "abcdefghijklmno*",
		".", "..", "a/b", "a:1", "a b",	  "tun\t"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(ruleset_ifpattern_valid(good[i]));
		if (!ruleset_ifpattern_valid(good[i]))
			fprintf(stderr, "refused: '%s'\n", good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!ruleset_ifpattern_valid(bad[i]));
		if (ruleset_ifpattern_valid(bad[i]))
			fprintf(stderr, "accepted: '%s'\n", bad[i]);
	}
	CHECK(!ruleset_ifpattern_valid(NULL));
	CHECK(ruleset_ifpattern_match("tun*", "tun0"));
	CHECK(ruleset_ifpattern_match("tun*", "tun"));
	CHECK(!ruleset_ifpattern_match("tun*", "tu"));
	CHECK(!ruleset_ifpattern_match("tun*", "xtun0"));
	CHECK(ruleset_ifpattern_match("tun0", "tun0"));
	CHECK(!ruleset_ifpattern_match("tun0", "tun01"));
	CHECK(!ruleset_ifpattern_match("tun0", "tun"));
}

int main(void)
{
	const struct ruleset_config defaults = {
		.table = "dotgw",
		.scope = RULESET_SCOPE_HOST | RULESET_SCOPE_GATEWAY,
		.tproxy_port = 10053,
		.capture_mark = 0xd07,
		.bypass_mark = 0xd08,
	};
	struct ruleset_config c;

	check_generator(&defaults);

	c = defaults;
	c.scope = RULESET_SCOPE_HOST;
	check_batch("host", &c);

	c = defaults;
	c.scope = RULESET_SCOPE_GATEWAY;
	check_batch("gateway", &c);

	check_batch("both (defaults)", &defaults);

	c = defaults;
	c.no_nat = true;
	check_batch("both, a kernel without NAT (no bridge redirect)", &c);

	c = defaults;
	c.scope = RULESET_SCOPE_GATEWAY;
	c.interfaces = two_ifaces;
	c.n_interfaces = 2;
	check_batch("gateway, two interfaces", &c);

	c = defaults;
	c.table = "other_table";
	c.interfaces = two_ifaces;
	c.n_interfaces = 1;
	c.tproxy_port = 5353;
	c.capture_mark = 1;
	c.bypass_mark = 0xffffffff;
	check_batch("both, one interface, other table, port and marks", &c);

	c = defaults;
	c.capture_local = true;
	check_batch("both, capture local", &c);

	c = defaults;
	c.scope = RULESET_SCOPE_GATEWAY;
	c.interfaces = two_ifaces;
	c.n_interfaces = 1;
	c.no_ipv6 = true;
	check_batch("gateway, one interface, no IPv6", &c);

	c = defaults;
	c.no_ipv6 = true;
	c.capture_local = true;
	check_batch("both, no IPv6, capture local", &c);

	c = defaults;
	c.exempt_ifaces = tunnels;
	c.n_exempt_ifaces = 3;
	check_batch("both, three exempt interfaces", &c);
	check_exempt_first("both, tproxy", &c);
	c.scope = RULESET_SCOPE_HOST;
	check_batch("host, three exempt interfaces", &c);
	check_exempt_first("host, tproxy", &c);
	c.scope = RULESET_SCOPE_GATEWAY;
	c.interfaces = two_ifaces;
	c.n_interfaces = 2;
	check_batch("gateway, two interfaces, three exempt interfaces", &c);
	check_exempt_first("gateway, tproxy", &c);
	c.no_nat = true;
	check_exempt_first("gateway, tproxy, no NAT", &c);
	c = defaults;
	c.exempt_ifaces = tunnels;
	c.n_exempt_ifaces = 3;
	c.mode = RULESET_MODE_NFQUEUE;
	c.queue_total = 2;
	check_exempt_first("both, nfqueue", &c);
	c.queue_compat = true;
	c.fail_closed = true;
	check_exempt_first("both, nfqueue (compat target), fail closed", &c);
	c.scope = RULESET_SCOPE_HOST;
	check_exempt_first("host, nfqueue (compat target), fail closed", &c);
	check_ifpattern();

	check_nospc(&defaults);
	check_einval(&defaults);

	return check_done("ruleset");
}

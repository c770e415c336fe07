/*
 * egress_rules.c - the egress table (see egress_rules.h), built with nftbuild.c.
 *
 * One transaction either way. Fresh: NEWTABLE, DELTABLE, NEWTABLE (as ruleset.c does, so an
 * older table goes atomically), then every object. Keep: NEWTABLE without NLM_F_EXCL, the
 * rules of every existing chain flushed, stale chains, counters and sets deleted (after the
 * flushes, so that nothing refers to them), missing objects created, rules added. What exists
 * is read first with three dumps (chains, sets, counters) of this table.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "dotgw/egress_rules.h"
#include "dotgw/nftbuild.h"
#include "dotgw/ruleset.h"

#define ER_NAME_MAX  32
#define ER_NAMES_MAX 96 /* 16 groups: 16 chains + 2 base chains, 32 sets, 16 counters */
#define ER_TYPE_IPV4 7	/* nft's datatypes ipv4_addr and ipv6_addr, for nft's listing */
#define ER_TYPE_IPV6 8

/* What a dump found in the table: names of one kind of object. */
struct er_names {
	char name[ER_NAMES_MAX][ER_NAME_MAX];
	size_t n;
	bool overflow;
};

struct er_existing {
	bool table;
	struct er_names chains, sets, counters;
};

struct er_build {
	const struct egress_rules_config *cfg;
	const struct er_existing *ex; /* NULL: fresh */
};

void egress_rules_set_name(char *buf, size_t len, size_t group, int family)
{
	snprintf(buf, len, "e%zu_%d", group, family == AF_INET6 ? 6 : 4);
}

/* --- reading what exists -------------------------------------------------------------- */

/*
 * er_seq - a sequence number for the next request on nl, after dropping whatever an earlier
 * exchange left unread there; numbers increase from a random start, so an answer to one
 * request is never taken for another's.
 */
static uint32_t er_seq(struct mnl_socket *nl)
{
	static _Atomic uint32_t next;
	uint8_t drain[NB_RECV_SIZE];
	uint32_t zero = 0;

	while (recv(mnl_socket_get_fd(nl), drain, sizeof(drain), MSG_DONTWAIT) > 0)
		;
	atomic_compare_exchange_strong(&next, &zero, (uint32_t)time(NULL) << 8);
	return atomic_fetch_add(&next, 1);
}

/*
 * er_talk - send the request in buf (built with sequence number seq) on nl, and run cb (may
 * be NULL) over its answers until its end (ACK, or DONE for a dump). 0, or -errno: the
 * kernel's error, or the socket's.
 */
static int er_talk(struct mnl_socket *nl, uint32_t *buf, size_t size, uint32_t seq, mnl_cb_t cb,
		   void *data)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	uint32_t portid = mnl_socket_get_portid(nl);
	ssize_t n;
	int r;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(nl, buf, size);
		if (n < 0)
			return -errno;
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
	} while (r > 0);
	return r < 0 ? (errno ? -errno : -EPROTO) : 0;
}

struct er_dump {
	const char *table;
	uint16_t type; /* NFT_MSG_GETCHAIN, GETSET, GETOBJ */
	struct er_names *out;
};

/* er_attr_cb - the attributes of a GETCHAIN/GETSET/GETOBJ answer, by type (all < 16). */
static int er_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(attr);

	if (type < 16)
		tb[type] = attr;
	return MNL_CB_OK;
}

/*
 * er_dump_cb - read the table and name attributes straight from the message (libnftnl 1.2's
 * parsers refuse attributes newer kernels send: "kernel ABI is broken").
 */
static int er_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct er_dump *d = data;
	const struct nlattr *tb[16] = {NULL};
	const char *table, *name;
	uint16_t name_attr = d->type == NFT_MSG_GETCHAIN ? NFTA_CHAIN_NAME : NFTA_SET_NAME;

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), er_attr_cb, tb) < 0 || !tb[1] ||
	    !tb[name_attr])
		return MNL_CB_OK;
	/* NFTA_CHAIN_TABLE, NFTA_SET_TABLE and NFTA_OBJ_TABLE are all 1 */
	table = mnl_attr_get_str(tb[1]);
	name = mnl_attr_get_str(tb[name_attr]);
	if (d->type == NFT_MSG_GETOBJ &&
	    (!tb[NFTA_OBJ_TYPE] ||
	     ntohl(mnl_attr_get_u32(tb[NFTA_OBJ_TYPE])) != NFT_OBJECT_COUNTER))
		return MNL_CB_OK;
	if (strcmp(table, d->table))
		return MNL_CB_OK;
	if (d->out->n < ER_NAMES_MAX && strlen(name) < ER_NAME_MAX)
		strcpy(d->out->name[d->out->n++], name);
	else
		d->out->overflow = true;
	return MNL_CB_OK;
}

/* er_dump - the names of one kind of object in table; 0 or -errno. */
static int er_dump(struct mnl_socket *nl, const char *table, uint16_t type, struct er_names *out)
{
	uint32_t buf[NB_RECV_SIZE / sizeof(uint32_t)];
	uint32_t seq = er_seq(nl);
	struct er_dump d = {.table = table, .type = type, .out = out};

	memset(out, 0, sizeof(*out));
	nftnl_nlmsg_build_hdr((char *)buf, type, NFPROTO_INET, NLM_F_DUMP, seq);
	return er_talk(nl, buf, sizeof(buf), seq, er_dump_cb, &d);
}

/* er_table_exists - does table exist? 1, 0, or -errno. */
static int er_table_exists(struct mnl_socket *nl, const char *table)
{
	uint32_t buf[NB_RECV_SIZE / sizeof(uint32_t)];
	uint32_t seq = er_seq(nl);
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	int r;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nlh = nftnl_nlmsg_build_hdr((char *)buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	r = er_talk(nl, buf, sizeof(buf), seq, NULL, NULL);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

/* --- building ------------------------------------------------------------------------- */

/* er_flush - delete every rule of chain (DELRULE naming the chain alone). */
static void er_flush(struct nb_batch *bb, const char *table, const char *chain)
{
	struct nb_rule rr;
	struct nlmsghdr *nlh;

	nb_rule_start(&rr, table, chain);
	if (!bb->err && rr.err)
		bb->err = rr.err;
	if (!bb->err) {
		nlh = nftnl_rule_nlmsg_build_hdr((char *)bb->scratch, NFT_MSG_DELRULE, NFPROTO_INET,
						 NLM_F_ACK, bb->seq);
		nftnl_rule_nlmsg_build_payload(nlh, rr.r);
		nb_batch_put(bb, nlh->nlmsg_len);
	}
	nftnl_rule_free(rr.r);
}

static void er_set(struct nb_batch *bb, const struct egress_rules_config *cfg, const char *name,
		   int family, uint16_t type, uint32_t id)
{
	struct nftnl_set *s;
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	s = nftnl_set_alloc();
	if (!s || nftnl_set_set_str(s, NFTNL_SET_TABLE, cfg->table) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0) {
		bb->err = -ENOMEM;
		goto out_free;
	}
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (type == NFT_MSG_NEWSET) {
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE,
				  family == AF_INET6 ? ER_TYPE_IPV6 : ER_TYPE_IPV4);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, family == AF_INET6 ? 16 : 4);
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
		nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, cfg->max);
		nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	}
	nlh = nftnl_nlmsg_build_hdr((char *)bb->scratch, type, NFPROTO_INET,
				    (type == NFT_MSG_NEWSET ? NLM_F_CREATE : 0) | NLM_F_ACK,
				    bb->seq);
	nftnl_set_nlmsg_build_payload(nlh, s);
	nb_batch_put(bb, nlh->nlmsg_len);
out_free:
	nftnl_set_free(s);
}

static void er_counter(struct nb_batch *bb, const char *table, const char *name, uint16_t type)
{
	struct nftnl_obj *o;
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	o = nftnl_obj_alloc();
	if (!o) {
		bb->err = -ENOMEM;
		return;
	}
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_INET);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	nlh = nftnl_nlmsg_build_hdr((char *)bb->scratch, type, NFPROTO_INET,
				    (type == NFT_MSG_NEWOBJ ? NLM_F_CREATE : 0) | NLM_F_ACK,
				    bb->seq);
	nftnl_obj_nlmsg_build_payload(nlh, o);
	nb_batch_put(bb, nlh->nlmsg_len);
	nftnl_obj_free(o);
}

static void er_jump(struct nb_rule *rr, const char *chain)
{
	struct nftnl_expr *e = nb_expr_new(rr, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)NFT_JUMP);
	nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
}

/* ip daddr @set / ip6 daddr @set */
static void er_match_daddr_set(struct nb_rule *rr, int family, const char *set, uint32_t id)
{
	const uint8_t proto = family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
	struct nftnl_expr *e;

	nb_expr_meta_load(rr, NFT_META_NFPROTO);
	nb_expr_cmp(rr, NFT_CMP_EQ, &proto, sizeof(proto));
	nb_expr_payload(rr, NFT_PAYLOAD_NETWORK_HEADER, family == AF_INET6 ? 24 : 16,
			family == AF_INET6 ? 16 : 4);
	e = nb_expr_new(rr, "lookup");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, id);
}

static void er_stmt_counter_named(struct nb_rule *rr, const char *name)
{
	struct nftnl_expr *e = nb_expr_new(rr, "objref");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
	nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, name);
}

/* er_group_chain - chain g<i>: what group i's clients may open. */
static void er_group_chain(struct nb_batch *bb, const struct egress_rules_config *cfg, size_t i)
{
	static const uint8_t l4[] = {IPPROTO_UDP, IPPROTO_TCP};
	const struct egress_rules_group *g = &cfg->groups[i];
	char chain[ER_NAME_MAX], set[ER_NAME_MAX], ctr[ER_NAME_MAX];
	struct nb_rule rr;

	snprintf(chain, sizeof(chain), "g%zu", i);
	snprintf(ctr, sizeof(ctr), "c%zu", i);
	nb_rule_start(&rr, cfg->table, chain);
	nb_match_ct_bits(&rr, NFT_CT_STATE,
			 NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED));
	nb_expr_imm_verdict(&rr, NF_ACCEPT);
	nb_batch_rule(bb, &rr);
	for (size_t k = 0; k < sizeof(l4); k++) {
		nb_rule_start(&rr, cfg->table, chain);
		nb_match_dport(&rr, l4[k], 53);
		nb_expr_imm_verdict(&rr, NF_ACCEPT);
		nb_batch_rule(bb, &rr);
	}
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;

		egress_rules_set_name(set, sizeof(set), i, family);
		nb_rule_start(&rr, cfg->table, chain);
		er_match_daddr_set(&rr, family, set, (uint32_t)(2 * i + (size_t)f + 1));
		nb_expr_imm_verdict(&rr, NF_ACCEPT);
		nb_batch_rule(bb, &rr);
	}
	for (size_t k = 0; k < g->n_allow; k++) {
		nb_rule_start(&rr, cfg->table, chain);
		nb_match_cidr(&rr, &g->allow[k], false);
		nb_expr_imm_verdict(&rr, NF_ACCEPT);
		nb_batch_rule(bb, &rr);
	}
	nb_rule_start(&rr, cfg->table, chain);
	er_stmt_counter_named(&rr, ctr);
	nb_expr_imm_verdict(&rr, NF_DROP);
	nb_batch_rule(bb, &rr);
}

/* er_dispatch - base chain's rules: each group's clients to its chain, or out (return). */
static void er_dispatch(struct nb_batch *bb, const struct egress_rules_config *cfg,
			const char *base, bool output)
{
	struct nb_rule rr;
	char chain[ER_NAME_MAX];

	if (output) {
		nb_rule_start(&rr, cfg->table, base);
		nb_match_meta_u32(&rr, NFT_META_MARK, NFT_CMP_EQ, cfg->bypass_mark);
		nb_expr_imm_verdict(&rr, NF_ACCEPT);
		nb_batch_rule(bb, &rr);
	}
	for (size_t i = 0; i < cfg->n_groups; i++) {
		const struct egress_rules_group *g = &cfg->groups[i];

		snprintf(chain, sizeof(chain), "g%zu", i);
		for (size_t k = 0; k < g->n_clients + (output ? 0 : g->n_ifnames); k++) {
			nb_rule_start(&rr, cfg->table, base);
			if (k < g->n_clients)
				nb_match_cidr(&rr, &g->clients[k], true);
			else
				nb_match_iifname(&rr, g->ifnames[k - g->n_clients]);
			if (g->egress)
				er_jump(&rr, chain);
			else
				nb_expr_imm_verdict(&rr, NFT_RETURN);
			nb_batch_rule(bb, &rr);
		}
	}
}

/* er_wanted - is name (of kind: 'g' chain, 'e' set, 'c' counter) one cfg has? */
static bool er_wanted(const struct egress_rules_config *cfg, const char *name)
{
	char want[ER_NAME_MAX];

	if (!strcmp(name, "forward"))
		return cfg->scope & RULESET_SCOPE_GATEWAY;
	if (!strcmp(name, "output"))
		return cfg->scope & RULESET_SCOPE_HOST;
	for (size_t i = 0; i < cfg->n_groups; i++) {
		if (!cfg->groups[i].egress)
			continue;
		for (int k = 0; k < 4; k++) {
			if (k < 2)
				egress_rules_set_name(want, sizeof(want), i,
						      k ? AF_INET6 : AF_INET);
			else
				snprintf(want, sizeof(want), "%c%zu", k == 2 ? 'g' : 'c', i);
			if (!strcmp(name, want))
				return true;
		}
	}
	return false;
}

static int er_build(void *data, void *buf, size_t buflen, uint32_t seq, size_t *len,
		    unsigned int *nmsgs)
{
	const struct er_build *b = data;
	const struct egress_rules_config *cfg = b->cfg;
	const struct er_existing *ex = b->ex;
	struct nb_batch *bb = nb_batch_new(buf, buflen, seq);
	char name[ER_NAME_MAX];

	if (!bb)
		return -ENOMEM;
	nb_batch_marker(bb, true);
	nb_batch_table(bb, cfg->table, NFT_MSG_NEWTABLE, NLM_F_CREATE, 0);
	if (!ex) {
		nb_batch_table(bb, cfg->table, NFT_MSG_DELTABLE, 0, 0);
		nb_batch_table(bb, cfg->table, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL,
			       cfg->fail_closed ? 0 : NFT_TABLE_F_OWNER);
	} else {
		for (size_t i = 0; i < ex->chains.n; i++)
			er_flush(bb, cfg->table, ex->chains.name[i]);
		for (size_t i = 0; i < ex->chains.n; i++)
			if (!er_wanted(cfg, ex->chains.name[i]))
				nb_batch_chain_plain(bb, NFT_MSG_DELCHAIN, cfg->table,
						     ex->chains.name[i]);
		for (size_t i = 0; i < ex->counters.n; i++)
			if (!er_wanted(cfg, ex->counters.name[i]))
				er_counter(bb, cfg->table, ex->counters.name[i], NFT_MSG_DELOBJ);
		for (size_t i = 0; i < ex->sets.n; i++)
			if (!er_wanted(cfg, ex->sets.name[i]))
				er_set(bb, cfg, ex->sets.name[i], AF_INET, NFT_MSG_DELSET, 0);
	}
	if (cfg->scope & RULESET_SCOPE_GATEWAY)
		nb_batch_chain(bb, cfg->table, "forward", "filter", NF_INET_FORWARD,
			       NF_IP_PRI_FILTER);
	if (cfg->scope & RULESET_SCOPE_HOST)
		nb_batch_chain(bb, cfg->table, "output", "filter", NF_INET_LOCAL_OUT,
			       NF_IP_PRI_FILTER);
	for (size_t i = 0; i < cfg->n_groups; i++) {
		if (!cfg->groups[i].egress)
			continue;
		for (int f = 0; f < 2; f++) {
			egress_rules_set_name(name, sizeof(name), i, f ? AF_INET6 : AF_INET);
			er_set(bb, cfg, name, f ? AF_INET6 : AF_INET, NFT_MSG_NEWSET,
			       (uint32_t)(2 * i + (size_t)f + 1));
		}
		snprintf(name, sizeof(name), "c%zu", i);
		er_counter(bb, cfg->table, name, NFT_MSG_NEWOBJ);
		snprintf(name, sizeof(name), "g%zu", i);
		nb_batch_chain_plain(bb, NFT_MSG_NEWCHAIN, cfg->table, name);
	}
	for (size_t i = 0; i < cfg->n_groups; i++)
		if (cfg->groups[i].egress)
			er_group_chain(bb, cfg, i);
	if (cfg->scope & RULESET_SCOPE_GATEWAY)
		er_dispatch(bb, cfg, "forward", false);
	if (cfg->scope & RULESET_SCOPE_HOST)
		er_dispatch(bb, cfg, "output", true);
	nb_batch_marker(bb, false);
	return nb_batch_finish(bb, len, nmsgs);
}

int egress_rules_apply(struct mnl_socket *nl, const struct egress_rules_config *cfg)
{
	struct er_existing *ex = NULL;
	struct er_build b = {.cfg = cfg};
	int r;

	if (!cfg->table || !*cfg->table || cfg->n_groups > EGRESS_RULES_MAX_GROUPS || cfg->max == 0)
		return -EINVAL;
	r = cfg->fresh ? 0 : er_table_exists(nl, cfg->table);
	if (r < 0)
		return r;
	if (r == 1) {
		ex = calloc(1, sizeof(*ex));
		if (!ex)
			return -ENOMEM;
		ex->table = true;
		if ((r = er_dump(nl, cfg->table, NFT_MSG_GETCHAIN, &ex->chains)) < 0 ||
		    (r = er_dump(nl, cfg->table, NFT_MSG_GETSET, &ex->sets)) < 0 ||
		    (r = er_dump(nl, cfg->table, NFT_MSG_GETOBJ, &ex->counters)) < 0)
			goto out_free;
		if (ex->chains.overflow || ex->sets.overflow || ex->counters.overflow) {
			r = -E2BIG;
			goto out_free;
		}
		b.ex = ex;
	}
	nb_socket_size(nl, 1 << 20, 4096);
	r = nb_apply(nl, er_build, &b);
out_free:
	free(ex);
	return r;
}

static int er_counter_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_obj *o = data;

	if (nftnl_obj_nlmsg_parse(nlh, o) < 0)
		return MNL_CB_ERROR;
	return MNL_CB_OK;
}

int egress_rules_counter(struct mnl_socket *nl, const char *table, size_t group, uint64_t *packets)
{
	uint32_t buf[NB_RECV_SIZE / sizeof(uint32_t)];
	uint32_t seq = er_seq(nl);
	struct nftnl_obj *o = nftnl_obj_alloc();
	struct nlmsghdr *nlh;
	char name[ER_NAME_MAX];
	int r;

	if (!o)
		return -ENOMEM;
	snprintf(name, sizeof(name), "c%zu", group);
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	nlh = nftnl_nlmsg_build_hdr((char *)buf, NFT_MSG_GETOBJ, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_obj_nlmsg_build_payload(nlh, o);
	nftnl_obj_free(o);
	o = nftnl_obj_alloc(); /* the answer's, parsed */
	if (!o)
		return -ENOMEM;
	r = er_talk(nl, buf, sizeof(buf), seq, er_counter_cb, o);
	if (r == 0 && !nftnl_obj_is_set(o, NFTNL_OBJ_NAME))
		r = -ENOENT;
	if (r == 0)
		*packets = nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_PKTS);
	nftnl_obj_free(o);
	return r;
}

/* What egress_rules_show prints of one element. */
struct er_show {
	FILE *out;
	int family;
	size_t n;
};

static int er_elem_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(attr);

	if (type < 16)
		tb[type] = attr;
	return MNL_CB_OK;
}

static int er_show_cb(const struct nlmsghdr *nlh, void *data)
{
	struct er_show *sh = data;
	const struct nlattr *tb[16] = {NULL}, *elem;
	char text[INET6_ADDRSTRLEN];

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), er_attr_cb, tb) < 0 ||
	    !tb[NFTA_SET_ELEM_LIST_ELEMENTS])
		return MNL_CB_OK;
	mnl_attr_for_each_nested(elem, tb[NFTA_SET_ELEM_LIST_ELEMENTS])
	{
		const struct nlattr *e[16] = {NULL}, *k[16] = {NULL};
		uint64_t expires = 0;

		if (mnl_attr_parse_nested(elem, er_elem_cb, e) < 0 || !e[NFTA_SET_ELEM_KEY] ||
		    mnl_attr_parse_nested(e[NFTA_SET_ELEM_KEY], er_elem_cb, k) < 0 ||
		    !k[NFTA_DATA_VALUE] ||
		    mnl_attr_get_payload_len(k[NFTA_DATA_VALUE]) !=
			    (sh->family == AF_INET6 ? 16 : 4))
			continue;
		if (e[NFTA_SET_ELEM_EXPIRATION])
			expires = be64toh(mnl_attr_get_u64(e[NFTA_SET_ELEM_EXPIRATION]));
		inet_ntop(sh->family, mnl_attr_get_payload(k[NFTA_DATA_VALUE]), text, sizeof(text));
		fprintf(sh->out, "%s\texpires in %llu s\n", text,
			(unsigned long long)(expires / 1000));
		sh->n++;
	}
	return MNL_CB_OK;
}

int egress_rules_show(struct mnl_socket *nl, const char *table, size_t group, FILE *out)
{
	uint32_t buf[NB_RECV_SIZE / sizeof(uint32_t)];
	size_t total = 0;

	for (int f = 0; f < 2; f++) {
		struct er_show sh = {.out = out, .family = f ? AF_INET6 : AF_INET};
		uint32_t seq = er_seq(nl);
		char set[ER_NAME_MAX];
		struct nlmsghdr *nlh;
		int r;

		egress_rules_set_name(set, sizeof(set), group, sh.family);
		nlh = nftnl_nlmsg_build_hdr((char *)buf, NFT_MSG_GETSETELEM, NFPROTO_INET,
					    NLM_F_DUMP | NLM_F_ACK, seq);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
		r = er_talk(nl, buf, sizeof(buf), seq, er_show_cb, &sh);
		if (r < 0)
			return r;
		total += sh.n;
	}
	return (int)total;
}

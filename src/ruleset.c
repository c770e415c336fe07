/*
 * ruleset.c - dotgw's nftables table, built with libnftnl and committed with libmnl.
 *
 * The install batch is one transaction: NEWTABLE, DELTABLE, NEWTABLE, the chains, the rules.
 * The first NEWTABLE makes sure the DELTABLE has something to delete, so a table left by a
 * crashed run is replaced atomically and a fresh start works the same way; when any message
 * fails, the kernel aborts the whole transaction and the previous state stays.
 *
 * Invariants: every message but the batch begin/end markers carries NLM_F_ACK and its ACK is
 * read; ruleset_install() sends exactly the bytes ruleset_build() writes; this file touches no
 * table but the one it is given. nftables/dotgw.nft is the same ruleset written for nft(8) and
 * must list identically: change both together.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <linux/netfilter_ipv4.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "dotgw/ruleset.h"

struct ruleset {
	struct mnl_socket *owner; /* fail open: the socket that owns the table; else NULL */
	bool fail_closed;
};

/*
 * Each message is built in a scratch buffer and copied into the caller's buffer only when it
 * fits: libnftnl writes attributes without bounds checks. Our largest message, a rule of 12
 * expressions plus a table name of at most NFT_TABLE_MAXNAMELEN bytes, is under 1 KiB.
 */
#define RS_MSG_MAX    4096
#define RS_BATCH_INIT 16384
#define RS_BATCH_MAX  (4u << 20)
#define RS_RECV_SIZE  8192
/* the socket buffer space one ACK takes, with its skb overhead, counted generously */
#define RS_ACK_TRUESIZE 2048

struct rs_batch {
	struct mnl_nlmsg_batch *b;
	size_t buflen;
	uint32_t seq;
	unsigned int nmsgs;
	int err;
	uint32_t scratch[RS_MSG_MAX / sizeof(uint32_t)];
};

/* A rule under construction; the first failure sticks and later additions do nothing. */
struct rs_rule {
	struct nftnl_rule *r;
	int err;
};

static int rs_config_check(const struct ruleset_config *cfg);
static int rs_table_name_check(const char *table);
static void rs_batch_put(struct rs_batch *bb, size_t len);
static void rs_batch_marker(struct rs_batch *bb, bool begin);
static void rs_batch_table(struct rs_batch *bb, const char *table, uint16_t type, uint16_t flags,
			   uint32_t table_flags);
static void rs_batch_chain(struct rs_batch *bb, const char *table, const char *name,
			   const char *type, uint32_t hooknum, int32_t prio);
static void rs_batch_rule(struct rs_batch *bb, struct rs_rule *rr);
static void rs_rule_start(struct rs_rule *rr, const char *table, const char *chain);
static struct nftnl_expr *rs_expr_new(struct rs_rule *rr, const char *name);
static void rs_expr_meta_load(struct rs_rule *rr, uint32_t key);
static void rs_expr_cmp(struct rs_rule *rr, uint32_t op, const void *data, uint32_t len);
static void rs_expr_payload(struct rs_rule *rr, uint32_t base, uint32_t offset, uint32_t len);
static void rs_expr_imm_data(struct rs_rule *rr, const void *data, uint32_t len);
static void rs_expr_imm_verdict(struct rs_rule *rr, int verdict);
static void rs_match_meta_u32(struct rs_rule *rr, uint32_t key, uint32_t op, uint32_t value);
static void rs_match_iifname(struct rs_rule *rr, const char *name);
static void rs_match_dport(struct rs_rule *rr, uint8_t l4proto, uint16_t port);
static void rs_stmt_counter(struct rs_rule *rr);
static void rs_stmt_mark_set(struct rs_rule *rr, uint32_t mark);
static void rs_stmt_tproxy(struct rs_rule *rr, uint16_t port);
static void rs_build_output(struct rs_batch *bb, const struct ruleset_config *cfg);
static void rs_build_exempt(struct rs_batch *bb, const struct ruleset_config *cfg,
			    const char *chain);
static void rs_build_exempt_ifaces(struct rs_batch *bb, const struct ruleset_config *cfg,
				   const char *chain);
static void rs_build_prerouting(struct rs_batch *bb, const struct ruleset_config *cfg);
static void rs_build_skip(struct rs_batch *bb, const struct ruleset_config *cfg, const char *chain);
static void rs_build_input(struct rs_batch *bb, const struct ruleset_config *cfg);
static void rs_build_bridge_skip(struct rs_batch *bb, const struct ruleset_config *cfg);
static void rs_build_bridge_nat(struct rs_batch *bb, const struct ruleset_config *cfg);
static void rs_build_bridge_input(struct rs_batch *bb, const struct ruleset_config *cfg);
static void rs_socket_size(struct mnl_socket *nl, size_t len, unsigned int nacks);
static int rs_commit(struct mnl_socket *nl, const void *batch, size_t len, uint32_t seq,
		     unsigned int nacks);
static int rs_read_acks(struct mnl_socket *nl, uint32_t seq, unsigned int nacks);

static const uint8_t rs_l4protos[] = {IPPROTO_UDP, IPPROTO_TCP};

static int rs_table_name_check(const char *table)
{
	size_t len;

	if (!table)
		return -EINVAL;
	len = strnlen(table, NFT_TABLE_MAXNAMELEN);
	if (len == 0 || len == NFT_TABLE_MAXNAMELEN)
		return -EINVAL;
	return 0;
}

static int rs_config_check(const struct ruleset_config *cfg)
{
	const unsigned int all = RULESET_SCOPE_HOST | RULESET_SCOPE_GATEWAY;
	size_t i, len;

	if (rs_table_name_check(cfg->table) < 0)
		return -EINVAL;
	if (cfg->scope == 0 || (cfg->scope & ~all))
		return -EINVAL;
	if (cfg->tproxy_port == 0 || cfg->capture_mark == 0 || cfg->bypass_mark == 0 ||
	    cfg->capture_mark == cfg->bypass_mark)
		return -EINVAL;
	if (cfg->n_interfaces && (!cfg->interfaces || !(cfg->scope & RULESET_SCOPE_GATEWAY)))
		return -EINVAL;
	if (cfg->mode != RULESET_MODE_TPROXY && cfg->mode != RULESET_MODE_NFQUEUE)
		return -EINVAL;
	if ((cfg->n_clients && (!cfg->clients || !(cfg->scope & RULESET_SCOPE_GATEWAY))) ||
	    (cfg->n_exempt && !cfg->exempt))
		return -EINVAL;
	for (i = 0; i < cfg->n_clients + cfg->n_exempt; i++) {
		const struct cidr *c =
			i < cfg->n_clients ? &cfg->clients[i] : &cfg->exempt[i - cfg->n_clients];

		if ((c->family != AF_INET && c->family != AF_INET6) ||
		    c->plen > (c->family == AF_INET ? 32u : 128u))
			return -EINVAL;
	}
	if (cfg->mode == RULESET_MODE_NFQUEUE &&
	    (cfg->queue_total == 0 || (uint32_t)cfg->queue_num + cfg->queue_total > 65536))
		return -EINVAL;
	for (i = 0; i < cfg->n_interfaces; i++) {
		if (!cfg->interfaces[i])
			return -EINVAL;
		len = strnlen(cfg->interfaces[i], IFNAMSIZ);
		if (len == 0 || len == IFNAMSIZ)
			return -EINVAL;
	}
	if (cfg->n_exempt_ifaces && !cfg->exempt_ifaces)
		return -EINVAL;
	for (i = 0; i < cfg->n_exempt_ifaces; i++)
		if (!cfg->exempt_ifaces[i] || !ruleset_ifpattern_valid(cfg->exempt_ifaces[i]))
			return -EINVAL;
	return 0;
}

bool ruleset_ifpattern_valid(const char *p)
{
	size_t len = p ? strnlen(p, IFNAMSIZ) : 0;

	if (len == 0 || len == IFNAMSIZ || !strcmp(p, ".") || !strcmp(p, ".."))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '/' || c == ':' || isspace(c) || (c == '*' && (i == 0 || i != len - 1)))
			return false;
	}
	return true;
}

bool ruleset_ifpattern_match(const char *p, const char *name)
{
	size_t len = strlen(p);

	if (len && p[len - 1] == '*')
		return strncmp(p, name, len - 1) == 0;
	return strcmp(p, name) == 0;
}

/* rs_batch_put - append the message of length len built in bb->scratch, or fail -ENOSPC. */
static void rs_batch_put(struct rs_batch *bb, size_t len)
{
	if (bb->err)
		return;
	if (len > bb->buflen - mnl_nlmsg_batch_size(bb->b)) {
		bb->err = -ENOSPC;
		return;
	}
	memcpy(mnl_nlmsg_batch_current(bb->b), bb->scratch, len);
	mnl_nlmsg_batch_next(bb->b);
	bb->seq++;
	bb->nmsgs++;
}

static void rs_batch_marker(struct rs_batch *bb, bool begin)
{
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	if (begin)
		nlh = nftnl_batch_begin((char *)bb->scratch, bb->seq);
	else
		nlh = nftnl_batch_end((char *)bb->scratch, bb->seq);
	rs_batch_put(bb, nlh->nlmsg_len);
}

static void rs_batch_table(struct rs_batch *bb, const char *table, uint16_t type, uint16_t flags,
			   uint32_t table_flags)
{
	struct nftnl_table *t;
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	t = nftnl_table_alloc();
	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, table) < 0) {
		bb->err = -ENOMEM;
		goto out_free_table;
	}
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	if (table_flags)
		nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, table_flags);
	nlh = nftnl_table_nlmsg_build_hdr((char *)bb->scratch, type, NFPROTO_INET,
					  flags | NLM_F_ACK, bb->seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	rs_batch_put(bb, nlh->nlmsg_len);
out_free_table:
	nftnl_table_free(t);
}

/* A base chain of policy accept: dotgw never drops what it does not capture. */
static void rs_batch_chain(struct rs_batch *bb, const char *table, const char *name,
			   const char *type, uint32_t hooknum, int32_t prio)
{
	struct nftnl_chain *c;
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	c = nftnl_chain_alloc();
	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type) < 0) {
		bb->err = -ENOMEM;
		goto out_free_chain;
	}
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hooknum);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nlh = nftnl_chain_nlmsg_build_hdr((char *)bb->scratch, NFT_MSG_NEWCHAIN, NFPROTO_INET,
					  NLM_F_CREATE | NLM_F_ACK, bb->seq);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	rs_batch_put(bb, nlh->nlmsg_len);
out_free_chain:
	nftnl_chain_free(c);
}

/* rs_batch_rule - append the finished rule rr (or record its error) and free it. */
static void rs_batch_rule(struct rs_batch *bb, struct rs_rule *rr)
{
	struct nlmsghdr *nlh;

	if (!bb->err && rr->err)
		bb->err = rr->err;
	if (!bb->err) {
		nlh = nftnl_rule_nlmsg_build_hdr((char *)bb->scratch, NFT_MSG_NEWRULE, NFPROTO_INET,
						 NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, bb->seq);
		nftnl_rule_nlmsg_build_payload(nlh, rr->r);
		rs_batch_put(bb, nlh->nlmsg_len);
	}
	nftnl_rule_free(rr->r);
	rr->r = NULL;
}

static void rs_rule_start(struct rs_rule *rr, const char *table, const char *chain)
{
	rr->err = 0;
	rr->r = nftnl_rule_alloc();
	if (!rr->r || nftnl_rule_set_str(rr->r, NFTNL_RULE_TABLE, table) < 0 ||
	    nftnl_rule_set_str(rr->r, NFTNL_RULE_CHAIN, chain) < 0) {
		rr->err = -ENOMEM;
		return;
	}
	nftnl_rule_set_u32(rr->r, NFTNL_RULE_FAMILY, NFPROTO_INET);
}

/* rs_expr_new - a new expression already attached to the rule (which then owns it). */
static struct nftnl_expr *rs_expr_new(struct rs_rule *rr, const char *name)
{
	struct nftnl_expr *e;

	if (rr->err)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		rr->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_add_expr(rr->r, e);
	return e;
}

static void rs_expr_meta_load(struct rs_rule *rr, uint32_t key)
{
	struct nftnl_expr *e = rs_expr_new(rr, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

static void rs_expr_cmp(struct rs_rule *rr, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = rs_expr_new(rr, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	if (nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0)
		rr->err = -EINVAL;
}

static void rs_expr_payload(struct rs_rule *rr, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = rs_expr_new(rr, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

static void rs_expr_imm_data(struct rs_rule *rr, const void *data, uint32_t len)
{
	struct nftnl_expr *e = rs_expr_new(rr, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	if (nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len) < 0)
		rr->err = -EINVAL;
}

static void rs_expr_imm_verdict(struct rs_rule *rr, int verdict)
{
	struct nftnl_expr *e = rs_expr_new(rr, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
}

/* Meta keys of 32 bits (mark, iif) compare in host byte order, as nft encodes them. */
static void rs_match_meta_u32(struct rs_rule *rr, uint32_t key, uint32_t op, uint32_t value)
{
	rs_expr_meta_load(rr, key);
	rs_expr_cmp(rr, op, &value, sizeof(value));
}

/* iifname "NAME": the whole IFNAMSIZ buffer, zero-padded, for an exact match. */
static void rs_match_iifname(struct rs_rule *rr, const char *name)
{
	char ifname[IFNAMSIZ] = {0};

	memcpy(ifname, name, strnlen(name, IFNAMSIZ - 1));
	rs_expr_meta_load(rr, NFT_META_IIFNAME);
	rs_expr_cmp(rr, NFT_CMP_EQ, ifname, sizeof(ifname));
}

/*
 * Compare the interface name in register 1 with pattern p, as nft does: a name as the whole
 * IFNAMSIZ buffer, zero-padded; a prefix "tun*" as its characters alone (no terminating NUL).
 */
static void rs_cmp_ifpattern(struct rs_rule *rr, const char *p)
{
	char ifname[IFNAMSIZ] = {0};
	size_t len = strnlen(p, IFNAMSIZ - 1);

	memcpy(ifname, p, len);
	if (len && p[len - 1] == '*')
		rs_expr_cmp(rr, NFT_CMP_EQ, ifname, (uint32_t)len - 1);
	else
		rs_expr_cmp(rr, NFT_CMP_EQ, ifname, sizeof(ifname));
}

/* meta iifkind "bridge": the input interface is a Linux bridge (exact match, as iifname) */
static void rs_match_iifkind_bridge(struct rs_rule *rr)
{
	char kind[IFNAMSIZ] = "bridge";

	rs_expr_meta_load(rr, NFT_META_IIFKIND);
	rs_expr_cmp(rr, NFT_CMP_EQ, kind, sizeof(kind));
}

/* "udp dport N" / "tcp dport N" in an inet table: meta l4proto, then the transport header. */
static void rs_match_dport(struct rs_rule *rr, uint8_t l4proto, uint16_t port)
{
	uint16_t nport = htons(port);

	rs_expr_meta_load(rr, NFT_META_L4PROTO);
	rs_expr_cmp(rr, NFT_CMP_EQ, &l4proto, sizeof(l4proto));
	rs_expr_payload(rr, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(nport));
	rs_expr_cmp(rr, NFT_CMP_EQ, &nport, sizeof(nport));
}

/*
 * "ip saddr 192.0.2.0/24" (or daddr, or ip6): the nfproto, then the address under a mask, as
 * nft encodes a prefix (payload, bitwise, cmp), so nft lists it the same way.
 */
static void rs_match_cidr(struct rs_rule *rr, const struct cidr *c, bool src)
{
	uint8_t proto = c->family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
	uint32_t len = c->family == AF_INET6 ? 16 : 4;
	uint32_t off = c->family == AF_INET6 ? (src ? 8 : 24) : (src ? 12 : 16);
	uint8_t mask[16] = {0}, flip[16] = {0}, net[16] = {0};
	struct nftnl_expr *e;

	for (unsigned int i = 0; i < c->plen && i < len * 8; i++)
		mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	for (uint32_t i = 0; i < len; i++)
		net[i] = c->addr[i] & mask[i];
	rs_expr_meta_load(rr, NFT_META_NFPROTO);
	rs_expr_cmp(rr, NFT_CMP_EQ, &proto, sizeof(proto));
	rs_expr_payload(rr, NFT_PAYLOAD_NETWORK_HEADER, off, len);
	if (c->plen < len * 8) {
		e = rs_expr_new(rr, "bitwise");
		if (!e)
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, flip, len);
	}
	rs_expr_cmp(rr, NFT_CMP_EQ, net, len);
}

/*
 * What no chain of ours touches: "fib daddr type local return" (unless capture_local), so
 * packets for this machine's own addresses reach whatever listens there; and with no_ipv6,
 * "meta nfproto ipv6 return", as IPv6 cannot be delivered to the listeners. The fib lookup
 * of an address type consults the local table only: the capture mark does not change it.
 */
static void rs_build_skip(struct rs_batch *bb, const struct ruleset_config *cfg, const char *chain)
{
	const uint8_t ip6 = NFPROTO_IPV6;
	const uint32_t local = RTN_LOCAL;
	struct nftnl_expr *e;
	struct rs_rule rr;

	if (!cfg->capture_local) {
		rs_rule_start(&rr, cfg->table, chain);
		e = rs_expr_new(&rr, "fib");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
		}
		rs_expr_cmp(&rr, NFT_CMP_EQ, &local, sizeof(local));
		rs_expr_imm_verdict(&rr, NFT_RETURN);
		rs_batch_rule(bb, &rr);
	}
	if (cfg->no_ipv6) {
		rs_rule_start(&rr, cfg->table, chain);
		rs_expr_meta_load(&rr, NFT_META_NFPROTO);
		rs_expr_cmp(&rr, NFT_CMP_EQ, &ip6, sizeof(ip6));
		rs_expr_imm_verdict(&rr, NFT_RETURN);
		rs_batch_rule(bb, &rr);
	}
}

/* Exemptions: "ip saddr CIDR return" and "ip daddr CIDR return" for each, in chain. */
static void rs_build_exempt(struct rs_batch *bb, const struct ruleset_config *cfg,
			    const char *chain)
{
	struct rs_rule rr;

	for (size_t i = 0; i < cfg->n_exempt; i++) {
		for (int src = 1; src >= 0; src--) {
			rs_rule_start(&rr, cfg->table, chain);
			rs_match_cidr(&rr, &cfg->exempt[i], src);
			rs_expr_imm_verdict(&rr, NFT_RETURN);
			rs_batch_rule(bb, &rr);
		}
	}
}

/*
 * Tunnels: DNS that the routing table sends out through one of cfg's exempt interfaces is
 * left alone, "oifname PATTERN return" in output, where the route is already chosen, and
 * "fib daddr oifname PATTERN return" in the prerouting chains (gateway scope), where it is not
 * yet: the kernel looks up the destination and source addresses much as for a packet this
 * machine sends (policy rules that select by input interface or mark may not apply). A packet
 * arriving on lo gets the result "lo" (nft_fib's loopback short cut), so host-scope packets
 * that output marked for capture are never taken for exempt in prerouting.
 */
static void rs_build_exempt_ifaces(struct rs_batch *bb, const struct ruleset_config *cfg,
				   const char *chain)
{
	bool output = strcmp(chain, "output") == 0;
	struct nftnl_expr *e;
	struct rs_rule rr;

	if (!output && !(cfg->scope & RULESET_SCOPE_GATEWAY))
		return;
	for (size_t i = 0; i < cfg->n_exempt_ifaces; i++) {
		rs_rule_start(&rr, cfg->table, chain);
		if (output) {
			rs_expr_meta_load(&rr, NFT_META_OIFNAME);
		} else {
			e = rs_expr_new(&rr, "fib");
			if (e) {
				nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
				nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT,
						   NFT_FIB_RESULT_OIFNAME);
				nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
			}
		}
		rs_cmp_ifpattern(&rr, cfg->exempt_ifaces[i]);
		rs_expr_imm_verdict(&rr, NFT_RETURN);
		rs_batch_rule(bb, &rr);
	}
}

static void rs_stmt_counter(struct rs_rule *rr)
{
	struct nftnl_expr *e = rs_expr_new(rr, "counter");

	if (!e)
		return;
	nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_PACKETS, 0);
	nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_BYTES, 0);
}

static void rs_stmt_mark_set(struct rs_rule *rr, uint32_t mark)
{
	struct nftnl_expr *e;

	rs_expr_imm_data(rr, &mark, sizeof(mark));
	e = rs_expr_new(rr, "meta");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
}

/*
 * "tproxy to :PORT" in an inet table, as nft encodes it: family NFPROTO_UNSPEC and only a port
 * register, so one rule serves IPv4 and IPv6 and the kernel picks the address of the receiving
 * interface. The kernel requires the family attribute even when it is UNSPEC.
 */
static void rs_stmt_tproxy(struct rs_rule *rr, uint16_t port)
{
	uint16_t nport = htons(port);
	struct nftnl_expr *e;

	rs_expr_imm_data(rr, &nport, sizeof(nport));
	e = rs_expr_new(rr, "tproxy");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_FAMILY, NFPROTO_UNSPEC);
	nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_REG_PORT, NFT_REG_1);
}

/* "redirect to :PORT", as nft encodes it: the port in a register, "proto specified". */
static void rs_stmt_redirect(struct rs_rule *rr, uint16_t port)
{
	uint16_t nport = htons(port);
	struct nftnl_expr *e;

	rs_expr_imm_data(rr, &nport, sizeof(nport));
	e = rs_expr_new(rr, "redir");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
}

/*
 * "queue num N-M [bypass]": the native expression, or (queue_compat) the xtables NFQUEUE
 * target, revision 3, through nft_compat, which is what `iptables-nft -j NFQUEUE` installs.
 * Several queues spread packets by flow hash, so one client's queries stay on one worker.
 * bypass (fail open): packets pass when no process listens or the queue is full.
 */
static void rs_stmt_queue(struct rs_rule *rr, const struct ruleset_config *cfg)
{
	uint16_t flags = cfg->fail_closed ? 0 : NFT_QUEUE_FLAG_BYPASS;
	struct xt_NFQ_info_v3 *info;
	struct nftnl_expr *e;

	if (!cfg->queue_compat) {
		e = rs_expr_new(rr, "queue");
		if (!e)
			return;
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_NUM, cfg->queue_num);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_TOTAL, cfg->queue_total);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_FLAGS, flags);
		return;
	}
	e = rs_expr_new(rr, "target");
	if (!e)
		return;
	/* libnftnl takes ownership of the info block: it must come from malloc */
	info = calloc(1, sizeof(*info));
	if (!info) {
		rr->err = -ENOMEM;
		return;
	}
	info->queuenum = cfg->queue_num;
	info->queues_total = cfg->queue_total;
	info->flags = cfg->fail_closed ? 0 : NFQ_FLAG_BYPASS;
	nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
	nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
	nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, info, sizeof(*info));
}

static void rs_stmt_notrack(struct rs_rule *rr)
{
	rs_expr_new(rr, "notrack");
}

/*
 * Host scope, first half: mark this machine's own port-53 packets. Only a "type route" chain
 * re-routes a packet whose mark changed, so the policy route sends it to lo, where prerouting
 * hands it to TPROXY. dotgw's own sockets carry the bypass mark and loopback traffic is left
 * alone (a local resolver on 127.0.0.1 or ::1 keeps working).
 */
static void rs_build_output(struct rs_batch *bb, const struct ruleset_config *cfg)
{
	static const uint8_t ip4 = NFPROTO_IPV4, ip6 = NFPROTO_IPV6, net127 = 127;
	const struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	struct rs_rule rr;
	size_t i;

	rs_rule_start(&rr, cfg->table, "output");
	rs_match_meta_u32(&rr, NFT_META_MARK, NFT_CMP_EQ, cfg->bypass_mark);
	rs_expr_imm_verdict(&rr, NFT_RETURN);
	rs_batch_rule(bb, &rr);
	rs_build_skip(bb, cfg, "output");
	rs_build_exempt(bb, cfg, "output");
	rs_build_exempt_ifaces(bb, cfg, "output");

	/* ip daddr 127.0.0.0/8: nft compares just the first address byte */
	rs_rule_start(&rr, cfg->table, "output");
	rs_expr_meta_load(&rr, NFT_META_NFPROTO);
	rs_expr_cmp(&rr, NFT_CMP_EQ, &ip4, sizeof(ip4));
	rs_expr_payload(&rr, NFT_PAYLOAD_NETWORK_HEADER, 16, 1);
	rs_expr_cmp(&rr, NFT_CMP_EQ, &net127, sizeof(net127));
	rs_expr_imm_verdict(&rr, NFT_RETURN);
	rs_batch_rule(bb, &rr);

	rs_rule_start(&rr, cfg->table, "output");
	rs_expr_meta_load(&rr, NFT_META_NFPROTO);
	rs_expr_cmp(&rr, NFT_CMP_EQ, &ip6, sizeof(ip6));
	rs_expr_payload(&rr, NFT_PAYLOAD_NETWORK_HEADER, 24, sizeof(lo6));
	rs_expr_cmp(&rr, NFT_CMP_EQ, &lo6, sizeof(lo6));
	rs_expr_imm_verdict(&rr, NFT_RETURN);
	rs_batch_rule(bb, &rr);

	for (i = 0; i < sizeof(rs_l4protos); i++) {
		rs_rule_start(&rr, cfg->table, "output");
		rs_match_dport(&rr, rs_l4protos[i], 53);
		rs_stmt_counter(&rr);
		if (cfg->mode == RULESET_MODE_NFQUEUE && rs_l4protos[i] == IPPROTO_UDP)
			rs_stmt_queue(&rr, cfg);
		else
			rs_stmt_mark_set(&rr, cfg->capture_mark);
		rs_batch_rule(bb, &rr);
	}
}

/*
 * TPROXY proper. Host scope: the packets marked in output come back on lo (ifindex 1 in every
 * namespace) still carrying the capture mark. Gateway scope: port-53 packets arriving on the
 * chosen interfaces, or on any but lo; they get the capture mark here, which the policy route
 * turns into local delivery.
 */
static void rs_build_prerouting(struct rs_batch *bb, const struct ruleset_config *cfg)
{
	const uint32_t lo_ifindex = 1;
	bool nfqueue = cfg->mode == RULESET_MODE_NFQUEUE;
	struct rs_rule rr;
	size_t i, j;
	int pass;

	/*
	 * Two passes: the capture rules, then (fail closed) the same matches with "drop", which
	 * take what TPROXY could not hand to a listener because dotgw is not running.
	 */
	rs_build_skip(bb, cfg, "prerouting");
	rs_build_bridge_skip(bb, cfg);
	rs_build_exempt(bb, cfg, "prerouting");
	rs_build_exempt_ifaces(bb, cfg, "prerouting");
	for (pass = 0; pass < (cfg->fail_closed ? 2 : 1); pass++) {
		if (cfg->scope & RULESET_SCOPE_HOST) {
			for (i = 0; i < sizeof(rs_l4protos); i++) {
				/* nfqueue mode: host UDP is queued in output, never reaches lo */
				if (nfqueue && rs_l4protos[i] == IPPROTO_UDP)
					continue;
				rs_rule_start(&rr, cfg->table, "prerouting");
				rs_match_meta_u32(&rr, NFT_META_IIF, NFT_CMP_EQ, lo_ifindex);
				rs_match_meta_u32(&rr, NFT_META_MARK, NFT_CMP_EQ,
						  cfg->capture_mark);
				rs_match_dport(&rr, rs_l4protos[i], 53);
				if (pass == 0) {
					rs_stmt_counter(&rr);
					rs_stmt_tproxy(&rr, cfg->tproxy_port);
					rs_expr_imm_verdict(&rr, NF_ACCEPT);
				} else {
					rs_expr_imm_verdict(&rr, NF_DROP);
				}
				rs_batch_rule(bb, &rr);
			}
		}
		if (!(cfg->scope & RULESET_SCOPE_GATEWAY))
			continue;
		for (size_t k = 0; k < (cfg->n_clients ? cfg->n_clients : 1); k++)
			for (j = 0; j < (cfg->n_interfaces ? cfg->n_interfaces : 1); j++) {
				for (i = 0; i < sizeof(rs_l4protos); i++) {
					bool queue = nfqueue && rs_l4protos[i] == IPPROTO_UDP;

					/* a queue rule without bypass already drops when nobody
					 * listens */
					if (pass == 1 && queue)
						continue;
					rs_rule_start(&rr, cfg->table, "prerouting");
					if (cfg->n_interfaces)
						rs_match_iifname(&rr, cfg->interfaces[j]);
					else
						rs_match_meta_u32(&rr, NFT_META_IIF, NFT_CMP_NEQ,
								  lo_ifindex);
					if (cfg->n_clients)
						rs_match_cidr(&rr, &cfg->clients[k], true);
					rs_match_dport(&rr, rs_l4protos[i], 53);
					if (pass == 1) {
						rs_expr_imm_verdict(&rr, NF_DROP);
					} else if (queue) {
						rs_stmt_counter(&rr);
						rs_stmt_queue(&rr, cfg);
					} else {
						rs_stmt_counter(&rr);
						rs_stmt_tproxy(&rr, cfg->tproxy_port);
						rs_stmt_mark_set(&rr, cfg->capture_mark);
						rs_expr_imm_verdict(&rr, NF_ACCEPT);
					}
					rs_batch_rule(bb, &rr);
				}
			}
	}
}

/*
 * nfqueue mode: answers injected through raw sockets carry the bypass mark and leave from
 * port 53. Keep them out of conntrack, on the way out and (host scope) on their way in through
 * lo, where the mark survives: the query they answer was dropped unconfirmed, so conntrack
 * would take the answer for a new flow, which breaks stateful firewalls and NAT.
 */
static void rs_build_notrack(struct rs_batch *bb, const struct ruleset_config *cfg)
{
	static const char *const chains[] = {"raw_output", "raw_prerouting"};
	const uint32_t lo_ifindex = 1;
	const uint8_t udp = IPPROTO_UDP;
	const uint16_t port = htons(53);
	struct rs_rule rr;

	for (size_t i = 0; i < 2; i++) {
		rs_rule_start(&rr, cfg->table, chains[i]);
		if (i == 1)
			rs_match_meta_u32(&rr, NFT_META_IIF, NFT_CMP_EQ, lo_ifindex);
		rs_match_meta_u32(&rr, NFT_META_MARK, NFT_CMP_EQ, cfg->bypass_mark);
		rs_expr_meta_load(&rr, NFT_META_L4PROTO);
		rs_expr_cmp(&rr, NFT_CMP_EQ, &udp, sizeof(udp));
		rs_expr_payload(&rr, NFT_PAYLOAD_TRANSPORT_HEADER, 0, sizeof(port));
		rs_expr_cmp(&rr, NFT_CMP_EQ, &port, sizeof(port));
		rs_stmt_notrack(&rr);
		rs_batch_rule(bb, &rr);
	}
}

/*
 * Clients behind a Linux bridge of this machine. With br_netfilter on
 * (net.bridge.bridge-nf-call-iptables=1, Docker's and Podman's setting), the IP hooks of
 * bridged frames run inside the bridge and the frame then reaches ip_rcv(), whose skb_orphan()
 * drops the socket TPROXY assigned: the query is lost. Conntrack state survives that path, so
 * port-53 packets arriving on a bridge are redirected instead ("redirect to :PORT" in a nat
 * chain): the listeners get them addressed to the bridge's own address, the answer leaves the
 * listener from that address, and the reverse NAT gives it back the source the client asked.
 * The original destination (for logs, dnstap) comes from SO_ORIGINAL_DST (TCP) or the
 * conntrack entry (UDP). This holds whatever the sysctl says, now or after a later change (a
 * container engine may set it after dotgw started), so it applies to every bridge. nfqueue
 * mode keeps queueing UDP (queued packets need no socket) and redirects TCP only.
 *
 * First part: the bridged packets the nat chain takes skip the TPROXY rules (and, fail
 * closed, their drop rules) of prerouting.
 */
static void rs_build_bridge_skip(struct rs_batch *bb, const struct ruleset_config *cfg)
{
	const uint8_t tcp = IPPROTO_TCP;
	struct rs_rule rr;

	if (!(cfg->scope & RULESET_SCOPE_GATEWAY) || cfg->no_nat)
		return;
	rs_rule_start(&rr, cfg->table, "prerouting");
	rs_match_iifkind_bridge(&rr);
	if (cfg->mode == RULESET_MODE_NFQUEUE) {
		rs_expr_meta_load(&rr, NFT_META_L4PROTO);
		rs_expr_cmp(&rr, NFT_CMP_EQ, &tcp, sizeof(tcp));
	}
	rs_expr_imm_verdict(&rr, NFT_RETURN);
	rs_batch_rule(bb, &rr);
}

/*
 * Second part: the redirect, in chain "bridge_nat" (type nat, priority dstnat), for the same
 * interfaces, clients and exemptions as the TPROXY rules. With dotgw gone (fail closed), the
 * redirected packet meets no listener: refused, never forwarded. The chain starts
 * with rs_build_skip: queries to this machine's own addresses are left alone unless
 * --capture-local (they belong to a server here: Podman's aardvark-dns on the bridge address,
 * a dnsmasq), and IPv6 too when it cannot be served.
 */
static void rs_build_bridge_nat(struct rs_batch *bb, const struct ruleset_config *cfg)
{
	struct rs_rule rr;

	rs_build_skip(bb, cfg, "bridge_nat");
	rs_build_exempt(bb, cfg, "bridge_nat");
	rs_build_exempt_ifaces(bb, cfg, "bridge_nat");
	for (size_t k = 0; k < (cfg->n_clients ? cfg->n_clients : 1); k++)
		for (size_t j = 0; j < (cfg->n_interfaces ? cfg->n_interfaces : 1); j++) {
			for (size_t i = 0; i < sizeof(rs_l4protos); i++) {
				if (cfg->mode == RULESET_MODE_NFQUEUE &&
				    rs_l4protos[i] == IPPROTO_UDP)
					continue;
				rs_rule_start(&rr, cfg->table, "bridge_nat");
				if (cfg->n_interfaces)
					rs_match_iifname(&rr, cfg->interfaces[j]);
				rs_match_iifkind_bridge(&rr);
				if (cfg->n_clients)
					rs_match_cidr(&rr, &cfg->clients[k], true);
				rs_match_dport(&rr, rs_l4protos[i], 53);
				rs_stmt_counter(&rr);
				rs_stmt_redirect(&rr, cfg->tproxy_port);
				rs_batch_rule(bb, &rr);
			}
		}
}

/* Third part: "ct status dnat accept" in input, ahead of the drops of the listener port. */
static void rs_build_bridge_input(struct rs_batch *bb, const struct ruleset_config *cfg)
{
	const uint32_t dnat = IPS_DST_NAT, zero = 0;
	struct rs_rule rr;
	struct nftnl_expr *e;

	if (!(cfg->scope & RULESET_SCOPE_GATEWAY) || cfg->no_nat)
		return;
	rs_rule_start(&rr, cfg->table, "input");
	e = rs_expr_new(&rr, "ct");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	e = rs_expr_new(&rr, "bitwise");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(dnat));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &dnat, sizeof(dnat));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
	}
	rs_expr_cmp(&rr, NFT_CMP_NEQ, &zero, sizeof(zero));
	rs_expr_imm_verdict(&rr, NF_ACCEPT);
	rs_batch_rule(bb, &rr);
}

/*
 * The listeners must be reachable only through TPROXY, whose packets keep destination port 53,
 * or the bridge redirect; anything else addressed to the listener port itself is dropped.
 */
static void rs_build_input(struct rs_batch *bb, const struct ruleset_config *cfg)
{
	struct rs_rule rr;
	size_t i;

	rs_build_bridge_input(bb, cfg);
	for (i = 0; i < sizeof(rs_l4protos); i++) {
		rs_rule_start(&rr, cfg->table, "input");
		rs_match_dport(&rr, rs_l4protos[i], cfg->tproxy_port);
		rs_expr_imm_verdict(&rr, NF_DROP);
		rs_batch_rule(bb, &rr);
	}
}

/*
 * ruleset_build - buf must be 4-byte aligned. *nmsgs counts every message including the batch
 * begin and end markers: they take sequence numbers seq .. seq + *nmsgs - 1, and all but the
 * two markers are acknowledged.
 */
int ruleset_build(const struct ruleset_config *cfg, void *buf, size_t buflen, uint32_t seq,
		  size_t *len, unsigned int *nmsgs)
{
	struct rs_batch *bb;
	int err;

	err = rs_config_check(cfg);
	if (err < 0)
		return err;
	/* the scratch buffer is too big for comfort on a thread's stack */
	bb = calloc(1, sizeof(*bb));
	if (!bb)
		return -ENOMEM;
	bb->b = mnl_nlmsg_batch_start(buf, buflen);
	if (!bb->b) {
		err = -ENOMEM;
		goto out_free_bb;
	}
	bb->buflen = buflen;
	bb->seq = seq;

	rs_batch_marker(bb, true);
	rs_batch_table(bb, cfg->table, NFT_MSG_NEWTABLE, NLM_F_CREATE, 0);
	rs_batch_table(bb, cfg->table, NFT_MSG_DELTABLE, 0, 0);
	rs_batch_table(bb, cfg->table, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL,
		       cfg->fail_closed ? 0 : NFT_TABLE_F_OWNER);
	if (cfg->mode == RULESET_MODE_NFQUEUE) {
		rs_batch_chain(bb, cfg->table, "raw_output", "filter", NF_INET_LOCAL_OUT,
			       NF_IP_PRI_RAW);
		rs_batch_chain(bb, cfg->table, "raw_prerouting", "filter", NF_INET_PRE_ROUTING,
			       NF_IP_PRI_RAW);
	}
	if (cfg->scope & RULESET_SCOPE_HOST)
		rs_batch_chain(bb, cfg->table, "output", "route", NF_INET_LOCAL_OUT,
			       NF_IP_PRI_MANGLE);
	rs_batch_chain(bb, cfg->table, "prerouting", "filter", NF_INET_PRE_ROUTING,
		       NF_IP_PRI_MANGLE);
	if ((cfg->scope & RULESET_SCOPE_GATEWAY) && !cfg->no_nat)
		rs_batch_chain(bb, cfg->table, "bridge_nat", "nat", NF_INET_PRE_ROUTING,
			       NF_IP_PRI_NAT_DST);
	rs_batch_chain(bb, cfg->table, "input", "filter", NF_INET_LOCAL_IN, NF_IP_PRI_FILTER);
	if (cfg->scope & RULESET_SCOPE_HOST)
		rs_build_output(bb, cfg);
	rs_build_prerouting(bb, cfg);
	if ((cfg->scope & RULESET_SCOPE_GATEWAY) && !cfg->no_nat)
		rs_build_bridge_nat(bb, cfg);
	rs_build_input(bb, cfg);
	if (cfg->mode == RULESET_MODE_NFQUEUE)
		rs_build_notrack(bb, cfg);
	rs_batch_marker(bb, false);

	err = bb->err;
	if (!err) {
		*len = mnl_nlmsg_batch_size(bb->b);
		*nmsgs = bb->nmsgs;
	}
	mnl_nlmsg_batch_stop(bb->b);
out_free_bb:
	free(bb);
	return err;
}

/*
 * rs_read_acks - read the ACKs of the nacks messages that follow the batch begin (sequence
 * number seq). The kernel reports them in batch order once it has processed the whole batch.
 * An error about the batch as a whole (EPERM, ENOMEM) comes alone, with the begin marker's
 * sequence number. Returns 0 or the first error as -errno.
 */
static int rs_read_acks(struct mnl_socket *nl, uint32_t seq, unsigned int nacks)
{
	uint32_t portid = mnl_socket_get_portid(nl);
	uint32_t buf[RS_RECV_SIZE / sizeof(uint32_t)];
	unsigned int acked = 0;
	struct nlmsghdr *nlh;
	uint32_t expect;
	ssize_t n;
	int first_err = 0, ret;
	int len;

	while (acked < nacks) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		len = (int)n;
		for (nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			expect = nlh->nlmsg_seq == seq ? seq : seq + 1 + acked;
			if (nlh->nlmsg_seq != expect)
				return -EPROTO;
			ret = mnl_cb_run(nlh, nlh->nlmsg_len, expect, portid, NULL, NULL);
			if (ret < 0 && !first_err)
				first_err = errno ? -errno : -EPROTO;
			if (expect == seq)
				return first_err ? first_err : -EPROTO;
			acked++;
		}
	}
	return first_err;
}

/*
 * rs_socket_size - make room for a large batch (a long interface list): a netlink datagram
 * larger than the send buffer fails with EMSGSIZE, and ACKs that overflow the receive buffer
 * are lost (ENOBUFS). The kernel sends all ACKs at once after the commit. As in nft, the FORCE
 * variants (CAP_NET_ADMIN, which a batch needs anyway) pass net.core.[rw]mem_max; should both
 * fail, the send or the receive reports the error.
 */
static void rs_socket_size(struct mnl_socket *nl, size_t len, unsigned int nacks)
{
	int fd = mnl_socket_get_fd(nl), cur, want;
	socklen_t sl = sizeof(cur);

	if (len > INT_MAX / 2 || nacks > INT_MAX / 2 / RS_ACK_TRUESIZE)
		return;
	want = (int)len; /* the kernel doubles it */
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &sl) == 0 && cur < 2 * want + 1024 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	want = (int)nacks * RS_ACK_TRUESIZE / 2;
	sl = sizeof(cur);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cur, &sl) == 0 && cur < 2 * want &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
}

static struct mnl_socket *rs_socket_open(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);

	if (!nl)
		return NULL;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int err = errno;

		mnl_socket_close(nl);
		errno = err;
		return NULL;
	}
	return nl;
}

/* rs_commit - send a batch on nl and read its ACKs; 0 or the first error. */
static int rs_commit(struct mnl_socket *nl, const void *batch, size_t len, uint32_t seq,
		     unsigned int nacks)
{
	rs_socket_size(nl, len, nacks);
	if (mnl_socket_sendto(nl, batch, len) < 0)
		return -errno;
	return rs_read_acks(nl, seq, nacks);
}

/* rs_apply - build cfg's batch and commit it on nl; 0 or -errno. */
static int rs_apply(struct mnl_socket *nl, const struct ruleset_config *cfg)
{
	uint32_t seq = (uint32_t)time(NULL);
	unsigned int nmsgs;
	size_t size, len;
	void *buf;
	int err;

	for (size = RS_BATCH_INIT;; size *= 2) {
		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		err = ruleset_build(cfg, buf, size, seq, &len, &nmsgs);
		if (err != -ENOSPC || size >= RS_BATCH_MAX)
			break;
		free(buf);
	}
	if (!err)
		err = rs_commit(nl, buf, len, seq, nmsgs - 2);
	free(buf);
	return err;
}

int ruleset_install(struct ruleset **out, const struct ruleset_config *cfg)
{
	struct mnl_socket *nl;
	struct ruleset *rs;
	int err;

	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	nl = rs_socket_open();
	if (!nl) {
		err = -errno;
		goto out_free_rs;
	}
	err = rs_apply(nl, cfg);
	if (err) {
		mnl_socket_close(nl);
		goto out_free_rs;
	}
	/* An owned table lives exactly as long as this socket. */
	if (!cfg->fail_closed)
		rs->owner = nl;
	else
		mnl_socket_close(nl);
	rs->fail_closed = cfg->fail_closed;
	*out = rs;
	return 0;

out_free_rs:
	free(rs);
	return err;
}

int ruleset_replace(struct ruleset *rs, const struct ruleset_config *cfg)
{
	struct mnl_socket *nl = rs->owner;
	int err;

	if (cfg->fail_closed != rs->fail_closed)
		return -EINVAL;
	if (!nl && !(nl = rs_socket_open()))
		return -errno;
	err = rs_apply(nl, cfg);
	if (nl != rs->owner)
		mnl_socket_close(nl);
	return err;
}

void ruleset_close(struct ruleset *rs)
{
	if (!rs)
		return;
	if (rs->owner)
		mnl_socket_close(rs->owner);
	free(rs);
}

/*
 * rs_send_small - build a small batch with build(), which writes the messages between the
 * begin and end markers (numbered from seq + 1) and returns how many it wrote, and commit it
 * (or, with end false, send it without the end marker: the kernel checks every message and
 * commits nothing).
 */
static int rs_send_small(int (*build)(char *p, size_t room, uint32_t seq, void *data), void *data,
			 bool end)
{
	/* zeroed: libmnl 1.0.4 (Debian 12) leaves the padding after an attribute unwritten */
	uint32_t buf[RS_MSG_MAX / sizeof(uint32_t)] = {0};
	uint32_t seq = (uint32_t)time(NULL);
	struct mnl_nlmsg_batch *b;
	struct mnl_socket *nl;
	int n, err;

	b = mnl_nlmsg_batch_start(buf, sizeof(buf));
	if (!b)
		return -ENOMEM;
	nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq);
	mnl_nlmsg_batch_next(b);
	n = build(mnl_nlmsg_batch_current(b), sizeof(buf) - mnl_nlmsg_batch_size(b), seq + 1, data);
	if (n < 0) {
		err = n;
		goto out_stop;
	}
	for (int i = 0; i < n; i++)
		mnl_nlmsg_batch_next(b);
	if (end) {
		nftnl_batch_end(mnl_nlmsg_batch_current(b), seq + 1 + (uint32_t)n);
		mnl_nlmsg_batch_next(b);
	}
	nl = rs_socket_open();
	if (!nl) {
		err = -errno;
		goto out_stop;
	}
	err = rs_commit(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b), seq, (unsigned int)n);
	mnl_socket_close(nl);
out_stop:
	mnl_nlmsg_batch_stop(b);
	return err;
}

/* Messages are laid out back to back (netlink messages are 4-byte aligned by construction). */
static int rs_build_deltable(char *p, size_t room, uint32_t seq, void *data)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t)
		return -ENOMEM;
	if (room < 512 || nftnl_table_set_str(t, NFTNL_TABLE_NAME, data) < 0) {
		nftnl_table_free(t);
		return -ENOMEM;
	}
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nlh = nftnl_table_nlmsg_build_hdr(p, NFT_MSG_DELTABLE, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	return 1;
}

int ruleset_remove(const char *table)
{
	int err = rs_table_name_check(table);

	if (err < 0)
		return err;
	return rs_send_small(rs_build_deltable, (void *)table, true);
}

/* The probe: a scratch table, a base chain and one native queue rule. */
static int rs_build_probe(char *p, size_t room, uint32_t seq, void *data)
{
	struct rs_batch *bb = data;
	struct ruleset_config cfg = {
		.table = "dotgw-probe",
		.queue_num = 0,
		.queue_total = 1,
		.fail_closed = true,
	};
	struct rs_rule rr;

	bb->b = mnl_nlmsg_batch_start(p, room);
	if (!bb->b)
		return -ENOMEM;
	bb->buflen = room;
	bb->seq = seq;
	rs_batch_table(bb, cfg.table, NFT_MSG_NEWTABLE, NLM_F_CREATE, 0);
	rs_batch_chain(bb, cfg.table, "probe", "filter", NF_INET_LOCAL_OUT, NF_IP_PRI_MANGLE);
	rs_rule_start(&rr, cfg.table, "probe");
	rs_stmt_queue(&rr, &cfg);
	rs_batch_rule(bb, &rr);
	mnl_nlmsg_batch_stop(bb->b);
	return bb->err ? bb->err : (int)bb->nmsgs;
}

int ruleset_probe_queue(void)
{
	struct rs_batch *bb = calloc(1, sizeof(*bb));
	int err;

	if (!bb)
		return -ENOMEM;
	err = rs_send_small(rs_build_probe, bb, false);
	free(bb);
	return err;
}

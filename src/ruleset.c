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

#include "dotgw/nftbuild.h"
#include "dotgw/ruleset.h"

struct ruleset {
	struct mnl_socket *owner; /* fail open: the socket that owns the table; else NULL */
	bool fail_closed;
};

static int rs_config_check(const struct ruleset_config *cfg);
static int rs_table_name_check(const char *table);
static void rs_stmt_mark_set(struct nb_rule *rr, uint32_t mark);
static void rs_stmt_tproxy(struct nb_rule *rr, uint16_t port);
static void rs_build_output(struct nb_batch *bb, const struct ruleset_config *cfg);
static void rs_build_exempt(struct nb_batch *bb, const struct ruleset_config *cfg,
			    const char *chain);
static void rs_build_exempt_ifaces(struct nb_batch *bb, const struct ruleset_config *cfg,
				   const char *chain);
static void rs_build_prerouting(struct nb_batch *bb, const struct ruleset_config *cfg);
static void rs_build_skip(struct nb_batch *bb, const struct ruleset_config *cfg, const char *chain);
static void rs_build_input(struct nb_batch *bb, const struct ruleset_config *cfg);
static void rs_build_bridge_skip(struct nb_batch *bb, const struct ruleset_config *cfg);
static void rs_build_bridge_nat(struct nb_batch *bb, const struct ruleset_config *cfg);
static void rs_build_bridge_input(struct nb_batch *bb, const struct ruleset_config *cfg);

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

/*
 * What no chain of ours touches: "fib daddr type local return" (unless capture_local), so
 * packets for this machine's own addresses reach whatever listens there; and with no_ipv6,
 * "meta nfproto ipv6 return", as IPv6 cannot be delivered to the listeners. The fib lookup
 * of an address type consults the local table only: the capture mark does not change it.
 */
static void rs_build_skip(struct nb_batch *bb, const struct ruleset_config *cfg, const char *chain)
{
	const uint8_t ip6 = NFPROTO_IPV6;
	const uint32_t local = RTN_LOCAL;
	struct nftnl_expr *e;
	struct nb_rule rr;

	if (!cfg->capture_local) {
		nb_rule_start(&rr, cfg->table, chain);
		e = nb_expr_new(&rr, "fib");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
			nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
		}
		nb_expr_cmp(&rr, NFT_CMP_EQ, &local, sizeof(local));
		nb_expr_imm_verdict(&rr, NFT_RETURN);
		nb_batch_rule(bb, &rr);
	}
	if (cfg->no_ipv6) {
		nb_rule_start(&rr, cfg->table, chain);
		nb_expr_meta_load(&rr, NFT_META_NFPROTO);
		nb_expr_cmp(&rr, NFT_CMP_EQ, &ip6, sizeof(ip6));
		nb_expr_imm_verdict(&rr, NFT_RETURN);
		nb_batch_rule(bb, &rr);
	}
}

/* Exemptions: "ip saddr CIDR return" and "ip daddr CIDR return" for each, in chain. */
static void rs_build_exempt(struct nb_batch *bb, const struct ruleset_config *cfg,
			    const char *chain)
{
	struct nb_rule rr;

	for (size_t i = 0; i < cfg->n_exempt; i++) {
		for (int src = 1; src >= 0; src--) {
			nb_rule_start(&rr, cfg->table, chain);
			nb_match_cidr(&rr, &cfg->exempt[i], src);
			nb_expr_imm_verdict(&rr, NFT_RETURN);
			nb_batch_rule(bb, &rr);
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
static void rs_build_exempt_ifaces(struct nb_batch *bb, const struct ruleset_config *cfg,
				   const char *chain)
{
	bool output = strcmp(chain, "output") == 0;
	struct nftnl_expr *e;
	struct nb_rule rr;

	if (!output && !(cfg->scope & RULESET_SCOPE_GATEWAY))
		return;
	for (size_t i = 0; i < cfg->n_exempt_ifaces; i++) {
		nb_rule_start(&rr, cfg->table, chain);
		if (output) {
			nb_expr_meta_load(&rr, NFT_META_OIFNAME);
		} else {
			e = nb_expr_new(&rr, "fib");
			if (e) {
				nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
				nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT,
						   NFT_FIB_RESULT_OIFNAME);
				nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
			}
		}
		nb_cmp_ifpattern(&rr, cfg->exempt_ifaces[i]);
		nb_expr_imm_verdict(&rr, NFT_RETURN);
		nb_batch_rule(bb, &rr);
	}
}

static void rs_stmt_mark_set(struct nb_rule *rr, uint32_t mark)
{
	struct nftnl_expr *e;

	nb_expr_imm_data(rr, &mark, sizeof(mark));
	e = nb_expr_new(rr, "meta");
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
static void rs_stmt_tproxy(struct nb_rule *rr, uint16_t port)
{
	uint16_t nport = htons(port);
	struct nftnl_expr *e;

	nb_expr_imm_data(rr, &nport, sizeof(nport));
	e = nb_expr_new(rr, "tproxy");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_FAMILY, NFPROTO_UNSPEC);
	nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_REG_PORT, NFT_REG_1);
}

/* "redirect to :PORT", as nft encodes it: the port in a register, "proto specified". */
static void rs_stmt_redirect(struct nb_rule *rr, uint16_t port)
{
	uint16_t nport = htons(port);
	struct nftnl_expr *e;

	nb_expr_imm_data(rr, &nport, sizeof(nport));
	e = nb_expr_new(rr, "redir");
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
static void rs_stmt_queue(struct nb_rule *rr, const struct ruleset_config *cfg)
{
	uint16_t flags = cfg->fail_closed ? 0 : NFT_QUEUE_FLAG_BYPASS;
	struct xt_NFQ_info_v3 *info;
	struct nftnl_expr *e;

	if (!cfg->queue_compat) {
		e = nb_expr_new(rr, "queue");
		if (!e)
			return;
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_NUM, cfg->queue_num);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_TOTAL, cfg->queue_total);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_FLAGS, flags);
		return;
	}
	e = nb_expr_new(rr, "target");
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

static void rs_stmt_notrack(struct nb_rule *rr)
{
	nb_expr_new(rr, "notrack");
}

/*
 * Host scope, first half: mark this machine's own port-53 packets. Only a "type route" chain
 * re-routes a packet whose mark changed, so the policy route sends it to lo, where prerouting
 * hands it to TPROXY. dotgw's own sockets carry the bypass mark and loopback traffic is left
 * alone (a local resolver on 127.0.0.1 or ::1 keeps working).
 */
static void rs_build_output(struct nb_batch *bb, const struct ruleset_config *cfg)
{
	static const uint8_t ip4 = NFPROTO_IPV4, ip6 = NFPROTO_IPV6, net127 = 127;
	const struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	struct nb_rule rr;
	size_t i;

	nb_rule_start(&rr, cfg->table, "output");
	nb_match_meta_u32(&rr, NFT_META_MARK, NFT_CMP_EQ, cfg->bypass_mark);
	nb_expr_imm_verdict(&rr, NFT_RETURN);
	nb_batch_rule(bb, &rr);
	rs_build_skip(bb, cfg, "output");
	rs_build_exempt(bb, cfg, "output");
	rs_build_exempt_ifaces(bb, cfg, "output");

	/* ip daddr 127.0.0.0/8: nft compares just the first address byte */
	nb_rule_start(&rr, cfg->table, "output");
	nb_expr_meta_load(&rr, NFT_META_NFPROTO);
	nb_expr_cmp(&rr, NFT_CMP_EQ, &ip4, sizeof(ip4));
	nb_expr_payload(&rr, NFT_PAYLOAD_NETWORK_HEADER, 16, 1);
	nb_expr_cmp(&rr, NFT_CMP_EQ, &net127, sizeof(net127));
	nb_expr_imm_verdict(&rr, NFT_RETURN);
	nb_batch_rule(bb, &rr);

	nb_rule_start(&rr, cfg->table, "output");
	nb_expr_meta_load(&rr, NFT_META_NFPROTO);
	nb_expr_cmp(&rr, NFT_CMP_EQ, &ip6, sizeof(ip6));
	nb_expr_payload(&rr, NFT_PAYLOAD_NETWORK_HEADER, 24, sizeof(lo6));
	nb_expr_cmp(&rr, NFT_CMP_EQ, &lo6, sizeof(lo6));
	nb_expr_imm_verdict(&rr, NFT_RETURN);
	nb_batch_rule(bb, &rr);

	for (i = 0; i < sizeof(rs_l4protos); i++) {
		nb_rule_start(&rr, cfg->table, "output");
		nb_match_dport(&rr, rs_l4protos[i], 53);
		nb_stmt_counter(&rr);
		if (cfg->mode == RULESET_MODE_NFQUEUE && rs_l4protos[i] == IPPROTO_UDP)
			rs_stmt_queue(&rr, cfg);
		else
			rs_stmt_mark_set(&rr, cfg->capture_mark);
		nb_batch_rule(bb, &rr);
	}
}

/*
 * TPROXY proper. Host scope: the packets marked in output come back on lo (ifindex 1 in every
 * namespace) still carrying the capture mark. Gateway scope: port-53 packets arriving on the
 * chosen interfaces, or on any but lo; they get the capture mark here, which the policy route
 * turns into local delivery.
 */
static void rs_build_prerouting(struct nb_batch *bb, const struct ruleset_config *cfg)
{
	const uint32_t lo_ifindex = 1;
	bool nfqueue = cfg->mode == RULESET_MODE_NFQUEUE;
	struct nb_rule rr;
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
				nb_rule_start(&rr, cfg->table, "prerouting");
				nb_match_meta_u32(&rr, NFT_META_IIF, NFT_CMP_EQ, lo_ifindex);
				nb_match_meta_u32(&rr, NFT_META_MARK, NFT_CMP_EQ,
						  cfg->capture_mark);
				nb_match_dport(&rr, rs_l4protos[i], 53);
				if (pass == 0) {
					nb_stmt_counter(&rr);
					rs_stmt_tproxy(&rr, cfg->tproxy_port);
					nb_expr_imm_verdict(&rr, NF_ACCEPT);
				} else {
					nb_expr_imm_verdict(&rr, NF_DROP);
				}
				nb_batch_rule(bb, &rr);
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
					nb_rule_start(&rr, cfg->table, "prerouting");
					if (cfg->n_interfaces)
						nb_match_iifname(&rr, cfg->interfaces[j]);
					else
						nb_match_meta_u32(&rr, NFT_META_IIF, NFT_CMP_NEQ,
								  lo_ifindex);
					if (cfg->n_clients)
						nb_match_cidr(&rr, &cfg->clients[k], true);
					nb_match_dport(&rr, rs_l4protos[i], 53);
					if (pass == 1) {
						nb_expr_imm_verdict(&rr, NF_DROP);
					} else if (queue) {
						nb_stmt_counter(&rr);
						rs_stmt_queue(&rr, cfg);
					} else {
						nb_stmt_counter(&rr);
						rs_stmt_tproxy(&rr, cfg->tproxy_port);
						rs_stmt_mark_set(&rr, cfg->capture_mark);
						nb_expr_imm_verdict(&rr, NF_ACCEPT);
					}
					nb_batch_rule(bb, &rr);
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
static void rs_build_notrack(struct nb_batch *bb, const struct ruleset_config *cfg)
{
	static const char *const chains[] = {"raw_output", "raw_prerouting"};
	const uint32_t lo_ifindex = 1;
	const uint8_t udp = IPPROTO_UDP;
	const uint16_t port = htons(53);
	struct nb_rule rr;

	for (size_t i = 0; i < 2; i++) {
		nb_rule_start(&rr, cfg->table, chains[i]);
		if (i == 1)
			nb_match_meta_u32(&rr, NFT_META_IIF, NFT_CMP_EQ, lo_ifindex);
		nb_match_meta_u32(&rr, NFT_META_MARK, NFT_CMP_EQ, cfg->bypass_mark);
		nb_expr_meta_load(&rr, NFT_META_L4PROTO);
		nb_expr_cmp(&rr, NFT_CMP_EQ, &udp, sizeof(udp));
		nb_expr_payload(&rr, NFT_PAYLOAD_TRANSPORT_HEADER, 0, sizeof(port));
		nb_expr_cmp(&rr, NFT_CMP_EQ, &port, sizeof(port));
		rs_stmt_notrack(&rr);
		nb_batch_rule(bb, &rr);
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
static void rs_build_bridge_skip(struct nb_batch *bb, const struct ruleset_config *cfg)
{
	const uint8_t tcp = IPPROTO_TCP;
	struct nb_rule rr;

	if (!(cfg->scope & RULESET_SCOPE_GATEWAY) || cfg->no_nat)
		return;
	nb_rule_start(&rr, cfg->table, "prerouting");
	nb_match_iifkind_bridge(&rr);
	if (cfg->mode == RULESET_MODE_NFQUEUE) {
		nb_expr_meta_load(&rr, NFT_META_L4PROTO);
		nb_expr_cmp(&rr, NFT_CMP_EQ, &tcp, sizeof(tcp));
	}
	nb_expr_imm_verdict(&rr, NFT_RETURN);
	nb_batch_rule(bb, &rr);
}

/*
 * Second part: the redirect, in chain "bridge_nat" (type nat, priority dstnat), for the same
 * interfaces, clients and exemptions as the TPROXY rules. With dotgw gone (fail closed), the
 * redirected packet meets no listener: refused, never forwarded. The chain starts
 * with rs_build_skip: queries to this machine's own addresses are left alone unless
 * --capture-local (they belong to a server here: Podman's aardvark-dns on the bridge address,
 * a dnsmasq), and IPv6 too when it cannot be served.
 */
static void rs_build_bridge_nat(struct nb_batch *bb, const struct ruleset_config *cfg)
{
	struct nb_rule rr;

	rs_build_skip(bb, cfg, "bridge_nat");
	rs_build_exempt(bb, cfg, "bridge_nat");
	rs_build_exempt_ifaces(bb, cfg, "bridge_nat");
	for (size_t k = 0; k < (cfg->n_clients ? cfg->n_clients : 1); k++)
		for (size_t j = 0; j < (cfg->n_interfaces ? cfg->n_interfaces : 1); j++) {
			for (size_t i = 0; i < sizeof(rs_l4protos); i++) {
				if (cfg->mode == RULESET_MODE_NFQUEUE &&
				    rs_l4protos[i] == IPPROTO_UDP)
					continue;
				nb_rule_start(&rr, cfg->table, "bridge_nat");
				if (cfg->n_interfaces)
					nb_match_iifname(&rr, cfg->interfaces[j]);
				nb_match_iifkind_bridge(&rr);
				if (cfg->n_clients)
					nb_match_cidr(&rr, &cfg->clients[k], true);
				nb_match_dport(&rr, rs_l4protos[i], 53);
				nb_stmt_counter(&rr);
				rs_stmt_redirect(&rr, cfg->tproxy_port);
				nb_batch_rule(bb, &rr);
			}
		}
}

/* Third part: "ct status dnat accept" in input, ahead of the drops of the listener port. */
static void rs_build_bridge_input(struct nb_batch *bb, const struct ruleset_config *cfg)
{
	struct nb_rule rr;

	if (!(cfg->scope & RULESET_SCOPE_GATEWAY) || cfg->no_nat)
		return;
	nb_rule_start(&rr, cfg->table, "input");
	nb_match_ct_bits(&rr, NFT_CT_STATUS, IPS_DST_NAT);
	nb_expr_imm_verdict(&rr, NF_ACCEPT);
	nb_batch_rule(bb, &rr);
}

/*
 * The listeners must be reachable only through TPROXY, whose packets keep destination port 53,
 * or the bridge redirect; anything else addressed to the listener port itself is dropped.
 */
static void rs_build_input(struct nb_batch *bb, const struct ruleset_config *cfg)
{
	struct nb_rule rr;
	size_t i;

	rs_build_bridge_input(bb, cfg);
	for (i = 0; i < sizeof(rs_l4protos); i++) {
		nb_rule_start(&rr, cfg->table, "input");
		nb_match_dport(&rr, rs_l4protos[i], cfg->tproxy_port);
		nb_expr_imm_verdict(&rr, NF_DROP);
		nb_batch_rule(bb, &rr);
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
	struct nb_batch *bb;
	int err;

	err = rs_config_check(cfg);
	if (err < 0)
		return err;
	bb = nb_batch_new(buf, buflen, seq);
	if (!bb)
		return -ENOMEM;
	nb_batch_marker(bb, true);
	nb_batch_table(bb, cfg->table, NFT_MSG_NEWTABLE, NLM_F_CREATE, 0);
	nb_batch_table(bb, cfg->table, NFT_MSG_DELTABLE, 0, 0);
	nb_batch_table_comment(bb, cfg->table, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL,
			       cfg->fail_closed ? 0 : NFT_TABLE_F_OWNER, cfg->comment);
	if (cfg->mode == RULESET_MODE_NFQUEUE) {
		nb_batch_chain(bb, cfg->table, "raw_output", "filter", NF_INET_LOCAL_OUT,
			       NF_IP_PRI_RAW);
		nb_batch_chain(bb, cfg->table, "raw_prerouting", "filter", NF_INET_PRE_ROUTING,
			       NF_IP_PRI_RAW);
	}
	if (cfg->scope & RULESET_SCOPE_HOST)
		nb_batch_chain(bb, cfg->table, "output", "route", NF_INET_LOCAL_OUT,
			       NF_IP_PRI_MANGLE);
	nb_batch_chain(bb, cfg->table, "prerouting", "filter", NF_INET_PRE_ROUTING,
		       NF_IP_PRI_MANGLE);
	if ((cfg->scope & RULESET_SCOPE_GATEWAY) && !cfg->no_nat)
		nb_batch_chain(bb, cfg->table, "bridge_nat", "nat", NF_INET_PRE_ROUTING,
			       NF_IP_PRI_NAT_DST);
	nb_batch_chain(bb, cfg->table, "input", "filter", NF_INET_LOCAL_IN, NF_IP_PRI_FILTER);
	if (cfg->scope & RULESET_SCOPE_HOST)
		rs_build_output(bb, cfg);
	rs_build_prerouting(bb, cfg);
	if ((cfg->scope & RULESET_SCOPE_GATEWAY) && !cfg->no_nat)
		rs_build_bridge_nat(bb, cfg);
	rs_build_input(bb, cfg);
	if (cfg->mode == RULESET_MODE_NFQUEUE)
		rs_build_notrack(bb, cfg);
	nb_batch_marker(bb, false);
	return nb_batch_finish(bb, len, nmsgs);
}

/* rs_build_cfg - nb_apply's build callback: ruleset_build of the ruleset_config data. */
static int rs_build_cfg(void *data, void *buf, size_t buflen, uint32_t seq, size_t *len,
			unsigned int *nmsgs)
{
	return ruleset_build(data, buf, buflen, seq, len, nmsgs);
}

/* rs_apply - build cfg's batch and commit it on nl; 0 or -errno. */
static int rs_apply(struct mnl_socket *nl, const struct ruleset_config *cfg)
{
	return nb_apply(nl, rs_build_cfg, (void *)cfg);
}

int ruleset_install(struct ruleset **out, const struct ruleset_config *cfg)
{
	struct mnl_socket *nl;
	struct ruleset *rs;
	int err;

	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	nl = nb_socket_open();
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
	if (!nl && !(nl = nb_socket_open()))
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
	uint32_t buf[NB_MSG_MAX / sizeof(uint32_t)] = {0};
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
	nl = nb_socket_open();
	if (!nl) {
		err = -errno;
		goto out_stop;
	}
	err = nb_commit(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b), seq, (unsigned int)n);
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
	struct nb_batch *bb = data;
	struct ruleset_config cfg = {
		.table = "dotgw-probe",
		.queue_num = 0,
		.queue_total = 1,
		.fail_closed = true,
	};
	struct nb_rule rr;

	bb->b = mnl_nlmsg_batch_start(p, room);
	if (!bb->b)
		return -ENOMEM;
	bb->buflen = room;
	bb->seq = seq;
	nb_batch_table(bb, cfg.table, NFT_MSG_NEWTABLE, NLM_F_CREATE, 0);
	nb_batch_chain(bb, cfg.table, "probe", "filter", NF_INET_LOCAL_OUT, NF_IP_PRI_MANGLE);
	nb_rule_start(&rr, cfg.table, "probe");
	rs_stmt_queue(&rr, &cfg);
	nb_batch_rule(bb, &rr);
	mnl_nlmsg_batch_stop(bb->b);
	return bb->err ? bb->err : (int)bb->nmsgs;
}

int ruleset_probe_queue(void)
{
	struct nb_batch *bb = calloc(1, sizeof(*bb));
	int err;

	if (!bb)
		return -ENOMEM;
	err = rs_send_small(rs_build_probe, bb, false);
	free(bb);
	return err;
}

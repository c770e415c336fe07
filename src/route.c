/*
 * route.c - the fwmark rules and local default routes that deliver TPROXY-marked packets to
 * this host, over rtnetlink with libmnl:
 *   ip rule add fwmark MARK lookup TABLE priority PRIO
 *   ip route add local 0.0.0.0/0 dev lo table TABLE
 * and the same for IPv6.
 *
 * Our rules are those with our fwmark (mask 0xffffffff) and our table, whatever their
 * priority; installing deletes them all before adding one per family, so restarts never pile
 * them up. Every request asks for an ACK and reads it. A kernel without IPv6 (ipv6.disable=1)
 * answers AF_INET6 requests with EAFNOSUPPORT: IPv6 is then skipped, as there is nothing to
 * capture.
 */
#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "dotgw/route.h"

#define RT_BUF_SIZE 8192
/* far more rules than anyone will have left behind; a bound against a misbehaving kernel */
#define RT_FLUSH_MAX 4096

struct rt_ctx {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	uint32_t buf[RT_BUF_SIZE / sizeof(uint32_t)];
};

static int rt_config_check(const struct route_config *cfg);
static int rt_open(struct rt_ctx *ctx);
static struct nlmsghdr *rt_msg_start(struct rt_ctx *ctx, uint16_t type, uint16_t flags);
static int rt_talk(struct rt_ctx *ctx, struct nlmsghdr *nlh);
static int rt_rule(struct rt_ctx *ctx, uint16_t type, uint8_t family,
		   const struct route_config *cfg);
static int rt_rules_flush(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg);
static int rt_route(struct rt_ctx *ctx, uint16_t type, uint8_t family,
		    const struct route_config *cfg, unsigned int oif);
static int rt_family_install(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg,
			     unsigned int oif);
static int rt_family_remove(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg);

static const uint8_t rt_families[] = {AF_INET, AF_INET6};

/*
 * A zero mark would make a rule without FRA_FWMARK, matching every packet; the reserved tables
 * (unspec, compat, default, main, local) must never receive a local default route.
 */
static int rt_config_check(const struct route_config *cfg)
{
	if (cfg->mark == 0)
		return -EINVAL;
	if (cfg->table == RT_TABLE_UNSPEC ||
	    (cfg->table >= RT_TABLE_COMPAT && cfg->table <= RT_TABLE_LOCAL))
		return -EINVAL;
	return 0;
}

static int rt_open(struct rt_ctx *ctx)
{
	ctx->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!ctx->nl)
		return -errno;
	if (mnl_socket_bind(ctx->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int err = -errno;

		mnl_socket_close(ctx->nl);
		return err;
	}
	ctx->portid = mnl_socket_get_portid(ctx->nl);
	ctx->seq = (uint32_t)time(NULL);
	return 0;
}

static struct nlmsghdr *rt_msg_start(struct rt_ctx *ctx, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(ctx->buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++ctx->seq;
	return nlh;
}

/* rt_talk - send the request built in ctx->buf and read its ACK; 0 or the kernel's -errno. */
static int rt_talk(struct rt_ctx *ctx, struct nlmsghdr *nlh)
{
	ssize_t n;
	int ret;

	if (mnl_socket_sendto(ctx->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(ctx->nl, ctx->buf, sizeof(ctx->buf));
		if (n < 0)
			return -errno;
		ret = mnl_cb_run(ctx->buf, (size_t)n, ctx->seq, ctx->portid, NULL, NULL);
	} while (ret > MNL_CB_STOP);
	return ret < 0 ? -errno : 0;
}

/*
 * rt_rule - RTM_NEWRULE or RTM_DELRULE for fwmark cfg->mark, table cfg->table. A delete leaves
 * the priority out, so that it matches our rule at any priority.
 */
static int rt_rule(struct rt_ctx *ctx, uint16_t type, uint8_t family,
		   const struct route_config *cfg)
{
	bool add = type == RTM_NEWRULE;
	struct nlmsghdr *nlh;
	struct fib_rule_hdr *frh;

	nlh = rt_msg_start(ctx, type, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = family;
	frh->table = cfg->table < 256 ? (uint8_t)cfg->table : RT_TABLE_UNSPEC;
	frh->action = FR_ACT_TO_TBL;
	mnl_attr_put_u32(nlh, FRA_FWMARK, cfg->mark);
	mnl_attr_put_u32(nlh, FRA_FWMASK, UINT32_MAX);
	mnl_attr_put_u32(nlh, FRA_TABLE, cfg->table);
	if (add)
		mnl_attr_put_u32(nlh, FRA_PRIORITY, cfg->priority);
	return rt_talk(ctx, nlh);
}

/* rt_rules_flush - delete our rules of one family until none is left; 0 or -errno. */
static int rt_rules_flush(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg)
{
	int err;

	for (int i = 0; i < RT_FLUSH_MAX; i++) {
		err = rt_rule(ctx, RTM_DELRULE, family, cfg);
		if (err == -ENOENT)
			return 0;
		if (err < 0)
			return err;
	}
	return -ELOOP;
}

/*
 * rt_route - the local default route of one family in cfg->table: RTM_NEWROUTE (created or
 * replaced, through oif) or RTM_DELROUTE (any protocol and scope, any device when oif is 0).
 */
static int rt_route(struct rt_ctx *ctx, uint16_t type, uint8_t family,
		    const struct route_config *cfg, unsigned int oif)
{
	bool add = type == RTM_NEWROUTE;
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;

	nlh = rt_msg_start(ctx, type, add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = family;
	rtm->rtm_dst_len = 0;
	rtm->rtm_table = cfg->table < 256 ? (uint8_t)cfg->table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = add ? RTPROT_STATIC : RTPROT_UNSPEC;
	rtm->rtm_scope = add ? RT_SCOPE_HOST : RT_SCOPE_NOWHERE;
	rtm->rtm_type = RTN_LOCAL;
	mnl_attr_put_u32(nlh, RTA_TABLE, cfg->table);
	if (oif)
		mnl_attr_put_u32(nlh, RTA_OIF, oif);
	return rt_talk(ctx, nlh);
}

/*
 * The route goes in before the rule: a marked packet never meets a rule whose table is still
 * empty (it would fall through to the main table and leave the host).
 */
static int rt_family_install(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg,
			     unsigned int oif)
{
	int err;

	err = rt_rules_flush(ctx, family, cfg);
	if (err < 0)
		return err;
	err = rt_route(ctx, RTM_NEWROUTE, family, cfg, oif);
	if (err < 0)
		return err;
	return rt_rule(ctx, RTM_NEWRULE, family, cfg);
}

/* rt_family_remove - rules first, then the route; what is already gone is no error. */
static int rt_family_remove(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg)
{
	int err, err2;

	err = rt_rules_flush(ctx, family, cfg);
	if (err == -EAFNOSUPPORT)
		return 0;
	/* IPv4 and IPv6 both answer ESRCH for a missing route (or table) */
	err2 = rt_route(ctx, RTM_DELROUTE, family, cfg, 0);
	if (err2 == -ESRCH || err2 == -ENOENT)
		err2 = 0;
	return err < 0 ? err : err2;
}

int route_install(const struct route_config *cfg)
{
	struct rt_ctx ctx;
	unsigned int lo;
	size_t i;
	int err;

	err = rt_config_check(cfg);
	if (err < 0)
		return err;
	lo = if_nametoindex("lo");
	if (lo == 0)
		return -errno;
	err = rt_open(&ctx);
	if (err < 0)
		return err;
	for (i = 0; i < sizeof(rt_families); i++) {
		err = rt_family_install(&ctx, rt_families[i], cfg, lo);
		if (err == -EAFNOSUPPORT && rt_families[i] == AF_INET6)
			err = 0;
		if (err < 0)
			goto out_remove;
	}
	mnl_socket_close(ctx.nl);
	return 0;

out_remove:
	for (i = 0; i < sizeof(rt_families); i++)
		rt_family_remove(&ctx, rt_families[i], cfg);
	mnl_socket_close(ctx.nl);
	return err;
}

int route_remove(const struct route_config *cfg)
{
	struct rt_ctx ctx;
	int err, first = 0;

	err = rt_config_check(cfg);
	if (err < 0)
		return err;
	err = rt_open(&ctx);
	if (err < 0)
		return err;
	for (size_t i = 0; i < sizeof(rt_families); i++) {
		err = rt_family_remove(&ctx, rt_families[i], cfg);
		if (err < 0 && !first)
			first = err;
	}
	mnl_socket_close(ctx.nl);
	return first;
}

/*
 * route.c - the fwmark rules and local default routes that deliver TPROXY-marked packets to
 * this host, over rtnetlink with libmnl:
 *   ip rule add fwmark MARK lookup TABLE priority PRIO
 *   ip route add local 0.0.0.0/0 dev lo table TABLE
 * and the same for IPv6.
 *
 * Our rules are those with our fwmark (mask 0xffffffff) and our table, whatever their
 * priority. Installing adds ours first and only then deletes the stale ones (other
 * priorities, left by an earlier run with another --rule-priority): at no moment is there no
 * rule, so a restart never lets marked packets take the main table and leave the host in
 * plaintext, and restarts never pile rules up. Every request asks for an ACK and reads it.
 * IPv6 is skipped when asked (cfg->no_ipv6: disabled on lo, see route_ipv6_usable) and when
 * the kernel has none at all (ipv6.disable=1 answers AF_INET6 requests with EAFNOSUPPORT).
 */
#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
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
/* stale rules collected by one dump; more are deleted by the next round */
#define RT_STALE_MAX 64

struct rt_ctx {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	uint32_t buf[RT_BUF_SIZE / sizeof(uint32_t)];
};

static int rt_config_check(const struct route_config *cfg);
static int rt_open(struct rt_ctx *ctx);
static struct nlmsghdr *rt_msg_start(struct rt_ctx *ctx, uint16_t type, uint16_t flags);
static int rt_talk(struct rt_ctx *ctx, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);
static int rt_rule(struct rt_ctx *ctx, uint16_t type, uint8_t family,
		   const struct route_config *cfg, bool any_priority);
static int rt_rules_stale(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg);
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

/*
 * rt_talk - send the request built in ctx->buf and read the answers until its ACK (or, for a
 * dump, NLMSG_DONE), each message through cb (NULL: none); 0 or the kernel's -errno.
 */
static int rt_talk(struct rt_ctx *ctx, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	ssize_t n;
	int ret;

	if (mnl_socket_sendto(ctx->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(ctx->nl, ctx->buf, sizeof(ctx->buf));
		if (n < 0)
			return -errno;
		ret = mnl_cb_run(ctx->buf, (size_t)n, ctx->seq, ctx->portid, cb, data);
	} while (ret > MNL_CB_STOP);
	return ret < 0 ? -errno : 0;
}

/*
 * rt_rule - RTM_NEWRULE or RTM_DELRULE for fwmark cfg->mark, table cfg->table, priority
 * cfg->priority. A delete with any_priority leaves the priority out, so that it matches our
 * rule at any priority.
 */
static int rt_rule(struct rt_ctx *ctx, uint16_t type, uint8_t family,
		   const struct route_config *cfg, bool any_priority)
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
	if (add || !any_priority)
		mnl_attr_put_u32(nlh, FRA_PRIORITY, cfg->priority);
	return rt_talk(ctx, nlh, NULL, NULL);
}

/* What a rule dump collects: the priorities of our rules that are not cfg->priority. */
struct rt_stale {
	const struct route_config *cfg;
	uint32_t prio[RT_STALE_MAX];
	size_t n;
	bool more;
};

static int rt_rule_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, FRA_MAX) < 0)
		return MNL_CB_OK; /* newer than our headers: skip it */
	if ((type == FRA_FWMARK || type == FRA_FWMASK || type == FRA_TABLE ||
	     type == FRA_PRIORITY) &&
	    mnl_attr_validate(a, MNL_TYPE_U32) < 0)
		return MNL_CB_ERROR;
	tb[type] = a;
	return MNL_CB_OK;
}

static int rt_rule_dumped(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[FRA_MAX + 1] = {NULL};
	const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
	struct rt_stale *st = data;
	uint32_t table, prio;

	if (nlh->nlmsg_type != RTM_NEWRULE || mnl_nlmsg_get_payload_len(nlh) < sizeof(*frh))
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(*frh), rt_rule_attr, tb) < 0)
		return MNL_CB_ERROR;
	table = tb[FRA_TABLE] ? mnl_attr_get_u32(tb[FRA_TABLE]) : frh->table;
	prio = tb[FRA_PRIORITY] ? mnl_attr_get_u32(tb[FRA_PRIORITY]) : 0;
	if (frh->action != FR_ACT_TO_TBL || table != st->cfg->table || !tb[FRA_FWMARK] ||
	    mnl_attr_get_u32(tb[FRA_FWMARK]) != st->cfg->mark ||
	    (tb[FRA_FWMASK] && mnl_attr_get_u32(tb[FRA_FWMASK]) != UINT32_MAX) ||
	    prio == st->cfg->priority)
		return MNL_CB_OK;
	if (st->n < RT_STALE_MAX)
		st->prio[st->n++] = prio;
	else
		st->more = true;
	return MNL_CB_OK;
}

/*
 * rt_rules_stale - delete our rules of one family at any priority but cfg->priority (an
 * earlier run's); the rule at cfg->priority stays. 0 or -errno.
 */
static int rt_rules_stale(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg)
{
	struct rt_stale st = {.cfg = cfg};
	struct route_config one = *cfg;
	struct nlmsghdr *nlh;
	struct fib_rule_hdr *frh;
	int err;

	for (int round = 0; round < RT_FLUSH_MAX / RT_STALE_MAX; round++) {
		st.n = 0;
		st.more = false;
		nlh = rt_msg_start(ctx, RTM_GETRULE, NLM_F_DUMP);
		nlh->nlmsg_flags &= (uint16_t)~NLM_F_ACK;
		frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
		frh->family = family;
		err = rt_talk(ctx, nlh, rt_rule_dumped, &st);
		if (err < 0)
			return err;
		for (size_t i = 0; i < st.n; i++) {
			one.priority = st.prio[i];
			err = rt_rule(ctx, RTM_DELRULE, family, &one, false);
			if (err < 0 && err != -ENOENT)
				return err;
		}
		if (!st.more)
			return 0;
	}
	return -ELOOP;
}

/* rt_rules_flush - delete our rules of one family until none is left; 0 or -errno. */
static int rt_rules_flush(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg)
{
	int err;

	for (int i = 0; i < RT_FLUSH_MAX; i++) {
		err = rt_rule(ctx, RTM_DELRULE, family, cfg, true);
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
	return rt_talk(ctx, nlh, NULL, NULL);
}

/*
 * The route goes in before the rule, replacing an earlier run's in place: a marked packet
 * never meets a rule whose table is still empty (it would fall through to the main table and
 * leave the host). Our rule at cfg->priority is added next (an earlier run's identical one,
 * EEXIST, stays as it is); only then do the stale ones at other priorities go.
 */
static int rt_family_install(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg,
			     unsigned int oif)
{
	int err;

	err = rt_route(ctx, RTM_NEWROUTE, family, cfg, oif);
	if (err < 0)
		return err;
	err = rt_rule(ctx, RTM_NEWRULE, family, cfg, false);
	if (err < 0 && err != -EEXIST)
		return err;
	return rt_rules_stale(ctx, family, cfg);
}

/* rt_family_remove - rules first, then the route; what is already gone is no error. */
static int rt_family_remove(struct rt_ctx *ctx, uint8_t family, const struct route_config *cfg)
{
	int err, err2;

	err = rt_rules_flush(ctx, family, cfg);
	if (err == -EAFNOSUPPORT)
		return 0;
	/* IPv6 disabled on lo: there can be no local route of ours to remove */
	if (family == AF_INET6 && err == 0 && !route_ipv6_usable())
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
		if (rt_families[i] == AF_INET6 && cfg->no_ipv6)
			continue;
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

bool route_ipv6_usable(void)
{
	FILE *f = fopen("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "re");
	int c;

	if (!f)
		return false; /* no IPv6 in this kernel (ipv6.disable=1) */
	c = fgetc(f);
	fclose(f);
	return c == '0';
}

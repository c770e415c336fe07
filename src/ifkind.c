/*
 * ifkind.c - see ifkind.h. One RTM_GETLINK dump on a socket of its own, read to its end
 * (NLMSG_DONE) with a deadline of a second per read. Unknown attributes are skipped. A dump
 * that an interface change interrupts (NLM_F_DUMP_INTR) may miss or repeat an interface; the
 * check it serves only warns, so it is not done again.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/if_arp.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "dotgw/ifkind.h"
#include "dotgw/nldump.h"

#define IFKIND_BUF_SIZE 32768

struct ifkind_dump {
	void (*fn)(const char *name, const char *kind, unsigned short type, void *data);
	void *data;
};

static int ifkind_info_attr(const struct nlattr *a, void *data)
{
	const char **kind = data;

	if (mnl_attr_get_type(a) == IFLA_INFO_KIND &&
	    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		*kind = mnl_attr_get_str(a);
	return MNL_CB_OK;
}

static int ifkind_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, IFLA_MAX) < 0)
		return MNL_CB_OK;
	if (type == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
		return MNL_CB_OK;
	if (type == IFLA_LINKINFO && mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

static int ifkind_msg(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[IFLA_MAX + 1] = {NULL};
	struct ifkind_dump *d = data;
	const struct ifinfomsg *ifm;
	const char *kind = "";

	if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifm))
		return MNL_CB_OK;
	ifm = mnl_nlmsg_get_payload(nlh);
	mnl_attr_parse(nlh, sizeof(*ifm), ifkind_attr, tb);
	if (!tb[IFLA_IFNAME])
		return MNL_CB_OK;
	if (tb[IFLA_LINKINFO])
		mnl_attr_parse_nested(tb[IFLA_LINKINFO], ifkind_info_attr, &kind);
	d->fn(mnl_attr_get_str(tb[IFLA_IFNAME]), kind, ifm->ifi_type, d->data);
	return MNL_CB_OK;
}

/* ifkind_read - send one dump request and read the whole answer; 0 or -errno. */
static int ifkind_read(struct mnl_socket *nl, uint32_t seq, void *buf, struct ifkind_dump *d)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;

	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	return nldump_run(nl, nlh, buf, IFKIND_BUF_SIZE, seq, ifkind_msg, d);
}

int ifkind_foreach(void (*fn)(const char *name, const char *kind, unsigned short type, void *data),
		   void *data)
{
	struct ifkind_dump d = {.fn = fn, .data = data};
	struct mnl_socket *nl;
	void *buf;
	int r;

	buf = malloc(IFKIND_BUF_SIZE);
	if (!buf)
		return -ENOMEM;
	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!nl) {
		r = -errno;
		goto out_free;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out_close;
	}
	r = ifkind_read(nl, (uint32_t)time(NULL), buf, &d);
out_close:
	mnl_socket_close(nl);
out_free:
	free(buf);
	return r;
}

bool ifkind_is_tunnel(const char *kind, unsigned short type)
{
	static const char *const kinds[] = {
		"tun",		     /* TUN/TAP: OpenVPN, Tailscale, WireGuard in user space, ... */
		"wireguard", "ovpn", /* OpenVPN's kernel data channel */
		"xfrm",	     "vti",    "vti6", /* IPsec */
		"ipip",	     "sit",    "ip6tnl",    "gre",
		"gretap",    "ip6gre", "ip6gretap", "ppp", /* PPTP, L2TP, PPPoE VPNs */
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i]) == 0)
			return true;
	/* a kernel or driver that names no kind: the link type still tells */
	if (!*kind)
		switch (type) {
		case ARPHRD_PPP:
		case ARPHRD_TUNNEL:
		case ARPHRD_TUNNEL6:
		case ARPHRD_IPGRE:
		case ARPHRD_SIT:
		case ARPHRD_IP6GRE:
		case ARPHRD_NONE:
			return true;
		default:
			break;
		}
	return false;
}

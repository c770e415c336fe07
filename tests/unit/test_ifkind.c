/*
 * test_ifkind.c - which link kinds count as tunnels, and the dump against this namespace's own
 * interfaces, read only (an rtnetlink dump needs no privilege): every interface if_nameindex
 * lists is reported once, lo among them with link type ARPHRD_LOOPBACK and no kind. Interfaces
 * of other kinds (veth, TUN) are made by tests/netns/exempt_interface.test.sh.
 */
#include <net/if.h> /* before linux/if_arp.h, whose linux/if.h then defers to it */
#include <string.h>

#include <linux/if_arp.h>

#include "check.h"
#include "dotgw/ifkind.h"

struct seen {
	unsigned int n, lo;
	char names[64][IF_NAMESIZE];
};

static void seen_link(const char *name, const char *kind, unsigned short type, void *data)
{
	struct seen *s = data;

	if (strcmp(name, "lo") == 0) {
		s->lo++;
		CHECK_EQ(type, ARPHRD_LOOPBACK);
		CHECK(strcmp(kind, "") == 0);
		CHECK(!ifkind_is_tunnel(kind, type));
	}
	if (s->n < 64)
		strncpy(s->names[s->n], name, IF_NAMESIZE - 1);
	s->n++;
}

int main(void)
{
	static const char *const tunnels[] = {"tun",	"wireguard", "ovpn",	  "xfrm",   "vti",
					      "vti6",	"ipip",	     "sit",	  "ip6tnl", "gre",
					      "gretap", "ip6gre",    "ip6gretap", "ppp"};
	static const char *const others[] = {"veth",  "bridge", "vlan",	  "macvlan", "bond",
					     "vxlan", "dummy",	"tunnel", "wg",	     "tun0"};
	struct if_nameindex *all = if_nameindex();
	struct seen s = {0};
	unsigned int n = 0;

	for (size_t i = 0; i < sizeof(tunnels) / sizeof(tunnels[0]); i++)
		CHECK(ifkind_is_tunnel(tunnels[i], ARPHRD_ETHER));
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		CHECK(!ifkind_is_tunnel(others[i], ARPHRD_NONE));
	/* no kind (a physical NIC, an old driver): the link type decides */
	CHECK(!ifkind_is_tunnel("", ARPHRD_ETHER));
	CHECK(!ifkind_is_tunnel("", ARPHRD_LOOPBACK));
	CHECK(ifkind_is_tunnel("", ARPHRD_NONE));
	CHECK(ifkind_is_tunnel("", ARPHRD_PPP));
	CHECK(ifkind_is_tunnel("", ARPHRD_TUNNEL6));

	CHECK_EQ(ifkind_foreach(seen_link, &s), 0);
	CHECK_EQ(s.lo, 1);
	for (struct if_nameindex *i = all; i && i->if_index; i++) {
		unsigned int found = 0;

		for (unsigned int k = 0; k < s.n && k < 64; k++)
			found += strcmp(s.names[k], i->if_name) == 0;
		CHECK_EQ(found, 1);
		n++;
	}
	CHECK_EQ(s.n, n);
	if (all)
		if_freenameindex(all);
	return check_done("ifkind");
}

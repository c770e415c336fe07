/*
 * ifkind.h - what kind of link each interface of this network namespace is (rtnetlink
 * IFLA_INFO_KIND: "tun", "wireguard", "veth", ...; none for a physical NIC), read once with
 * a dump, for the check that --exempt-interface names tunnels. Nothing is kept or watched.
 */
#ifndef DOTGW_IFKIND_H
#define DOTGW_IFKIND_H

#include <stdbool.h>

/*
 * ifkind_foreach - dump the interfaces and call fn for each: its name, its kind ("" when the
 * kernel gives none) and its link type (ARPHRD_*). Returns 0, or -errno (the dump could not
 * be read; fn may have run for some interfaces).
 */
int ifkind_foreach(void (*fn)(const char *name, const char *kind, unsigned short type, void *data),
		   void *data);

/*
 * ifkind_is_tunnel - does an interface of this kind and link type carry its traffic through a
 * tunnel (a VPN's TUN device, WireGuard, IPsec, an IP-in-IP or GRE tunnel, PPP)? A veth, a
 * bridge, a VLAN or a physical NIC does not: DNS routed through it leaves in plaintext.
 */
bool ifkind_is_tunnel(const char *kind, unsigned short type);

#endif

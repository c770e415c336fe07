/*
 * addr.h - socket addresses and address prefixes: one sockaddr union for IPv4 and IPv6, its
 * text form, the one "[ADDR]:PORT" parser, the original destination and incoming interface
 * carried in control messages, and a neutral CIDR prefix for policy, config and the ruleset.
 * Pure code but addr_set_transparent and addr_set_pktinfo (socket options on the caller's
 * socket); nothing logs.
 */
#ifndef DOTGW_ADDR_H
#define DOTGW_ADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/*
 * An IPv4 or IPv6 socket address: 28 octets, not sockaddr_storage's 128, since every query
 * carries three of them (struct reply_to) and the hot path copies them.
 */
union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
};

/* "ADDR:PORT" or "[ADDR6]:PORT": room for the longest */
#define ADDR_TEXT_MAX 64

/* addr_text - a as "ADDR:PORT" or "[ADDR6]:PORT" in buf (len octets); returns buf. */
const char *addr_text(const union sockaddr_any *a, char *buf, size_t len);

/* The small accessors are inline: the query path calls them several times per query. */

/* addr_equal - same family, address, port (and IPv6 scope). */
static inline bool addr_equal(const union sockaddr_any *a, const union sockaddr_any *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->sin.sin_port == b->sin.sin_port &&
		       a->sin.sin_addr.s_addr == b->sin.sin_addr.s_addr;
	return a->sin6.sin6_port == b->sin6.sin6_port &&
	       memcmp(&a->sin6.sin6_addr, &b->sin6.sin6_addr, 16) == 0 &&
	       a->sin6.sin6_scope_id == b->sin6.sin6_scope_id;
}

/* addr_len - the length of a's sockaddr for its family. */
static inline socklen_t addr_len(const union sockaddr_any *a)
{
	return a->sa.sa_family == AF_INET6 ? sizeof(a->sin6) : sizeof(a->sin);
}

/* addr_port - a's port in host order. */
static inline uint16_t addr_port(const union sockaddr_any *a)
{
	return ntohs(a->sa.sa_family == AF_INET6 ? a->sin6.sin6_port : a->sin.sin_port);
}

/* addr_set_port - set a's port (host order). */
static inline void addr_set_port(union sockaddr_any *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET6)
		a->sin6.sin6_port = htons(port);
	else
		a->sin.sin_port = htons(port);
}

/* addr_bytes - a's address octets (4 or 16). */
static inline const uint8_t *addr_bytes(const union sockaddr_any *a)
{
	return a->sa.sa_family == AF_INET6 ? a->sin6.sin6_addr.s6_addr
					   : (const uint8_t *)&a->sin.sin_addr;
}

/*
 * addr_parse - "[ADDR]", "[ADDR]:PORT" or "[ADDR]@PORT" (either family in the brackets),
 * "ADDR" (either family), "ADDR@PORT", "ADDR4:PORT", or "PORT" alone when default_host is
 * not NULL (then the address is default_host) into *out. A missing port is default_port;
 * default_port 0 makes the port required. Ports are decimal, 1-65535. 0 or -EINVAL; *out is
 * written only on success.
 */
int addr_parse(union sockaddr_any *out, const char *s, const char *default_host,
	       uint16_t default_port);

/*
 * addr_cmsg_orig_dst - walk the control messages of a received datagram (or of a TCP
 * socket's IP(V6)_PKTOPTIONS): the original destination (IP(V6)_ORIGDSTADDR) into *odst and
 * the incoming interface (IP(V6)_PKTINFO; 0 when absent) into *ifindex. Returns whether an
 * original destination was found (*odst is written only then).
 */
bool addr_cmsg_orig_dst(struct msghdr *mh, union sockaddr_any *odst, unsigned int *ifindex);

/* addr_set_transparent - IP(V6)_TRANSPARENT on fd, of family; 0 or -errno. */
int addr_set_transparent(int fd, int family);

/*
 * addr_set_pktinfo - IP_PKTINFO / IPV6_RECVPKTINFO on fd, of family: each datagram's incoming
 * interface (accepted TCP sockets inherit it: see IP_PKTOPTIONS). 0 or -errno.
 */
int addr_set_pktinfo(int fd, int family);

/* An address prefix: family AF_INET or AF_INET6, the address (4 or 16 octets used). */
struct cidr {
	int family;
	uint8_t addr[16];
	unsigned int plen;
};

/* cidr_parse - "ADDR[/LEN]" (IPv4 or IPv6); 0 or -EINVAL, *c written on success. */
int cidr_parse(struct cidr *c, const char *s);

/* cidr_contains - is addr (family: 4 or 16 octets) within c? */
bool cidr_contains(const struct cidr *c, int family, const uint8_t *addr);

#endif

/*
 * addr.c - socket addresses and prefixes; see addr.h. Every function reads only its arguments
 * (addr_set_transparent, addr_set_pktinfo: socket options), and outputs are written only on
 * success.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dotgw/addr.h"

const char *addr_text(const union sockaddr_any *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &a->sin6.sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(a->sin6.sin6_port));
	} else {
		inet_ntop(AF_INET, &a->sin.sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(a->sin.sin_port));
	}
	return buf;
}

/* parse_decimal - a whole decimal number in [0, max] (digits only); 0 or -EINVAL. */
static int parse_decimal(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/* addr_from_text - an address of either family, with port, into *out; 0 or -EINVAL. */
static int addr_from_text(union sockaddr_any *out, const char *host, uint16_t port)
{
	union sockaddr_any a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, host, &a.sin.sin_addr) == 1)
		a.sa.sa_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &a.sin6.sin6_addr) == 1)
		a.sa.sa_family = AF_INET6;
	else
		return -EINVAL;
	addr_set_port(&a, port);
	*out = a;
	return 0;
}

int addr_parse(union sockaddr_any *out, const char *s, const char *default_host,
	       uint16_t default_port)
{
	char host[INET6_ADDRSTRLEN];
	const char *port = NULL, *end, *colon;
	unsigned long p = default_port;
	size_t hlen;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end)
			return -EINVAL;
		hlen = (size_t)(end - s - 1);
		s++;
		if (end[1] == ':' || end[1] == '@')
			port = end + 2;
		else if (end[1])
			return -EINVAL;
	} else if ((end = strchr(s, '@'))) {
		hlen = (size_t)(end - s);
		port = end + 1;
	} else if ((colon = strchr(s, ':')) && !strchr(colon + 1, ':')) {
		/* one colon: "ADDR4:PORT" (an IPv6 address has at least two) */
		hlen = (size_t)(colon - s);
		port = colon + 1;
	} else if (default_host && parse_decimal(s, 65535, &p) == 0) {
		return p ? addr_from_text(out, default_host, (uint16_t)p) : -EINVAL;
	} else {
		hlen = strlen(s);
	}
	if (hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (port ? parse_decimal(port, 65535, &p) < 0 : !default_port)
		return -EINVAL;
	if (p == 0)
		return -EINVAL;
	return addr_from_text(out, host, (uint16_t)p);
}

bool addr_cmsg_orig_dst(struct msghdr *mh, union sockaddr_any *odst, unsigned int *ifindex)
{
	bool found = false;

	*ifindex = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			*ifindex = (unsigned int)pi.ipi_ifindex;
			continue;
		}
		if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			*ifindex = pi.ipi6_ifindex;
			continue;
		}
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in))) {
			memset(odst, 0, sizeof(*odst));
			memcpy(&odst->sin, CMSG_DATA(c), sizeof(struct sockaddr_in));
			found = true;
		}
		if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in6))) {
			memset(odst, 0, sizeof(*odst));
			memcpy(&odst->sin6, CMSG_DATA(c), sizeof(struct sockaddr_in6));
			found = true;
		}
	}
	return found;
}

int addr_set_transparent(int fd, int family)
{
	int one = 1, r;

	if (family == AF_INET6)
		r = setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
	else
		r = setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
	return r < 0 ? -errno : 0;
}

int addr_set_pktinfo(int fd, int family)
{
	int one = 1, r;

	if (family == AF_INET)
		r = setsockopt(fd, SOL_IP, IP_PKTINFO, &one, sizeof(one));
	else
		r = setsockopt(fd, SOL_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	return r < 0 ? -errno : 0;
}

int cidr_parse(struct cidr *c, const char *s)
{
	char buf[INET6_ADDRSTRLEN + 5], *slash;
	struct cidr r = {0};
	unsigned long plen;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, r.addr) == 1)
		r.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, r.addr) == 1)
		r.family = AF_INET6;
	else
		return -EINVAL;
	plen = r.family == AF_INET ? 32 : 128;
	if (slash && parse_decimal(slash, plen, &plen) < 0)
		return -EINVAL;
	r.plen = (unsigned int)plen;
	*c = r;
	return 0;
}

bool cidr_contains(const struct cidr *c, int family, const uint8_t *addr)
{
	unsigned int full = c->plen / 8, rest = c->plen % 8;

	if (c->family != family || memcmp(c->addr, addr, full) != 0)
		return false;
	return rest == 0 || ((c->addr[full] ^ addr[full]) & (0xff00 >> rest)) == 0;
}

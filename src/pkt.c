/*
 * pkt.c - IPv4/IPv6 + UDP parsing and building; see pkt.h. Bounds are checked before every
 * read; the IPv6 extension-header walk is bounded by the packet length and a header count.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/pkt.h"

#define PKT_MAX_EXT_HDRS 8

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static int pkt_parse_udp(struct pkt_udp *r, const uint8_t *buf, size_t off, size_t end)
{
	size_t ulen;

	if (end - off < PKT_UDP_HDR)
		return -EBADMSG;
	ulen = get16(buf + off + 4);
	/* ulen 0 is a jumbogram (RFC 2675): not for DNS */
	if (ulen < PKT_UDP_HDR || ulen > end - off)
		return -EBADMSG;
	r->sport = get16(buf + off);
	r->dport = get16(buf + off + 2);
	r->payload_off = off + PKT_UDP_HDR;
	r->payload_len = ulen - PKT_UDP_HDR;
	return 0;
}

static int pkt_parse_v4(struct pkt_udp *r, const uint8_t *buf, size_t len)
{
	size_t ihl, total;

	if (len < PKT_IPV4_HDR)
		return -EBADMSG;
	ihl = (size_t)(buf[0] & 0x0f) * 4;
	total = get16(buf + 2);
	if (ihl < PKT_IPV4_HDR || total < ihl || total > len)
		return -EBADMSG;
	if (get16(buf + 6) & 0x3fff) /* MF or a fragment offset */
		return -EMSGSIZE;
	if (buf[9] != IPPROTO_UDP)
		return -EPROTONOSUPPORT;
	r->family = AF_INET;
	memcpy(r->src, buf + 12, 4);
	memcpy(r->dst, buf + 16, 4);
	return pkt_parse_udp(r, buf, ihl, total);
}

static int pkt_parse_v6(struct pkt_udp *r, const uint8_t *buf, size_t len)
{
	size_t off = PKT_IPV6_HDR, end;
	uint8_t next;

	if (len < PKT_IPV6_HDR)
		return -EBADMSG;
	end = PKT_IPV6_HDR + (size_t)get16(buf + 4);
	if (end > len)
		return -EBADMSG;
	next = buf[6];
	for (int i = 0; i < PKT_MAX_EXT_HDRS; i++) {
		switch (next) {
		case IPPROTO_UDP:
			r->family = AF_INET6;
			memcpy(r->src, buf + 8, 16);
			memcpy(r->dst, buf + 24, 16);
			return pkt_parse_udp(r, buf, off, end);
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if (end - off < 8)
				return -EBADMSG;
			/* hop-by-hop only right after the fixed header (RFC 8200 4.1) */
			if (next == IPPROTO_HOPOPTS && off != PKT_IPV6_HDR)
				return -EBADMSG;
			/*
			 * Segments left: the destination above is not the final one, which the
			 * UDP checksum covers (RFC 8200 8.1) and a reply would have to come from.
			 */
			if (next == IPPROTO_ROUTING && buf[off + 3] != 0)
				return -EPROTONOSUPPORT;
			next = buf[off];
			if ((size_t)(buf[off + 1] + 1) * 8 > end - off)
				return -EBADMSG;
			off += (size_t)(buf[off + 1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			if (end - off < 8)
				return -EBADMSG;
			/* an atomic fragment (offset 0, no MF; RFC 6946) is a whole packet */
			if (get16(buf + off + 2) & 0xfff9)
				return -EMSGSIZE;
			next = buf[off];
			off += 8;
			break;
		case IPPROTO_NONE:
			return -EBADMSG;
		default:
			return -EPROTONOSUPPORT;
		}
	}
	return -EPROTONOSUPPORT;
}

int pkt_udp_parse(struct pkt_udp *p, const uint8_t *buf, size_t len)
{
	struct pkt_udp r;
	int err;

	memset(&r, 0, sizeof(r));
	if (len < 1)
		return -EBADMSG;
	switch (buf[0] >> 4) {
	case 4:
		err = pkt_parse_v4(&r, buf, len);
		break;
	case 6:
		err = pkt_parse_v6(&r, buf, len);
		break;
	default:
		return -EBADMSG;
	}
	if (err == 0)
		*p = r;
	return err;
}

/* One's-complement sum of 16-bit words, folded at the end by csum_fold. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (; len >= 2; p += 2, len -= 2)
		sum += get16(p);
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The UDP checksum over the pseudo-header and the UDP header + payload at udp. */
static uint16_t udp_checksum(int family, const uint8_t *src, const uint8_t *dst, const uint8_t *udp,
			     size_t ulen)
{
	size_t alen = family == AF_INET ? 4 : 16;
	uint32_t sum = 0;
	uint16_t c;

	sum = csum_add(sum, src, alen);
	sum = csum_add(sum, dst, alen);
	sum += IPPROTO_UDP;
	sum += (uint32_t)ulen;
	sum = csum_add(sum, udp, ulen);
	c = csum_fold(sum);
	return c == 0 ? 0xffff : c; /* 0 means "no checksum" (RFC 768) */
}

int pkt_udp_build(uint8_t *out, size_t outlen, int family, const uint8_t *src, uint16_t sport,
		  const uint8_t *dst, uint16_t dport, const uint8_t *payload, size_t plen)
{
	uint8_t s[16], d[16];
	size_t hlen, alen, ulen, total;
	uint8_t *udp;

	if (family == AF_INET) {
		hlen = PKT_IPV4_HDR;
		alen = 4;
	} else if (family == AF_INET6) {
		hlen = PKT_IPV6_HDR;
		alen = 16;
	} else {
		return -EINVAL;
	}
	if (plen > 65535 - PKT_UDP_HDR)
		return -EMSGSIZE;
	ulen = PKT_UDP_HDR + plen;
	total = hlen + ulen;
	if ((family == AF_INET && total > 65535) || total > outlen)
		return -EMSGSIZE;
	/* Inputs may overlap out: take the addresses, then move the payload, then write. */
	memcpy(s, src, alen);
	memcpy(d, dst, alen);
	udp = out + hlen;
	memmove(udp + PKT_UDP_HDR, payload, plen);
	memset(out, 0, hlen);
	if (family == AF_INET) {
		out[0] = 0x45;
		put16(out + 2, (uint16_t)total);
		out[8] = 64;
		out[9] = IPPROTO_UDP;
		memcpy(out + 12, s, 4);
		memcpy(out + 16, d, 4);
		put16(out + 10, csum_fold(csum_add(0, out, PKT_IPV4_HDR)));
	} else {
		out[0] = 0x60;
		put16(out + 4, (uint16_t)ulen);
		out[6] = IPPROTO_UDP;
		out[7] = 64;
		memcpy(out + 8, s, 16);
		memcpy(out + 24, d, 16);
	}
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)ulen);
	put16(udp + 6, 0);
	put16(udp + 6, udp_checksum(family, s, d, udp, ulen));
	return (int)total;
}

bool pkt_udp_checksum_ok(const struct pkt_udp *p, const uint8_t *buf)
{
	const uint8_t *udp = buf + p->payload_off - PKT_UDP_HDR;
	size_t ulen = p->payload_len + PKT_UDP_HDR;
	size_t alen = p->family == AF_INET ? 4 : 16;
	uint32_t sum = 0;

	if (get16(udp + 6) == 0)
		return p->family == AF_INET; /* IPv4 may omit it; IPv6 may not */
	sum = csum_add(sum, p->src, alen);
	sum = csum_add(sum, p->dst, alen);
	sum += IPPROTO_UDP;
	sum += (uint32_t)ulen;
	sum = csum_add(sum, udp, ulen);
	return csum_fold(sum) == 0;
}

int pkt_udp_verify(const struct pkt_udp *p, const uint8_t *buf, size_t max_payload, bool csum_ready)
{
	if (p->payload_len > max_payload)
		return -EMSGSIZE;
	if (csum_ready && !pkt_udp_checksum_ok(p, buf))
		return -EBADMSG;
	return 0;
}

/*
 * fuzz_pkt.c - libFuzzer target for the IPv4/IPv6 + UDP packet module (src/pkt.c).
 *
 * Parses the input as a packet; when that succeeds, checks the parsed fields against the input
 * octets, rebuilds the datagram with pkt_udp_build into a heap buffer of exactly the size it
 * needs (and once in place over a copy of the input), re-parses that and compares; checks
 * pkt_udp_verify against the size limit and pkt_udp_checksum_ok. Any
 * difference, a checksum that does not verify or an error outside the header contract
 * abort()s.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t get16(const uint8_t *p);
static void check_view(const struct pkt_udp *p, const uint8_t *buf, size_t len);
static bool same(const struct pkt_udp *a, const struct pkt_udp *b);
static void fuzz_build(const struct pkt_udp *p, const uint8_t *data, size_t size);

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* What any successful parse must satisfy, read back from the octets themselves. */
static void check_view(const struct pkt_udp *p, const uint8_t *buf, size_t len)
{
	const uint8_t *udp;

	if (p->family != AF_INET && p->family != AF_INET6)
		abort();
	if (p->payload_off > len || p->payload_len > len - p->payload_off)
		abort();
	if (p->payload_off < (p->family == AF_INET ? PKT_IPV4_HDR : PKT_IPV6_HDR) + PKT_UDP_HDR)
		abort();
	udp = buf + p->payload_off - PKT_UDP_HDR;
	if (p->sport != get16(udp) || p->dport != get16(udp + 2) ||
	    p->payload_len + PKT_UDP_HDR != get16(udp + 4))
		abort();
	if (p->family == AF_INET) {
		if (buf[0] >> 4 != 4 ||
		    p->payload_off != (size_t)(buf[0] & 0x0f) * 4 + PKT_UDP_HDR ||
		    p->payload_off + p->payload_len > get16(buf + 2))
			abort();
		if (memcmp(p->src, buf + 12, 4) || memcmp(p->dst, buf + 16, 4))
			abort();
	} else {
		if (buf[0] >> 4 != 6 ||
		    p->payload_off + p->payload_len > PKT_IPV6_HDR + get16(buf + 4))
			abort();
		if (memcmp(p->src, buf + 8, 16) || memcmp(p->dst, buf + 24, 16))
			abort();
	}
}

static bool same(const struct pkt_udp *a, const struct pkt_udp *b)
{
	size_t alen = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && !memcmp(a->src, b->src, alen) &&
	       !memcmp(a->dst, b->dst, alen) && a->sport == b->sport && a->dport == b->dport &&
	       a->payload_len == b->payload_len;
}

static void fuzz_build(const struct pkt_udp *p, const uint8_t *data, size_t size)
{
	size_t hlen = p->family == AF_INET ? PKT_IPV4_HDR : PKT_IPV6_HDR;
	size_t need = hlen + PKT_UDP_HDR + p->payload_len;
	uint8_t *out = malloc(need), *copy = malloc(size);
	const uint8_t *payload = data + p->payload_off;
	struct pkt_udp q;
	int n;

	if (!out || !copy)
		abort();
	n = pkt_udp_build(out, need, p->family, p->src, p->sport, p->dst, p->dport, payload,
			  p->payload_len);
	if (n < 0 || (size_t)n != need)
		abort();
	if (pkt_udp_parse(&q, out, need))
		abort();
	check_view(&q, out, need);
	if (!same(p, &q) || q.payload_off != hlen + PKT_UDP_HDR ||
	    memcmp(out + q.payload_off, payload, p->payload_len))
		abort();
	if (!pkt_udp_checksum_ok(&q, out) || get16(out + q.payload_off - 2) == 0)
		abort();
	if (p->family == AF_INET && get16(out + 2) != need)
		abort();
	if (p->family == AF_INET6 && get16(out + 4) != need - PKT_IPV6_HDR)
		abort();

	/* One octet short. */
	if (pkt_udp_build(out, need - 1, p->family, p->src, p->sport, p->dst, p->dport, payload,
			  p->payload_len) != -EMSGSIZE)
		abort();

	/*
	 * In place over the input, addresses read from it too: the payload moves down over
	 * options or extension headers.
	 */
	memcpy(copy, data, size);
	n = pkt_udp_build(copy, size, p->family, copy + (p->family == AF_INET ? 12 : 8), p->sport,
			  copy + (p->family == AF_INET ? 16 : 24), p->dport, copy + p->payload_off,
			  p->payload_len);
	if (n < 0 || (size_t)n != need)
		abort();
	n = pkt_udp_build(out, need, p->family, p->src, p->sport, p->dst, p->dport, payload,
			  p->payload_len);
	if (n < 0 || memcmp(copy, out, need))
		abort();
	free(copy);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt_udp p, before;
	int rc;

	memset(&p, 0xa5, sizeof(p));
	before = p;
	rc = pkt_udp_parse(&p, data, size);
	if (rc) {
		if (rc != -EBADMSG && rc != -EPROTONOSUPPORT && rc != -EMSGSIZE)
			abort();
		if (memcmp(&p, &before, sizeof(p)))
			abort();
		return 0;
	}
	check_view(&p, data, size);
	/* the input's own checksum may be anything; this must only stay in bounds */
	(void)pkt_udp_checksum_ok(&p, data);
	/* pkt_udp_verify: the size first, then (final checksum) pkt_udp_checksum_ok's verdict */
	rc = pkt_udp_verify(&p, data, 4096, false);
	if (rc != (p.payload_len > 4096 ? -EMSGSIZE : 0))
		abort();
	rc = pkt_udp_verify(&p, data, 4096, true);
	if (p.payload_len <= 4096 && rc != (pkt_udp_checksum_ok(&p, data) ? 0 : -EBADMSG))
		abort();
	fuzz_build(&p, data, size);
	return 0;
}

/*
 * test_pkt.c - unit tests for the IPv4/IPv6 + UDP packet module (src/pkt.c).
 *
 * Packets come from pkt_udp_build and are then edited octet by octet (options, extension
 * headers, flags, lengths), or are written out in full as hex. Checksums are compared with
 * ref_udp_checksum below, a separate byte-at-a-time implementation over an explicitly built
 * pseudo-header, and with values computed offline (python3) for two fixed packets.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/pkt.h"

#define BUF_MAX 70000

/* A DNS query for example.com/A, id 0x1234, RD set: 29 octets. */
static const uint8_t dns_query[] = {
	0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78,
	0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
};

/* 192.0.2.1:53000 -> 198.51.100.53:53 carrying dns_query, both checksums from python3. */
static const uint8_t v4_known[] = {
	0x45, 0x00, 0x00, 0x39, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x8e, 0x4a, 0xc0, 0x00, 0x02,
	0x01, 0xc6, 0x33, 0x64, 0x35, 0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x62, 0x5a, 0x12, 0x34,
	0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d,
	0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
};

static const uint8_t a4_src[4] = {192, 0, 2, 1};
static const uint8_t a4_dst[4] = {198, 51, 100, 53};
static const uint8_t a6_src[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x01};
static const uint8_t a6_dst[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x35};

static uint8_t buf[BUF_MAX], buf2[BUF_MAX];

static uint32_t rng_state = 0x2545f491;

static uint32_t rng(void);
static uint16_t get16(const uint8_t *p);
static void put16(uint8_t *p, unsigned int v);
static uint32_t ref_sum(const uint8_t *p, size_t len);
static uint32_t ref_udp_sum(int family, const uint8_t *src, const uint8_t *dst, uint16_t sport,
			    uint16_t dport, const uint8_t *payload, size_t plen);
static uint16_t ref_udp_checksum(int family, const uint8_t *src, const uint8_t *dst, uint16_t sport,
				 uint16_t dport, const uint8_t *payload, size_t plen);
static size_t alen_of(int family);
static size_t hlen_of(int family);
static int build(uint8_t *out, int family, const uint8_t *payload, size_t plen);
static void check_parsed(const uint8_t *pkt, size_t len, int family, const uint8_t *payload,
			 size_t plen, size_t payload_off);
static int parse(const uint8_t *pkt, size_t len);
static size_t v6_insert(uint8_t *pkt, size_t len, uint8_t first, const uint8_t *ext, size_t extlen);
static size_t v4_add_options(uint8_t *pkt, size_t len, size_t optlen);

static void test_roundtrip(void);
static void test_roundtrip_random(void);
static void test_known_v4(void);
static void test_known_v6(void);
static void test_bit_flip(void);
static void test_v6_ext(void);
static void test_v6_ext_bad(void);
static void test_v6_fragment(void);
static void test_v4_options(void);
static void test_v4_fragment(void);
static void test_not_udp(void);
static void test_malformed_v4(void);
static void test_malformed_v6(void);
static void test_trailing(void);
static void test_build_error(void);
static void test_build_alias(void);
static void test_checksum_zero(void);
static void test_checksum_omitted(void);
static void test_verify_size(void);
static void test_verify_checksum(void);
static void test_verify_partial(void);

/* xorshift32: reproducible "random" octets. */
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, unsigned int v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The 16-bit one's-complement sum, octet by octet, folded (not complemented). */
static uint32_t ref_sum(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += (i % 2 == 0) ? (uint64_t)p[i] * 256 : p[i];
	while (sum > 0xffff)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint32_t)sum;
}

/* RFC 768 / RFC 8200 8.1: the folded sum over pseudo-header, UDP header (checksum 0), payload. */
static uint32_t ref_udp_sum(int family, const uint8_t *src, const uint8_t *dst, uint16_t sport,
			    uint16_t dport, const uint8_t *payload, size_t plen)
{
	static uint8_t tmp[BUF_MAX + 40];
	size_t alen = alen_of(family), ulen = plen + 8, n = 0;

	memcpy(tmp + n, src, alen);
	n += alen;
	memcpy(tmp + n, dst, alen);
	n += alen;
	if (family == AF_INET) {
		tmp[n++] = 0;
		tmp[n++] = IPPROTO_UDP;
		put16(tmp + n, (unsigned int)ulen);
		n += 2;
	} else {
		tmp[n++] = (uint8_t)(ulen >> 24);
		tmp[n++] = (uint8_t)(ulen >> 16);
		tmp[n++] = (uint8_t)(ulen >> 8);
		tmp[n++] = (uint8_t)ulen;
		tmp[n++] = 0;
		tmp[n++] = 0;
		tmp[n++] = 0;
		tmp[n++] = IPPROTO_UDP;
	}
	put16(tmp + n, sport);
	put16(tmp + n + 2, dport);
	put16(tmp + n + 4, (unsigned int)ulen);
	put16(tmp + n + 6, 0);
	n += 8;
	memcpy(tmp + n, payload, plen);
	n += plen;
	return ref_sum(tmp, n);
}

/* The checksum field: the complement of the sum, 0 sent as 0xffff (RFC 768). */
static uint16_t ref_udp_checksum(int family, const uint8_t *src, const uint8_t *dst, uint16_t sport,
				 uint16_t dport, const uint8_t *payload, size_t plen)
{
	uint16_t c = (uint16_t)~ref_udp_sum(family, src, dst, sport, dport, payload, plen);

	return c ? c : 0xffff;
}

static size_t alen_of(int family)
{
	return family == AF_INET ? 4 : 16;
}

static size_t hlen_of(int family)
{
	return family == AF_INET ? PKT_IPV4_HDR : PKT_IPV6_HDR;
}

/* The standard test packet: 53000 -> 53 between the a4_ or a6_ addresses. */
static int build(uint8_t *out, int family, const uint8_t *payload, size_t plen)
{
	if (family == AF_INET)
		return pkt_udp_build(out, BUF_MAX, AF_INET, a4_src, 53000, a4_dst, 53, payload,
				     plen);
	return pkt_udp_build(out, BUF_MAX, AF_INET6, a6_src, 53000, a6_dst, 53, payload, plen);
}

/* Parse a packet made by build() (possibly edited) and check every field. */
static void check_parsed(const uint8_t *pkt, size_t len, int family, const uint8_t *payload,
			 size_t plen, size_t payload_off)
{
	const uint8_t *src = family == AF_INET ? a4_src : a6_src;
	const uint8_t *dst = family == AF_INET ? a4_dst : a6_dst;
	struct pkt_udp p;

	memset(&p, 0, sizeof(p));
	CHECK_EQ(pkt_udp_parse(&p, pkt, len), 0);
	CHECK_EQ(p.family, family);
	CHECK(memcmp(p.src, src, alen_of(family)) == 0);
	CHECK(memcmp(p.dst, dst, alen_of(family)) == 0);
	CHECK_EQ(p.sport, 53000);
	CHECK_EQ(p.dport, 53);
	CHECK_EQ(p.payload_off, payload_off);
	CHECK_EQ(p.payload_len, plen);
	CHECK(p.payload_off + p.payload_len <= len);
	CHECK(p.payload_off + p.payload_len > len ||
	      memcmp(pkt + p.payload_off, payload, plen) == 0);
	CHECK(pkt_udp_checksum_ok(&p, pkt));
}

static int parse(const uint8_t *pkt, size_t len)
{
	struct pkt_udp p;

	return pkt_udp_parse(&p, pkt, len);
}

/*
 * Put extension headers ext between the fixed IPv6 header and what follows it: the fixed
 * header's next header becomes first, ext must end in the old next header's chain.
 */
static size_t v6_insert(uint8_t *pkt, size_t len, uint8_t first, const uint8_t *ext, size_t extlen)
{
	memmove(pkt + PKT_IPV6_HDR + extlen, pkt + PKT_IPV6_HDR, len - PKT_IPV6_HDR);
	memcpy(pkt + PKT_IPV6_HDR, ext, extlen);
	pkt[6] = first;
	put16(pkt + 4, get16(pkt + 4) + (unsigned int)extlen);
	return len + extlen;
}

/* Grow the IPv4 header by optlen (a multiple of 4) octets of NOP options. */
static size_t v4_add_options(uint8_t *pkt, size_t len, size_t optlen)
{
	memmove(pkt + PKT_IPV4_HDR + optlen, pkt + PKT_IPV4_HDR, len - PKT_IPV4_HDR);
	memset(pkt + PKT_IPV4_HDR, 1, optlen);
	pkt[0] = (uint8_t)(0x40 | (PKT_IPV4_HDR + optlen) / 4);
	put16(pkt + 2, (unsigned int)(len + optlen));
	return len + optlen;
}

static void test_roundtrip(void)
{
	static const size_t lens[] = {0, 1, 2, 29, 512, 1232, 4095};
	static uint8_t pl[4096];
	static const int fams[] = {AF_INET, AF_INET6};
	int n;

	for (size_t i = 0; i < sizeof(pl); i++)
		pl[i] = (uint8_t)rng();
	for (size_t f = 0; f < 2; f++) {
		int fam = fams[f];
		size_t hlen = hlen_of(fam);

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			n = build(buf, fam, pl, lens[i]);
			CHECK_EQ(n, hlen + 8 + lens[i]);
			if (n < 0)
				continue;
			check_parsed(buf, (size_t)n, fam, pl, lens[i], hlen + 8);
			CHECK_EQ(get16(buf + hlen + 4), 8 + lens[i]);
			CHECK_EQ(get16(buf + hlen + 6),
				 ref_udp_checksum(fam, fam == AF_INET ? a4_src : a6_src,
						  fam == AF_INET ? a4_dst : a6_dst, 53000, 53, pl,
						  lens[i]));
		}
	}

	/* The fixed header fields the contract names. */
	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	CHECK_EQ(buf[0], 0x45);
	CHECK_EQ(get16(buf + 2), n);
	CHECK_EQ(get16(buf + 4), 0); /* id */
	CHECK_EQ(get16(buf + 6), 0); /* flags, fragment offset: DF clear */
	CHECK_EQ(buf[8], 64);	     /* TTL */
	CHECK_EQ(buf[9], IPPROTO_UDP);
	CHECK_EQ(ref_sum(buf, PKT_IPV4_HDR), 0xffff); /* header checksum verifies */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	CHECK_EQ(buf[0], 0x60);
	CHECK_EQ(buf[1] | buf[2] | buf[3], 0);
	CHECK_EQ(get16(buf + 4), n - PKT_IPV6_HDR);
	CHECK_EQ(buf[6], IPPROTO_UDP);
	CHECK_EQ(buf[7], 64); /* hop limit */

	/* Largest payloads: the IPv4 total length, the IPv6 payload length. */
	memset(buf2, 0xa7, 65535);
	n = build(buf, AF_INET, buf2, 65535 - 28);
	CHECK_EQ(n, 65535);
	check_parsed(buf, 65535, AF_INET, buf2, 65535 - 28, 28);
	CHECK_EQ(get16(buf + 26),
		 ref_udp_checksum(AF_INET, a4_src, a4_dst, 53000, 53, buf2, 65535 - 28));
	n = build(buf, AF_INET6, buf2, 65535 - 8);
	CHECK_EQ(n, 65535 + 40);
	check_parsed(buf, 65535 + 40, AF_INET6, buf2, 65535 - 8, 48);
	CHECK_EQ(get16(buf + 46),
		 ref_udp_checksum(AF_INET6, a6_src, a6_dst, 53000, 53, buf2, 65535 - 8));
}

/* Random addresses, ports and payloads against the reference checksum. */
static void test_roundtrip_random(void)
{
	unsigned int bad_fields = 0, bad_csum = 0;

	for (int iter = 0; iter < 2000; iter++) {
		int fam = (rng() & 1) ? AF_INET : AF_INET6;
		size_t alen = alen_of(fam), plen = rng() % 1600;
		uint8_t src[16], dst[16];
		uint16_t sport = (uint16_t)rng(), dport = (uint16_t)rng();
		struct pkt_udp p;
		int n;

		if (iter % 7 == 0) /* large sums: many 0xff octets */
			memset(buf2, 0xff, plen);
		else
			for (size_t i = 0; i < plen; i++)
				buf2[i] = (uint8_t)rng();
		for (size_t i = 0; i < 16; i++) {
			src[i] = (uint8_t)rng();
			dst[i] = (uint8_t)rng();
		}
		n = pkt_udp_build(buf, BUF_MAX, fam, src, sport, dst, dport, buf2, plen);
		if (n != (int)(hlen_of(fam) + 8 + plen) || pkt_udp_parse(&p, buf, (size_t)n) ||
		    p.family != fam || memcmp(p.src, src, alen) || memcmp(p.dst, dst, alen) ||
		    p.sport != sport || p.dport != dport || p.payload_off != hlen_of(fam) + 8 ||
		    p.payload_len != plen || memcmp(buf + p.payload_off, buf2, plen)) {
			bad_fields++;
			continue;
		}
		if (!pkt_udp_checksum_ok(&p, buf) ||
		    get16(buf + p.payload_off - 2) !=
			    ref_udp_checksum(fam, src, dst, sport, dport, buf2, plen))
			bad_csum++;
	}
	CHECK_EQ(bad_fields, 0);
	CHECK_EQ(bad_csum, 0);
}

/* A whole packet against octets computed offline. */
static void test_known_v4(void)
{
	struct pkt_udp p;
	int n;

	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	CHECK_EQ(n, sizeof(v4_known));
	CHECK(memcmp(buf, v4_known, sizeof(v4_known)) == 0);
	CHECK_EQ(get16(buf + 10), 0x8e4a);
	CHECK_EQ(get16(buf + 26), 0x625a);

	CHECK_EQ(pkt_udp_parse(&p, v4_known, sizeof(v4_known)), 0);
	CHECK(pkt_udp_checksum_ok(&p, v4_known));
	CHECK_EQ(p.payload_off, 28);
	CHECK_EQ(p.payload_len, sizeof(dns_query));
	CHECK_EQ(ref_udp_checksum(AF_INET, a4_src, a4_dst, 53000, 53, dns_query, sizeof(dns_query)),
		 0x625a);
}

/* Odd payload length (the last octet is padded with zero), checksum from python3. */
static void test_known_v6(void)
{
	uint8_t pl[sizeof(dns_query) + 1];
	struct pkt_udp p;
	int n;

	memcpy(pl, dns_query, sizeof(dns_query));
	pl[sizeof(dns_query)] = 0x2a;
	n = pkt_udp_build(buf, BUF_MAX, AF_INET6, a6_src, 40000, a6_dst, 53, pl, sizeof(pl));
	CHECK_EQ(n, 40 + 8 + sizeof(pl));
	CHECK_EQ(get16(buf + 46), 0x25b9);
	CHECK_EQ(ref_udp_checksum(AF_INET6, a6_src, a6_dst, 40000, 53, pl, sizeof(pl)), 0x25b9);
	CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
	CHECK(pkt_udp_checksum_ok(&p, buf));
}

/* Any single flipped bit covered by the checksum is caught. */
static void test_bit_flip(void)
{
	static const int fams[] = {AF_INET, AF_INET6};
	struct pkt_udp p;
	unsigned int missed = 0;
	int n;

	for (size_t f = 0; f < 2; f++) {
		size_t hlen = hlen_of(fams[f]);

		n = build(buf, fams[f], dns_query, sizeof(dns_query));
		CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
		CHECK(pkt_udp_checksum_ok(&p, buf));
		/* payload, and the UDP header (ports, checksum; not the length) */
		for (size_t i = hlen; i < (size_t)n; i++) {
			if (i == hlen + 4 || i == hlen + 5)
				continue;
			for (int bit = 0; bit < 8; bit++) {
				buf[i] ^= (uint8_t)(1 << bit);
				if (pkt_udp_checksum_ok(&p, buf))
					missed++;
				buf[i] ^= (uint8_t)(1 << bit);
			}
		}
		CHECK(pkt_udp_checksum_ok(&p, buf));
		/* the addresses, through the pseudo-header */
		for (size_t i = 0; i < alen_of(fams[f]); i++) {
			struct pkt_udp q = p;

			q.src[i] ^= 0x10;
			if (pkt_udp_checksum_ok(&q, buf))
				missed++;
			q = p;
			q.dst[i] ^= 0x01;
			if (pkt_udp_checksum_ok(&q, buf))
				missed++;
		}
	}
	CHECK_EQ(missed, 0);

	/* A flipped payload bit, parsed again. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	buf[n - 1] ^= 0x80;
	CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
	CHECK(!pkt_udp_checksum_ok(&p, buf));
	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	buf[30] ^= 0x02;
	CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
	CHECK(!pkt_udp_checksum_ok(&p, buf));
}

/* Hop-by-hop, destination options, routing (segments left 0), destination options, UDP. */
static void test_v6_ext(void)
{
	/* clang-format off */
	static const uint8_t ext[] = {
		/* hop-by-hop, 8 octets: PadN */
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		/* destination options, 16 octets: PadN */
		IPPROTO_ROUTING, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		/* routing, 24 octets: type 0, segments left 0, one address */
		IPPROTO_DSTOPTS, 2, 0, 0, 0, 0, 0, 0,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99,
		/* destination options, 8 octets: Pad1 x2, PadN */
		IPPROTO_UDP, 0, 0, 0, 1, 2, 0, 0,
	};
	static const uint8_t frag_atomic[] = {IPPROTO_UDP, 0, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef};
	static const uint8_t seven[7 * 8] = {
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0,
	};
	/* clang-format on */
	size_t len;
	int n;

	_Static_assert(sizeof(ext) == 8 + 16 + 24 + 8, "extension header layout");
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_HOPOPTS, ext, sizeof(ext));
	CHECK_EQ(get16(buf + 4), len - 40);
	check_parsed(buf, len, AF_INET6, dns_query, sizeof(dns_query), 40 + sizeof(ext) + 8);

	/* Routing first, then an atomic fragment. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_FRAGMENT, frag_atomic, sizeof(frag_atomic));
	len = v6_insert(buf, len, IPPROTO_ROUTING, ext + 24, 24);
	buf[40] = IPPROTO_FRAGMENT;
	check_parsed(buf, len, AF_INET6, dns_query, sizeof(dns_query), 40 + 24 + 8 + 8);

	/* Seven extension headers: the most the walk allows. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_DSTOPTS, seven, sizeof(seven));
	check_parsed(buf, len, AF_INET6, dns_query, sizeof(dns_query), 40 + sizeof(seven) + 8);
}

static void test_v6_ext_bad(void)
{
	/* clang-format off */
	static const uint8_t dst8[] = {IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0};
	static const uint8_t hbh_late[] = {
		IPPROTO_HOPOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0,
	};
	/* routing type 0, segments left 1, one address */
	static const uint8_t rt_active[24] = {
		IPPROTO_UDP, 2, 0, 1, 0, 0, 0, 0,
		0x20, 0x01, 0x0d, 0xb8, [23] = 0x99,
	};
	static const uint8_t eight[8 * 8] = {
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0,
	};
	/* clang-format on */
	size_t len;
	int n;

	/* An extension header whose length runs past the payload length. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_DSTOPTS, dst8, sizeof(dst8));
	buf[41] = (uint8_t)((len - 40) / 8); /* one octet-group too many */
	CHECK_EQ(parse(buf, len), -EBADMSG);
	buf[41] = 0xff;
	CHECK_EQ(parse(buf, len), -EBADMSG);
	buf[41] = (uint8_t)((len - 40) / 8 - 1); /* exactly to the end: no room for UDP */
	CHECK_EQ(parse(buf, len), -EBADMSG);

	/* Fewer than 8 octets left for an extension header (fixed header + 0..7). */
	for (size_t cut = 0; cut < 8; cut++) {
		n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
		len = v6_insert(buf, (size_t)n, IPPROTO_DSTOPTS, dst8, sizeof(dst8));
		put16(buf + 4, (unsigned int)cut);
		CHECK_EQ(parse(buf, 40 + cut), -EBADMSG);
		buf[6] = IPPROTO_FRAGMENT;
		CHECK_EQ(parse(buf, 40 + cut), -EBADMSG);
	}

	/* Hop-by-hop anywhere but first. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_DSTOPTS, hbh_late, sizeof(hbh_late));
	CHECK_EQ(parse(buf, len), -EBADMSG);

	/* A routing header with segments left: not at its final destination. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_ROUTING, rt_active, sizeof(rt_active));
	CHECK_EQ(parse(buf, len), -EPROTONOSUPPORT);

	/* Eight extension headers: more than the walk allows. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_DSTOPTS, eight, sizeof(eight));
	CHECK_EQ(parse(buf, len), -EPROTONOSUPPORT);

	/* No next header, right away or after an extension header. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	buf[6] = IPPROTO_NONE;
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_DSTOPTS, dst8, sizeof(dst8));
	buf[40] = IPPROTO_NONE;
	CHECK_EQ(parse(buf, len), -EBADMSG);
}

static void test_v6_fragment(void)
{
	uint8_t frag[8] = {IPPROTO_UDP, 0, 0, 0, 0x12, 0x34, 0x56, 0x78};
	size_t len;
	int n;

	/* Atomic (RFC 6946): offset 0, M clear; the reserved bits do not matter. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_FRAGMENT, frag, sizeof(frag));
	check_parsed(buf, len, AF_INET6, dns_query, sizeof(dns_query), 56);
	buf[43] = 0x06;
	check_parsed(buf, len, AF_INET6, dns_query, sizeof(dns_query), 56);

	/* First fragment (M set), a later one (offset 8), the last one (offset, M clear). */
	buf[42] = 0x00;
	buf[43] = 0x01;
	CHECK_EQ(parse(buf, len), -EMSGSIZE);
	buf[43] = 0x08;
	CHECK_EQ(parse(buf, len), -EMSGSIZE);
	buf[42] = 0x80;
	buf[43] = 0x00;
	CHECK_EQ(parse(buf, len), -EMSGSIZE);
	buf[42] = 0xff;
	buf[43] = 0xf9;
	CHECK_EQ(parse(buf, len), -EMSGSIZE);

	/* A fragment of something else is still a fragment. */
	buf[40] = IPPROTO_TCP;
	CHECK_EQ(parse(buf, len), -EMSGSIZE);
	buf[42] = 0;
	buf[43] = 0;
	CHECK_EQ(parse(buf, len), -EPROTONOSUPPORT);
}

static void test_v4_options(void)
{
	size_t len;
	int n;

	for (size_t opt = 4; opt <= 40; opt += 4) {
		n = build(buf, AF_INET, dns_query, sizeof(dns_query));
		len = v4_add_options(buf, (size_t)n, opt);
		check_parsed(buf, len, AF_INET, dns_query, sizeof(dns_query), 20 + opt + 8);
	}

	/* IHL 15 but the options run past the total length. */
	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	buf[0] = 0x4f;
	put16(buf + 2, 59);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	/* IHL 15, total length exactly 60: no room for UDP. */
	put16(buf + 2, 60);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	/* IHL 8, total length 39: 7 octets of UDP. */
	buf[0] = 0x48;
	put16(buf + 2, 39);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
}

static void test_v4_fragment(void)
{
	int n;

	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	buf[6] = 0x40; /* DF: fine */
	check_parsed(buf, (size_t)n, AF_INET, dns_query, sizeof(dns_query), 28);
	buf[6] = 0x20; /* MF */
	CHECK_EQ(parse(buf, (size_t)n), -EMSGSIZE);
	buf[6] = 0x60; /* DF and MF */
	CHECK_EQ(parse(buf, (size_t)n), -EMSGSIZE);
	buf[6] = 0x00; /* offset 8 */
	buf[7] = 0x01;
	CHECK_EQ(parse(buf, (size_t)n), -EMSGSIZE);
	buf[6] = 0x1f; /* largest offset */
	buf[7] = 0xff;
	CHECK_EQ(parse(buf, (size_t)n), -EMSGSIZE);
	buf[6] = 0x00;
	buf[7] = 0x01;
	buf[9] = IPPROTO_TCP; /* a fragment of anything */
	CHECK_EQ(parse(buf, (size_t)n), -EMSGSIZE);
}

static void test_not_udp(void)
{
	static const uint8_t hbh_esp[] = {IPPROTO_ESP, 0, 1, 4, 0, 0, 0, 0};
	static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_ICMP,    IPPROTO_ESP,
					 IPPROTO_AH,  IPPROTO_UDPLITE, IPPROTO_SCTP};
	size_t len;
	int n;

	for (size_t i = 0; i < sizeof(protos); i++) {
		n = build(buf, AF_INET, dns_query, sizeof(dns_query));
		buf[9] = protos[i];
		CHECK_EQ(parse(buf, (size_t)n), -EPROTONOSUPPORT);
		n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
		buf[6] = protos[i];
		CHECK_EQ(parse(buf, (size_t)n), -EPROTONOSUPPORT);
	}
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	buf[6] = IPPROTO_ICMPV6;
	CHECK_EQ(parse(buf, (size_t)n), -EPROTONOSUPPORT);

	/* ESP after hop-by-hop. */
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	len = v6_insert(buf, (size_t)n, IPPROTO_HOPOPTS, hbh_esp, sizeof(hbh_esp));
	CHECK_EQ(parse(buf, len), -EPROTONOSUPPORT);
}

static void test_malformed_v4(void)
{
	struct pkt_udp p, before;
	unsigned int wrong = 0;
	int n;

	n = build(buf, AF_INET, dns_query, sizeof(dns_query));

	/* Every truncation, from the empty buffer on, onto a heap copy of exactly that size. */
	for (size_t cut = 0; cut < (size_t)n; cut++) {
		uint8_t *h = malloc(cut ? cut : 1);

		if (!h)
			abort();
		memcpy(h, buf, cut);
		if (pkt_udp_parse(&p, h, cut) != -EBADMSG)
			wrong++;
		free(h);
	}
	CHECK_EQ(wrong, 0);

	/* *p is left alone on failure. */
	memset(&p, 0xa5, sizeof(p));
	before = p;
	CHECK_EQ(pkt_udp_parse(&p, buf, 19), -EBADMSG);
	CHECK(memcmp(&p, &before, sizeof(p)) == 0);

	/* Versions other than 4 and 6. */
	for (unsigned int v = 0; v < 16; v++) {
		if (v == 4 || v == 6)
			continue;
		buf[0] = (uint8_t)(v << 4 | 5);
		CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	}
	buf[0] = 0x45;

	/* IHL below 5. */
	for (unsigned int ihl = 0; ihl < 5; ihl++) {
		buf[0] = (uint8_t)(0x40 | ihl);
		CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	}
	buf[0] = 0x45;

	/* Total length past the buffer, below the header, below header + UDP header. */
	put16(buf + 2, (unsigned int)n + 1);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 2, 0xffff);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 2, 0);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 2, 19);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 2, 27);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 2, 28); /* empty UDP payload, but the UDP length says more */
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 2, (unsigned int)n);

	/* UDP length below 8 (0 is a jumbogram) or past the IP payload. */
	for (unsigned int ulen = 0; ulen < 8; ulen++) {
		put16(buf + 24, ulen);
		CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	}
	put16(buf + 24, (unsigned int)n - 20 + 1);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 24, 0xffff);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	/* UDP length 8: an empty datagram is fine. */
	put16(buf + 24, 8);
	CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
	CHECK_EQ(p.payload_len, 0);
	CHECK_EQ(p.payload_off, 28);
}

static void test_malformed_v6(void)
{
	struct pkt_udp p;
	unsigned int wrong = 0;
	int n;

	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	for (size_t cut = 0; cut < (size_t)n; cut++) {
		uint8_t *h = malloc(cut ? cut : 1);

		if (!h)
			abort();
		memcpy(h, buf, cut);
		if (pkt_udp_parse(&p, h, cut) != -EBADMSG)
			wrong++;
		free(h);
	}
	CHECK_EQ(wrong, 0);

	/* Version 6 in an IPv4-sized packet. */
	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	buf[0] = 0x65;
	CHECK_EQ(parse(buf, 39), -EBADMSG);

	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	/* Payload length past the buffer, shorter than the UDP header, zero (a jumbogram). */
	put16(buf + 4, (unsigned int)n - 40 + 1);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 4, 7);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 4, 0);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 4, (unsigned int)n - 40);

	/* UDP length below 8 or past the payload length. */
	for (unsigned int ulen = 0; ulen < 8; ulen++) {
		put16(buf + 44, ulen);
		CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	}
	put16(buf + 44, (unsigned int)n - 40 + 1);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
	put16(buf + 4, 20); /* payload length shorter than the UDP length */
	put16(buf + 44, 21);
	CHECK_EQ(parse(buf, (size_t)n), -EBADMSG);
}

/* Octets after the IP length (Ethernet padding) or after the UDP length are not payload. */
static void test_trailing(void)
{
	struct pkt_udp p;
	int n;

	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	memset(buf + n, 0xee, 18);
	check_parsed(buf, (size_t)n + 18, AF_INET, dns_query, sizeof(dns_query), 28);
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	memset(buf + n, 0xee, 18);
	check_parsed(buf, (size_t)n + 18, AF_INET6, dns_query, sizeof(dns_query), 48);

	/* The UDP length rules inside the IP payload. */
	n = build(buf, AF_INET, dns_query, 12);
	memcpy(buf + n, dns_query + 12, sizeof(dns_query) - 12);
	put16(buf + 2, sizeof(v4_known));
	CHECK_EQ(pkt_udp_parse(&p, buf, sizeof(v4_known)), 0);
	CHECK_EQ(p.payload_len, 12);
	CHECK(pkt_udp_checksum_ok(&p, buf));
	n = build(buf, AF_INET6, dns_query, 12);
	put16(buf + 4, 40);
	CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n + 20), 0);
	CHECK_EQ(p.payload_len, 12);
	CHECK(pkt_udp_checksum_ok(&p, buf));
}

static void test_build_error(void)
{
	static uint8_t big[65536];
	uint8_t small[128];
	size_t need4 = 28 + sizeof(dns_query), need6 = 48 + sizeof(dns_query);

	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_UNSPEC, a4_src, 1, a4_dst, 2, dns_query, 4),
		 -EINVAL);
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_UNIX, a4_src, 1, a4_dst, 2, dns_query, 4), -EINVAL);
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_PACKET, a6_src, 1, a6_dst, 2, dns_query, 4),
		 -EINVAL);
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, -1, a6_src, 1, a6_dst, 2, dns_query, 4), -EINVAL);

	/* out: one short, exact, and nothing written when it does not fit. */
	memset(small, 0x5c, sizeof(small));
	CHECK_EQ(pkt_udp_build(small, need4 - 1, AF_INET, a4_src, 1, a4_dst, 2, dns_query,
			       sizeof(dns_query)),
		 -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(small, need6 - 1, AF_INET6, a6_src, 1, a6_dst, 2, dns_query,
			       sizeof(dns_query)),
		 -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(small, 0, AF_INET6, a6_src, 1, a6_dst, 2, dns_query, 0), -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(small, 27, AF_INET, a4_src, 1, a4_dst, 2, dns_query, 0), -EMSGSIZE);
	CHECK(small[0] == 0x5c && small[27] == 0x5c && small[127] == 0x5c);
	CHECK_EQ(pkt_udp_build(small, need4, AF_INET, a4_src, 1, a4_dst, 2, dns_query,
			       sizeof(dns_query)),
		 need4);
	CHECK_EQ(pkt_udp_build(small, need6, AF_INET6, a6_src, 1, a6_dst, 2, dns_query,
			       sizeof(dns_query)),
		 need6);
	CHECK_EQ(pkt_udp_build(small, 28, AF_INET, a4_src, 1, a4_dst, 2, dns_query, 0), 28);
	CHECK_EQ(pkt_udp_build(small, 48, AF_INET6, a6_src, 1, a6_dst, 2, dns_query, 0), 48);

	/* Too large for the IPv4 total length / the UDP length, whatever out's size. */
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_INET, a4_src, 1, a4_dst, 2, big, 65535 - 27),
		 -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_INET, a4_src, 1, a4_dst, 2, big, 65535 - 8),
		 -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_INET6, a6_src, 1, a6_dst, 2, big, 65535 - 7),
		 -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_INET6, a6_src, 1, a6_dst, 2, big, 65536),
		 -EMSGSIZE);
	/* A length that wraps ulen must not slip through (and must not be read). */
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_INET6, a6_src, 1, a6_dst, 2, big, SIZE_MAX - 3),
		 -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(buf, BUF_MAX, AF_INET, a4_src, 1, a4_dst, 2, big, SIZE_MAX),
		 -EMSGSIZE);
	CHECK_EQ(pkt_udp_build(buf, SIZE_MAX, AF_INET, a4_src, 1, a4_dst, 2, big, SIZE_MAX - 20),
		 -EMSGSIZE);
}

/* The payload (and the addresses) may already sit inside out. */
static void test_build_alias(void)
{
	static const int fams[] = {AF_INET, AF_INET6};
	struct pkt_udp p;
	int n;

	for (size_t f = 0; f < 2; f++) {
		int fam = fams[f];
		size_t hlen = hlen_of(fam);
		const uint8_t *src = fam == AF_INET ? a4_src : a6_src;
		const uint8_t *dst = fam == AF_INET ? a4_dst : a6_dst;
		uint16_t want =
			ref_udp_checksum(fam, src, dst, 53000, 53, dns_query, sizeof(dns_query));

		/* In place: the caller wrote the payload at out + header length. */
		memset(buf, 0xcc, hlen + 8);
		memcpy(buf + hlen + 8, dns_query, sizeof(dns_query));
		n = build(buf, fam, buf + hlen + 8, sizeof(dns_query));
		check_parsed(buf, (size_t)n, fam, dns_query, sizeof(dns_query), hlen + 8);
		CHECK_EQ(get16(buf + hlen + 6), want);

		/* At the start of out, under the headers about to be written. */
		memcpy(buf, dns_query, sizeof(dns_query));
		n = build(buf, fam, buf, sizeof(dns_query));
		check_parsed(buf, (size_t)n, fam, dns_query, sizeof(dns_query), hlen + 8);
		CHECK_EQ(get16(buf + hlen + 6), want);

		/* Overlapping the header and the payload area, and further up. */
		memcpy(buf + 13, dns_query, sizeof(dns_query));
		n = build(buf, fam, buf + 13, sizeof(dns_query));
		check_parsed(buf, (size_t)n, fam, dns_query, sizeof(dns_query), hlen + 8);
		memcpy(buf + hlen + 20, dns_query, sizeof(dns_query));
		n = build(buf, fam, buf + hlen + 20, sizeof(dns_query));
		check_parsed(buf, (size_t)n, fam, dns_query, sizeof(dns_query), hlen + 8);

		/* A reply built over its query: addresses and ports swapped, read from out. */
		n = build(buf, fam, dns_query, sizeof(dns_query));
		CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
		n = pkt_udp_build(buf, BUF_MAX, fam, buf + (fam == AF_INET ? 16 : 24), 53,
				  buf + (fam == AF_INET ? 12 : 8), 53000, buf + p.payload_off,
				  p.payload_len);
		CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
		CHECK(memcmp(p.src, dst, alen_of(fam)) == 0);
		CHECK(memcmp(p.dst, src, alen_of(fam)) == 0);
		CHECK_EQ(p.sport, 53);
		CHECK_EQ(p.dport, 53000);
		CHECK(memcmp(buf + p.payload_off, dns_query, sizeof(dns_query)) == 0);
		CHECK(pkt_udp_checksum_ok(&p, buf));
		CHECK_EQ(get16(buf + hlen + 6),
			 ref_udp_checksum(fam, dst, src, 53, 53000, dns_query, sizeof(dns_query)));
	}
}

/*
 * A raw sum of 0xffff complements to 0, which on the wire means "no checksum": it goes out as
 * 0xffff instead. Brute-force the last payload word so that the sum comes out so.
 */
static void test_checksum_zero(void)
{
	static const int fams[] = {AF_INET, AF_INET6};
	uint8_t pl[sizeof(dns_query) + 3]; /* the query, a pad octet, the word at offset 30 */
	size_t w = sizeof(dns_query) + 1;
	struct pkt_udp p;

	memcpy(pl, dns_query, sizeof(dns_query));
	pl[sizeof(dns_query)] = 0;
	for (size_t f = 0; f < 2; f++) {
		int fam = fams[f];
		const uint8_t *src = fam == AF_INET ? a4_src : a6_src;
		const uint8_t *dst = fam == AF_INET ? a4_dst : a6_dst;
		size_t hlen = hlen_of(fam);
		unsigned int found = 0;
		int n;

		for (unsigned int v = 0; v < 0x10000 && !found; v++) {
			put16(pl + w, v);
			if (ref_udp_sum(fam, src, dst, 53000, 53, pl, sizeof(pl)) == 0xffff)
				found = 1;
		}
		CHECK(found);
		n = build(buf, fam, pl, sizeof(pl));
		CHECK_EQ(get16(buf + hlen + 6), 0xffff);
		CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
		CHECK(pkt_udp_checksum_ok(&p, buf));
		/* the one's-complement twin 0x0000 means "none": wrong for IPv6, fine for IPv4 */
		put16(buf + hlen + 6, 0);
		CHECK(pkt_udp_checksum_ok(&p, buf) == (fam == AF_INET));
	}
}

/* Checksum 0: "none" is allowed for IPv4 only. */
static void test_checksum_omitted(void)
{
	struct pkt_udp p;
	int n;

	n = build(buf, AF_INET, dns_query, sizeof(dns_query));
	put16(buf + 26, 0);
	CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
	CHECK(pkt_udp_checksum_ok(&p, buf));
	n = build(buf, AF_INET6, dns_query, sizeof(dns_query));
	put16(buf + 46, 0);
	CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
	CHECK(!pkt_udp_checksum_ok(&p, buf));
}

/*
 * pkt_udp_verify, the size half: what a UDP socket with a 4096-octet buffer takes (tproxy mode),
 * nfqueue mode takes: 4096 octets of payload pass, 4097 and a near-64 KiB datagram do not,
 * whatever the checksum says, over IPv4 and IPv6.
 */
static void test_verify_size(void)
{
	static const int fams[] = {AF_INET, AF_INET6};
	static const size_t sizes[] = {sizeof(dns_query), 4095, 4096, 4097, 65000};
	static uint8_t pl[65000];
	struct pkt_udp p;

	for (size_t i = 0; i < sizeof(pl); i++)
		pl[i] = (uint8_t)rng();
	memcpy(pl, dns_query, sizeof(dns_query));
	for (size_t f = 0; f < 2; f++) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			int n = build(buf, fams[f], pl, sizes[k]);
			int want = sizes[k] > 4096 ? -EMSGSIZE : 0;

			CHECK(n > 0);
			CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
			CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), want);
			CHECK_EQ(pkt_udp_verify(&p, buf, 4096, false), want);
			/* the size is checked first: a bad checksum does not change the answer */
			buf[n - 1] ^= 0x01;
			CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), want ? want : -EBADMSG);
		}
	}
}

/*
 * pkt_udp_verify, the checksum half, with a final checksum: every single-bit error in the
 * datagram, and a wrong address in the pseudo-header, is refused (-EBADMSG); checksum 0 is
 * "none" over IPv4 only; an IPv6 packet with extension headers is checked against the final
 * destination.
 */
static void test_verify_checksum(void)
{
	static const int fams[] = {AF_INET, AF_INET6};
	static const uint8_t dstopt[8] = {IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0};
	struct pkt_udp p;
	size_t n;

	for (size_t f = 0; f < 2; f++) {
		size_t hlen = hlen_of(fams[f]);

		n = (size_t)build(buf, fams[f], dns_query, sizeof(dns_query));
		CHECK_EQ(pkt_udp_parse(&p, buf, n), 0);
		CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), 0);
		for (size_t i = hlen; i < n; i++) {
			if (i == hlen + 4 || i == hlen + 5) /* the length: parse's business */
				continue;
			for (int bit = 0; bit < 8; bit++) {
				buf[i] ^= (uint8_t)(1 << bit);
				CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), -EBADMSG);
				CHECK_EQ(pkt_udp_verify(&p, buf, 4096, false), 0);
				buf[i] ^= (uint8_t)(1 << bit);
			}
		}
		p.dst[alen_of(fams[f]) - 1] ^= 0x01;
		CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), -EBADMSG);
		p.dst[alen_of(fams[f]) - 1] ^= 0x01;
		put16(buf + hlen + 6, 0);
		CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), fams[f] == AF_INET ? 0 : -EBADMSG);
		CHECK_EQ(pkt_udp_verify(&p, buf, 4096, false), 0);
	}
	/* IPv6 with a destination-options header: the UDP checksum does not cover it */
	n = (size_t)build(buf, AF_INET6, dns_query, sizeof(dns_query));
	n = v6_insert(buf, n, IPPROTO_DSTOPTS, dstopt, sizeof(dstopt));
	CHECK_EQ(pkt_udp_parse(&p, buf, n), 0);
	CHECK_EQ(p.payload_off, PKT_IPV6_HDR + sizeof(dstopt) + PKT_UDP_HDR);
	CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), 0);
	buf[n - 1] ^= 0x80;
	CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), -EBADMSG);
}

/*
 * A datagram sent with checksum offload (CHECKSUM_PARTIAL) carries in its checksum field only
 * the folded sum of the pseudo-header, which the NIC (or nobody, on veth and lo) completes:
 * queued so, with NFQA_SKB_CSUMNOTREADY, it must pass unchecked; were it checked, it fails.
 */
static void test_verify_partial(void)
{
	static const int fams[] = {AF_INET, AF_INET6};
	unsigned int ulen = (unsigned int)(sizeof(dns_query) + PKT_UDP_HDR);
	struct pkt_udp p;

	for (size_t f = 0; f < 2; f++) {
		int fam = fams[f];
		size_t hlen = hlen_of(fam), alen = alen_of(fam), k;
		uint8_t pseudo[40];
		int n = build(buf, fam, dns_query, sizeof(dns_query));

		/* RFC 768 / RFC 8200 8.1 pseudo-header */
		memcpy(pseudo, fam == AF_INET ? a4_src : a6_src, alen);
		memcpy(pseudo + alen, fam == AF_INET ? a4_dst : a6_dst, alen);
		k = 2 * alen;
		if (fam == AF_INET) {
			pseudo[k++] = 0;
			pseudo[k++] = IPPROTO_UDP;
			put16(pseudo + k, ulen);
			k += 2;
		} else {
			put16(pseudo + k, 0);
			put16(pseudo + k + 2, ulen);
			pseudo[k + 4] = pseudo[k + 5] = pseudo[k + 6] = 0;
			pseudo[k + 7] = IPPROTO_UDP;
			k += 8;
		}
		put16(buf + hlen + 6, ref_sum(pseudo, k));
		CHECK_EQ(pkt_udp_parse(&p, buf, (size_t)n), 0);
		CHECK_EQ(pkt_udp_verify(&p, buf, 4096, false), 0);
		CHECK_EQ(pkt_udp_verify(&p, buf, 4096, true), -EBADMSG);
	}
}

int main(void)
{
	test_roundtrip();
	test_roundtrip_random();
	test_known_v4();
	test_known_v6();
	test_bit_flip();
	test_v6_ext();
	test_v6_ext_bad();
	test_v6_fragment();
	test_v4_options();
	test_v4_fragment();
	test_not_udp();
	test_malformed_v4();
	test_malformed_v6();
	test_trailing();
	test_build_error();
	test_build_alias();
	test_checksum_zero();
	test_checksum_omitted();
	test_verify_size();
	test_verify_checksum();
	test_verify_partial();
	return check_done("pkt");
}

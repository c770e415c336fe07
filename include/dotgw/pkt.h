/*
 * pkt.h - IPv4/IPv6 + UDP packets as NFQUEUE hands them over and as raw sockets send them.
 * Pure code over (const uint8_t *, size_t): no sockets, no logging, no allocation.
 */
#ifndef DOTGW_PKT_H
#define DOTGW_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_IPV4_HDR 20
#define PKT_IPV6_HDR 40
#define PKT_UDP_HDR  8
#define PKT_MAX_HDR  (PKT_IPV6_HDR + PKT_UDP_HDR)

/* A parsed UDP datagram: addresses in network byte order, ports in host order. */
struct pkt_udp {
	int family;	 /* AF_INET or AF_INET6 */
	uint8_t src[16]; /* 4 or 16 octets used */
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
	size_t payload_off; /* offset of the UDP payload in the parsed buffer */
	size_t payload_len;
};

/*
 * pkt_udp_parse - validate an IP packet carrying UDP and fill *p. IPv4: version, header
 * length, total length, no fragment. IPv6: payload length, then hop-by-hop, routing,
 * destination-options and (unfragmented) fragment extension headers are walked to UDP.
 * The UDP length must fit. Checksums are not verified here (queued packets from veth and local
 * sockets arrive with a partial one): see pkt_udp_checksum_ok. Returns 0; -EBADMSG (malformed),
 * -EPROTONOSUPPORT (not UDP, or an extension header we do not walk, e.g. ESP), -EMSGSIZE (a
 * fragment). *p is written only on success.
 */
int pkt_udp_parse(struct pkt_udp *p, const uint8_t *buf, size_t len);

/*
 * pkt_udp_build - write an IPv4 (TTL 64, DF clear, id 0: the kernel fills id and header
 * checksum on raw sends, we fill the checksum anyway) or IPv6 (hop limit 64) packet with a
 * UDP header and payload into out, with a correct UDP checksum (the kernel does not compute it
 * on raw sends; IPv6 receivers drop checksum 0). payload, src and dst may overlap out (a
 * reply built over its query). Returns the total length, or -EINVAL (bad family) / -EMSGSIZE
 * (larger than 65535 or out).
 */
int pkt_udp_build(uint8_t *out, size_t outlen, int family, const uint8_t *src, uint16_t sport,
		  const uint8_t *dst, uint16_t dport, const uint8_t *payload, size_t plen);

/*
 * pkt_udp_checksum_ok - does the UDP checksum of a packet parsed into p verify? Checksum 0
 * (none) is accepted over IPv4 and refused over IPv6 (RFC 8200 8.1). Only for a packet whose
 * checksum is final (not NFQA_SKB_CSUMNOTREADY).
 */
bool pkt_udp_checksum_ok(const struct pkt_udp *p, const uint8_t *buf);

/*
 * pkt_udp_verify - would a UDP socket with a max_payload-octet buffer take the datagram parsed
 * into p? 0; -EMSGSIZE when the payload is larger than max_payload; -EBADMSG when csum_ready
 * (the checksum is final, not NFQA_SKB_CSUMNOTREADY) and it does not verify. A partial
 * checksum (CHECKSUM_PARTIAL: only the pseudo-header's sum, completed by offload later) is
 * not looked at.
 */
int pkt_udp_verify(const struct pkt_udp *p, const uint8_t *buf, size_t max_payload,
		   bool csum_ready);

#endif

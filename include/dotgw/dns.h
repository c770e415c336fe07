/*
 * dns.h - DNS wire format: parse a message into a view, build error answers, truncate.
 *
 * Pure code: (const uint8_t *, size_t) in, results out. No sockets, no logging, no globals,
 * no allocation. Every function validates lengths itself; malformed input yields -EBADMSG
 * (or -ENOSPC when an output buffer is too small), never a read outside the buffer.
 */
#ifndef DOTGW_DNS_H
#define DOTGW_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HDR_LEN	    12
#define DNS_MAX_NAME	    255	  /* wire-format name, including the root label */
#define DNS_MAX_MSG	    65535 /* largest message (TCP/TLS 2-octet length) */
#define DNS_MIN_UDP	    512	  /* UDP limit without EDNS(0) (RFC 1035) */
#define DNS_DEFAULT_UDP_CAP 1232  /* DNS flag day 2020 */

/* Header flag bits (host order of the 16-bit flags word). */
#define DNS_FLAG_QR	0x8000
#define DNS_OPCODE_MASK 0x7800
#define DNS_FLAG_AA	0x0400
#define DNS_FLAG_TC	0x0200
#define DNS_FLAG_RD	0x0100
#define DNS_FLAG_RA	0x0080
#define DNS_FLAG_AD	0x0020
#define DNS_FLAG_CD	0x0010
#define DNS_RCODE_MASK	0x000f

#define DNS_OPCODE_QUERY 0
#define DNS_OPT_MIN_LEN	 11 /* an OPT RR without options: root, TYPE, CLASS, TTL, RDLENGTH */

/* The OPT RR's TTL field (RFC 6891 6.1.3): extended rcode, version, DO, Z. */
#define DNS_OPT_TTL_EXT_RCODE(ttl) ((ttl) >> 24)
#define DNS_OPT_TTL_VERSION(ttl)   (((ttl) >> 16) & 0xff)
#define DNS_OPT_TTL_DO		   0x8000

#define DNS_RCODE_NOERROR  0
#define DNS_RCODE_FORMERR  1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP   4
#define DNS_RCODE_REFUSED  5
#define DNS_RCODE_BADVERS  16 /* RFC 6891 6.1.3: extended, in the OPT RR */

#define DNS_TYPE_A     1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_DNAME 39
#define DNS_TYPE_SOA   6
#define DNS_TYPE_TXT   16
#define DNS_TYPE_AAAA  28
#define DNS_TYPE_OPT   41
#define DNS_TYPE_NS    2
#define DNS_CLASS_IN   1

/* EDNS(0) option codes */
#define DNS_EDNS_NSID	   3   /* RFC 5001 */
#define DNS_EDNS_ECS	   8   /* RFC 7871 Client Subnet */
#define DNS_EDNS_COOKIE	   10  /* RFC 7873 */
#define DNS_EDNS_KEEPALIVE 11  /* RFC 7828 edns-tcp-keepalive */
#define DNS_EDNS_PADDING   12  /* RFC 7830 */
#define DNS_PAD_BLOCK	   128 /* RFC 8467: queries padded to a multiple of 128 octets */

/* Which kinds of EDNS option an OPT RR holds (struct dns_msg opt_seen). */
#define DNS_OPTS_COOKIE	   0x01
#define DNS_OPTS_ECS	   0x02
#define DNS_OPTS_NSID	   0x04
#define DNS_OPTS_TRANSPORT 0x08 /* padding, edns-tcp-keepalive: hop by hop */
#define DNS_OPTS_OTHER	   0x10 /* any other code */

/* The question of a message, name copied out uncompressed in wire format. */
struct dns_question {
	uint8_t name[DNS_MAX_NAME];
	uint8_t name_len; /* octets in name, root label included (1 for ".") */
	uint16_t qtype;
	uint16_t qclass;
};

/*
 * A validated view of one message. Offsets index the buffer that was parsed; the view holds
 * no pointer into it, so the buffer may move (but not change) between parse and use.
 */
struct dns_msg {
	uint16_t id;
	uint16_t flags;
	uint16_t qdcount, ancount, nscount, arcount;
	struct dns_question q; /* valid when qdcount == 1 */
	size_t question_end;   /* offset just past the question section */
	size_t len;	       /* the message length that was parsed */
	/* EDNS(0): the single OPT RR of the additional section, when present. */
	bool has_opt;
	size_t opt_off;	       /* offset of the OPT RR (its root owner name) */
	size_t opt_len;	       /* length of the whole OPT RR */
	uint16_t opt_udp_size; /* the OPT RR's CLASS: advertised UDP payload size */
	uint32_t opt_ttl;      /* extended rcode, version, DO and Z flags */
	uint8_t opt_seen;      /* DNS_OPTS_* bits of the options it carries */
	bool opt_last;	       /* no RR follows the OPT RR */
};

/*
 * dns_msg_parse - validate a whole message and fill *m.
 * Checks the header, at most one question, every name (compression pointers must point
 * backwards, at most DNS_MAX_NAME octets, no loops), that every RR fits the buffer, that there
 * is at most one OPT RR, in the additional section, with the root as owner, and that no
 * octets trail the last RR. Returns 0, or -EBADMSG; *m is written only on success.
 */
int dns_msg_parse(struct dns_msg *m, const uint8_t *buf, size_t len);

/*
 * dns_query_check - is a parsed message a query dotgw forwards? QR clear. Every opcode and
 * a question count of 0 or 1 go to the upstream, which answers them as it would the client
 * (REFUSED, NOTIMP, FORMERR, or a cookie-only answer), so that dotgw adds no answer of its own.
 * Returns 0 or -EBADMSG (an answer, not a query).
 */
int dns_query_check(const struct dns_msg *m);

/*
 * dns_query_is_stub - a stub resolver's question: opcode QUERY, one question of class IN (not
 * ANY) and not a zone transfer, recursion desired. Anything else (RD=0 from a resolver or
 * monitor, CH-class server queries, AXFR/IXFR, NOTIFY/UPDATE, no question) is meant for the
 * server it was sent to.
 */
bool dns_query_is_stub(const struct dns_msg *m);

/* dns_question_equal - same type, class and name (names compared case-insensitively). */
bool dns_question_equal(const struct dns_question *a, const struct dns_question *b);

/*
 * dns_name_to_text - presentation form of an uncompressed wire-format name, for logs:
 * "www.example.com." ("." for the root); octets outside [-_a-zA-Z0-9] are written \DDD.
 * Returns the text length, or -ENOSPC (out too small) / -EBADMSG (malformed name).
 */
int dns_name_to_text(const uint8_t *name, size_t name_len, char *out, size_t outlen);

/*
 * dns_udp_limit - the largest UDP answer the sender of query q accepts: 512 without EDNS(0),
 * else its advertised size, at least 512 and at most cap.
 */
size_t dns_udp_limit(const struct dns_msg *q, size_t cap);

/*
 * dns_truncate - cut the parsed answer r in buf down to header, question and OPT RR (if r
 * has one), set TC, fix the counts. Done in place; returns the new length (always <= r->len),
 * or -ENOSPC if even that exceeds limit.
 */
int dns_truncate(uint8_t *buf, const struct dns_msg *r, size_t limit);

/*
 * dns_build_error - write into out an answer with rcode to query. q is the parsed query, or
 * NULL when only the 12-octet header of query could be read (then the answer is a bare
 * header). The answer keeps the query's id, opcode, RD and CD bits and its question, sets QR
 * and RA, and carries an OPT RR (payload size DNS_DEFAULT_UDP_CAP, version 0) when the query
 * had one. An rcode above 15 (extended, e.g. BADVERS) goes into that OPT RR, so it needs one.
 * A query of an EDNS version other than 0 gets BADVERS whatever rcode says (RFC 6891 6.1.3:
 * a responder must, for a version it does not implement). out may be the query buffer itself.
 * Returns the length written, or -ENOSPC / -EBADMSG (query shorter than a header) / -EINVAL (rcode
 * negative, above 4095, or above 15 without OPT).
 */
int dns_build_error(uint8_t *out, size_t outlen, const uint8_t *query, size_t qlen,
		    const struct dns_msg *q, int rcode);

/*
 * dns_build_address - an authoritative answer to query q (parsed into m) with one A (family
 * AF_INET, 4 octets) or AAAA (AF_INET6) record for the question's name, TTL ttl; when the
 * question asks for another type, an answer with no records (NODATA); BADVERS (as
 * dns_build_error) for an EDNS version other than 0. Returns the length or
 * -ENOSPC / -EINVAL.
 */
int dns_build_address(uint8_t *out, size_t outlen, const uint8_t *q, const struct dns_msg *m,
		      int family, const uint8_t *addr, uint32_t ttl);

/*
 * dns_query_rewrite - the query q (parsed into m) as it goes to a DoT upstream, written to out:
 * its OPT RR (added when the query had none, with payload size DNS_DEFAULT_UDP_CAP) loses any
 * padding and keepalive options the client put there, gains an empty edns-tcp-keepalive option
 * when keepalive is set, and then a padding option so that the whole message is a multiple of
 * pad_block octets (no padding when pad_block is 0). Nothing else changes: no Client Subnet is
 * ever added. A query with records after its OPT RR is copied unchanged (their names may be
 * compressed into the OPT RR's octets). Returns the length written, or -ENOSPC.
 */
int dns_query_rewrite(uint8_t *out, size_t outlen, const uint8_t *q, const struct dns_msg *m,
		      bool keepalive, size_t pad_block);

/*
 * dns_answer_restore - undo dns_query_rewrite on the parsed answer r in buf, in place: when the
 * client's query had no OPT RR the answer's is removed (kept, without options, when it holds a
 * nonzero extended rcode, which cannot be said without it: BADVERS would read NOERROR);
 * otherwise the padding and keepalive options are taken out of it. A keepalive option's timeout
 * (units of 100 ms) is stored in *keepalive when keepalive is not NULL (left alone when there is
 * none). Returns the new length (<= r->len).
 */
size_t dns_answer_restore(uint8_t *buf, const struct dns_msg *r, bool client_opt,
			  uint16_t *keepalive);

/*
 * dns_answer_restore_view - the same, and *r is updated to describe the restored message, as
 * dns_msg_parse would (so the caller need not parse it again).
 */
size_t dns_answer_restore_view(uint8_t *buf, struct dns_msg *r, bool client_opt,
			       uint16_t *keepalive);

/*
 * dns_opt_clear - take every option out of the parsed message r's OPT RR, in place, when that
 * RR is the last of the message (else nothing changes); r is updated. Returns the new length.
 */
size_t dns_opt_clear(uint8_t *buf, struct dns_msg *r);

/*
 * dns_frame_next - the next DNS message of a TCP or DoT stream (RFC 1035 4.2.2: a 2-octet
 * length, then the message) in buf[*off .. len). Returns 1 and sets *msg, *mlen and advances
 * *off past it; 0 when the frame is not complete yet (*off unchanged); -EBADMSG when the
 * length is below a DNS header (the stream cannot be trusted any more).
 */
int dns_frame_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **msg, size_t *mlen);

/* What a cache needs to know of an answer's TTLs. */
struct dns_ttl_info {
	uint32_t min_ttl; /* the smallest TTL of all RRs but OPT (valid when nrr > 0) */
	uint32_t neg_ttl; /* RFC 2308: min(SOA TTL, SOA MINIMUM) of the authority SOA... */
	bool have_soa;	  /* ...when there is one */
	size_t nrr;	  /* RRs but OPT, i.e. TTL offsets found */
};

/*
 * dns_ttl_scan - walk the parsed message m in buf and store the offset of each RR's TTL
 * (the OPT RR's excepted) in offs, at most max of them. Returns 0, or -E2BIG when there are
 * more than max RRs (info is then incomplete).
 */
int dns_ttl_scan(const uint8_t *buf, const struct dns_msg *m, uint16_t *offs, size_t max,
		 struct dns_ttl_info *info);

/*
 * dns_answer_names - call fn for each name of the answer section of m (parsed from buf): the
 * owner of every RR, and the target of every CNAME and DNAME (type says which record, target
 * whether the name is its target). Names are uncompressed wire format, as in the question.
 * Stops at the first call that returns non-zero and returns that value; 0 when every name was
 * visited, -EBADMSG when an RR cannot be read.
 */
int dns_answer_names(const uint8_t *buf, const struct dns_msg *m,
		     int (*fn)(void *data, uint16_t type, bool target, const uint8_t *name,
			       size_t name_len),
		     void *data);

#define DNS_CHAIN_MAX 16 /* names of a CNAME chain dns_answer_addrs follows */

/*
 * dns_answer_addrs - call fn for each A and AAAA record (class IN) of the answer section of m,
 * parsed from buf, that answers m's question: its owner is the question's name or a name that
 * a chain of CNAMEs from it leads to, the records in any order, at most DNS_CHAIN_MAX names.
 * Records of other owners are skipped. Returns 0, the first non-zero return of fn, or -EBADMSG
 * when an RR cannot be read.
 */
int dns_answer_addrs(const uint8_t *buf, const struct dns_msg *m,
		     int (*fn)(void *data, int family, const uint8_t *addr, uint32_t ttl),
		     void *data);

static inline uint16_t dns_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void dns_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint32_t dns_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void dns_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif

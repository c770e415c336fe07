/*
 * test_cache.c - unit tests for the answer cache (src/cache.c).
 *
 * Queries and answers are built octet by octet with the writer below, as in test_dns.c, then
 * parsed with dns_msg_parse exactly as the frontend does. Time is passed in as now_ms, so TTL
 * countdown, expiry and serve-stale need no sleeping. Run under ASan: it catches a leak in
 * cache_free and any write past the exact-size output buffer of test_nospace.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dotgw/cache.h"
#include "dotgw/dns.h"

#define TYPE_CNAME  5
#define CLASS_CH    3
#define OPT_DO	    0x8000
#define QUERY_ID    0xbeef
#define UPSTREAM_ID 0x1111
#define SEC	    1000ull    /* now_ms per second */
#define BIG	    (1u << 20) /* a cache nothing is evicted from */
#define MAX_TTL	    86400
#define REPLY_RRS   16

/* A message under construction. */
struct wire {
	uint8_t b[16384];
	size_t n;
};

/* A query: its question, header flags (RD, CD) and EDNS wishes. */
struct qdesc {
	const char *name;
	unsigned int qtype, qclass, flags;
	bool opt;
	uint32_t opt_ttl; /* the OPT RR's TTL: DO is OPT_DO */
};

/* An answer to a qdesc: its rcode and extra flags, then what its sections hold. */
struct adesc {
	unsigned int flags;   /* rcode, TC (QR, RA and the query's RD and CD are added) */
	uint32_t cname_ttl;   /* nonzero: a CNAME owned by the qname opens the answer section */
	const uint32_t *ttls; /* the TTLs of the answer section's RRs of the query's type */
	size_t nttls;
	bool soa; /* an SOA in the authority section */
	uint32_t soa_ttl, soa_min;
};

/* What cache_lookup wrote, parsed, and the TTLs of its RRs (OPT's excepted) in order. */
struct reply {
	uint8_t b[16384];
	int n;
	struct dns_msg m;
	uint32_t ttl[REPLY_RRS];
	size_t nttl;
};

static void w_u8(struct wire *w, unsigned int v);
static void w_u16(struct wire *w, unsigned int v);
static void w_u32(struct wire *w, uint32_t v);
static void w_name(struct wire *w, const char *dotted);
static void w_ptr(struct wire *w, size_t off);
static void w_hdr(struct wire *w, unsigned int id, unsigned int flags, unsigned int qd,
		  unsigned int an, unsigned int ns, unsigned int ar);
static void w_rr(struct wire *w, unsigned int type, unsigned int qclass, uint32_t ttl,
		 unsigned int rdlen);
static void w_opt(struct wire *w, unsigned int udp, uint32_t ttl);
static uint32_t get32(const uint8_t *p);
static struct qdesc qd(const char *name);
static void build_query(struct wire *w, const struct qdesc *d);
static void build_answer(struct wire *w, const struct qdesc *d, const struct adesc *a);
static int store_as(struct cache *c, const struct qdesc *asked, const struct qdesc *answered,
		    const struct adesc *a, uint64_t now_ms);
static int store(struct cache *c, const struct qdesc *d, const struct adesc *a, uint64_t now_ms);
static int store_ttl(struct cache *c, const char *name, uint32_t ttl, uint64_t now_ms);
static int lookup(struct cache *c, const struct qdesc *d, uint64_t now_ms, bool stale,
		  struct reply *rp);
static bool hit(struct cache *c, const struct qdesc *d, uint64_t now_ms, bool stale);
static struct cache_stats stats(const struct cache *c);

static void test_ttl_countdown(void);
static void test_case(void);
static void test_negative(void);
static void test_negative_lifetime(void);
static void test_not_stored(void);
static void test_max_ttl(void);
static void test_keys(void);
static void test_rd(void);
static void test_client_options(void);
static void test_eviction(void);
static void test_charge(void);
static void test_small(void);
static void test_replace(void);
static void test_stale_off(void);
static void test_stale(void);
static void test_nospace(void);
static void test_free(void);
static void test_refresh_mark(void);
static void test_refresh_end_stale(void);

static void w_u8(struct wire *w, unsigned int v)
{
	if (w->n < sizeof(w->b))
		w->b[w->n++] = (uint8_t)v;
}

static void w_u16(struct wire *w, unsigned int v)
{
	w_u8(w, v >> 8);
	w_u8(w, v & 0xff);
}

static void w_u32(struct wire *w, uint32_t v)
{
	w_u16(w, v >> 16);
	w_u16(w, v & 0xffff);
}

/* A whole uncompressed name: its labels, then the root. */
static void w_name(struct wire *w, const char *dotted)
{
	while (*dotted) {
		size_t len = strcspn(dotted, ".");

		w_u8(w, (unsigned int)len);
		for (size_t i = 0; i < len; i++)
			w_u8(w, (uint8_t)dotted[i]);
		dotted += len;
		if (*dotted == '.')
			dotted++;
	}
	w_u8(w, 0);
}

static void w_ptr(struct wire *w, size_t off)
{
	w_u16(w, 0xc000 | (unsigned int)off);
}

static void w_hdr(struct wire *w, unsigned int id, unsigned int flags, unsigned int qd,
		  unsigned int an, unsigned int ns, unsigned int ar)
{
	w_u16(w, id);
	w_u16(w, flags);
	w_u16(w, qd);
	w_u16(w, an);
	w_u16(w, ns);
	w_u16(w, ar);
}

/* The fixed part of an RR after its owner name. */
static void w_rr(struct wire *w, unsigned int type, unsigned int qclass, uint32_t ttl,
		 unsigned int rdlen)
{
	w_u16(w, type);
	w_u16(w, qclass);
	w_u32(w, ttl);
	w_u16(w, rdlen);
}

/* A whole OPT RR without options. */
static void w_opt(struct wire *w, unsigned int udp, uint32_t ttl)
{
	w_u8(w, 0);
	w_u16(w, DNS_TYPE_OPT);
	w_u16(w, udp);
	w_u32(w, ttl);
	w_u16(w, 0);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* name/A/IN, RD set, no OPT: what a plain stub sends. */
static struct qdesc qd(const char *name)
{
	struct qdesc d = {
		.name = name,
		.qtype = DNS_TYPE_A,
		.qclass = DNS_CLASS_IN,
		.flags = DNS_FLAG_RD,
	};

	return d;
}

static void build_query(struct wire *w, const struct qdesc *d)
{
	w->n = 0;
	w_hdr(w, QUERY_ID, d->flags, 1, 0, 0, d->opt ? 1 : 0);
	w_name(w, d->name);
	w_u16(w, d->qtype);
	w_u16(w, d->qclass);
	if (d->opt)
		w_opt(w, 4096, d->opt_ttl);
}

/*
 * The answer to d as an upstream gives it (id UPSTREAM_ID), the question spelt as in d.
 * Every owner name is a pointer to the question name (offset 12); a CNAME's target is
 * "x." + the question name; the SOA has the root as MNAME and RNAME.
 */
static void build_answer(struct wire *w, const struct qdesc *d, const struct adesc *a)
{
	unsigned int flags = DNS_FLAG_QR | DNS_FLAG_RA | (d->flags & (DNS_FLAG_RD | DNS_FLAG_CD));
	unsigned int an = (a->cname_ttl ? 1 : 0) + (unsigned int)a->nttls;

	w->n = 0;
	w_hdr(w, UPSTREAM_ID, flags | a->flags, 1, an, a->soa ? 1 : 0, d->opt ? 1 : 0);
	w_name(w, d->name);
	w_u16(w, d->qtype);
	w_u16(w, d->qclass);
	if (a->cname_ttl) {
		w_ptr(w, DNS_HDR_LEN);
		w_rr(w, TYPE_CNAME, d->qclass, a->cname_ttl, 4);
		w_u8(w, 1);
		w_u8(w, 'x');
		w_ptr(w, DNS_HDR_LEN);
	}
	for (size_t i = 0; i < a->nttls; i++) {
		w_ptr(w, DNS_HDR_LEN);
		if (d->qtype == DNS_TYPE_AAAA) {
			w_rr(w, d->qtype, d->qclass, a->ttls[i], 16);
			w_u32(w, 0x20010db8); /* 2001:db8::i+1 */
			w_u32(w, 0);
			w_u32(w, 0);
		} else {
			w_rr(w, d->qtype, d->qclass, a->ttls[i], 4);
		}
		w_u32(w, d->qtype == DNS_TYPE_AAAA ? (uint32_t)i + 1 : 0xc0000201 + (uint32_t)i);
	}
	if (a->soa) {
		w_ptr(w, DNS_HDR_LEN);
		w_rr(w, DNS_TYPE_SOA, d->qclass, a->soa_ttl, 2 + 20);
		w_u8(w, 0);
		w_u8(w, 0);
		w_u32(w, 2026010101); /* serial */
		w_u32(w, 7200);	      /* refresh */
		w_u32(w, 900);	      /* retry */
		w_u32(w, 1209600);    /* expire */
		w_u32(w, a->soa_min);
	}
	if (d->opt)
		w_opt(w, 1232, d->opt_ttl & OPT_DO);
}

/* cache_store of the answer a to the question answered, for the query asked. */
static int store_as(struct cache *c, const struct qdesc *asked, const struct qdesc *answered,
		    const struct adesc *a, uint64_t now_ms)
{
	static struct wire qw, aw;
	struct dns_msg q, r;

	build_query(&qw, asked);
	build_answer(&aw, answered, a);
	if (dns_msg_parse(&q, qw.b, qw.n) < 0 || dns_msg_parse(&r, aw.b, aw.n) < 0)
		return -EBADMSG;
	return cache_store(c, &q, aw.b, &r, now_ms);
}

static int store(struct cache *c, const struct qdesc *d, const struct adesc *a, uint64_t now_ms)
{
	return store_as(c, d, d, a, now_ms);
}

/* A plain name/A answer with one A RR of TTL ttl. */
static int store_ttl(struct cache *c, const char *name, uint32_t ttl, uint64_t now_ms)
{
	struct qdesc d = qd(name);
	struct adesc a = {.ttls = &ttl, .nttls = 1};

	return store(c, &d, &a, now_ms);
}

/*
 * cache_lookup for d into rp; on success the reply is parsed into rp->m and its TTLs read.
 * Returns what cache_lookup returned, or -EBADMSG when the reply does not parse.
 */
static int lookup(struct cache *c, const struct qdesc *d, uint64_t now_ms, bool stale,
		  struct reply *rp)
{
	struct wire w;
	struct dns_msg q;
	struct dns_ttl_info ti;
	uint16_t offs[REPLY_RRS];

	rp->nttl = 0;
	build_query(&w, d);
	if (dns_msg_parse(&q, w.b, w.n) < 0)
		return -EBADMSG;
	rp->n = cache_lookup(c, &q, rp->b, sizeof(rp->b), now_ms, stale);
	if (rp->n < 0)
		return rp->n;
	if (dns_msg_parse(&rp->m, rp->b, (size_t)rp->n) < 0 ||
	    dns_ttl_scan(rp->b, &rp->m, offs, REPLY_RRS, &ti) < 0)
		return -EBADMSG;
	for (size_t i = 0; i < ti.nrr; i++)
		rp->ttl[i] = get32(rp->b + offs[i]);
	rp->nttl = ti.nrr;
	return rp->n;
}

static bool hit(struct cache *c, const struct qdesc *d, uint64_t now_ms, bool stale)
{
	static struct reply rp;

	return lookup(c, d, now_ms, stale, &rp) > 0;
}

static struct cache_stats stats(const struct cache *c)
{
	struct cache_stats st;

	cache_get_stats(c, &st);
	return st;
}

/* Two A RRs, TTL 300 and 100: served counted down, with the asker's id; gone after 100 s. */
static void test_ttl_countdown(void)
{
	static const uint32_t ttls[] = {300, 100};
	static struct reply rp;
	struct adesc a = {.ttls = ttls, .nttls = 2};
	struct qdesc d = qd("www.example.com");
	struct cache *c;
	struct cache_stats st;
	size_t empty;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 1), 0);
	empty = stats(c).bytes; /* the bucket array */
	CHECK_EQ(store(c, &d, &a, 0), 0);
	st = stats(c);
	CHECK_EQ(st.stored, 1);
	CHECK_EQ(st.entries, 1);
	CHECK(st.bytes > empty);

	CHECK(lookup(c, &d, 0, false, &rp) > 0);
	CHECK_EQ(rp.m.id, QUERY_ID);
	CHECK_EQ(rp.m.flags & DNS_RCODE_MASK, DNS_RCODE_NOERROR);
	CHECK(rp.m.flags & DNS_FLAG_QR);
	CHECK_EQ(rp.m.ancount, 2);
	CHECK_EQ(rp.m.q.qtype, DNS_TYPE_A);
	CHECK_EQ(rp.nttl, 2);
	CHECK_EQ(rp.ttl[0], 300);
	CHECK_EQ(rp.ttl[1], 100);
	/* the rdata came through unchanged: 192.0.2.1, 192.0.2.2 */
	CHECK_EQ(get32(rp.b + rp.n - 4), 0xc0000202);

	CHECK(lookup(c, &d, 50 * SEC, false, &rp) > 0);
	CHECK_EQ(rp.nttl, 2);
	CHECK_EQ(rp.ttl[0], 250);
	CHECK_EQ(rp.ttl[1], 50);
	/* whole seconds elapsed count, as in any resolver */
	CHECK(lookup(c, &d, 50 * SEC + 999, false, &rp) > 0);
	CHECK_EQ(rp.ttl[1], 50);
	CHECK(lookup(c, &d, 100 * SEC - 1, false, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 201);
	CHECK_EQ(rp.ttl[1], 1);

	/* the entry lives the smallest TTL */
	CHECK_EQ(lookup(c, &d, 100 * SEC, false, &rp), -ENOENT);
	st = stats(c);
	CHECK_EQ(st.hits, 4);
	CHECK_EQ(st.misses, 1);
	CHECK_EQ(st.expired, 1);
	CHECK_EQ(st.entries, 0);
	CHECK_EQ(st.bytes, empty);
	cache_free(c);
}

/* Names are keyed case-folded, and the reply spells the question as the asker did (0x20). */
static void test_case(void)
{
	static const uint8_t asked[] = "\3WwW\7eXAMPLE\3CoM";
	static const uint32_t ttl = 300;
	static struct reply rp;
	struct adesc a = {.ttls = &ttl, .nttls = 1};
	struct qdesc d = qd("www.Example.com"), other = qd("WwW.eXAMPLE.CoM");
	struct cache *c;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 2), 0);
	CHECK_EQ(store(c, &d, &a, 0), 0);
	CHECK(lookup(c, &other, SEC, false, &rp) > 0);
	CHECK_EQ(rp.m.q.name_len, sizeof(asked));
	CHECK(!memcmp(rp.b + DNS_HDR_LEN, asked, sizeof(asked)));
	CHECK_EQ(rp.ttl[0], 299);

	/* not a prefix, suffix or differently spelt name */
	other = qd("www.example.co");
	CHECK(!hit(c, &other, SEC, false));
	other = qd("ww.example.com");
	CHECK(!hit(c, &other, SEC, false));
	other = qd("www.exbmple.com");
	CHECK(!hit(c, &other, SEC, false));
	CHECK_EQ(stats(c).entries, 1);
	cache_free(c);
}

/* RFC 2308: NXDOMAIN and NODATA live min(SOA TTL, SOA MINIMUM). */
static void test_negative(void)
{
	static struct reply rp;
	struct adesc nx = {
		.flags = DNS_RCODE_NXDOMAIN, .soa = true, .soa_ttl = 3600, .soa_min = 60};
	struct adesc nodata = {.soa = true, .soa_ttl = 3600, .soa_min = 60};
	struct adesc small_ttl = {
		.flags = DNS_RCODE_NXDOMAIN, .soa = true, .soa_ttl = 20, .soa_min = 60};
	struct qdesc d = qd("nx.example.com"), nd = qd("www.example.com"), st = qd("s.example.com");
	struct cache *c;

	nd.qtype = DNS_TYPE_AAAA;
	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 3), 0);
	CHECK_EQ(store(c, &d, &nx, 0), 0);
	CHECK_EQ(store(c, &nd, &nodata, 0), 0);
	CHECK_EQ(store(c, &st, &small_ttl, 0), 0);
	CHECK_EQ(stats(c).entries, 3);

	CHECK(lookup(c, &d, 0, false, &rp) > 0);
	CHECK_EQ(rp.m.flags & DNS_RCODE_MASK, DNS_RCODE_NXDOMAIN);
	CHECK_EQ(rp.m.ancount, 0);
	CHECK_EQ(rp.m.nscount, 1);
	CHECK_EQ(rp.m.id, QUERY_ID);
	CHECK(lookup(c, &nd, 0, false, &rp) > 0);
	CHECK_EQ(rp.m.flags & DNS_RCODE_MASK, DNS_RCODE_NOERROR);
	CHECK_EQ(rp.m.ancount, 0);
	CHECK_EQ(rp.m.nscount, 1);

	CHECK(hit(c, &d, 60 * SEC - 1, false));
	CHECK(hit(c, &nd, 60 * SEC - 1, false));
	CHECK(hit(c, &st, 20 * SEC - 1, false));
	CHECK(!hit(c, &st, 20 * SEC, false));
	CHECK(!hit(c, &d, 60 * SEC, false));
	CHECK(!hit(c, &nd, 60 * SEC, false));
	CHECK_EQ(stats(c).expired, 3);
	CHECK_EQ(stats(c).entries, 0);
	cache_free(c);
}

/*
 * The TTL of a negative answer is carried by its SOA and must reach 0 when the negative
 * answer expires (RFC 2308 5): else a downstream cache, taking min(SOA TTL, MINIMUM), keeps it
 * for a full MINIMUM past our expiry. And no RR is served after its TTL ran out: a CNAME in
 * an NXDOMAIN answer bounds its life, and a CNAME ending in NODATA (NOERROR, an answer
 * section, an SOA) is negative too (RFC 2308 2.1, 2.2).
 */
static void test_negative_lifetime(void)
{
	static const uint32_t ttl_a = 300;
	static struct reply rp;
	struct adesc nx = {
		.flags = DNS_RCODE_NXDOMAIN, .soa = true, .soa_ttl = 3600, .soa_min = 60};
	struct adesc nx_cname = {.flags = DNS_RCODE_NXDOMAIN,
				 .cname_ttl = 10,
				 .soa = true,
				 .soa_ttl = 3600,
				 .soa_min = 60};
	struct adesc nodata_cname = {.cname_ttl = 300, .soa = true, .soa_ttl = 3600, .soa_min = 60};
	struct adesc cname_a = {.cname_ttl = 300, .ttls = &ttl_a, .nttls = 1};
	struct qdesc d = qd("nx.example.com"), dc = qd("c.example.com"), dn = qd("n.example.com");
	struct qdesc da = qd("a.example.com");
	struct cache *c;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 4), 0);
	CHECK_EQ(store(c, &d, &nx, 0), 0);
	CHECK(lookup(c, &d, 0, false, &rp) > 0);
	CHECK_EQ(rp.nttl, 1);
	CHECK_EQ(rp.ttl[0], 60);
	CHECK(lookup(c, &d, 30 * SEC, false, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 30);
	CHECK(lookup(c, &d, 59 * SEC, false, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 1);
	/* the SOA itself, apart from its TTL, is as the upstream sent it */
	CHECK_EQ(get32(rp.b + rp.n - 4), 60);

	CHECK_EQ(store(c, &dc, &nx_cname, 0), 0);
	CHECK(lookup(c, &dc, 5 * SEC, false, &rp) > 0);
	CHECK_EQ(rp.nttl, 2);
	CHECK_EQ(rp.ttl[0], 5);
	CHECK(rp.ttl[1] <= 5);
	CHECK(!hit(c, &dc, 10 * SEC, false));

	CHECK_EQ(store(c, &dn, &nodata_cname, 0), 0);
	CHECK(hit(c, &dn, 60 * SEC - 1, false));
	CHECK(!hit(c, &dn, 60 * SEC, false));

	/* a positive answer through a CNAME: the smallest TTL, no SOA involved */
	CHECK_EQ(store(c, &da, &cname_a, 0), 0);
	CHECK(lookup(c, &da, 100 * SEC, false, &rp) > 0);
	CHECK_EQ(rp.nttl, 2);
	CHECK_EQ(rp.ttl[0], 200);
	CHECK_EQ(rp.ttl[1], 200);
	CHECK(!hit(c, &da, 300 * SEC, false));
	cache_free(c);
}

/* What cache_store refuses (returns 1), leaving the cache as it was. */
static void test_not_stored(void)
{
	static const uint32_t ttl = 300, zero_ttls[] = {300, 0}, huge_ttl = 0x80000000;
	static uint32_t many[513];
	struct adesc nx_nosoa = {.flags = DNS_RCODE_NXDOMAIN};
	struct adesc nodata_nosoa = {0};
	struct adesc servfail = {
		.flags = DNS_RCODE_SERVFAIL, .soa = true, .soa_ttl = 60, .soa_min = 60};
	struct adesc refused = {.flags = DNS_RCODE_REFUSED};
	struct adesc formerr = {.flags = DNS_RCODE_FORMERR};
	struct adesc tc = {.flags = DNS_FLAG_TC, .ttls = &ttl, .nttls = 1};
	struct adesc tc_nx = {.flags = DNS_FLAG_TC | DNS_RCODE_NXDOMAIN,
			      .soa = true,
			      .soa_ttl = 60,
			      .soa_min = 60};
	struct adesc zero = {.ttls = zero_ttls, .nttls = 2};
	struct adesc huge = {.ttls = &huge_ttl, .nttls = 1}; /* RFC 2181 8: means 0 */
	struct adesc soa_zero = {
		.flags = DNS_RCODE_NXDOMAIN, .soa = true, .soa_ttl = 3600, .soa_min = 0};
	struct adesc too_many = {.ttls = many, .nttls = 513};
	struct adesc good = {.ttls = &ttl, .nttls = 1};
	struct qdesc d = qd("www.example.com"), longer = qd("www.example.com.evil");
	struct qdesc type = qd("www.example.com");
	struct wire qw, aw;
	struct dns_msg q, r;
	struct cache *c;

	for (size_t i = 0; i < 513; i++)
		many[i] = 300;
	type.qtype = DNS_TYPE_AAAA;
	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 5), 0);
	CHECK_EQ(store(c, &d, &nx_nosoa, 0), 1);
	CHECK_EQ(store(c, &d, &nodata_nosoa, 0), 1);
	CHECK_EQ(store(c, &d, &servfail, 0), 1);
	CHECK_EQ(store(c, &d, &refused, 0), 1);
	CHECK_EQ(store(c, &d, &formerr, 0), 1);
	CHECK_EQ(store(c, &d, &tc, 0), 1);
	CHECK_EQ(store(c, &d, &tc_nx, 0), 1);
	CHECK_EQ(store(c, &d, &zero, 0), 1);
	CHECK_EQ(store(c, &d, &huge, 0), 1);
	CHECK_EQ(store(c, &d, &soa_zero, 0), 1);
	CHECK_EQ(store(c, &d, &too_many, 0), 1);
	/* an answer to another question: the reply would carry the asker's name over it */
	CHECK_EQ(store_as(c, &d, &longer, &good, 0), 1);
	CHECK_EQ(store_as(c, &longer, &d, &good, 0), 1);
	CHECK_EQ(store_as(c, &d, &type, &good, 0), 1);

	/* an error answer without a question */
	build_query(&qw, &d);
	aw.n = 0;
	w_hdr(&aw, UPSTREAM_ID, DNS_FLAG_QR | DNS_FLAG_RA | DNS_RCODE_NXDOMAIN, 0, 0, 0, 0);
	CHECK_EQ(dns_msg_parse(&q, qw.b, qw.n), 0);
	CHECK_EQ(dns_msg_parse(&r, aw.b, aw.n), 0);
	CHECK_EQ(cache_store(c, &q, aw.b, &r, 0), 1);

	CHECK_EQ(stats(c).stored, 0);
	CHECK_EQ(stats(c).entries, 0);
	CHECK_EQ(stats(c).bytes, BIG / 16); /* the bucket array alone */
	CHECK(!hit(c, &d, 0, false));
	CHECK(!hit(c, &longer, 0, false));

	/* the same answer, cacheable, is stored */
	CHECK_EQ(store(c, &d, &good, 0), 0);
	CHECK(hit(c, &d, 0, false));
	cache_free(c);
}

/* max_ttl caps both how long an entry lives and the TTLs it is served with. */
static void test_max_ttl(void)
{
	static const uint32_t ttls[] = {86400, 1000};
	static struct reply rp;
	struct adesc a = {.ttls = ttls, .nttls = 2};
	struct adesc nx = {
		.flags = DNS_RCODE_NXDOMAIN, .soa = true, .soa_ttl = 7200, .soa_min = 3600};
	struct qdesc d = qd("www.example.com"), dn = qd("nx.example.com");
	struct cache *c;

	CHECK_EQ(cache_new(&c, BIG, 600, 0, 6), 0);
	CHECK_EQ(store(c, &d, &a, 0), 0);
	CHECK_EQ(store(c, &dn, &nx, 0), 0);
	CHECK(lookup(c, &d, 0, false, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 600);
	CHECK_EQ(rp.ttl[1], 600);
	CHECK(lookup(c, &d, 599 * SEC, false, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 1);
	CHECK_EQ(rp.ttl[1], 1);
	CHECK(lookup(c, &dn, 100 * SEC, false, &rp) > 0);
	CHECK(rp.ttl[0] <= 500);
	CHECK(!hit(c, &d, 600 * SEC, false));
	CHECK(!hit(c, &dn, 600 * SEC, false));
	cache_free(c);
}

/*
 * Each of type, class, OPT presence, DO and CD makes a different key: every variant misses the
 * others' entries, and once each is stored, each gets its own answer (told apart by TTL).
 */
static void test_keys(void)
{
	static struct reply rp;
	struct qdesc v[6];
	struct cache *c;
	size_t i, j;

	for (i = 0; i < 6; i++)
		v[i] = qd("www.example.com");
	v[1].qtype = DNS_TYPE_AAAA;
	v[2].flags |= DNS_FLAG_AD;
	v[3].opt = true;
	v[4].opt = true;
	v[4].opt_ttl = OPT_DO;
	v[5].flags |= DNS_FLAG_CD;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 7), 0);
	for (i = 0; i < 6; i++) {
		uint32_t ttl = 100 + (uint32_t)i;
		struct adesc a = {.ttls = &ttl, .nttls = 1};

		for (j = 0; j < 6; j++)
			CHECK(hit(c, &v[j], 0, false) == (j < i));
		CHECK_EQ(store(c, &v[i], &a, 0), 0);
	}
	CHECK_EQ(stats(c).entries, 6);
	for (i = 0; i < 6; i++) {
		CHECK(lookup(c, &v[i], 0, false, &rp) > 0);
		CHECK_EQ(rp.nttl, 1);
		CHECK_EQ(rp.ttl[0], 100 + i);
		CHECK_EQ(rp.m.q.qtype, v[i].qtype);
		CHECK_EQ(rp.m.q.qclass, v[i].qclass);
		CHECK_EQ(rp.m.has_opt, v[i].opt);
		CHECK_EQ(rp.m.flags & DNS_FLAG_CD, v[i].flags & DNS_FLAG_CD);
	}
	/* CH class (version.bind and the like) is for the server asked: never cached */
	v[2].flags = DNS_FLAG_RD;
	v[2].qclass = CLASS_CH;
	{
		uint32_t ttl = 300;
		struct adesc a = {.ttls = &ttl, .nttls = 1};

		CHECK_EQ(store(c, &v[2], &a, 0), 1);
		CHECK(!hit(c, &v[2], 0, false));
	}
	/* DO set with another EDNS payload size and other Z bits is still the DO key */
	v[0].opt = true;
	v[0].opt_ttl = OPT_DO | 0x0001;
	CHECK(lookup(c, &v[0], 0, false, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 104);
	cache_free(c);
}

/*
 * RD=0 queries are for the server asked (a resolver asking authoritatives, +norec monitoring):
 * the upstream answers them from its own cache or refuses; never answered from ours.
 */
static void test_rd(void)
{
	static const uint32_t ttl = 300;
	static struct reply rp;
	struct adesc a = {.ttls = &ttl, .nttls = 1};
	struct qdesc d = qd("www.example.com"), nord = qd("www.example.com");
	struct cache *c;

	nord.flags = 0;
	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 8), 0);
	CHECK_EQ(store(c, &d, &a, 0), 0);
	CHECK_EQ(lookup(c, &nord, 0, false, &rp), -ENOENT);
	CHECK(lookup(c, &d, 0, false, &rp) > 0);
	CHECK(rp.m.flags & DNS_FLAG_RD);

	/* an answer to an RD=0 query may be partial (the upstream's cache only): not kept */
	CHECK_EQ(store(c, &nord, &a, 0), 1);
	CHECK_EQ(stats(c).entries, 1);
	CHECK(lookup(c, &d, 0, false, &rp) > 0);
	CHECK(rp.m.flags & DNS_FLAG_RD);
	cache_free(c);
}

/*
 * w_opt_options - append n octets of options to the OPT RR that ends w, whose RDLENGTH is at
 * w->b + rdl.
 */
static void w_opt_options(struct wire *w, size_t rdl, const uint8_t *opts, size_t n)
{
	dns_put16(w->b + rdl, (uint16_t)(dns_get16(w->b + rdl) + n));
	memcpy(w->b + w->n, opts, n);
	w->n += n;
}

/* Does the octet string pat occur in buf? */
static bool contains(const uint8_t *buf, size_t len, const uint8_t *pat, size_t plen)
{
	for (size_t i = 0; i + plen <= len; i++)
		if (memcmp(buf + i, pat, plen) == 0)
			return true;
	return false;
}

/*
 * One client's EDNS options never reach another through the cache. A query with COOKIE aa..
 * and Client Subnet 203.0.113.0/24 whose answer echoes both: then COOKIE bb.., no ECS, EDNS
 * version 1 must not be answered from the cache (the upstream says BADVERS), and a version-0
 * query gets the answer without any option (no aa.. cookie, no ECS). An answer with an
 * extended rcode is not kept.
 */
static void test_client_options(void)
{
	size_t qrdl, ardl, lrdl;
	static const uint8_t cookie_aa[] = {0,	  10,	0,    8,    0xaa, 0xaa,
					    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
	static const uint8_t cookie_bb[] = {0,	  10,	0,    8,    0xbb, 0xbb,
					    0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb};
	/* the answer's COOKIE: the client's and a server cookie; its ECS: scope /24 */
	static const uint8_t ans_opts[] = {
		0,    10,   0,	  24,	0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x5e,
		0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e,
		0x5e, 0x5e, 0,	  8,	0,    7,    0,	  1,	24,   24,   203,  0,	113};
	static const uint8_t ecs[] = {0, 8, 0, 7, 0, 1, 24, 0, 203, 0, 113};
	static const uint8_t aa[8] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
	static const uint32_t ttl = 300;
	static struct wire qw, aw, lw;
	static uint8_t out[4096];
	struct adesc a = {.ttls = &ttl, .nttls = 1};
	struct qdesc d = qd("www.example.com");
	struct dns_msg q, r, m;
	struct cache *c;
	int n;

	d.opt = true;
	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 18), 0);

	/* the first client: COOKIE aa.. and ECS; the answer echoes both */
	build_query(&qw, &d);
	qrdl = qw.n - 2;
	w_opt_options(&qw, qrdl, cookie_aa, sizeof(cookie_aa));
	w_opt_options(&qw, qrdl, ecs, sizeof(ecs));
	build_answer(&aw, &d, &a);
	ardl = aw.n - 2;
	w_opt_options(&aw, ardl, ans_opts, sizeof(ans_opts));
	CHECK_EQ(dns_msg_parse(&q, qw.b, qw.n), 0);
	CHECK_EQ(dns_msg_parse(&r, aw.b, aw.n), 0);
	cache_store(c, &q, aw.b, &r, 0);

	/* the second: COOKIE bb.., no ECS, EDNS version 1 */
	build_query(&lw, &d);
	lrdl = lw.n - 2;
	dns_put32(lw.b + lrdl - 4, 1u << 16);
	w_opt_options(&lw, lrdl, cookie_bb, sizeof(cookie_bb));
	CHECK_EQ(dns_msg_parse(&m, lw.b, lw.n), 0);
	CHECK_EQ(cache_lookup(c, &m, out, sizeof(out), SEC, false), -ENOENT);

	/* version 0: whatever comes back carries neither aa.. nor the ECS */
	dns_put32(lw.b + lrdl - 4, 0);
	CHECK_EQ(dns_msg_parse(&m, lw.b, lw.n), 0);
	n = cache_lookup(c, &m, out, sizeof(out), SEC, false);
	CHECK(n == -ENOENT || n > 0);
	if (n > 0) {
		CHECK(!contains(out, (size_t)n, aa, sizeof(aa)));
		CHECK(!contains(out, (size_t)n, ecs + 4, 3));
	}

	/* a query with only a cookie is cached; the answer keeps the OPT RR, not its options */
	build_query(&qw, &d);
	w_opt_options(&qw, qw.n - 2, cookie_aa, sizeof(cookie_aa));
	CHECK_EQ(dns_msg_parse(&q, qw.b, qw.n), 0);
	CHECK_EQ(cache_store(c, &q, aw.b, &r, 0), 0);
	n = cache_lookup(c, &m, out, sizeof(out), SEC, false);
	CHECK(n > 0);
	if (n > 0) {
		CHECK(!contains(out, (size_t)n, aa, sizeof(aa)));
		CHECK_EQ(dns_msg_parse(&r, out, (size_t)n), 0);
		CHECK(r.has_opt);
		CHECK_EQ(r.opt_len, 11);
		CHECK_EQ(r.opt_udp_size, 1232);
		CHECK_EQ(r.ancount, 1);
	}
	/* nor does a query with ECS (or NSID, or an unknown option) hit it */
	w_opt_options(&lw, lrdl, ecs, sizeof(ecs));
	CHECK_EQ(dns_msg_parse(&m, lw.b, lw.n), 0);
	CHECK_EQ(cache_lookup(c, &m, out, sizeof(out), SEC, false), -ENOENT);
	cache_free(c);

	/* BADVERS in the answer (extended rcode 1) to a version-0 query is not kept */
	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 19), 0);
	build_query(&qw, &d);
	a.nttls = 0;
	a.soa = true;
	a.soa_ttl = a.soa_min = 300;
	build_answer(&aw, &d, &a);
	dns_put32(aw.b + aw.n - 6, 1u << 24);
	CHECK_EQ(dns_msg_parse(&q, qw.b, qw.n), 0);
	CHECK_EQ(dns_msg_parse(&r, aw.b, aw.n), 0);
	CHECK_EQ(cache_store(c, &q, aw.b, &r, 0), 1);
	CHECK(!hit(c, &d, 0, false));
	cache_free(c);
}

/* The byte bound holds after every store; the least recently used entry goes first. */
static void test_eviction(void)
{
	static const char *const names[] = {"h0.example", "h1.example", "h2.example",
					    "h3.example", "h4.example", "h5.example"};
	char name[32];
	struct qdesc d[6];
	struct cache_stats st;
	struct cache *c;
	size_t size, max, table;

	for (size_t i = 0; i < 6; i++)
		d[i] = qd(names[i]);
	/* the size of one entry, the same for all these names */
	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 9), 0);
	table = stats(c).bytes;
	CHECK_EQ(store_ttl(c, names[0], 300, 0), 0);
	size = stats(c).bytes - table;
	CHECK_EQ(store_ttl(c, names[1], 300, 0), 0);
	CHECK_EQ(stats(c).bytes, table + 2 * size);
	cache_free(c);

	/* room for four, and the bucket array (a power of two below a sixteenth of max) */
	max = 4 * size + size / 2;
	max += max / 32;
	CHECK_EQ(cache_new(&c, max, MAX_TTL, 0, 10), 0);
	table = stats(c).bytes;
	CHECK(table <= max / 16 && table > max / 64);
	CHECK(max - table >= 4 * size && max - table < 5 * size);
	for (size_t i = 0; i < 4; i++)
		CHECK_EQ(store_ttl(c, names[i], 300, i * SEC), 0);
	st = stats(c);
	CHECK_EQ(st.entries, 4);
	CHECK_EQ(st.bytes, table + 4 * size);
	CHECK_EQ(st.evicted, 0);

	/* h0, the oldest, is used: h1 is now the least recently used, and goes */
	CHECK(hit(c, &d[0], 10 * SEC, false));
	CHECK_EQ(store_ttl(c, names[4], 300, 11 * SEC), 0);
	st = stats(c);
	CHECK_EQ(st.evicted, 1);
	CHECK_EQ(st.entries, 4);
	CHECK(st.bytes <= max);
	CHECK(!hit(c, &d[1], 12 * SEC, false));
	/* order now (least recent first): h2 h3 h0 h4; use h2, then h3 goes */
	CHECK(hit(c, &d[2], 12 * SEC, false));
	CHECK_EQ(store_ttl(c, names[5], 300, 13 * SEC), 0);
	CHECK_EQ(stats(c).evicted, 2);
	CHECK(!hit(c, &d[3], 14 * SEC, false));
	CHECK(hit(c, &d[0], 14 * SEC, false));
	CHECK(hit(c, &d[2], 14 * SEC, false));
	CHECK(hit(c, &d[4], 14 * SEC, false));
	CHECK(hit(c, &d[5], 14 * SEC, false));

	/* many more: the bound holds after every store, and every entry gone is counted */
	for (unsigned int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "n%03u.example.com", i);
		CHECK_EQ(store_ttl(c, name, 300, 20 * SEC), 0);
		st = stats(c);
		CHECK(st.bytes <= max);
	}
	CHECK_EQ(st.stored, 6 + 200);
	CHECK_EQ(st.evicted + st.entries, st.stored);
	CHECK(st.entries >= 1);
	/* the newest is there */
	d[0] = qd(name);
	CHECK(hit(c, &d[0], 20 * SEC, false));
	cache_free(c);

	/* an answer larger than the whole cache, its bucket array taken out, is not stored */
	CHECK_EQ(cache_new(&c, size + 7, MAX_TTL, 0, 11), 0);
	CHECK_EQ(stats(c).bytes, 8); /* one bucket */
	CHECK_EQ(store_ttl(c, names[0], 300, 0), 1);
	CHECK_EQ(stats(c).bytes, 8);
	cache_free(c);
	CHECK_EQ(cache_new(&c, size + 8, MAX_TTL, 0, 11), 0);
	CHECK_EQ(store_ttl(c, names[0], 300, 0), 0);
	CHECK_EQ(stats(c).bytes, size + 8);
	cache_free(c);
}

/* heap_used - octets in malloc's chunks in use, or 0 where malloc keeps no count (ASan). */
static size_t heap_used(void)
{
	return mallinfo2().uordblks;
}

/*
 * What an entry is charged is what malloc took for it: while the cache grows (answers of 1 to
 * 12 RRs, names of 3 to 60 octets), the heap in use grows by exactly what stats count. malloc's
 * per-thread cache (tcache) hands out chunks counted in use already: it is emptied first.
 * Then, filled with the same answers, a cache of max octets never counts more than max.
 */
static void test_charge(void)
{
	static const uint32_t ttls[12] = {300, 300, 300, 300, 300, 300,
					  300, 300, 300, 300, 300, 300};
	static void *hold[64 * 8];
	struct cache_stats st;
	struct cache *c;
	char name[80];
	size_t used, bytes, nhold = 0;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 20), 0);
	for (size_t sz = 8; sz <= 1024; sz += 16)
		for (size_t i = 0; i < 8; i++)
			hold[nhold++] = malloc(sz);
	used = heap_used();
	bytes = stats(c).bytes;
	for (unsigned int i = 0; i < 300; i++) {
		struct adesc a = {.ttls = ttls, .nttls = 1 + i % 12};
		struct qdesc d;
		int len = snprintf(name, sizeof(name), "c%u.x%.*s.example", i, (int)(i % 50),
				   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");

		CHECK(len > 0);
		d = qd(name);
		CHECK_EQ(store(c, &d, &a, 0), 0);
	}
	if (used) /* glibc: the heap in use grew by what the cache counts */
		CHECK_EQ(heap_used() - used, stats(c).bytes - bytes);
	else
		printf("test_charge: no mallinfo2 count (sanitizer?): checked the bound only\n");
	while (nhold)
		free(hold[--nhold]);
	bytes = stats(c).bytes - bytes; /* the 300 entries */
	cache_free(c);

	/* a third of them fits, and the bound holds after every store */
	CHECK_EQ(cache_new(&c, bytes / 3, MAX_TTL, 0, 21), 0);
	for (unsigned int i = 0; i < 300; i++) {
		struct adesc a = {.ttls = ttls, .nttls = 1 + i % 12};
		struct qdesc d;

		snprintf(name, sizeof(name), "c%u.x%.*s.example", i, (int)(i % 50),
			 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		d = qd(name);
		CHECK_EQ(store(c, &d, &a, 0), 0);
		CHECK(stats(c).bytes <= bytes / 3);
	}
	st = stats(c);
	CHECK(st.evicted > 0);
	CHECK_EQ(st.evicted + st.entries, 300);
	CHECK(st.entries >= 80 && st.entries < 120);
	cache_free(c);
}

/*
 * Small caches (what --cache-size 1 and a small size shared out among workers and groups
 * give): the bucket array stays within the budget, and what fits is stored.
 */
static void test_small(void)
{
	static const size_t sizes[] = {0, 1, 7, 8, 100, 127, 128, 255, 256, 300, 1000, 4096};
	struct qdesc d = qd("a.example");
	struct cache *c;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		CHECK_EQ(cache_new(&c, sizes[i], MAX_TTL, 0, 22), 0);
		CHECK(stats(c).bytes <= sizes[i]);
		CHECK(stats(c).bytes <= 8 || stats(c).bytes <= sizes[i] / 16);
		/* an entry of this test takes about 128 octets */
		CHECK_EQ(store_ttl(c, "a.example", 300, 0), sizes[i] >= 255 ? 0 : 1);
		CHECK(stats(c).bytes <= sizes[i]);
		CHECK_EQ(hit(c, &d, 0, false), sizes[i] >= 255);
		cache_free(c);
	}
}

/* Storing an answer to the same question again replaces the entry. */
static void test_replace(void)
{
	static const uint32_t first = 300, second = 100;
	static struct reply rp;
	struct adesc a1 = {.ttls = &first, .nttls = 1}, a2 = {.ttls = &second, .nttls = 1};
	struct qdesc d = qd("www.example.com"), upper = qd("WWW.EXAMPLE.COM");
	struct cache_stats st;
	struct cache *c;
	size_t size;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 12), 0);
	CHECK_EQ(store(c, &d, &a1, 0), 0);
	size = stats(c).bytes;
	CHECK_EQ(store(c, &upper, &a2, 10 * SEC), 0);
	st = stats(c);
	CHECK_EQ(st.entries, 1);
	CHECK_EQ(st.stored, 2);
	CHECK_EQ(st.bytes, size);
	CHECK_EQ(st.evicted, 0);
	CHECK(lookup(c, &d, 20 * SEC, false, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 90);
	CHECK(!hit(c, &d, 110 * SEC, false));
	CHECK_EQ(stats(c).entries, 0);
	cache_free(c);
}

/* stale_s 0: an expired entry is never served, and is dropped when seen. */
static void test_stale_off(void)
{
	struct qdesc d = qd("www.example.com");
	struct cache *c;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 13), 0);
	CHECK_EQ(store_ttl(c, d.name, 10, 0), 0);
	CHECK(hit(c, &d, 10 * SEC - 1, true));
	CHECK(!hit(c, &d, 10 * SEC, true));
	CHECK_EQ(stats(c).expired, 1);
	CHECK_EQ(stats(c).stale_hits, 0);
	CHECK_EQ(stats(c).entries, 0);
	cache_free(c);
}

/* stale_s 3600: served with allow_stale only, TTL CACHE_STALE_TTL, for at most an hour. */
static void test_stale(void)
{
	static const uint32_t ttls[] = {10, 300};
	static struct reply rp;
	struct adesc a = {.ttls = ttls, .nttls = 2};
	struct adesc nx = {
		.flags = DNS_RCODE_NXDOMAIN, .soa = true, .soa_ttl = 3600, .soa_min = 60};
	struct qdesc d = qd("www.example.com"), dn = qd("nx.example.com");
	struct cache_stats st;
	struct cache *c;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 3600, 14), 0);
	CHECK_EQ(store(c, &d, &a, 0), 0);
	/* fresh: allow_stale changes nothing */
	CHECK(lookup(c, &d, 5 * SEC, true, &rp) > 0);
	CHECK_EQ(rp.ttl[0], 5);
	CHECK_EQ(rp.ttl[1], 295);
	CHECK_EQ(stats(c).hits, 1);
	CHECK_EQ(stats(c).stale_hits, 0);

	CHECK_EQ(lookup(c, &d, 10 * SEC, false, &rp), -ENOENT);
	CHECK_EQ(stats(c).entries, 1);
	CHECK_EQ(stats(c).expired, 0);
	CHECK(lookup(c, &d, 10 * SEC, true, &rp) > 0);
	CHECK_EQ(rp.m.id, QUERY_ID);
	CHECK_EQ(rp.nttl, 2);
	CHECK_EQ(rp.ttl[0], CACHE_STALE_TTL);
	CHECK_EQ(rp.ttl[1], CACHE_STALE_TTL);
	CHECK(lookup(c, &d, (10 + 3600) * SEC - 1, true, &rp) > 0);
	CHECK_EQ(rp.ttl[0], CACHE_STALE_TTL);
	CHECK_EQ(lookup(c, &d, (10 + 3600) * SEC - 1, false, &rp), -ENOENT);
	st = stats(c);
	CHECK_EQ(st.stale_hits, 2);
	CHECK_EQ(st.hits, 1);
	CHECK_EQ(st.misses, 2);

	/* past expiry + stale_s: gone, even with allow_stale */
	CHECK_EQ(lookup(c, &d, (10 + 3600) * SEC, true, &rp), -ENOENT);
	st = stats(c);
	CHECK_EQ(st.expired, 1);
	CHECK_EQ(st.entries, 0);
	CHECK_EQ(st.stale_hits, 2);
	CHECK_EQ(lookup(c, &d, (10 + 3600) * SEC, true, &rp), -ENOENT);
	CHECK_EQ(stats(c).expired, 1);

	/* a negative answer goes stale the same way */
	CHECK_EQ(store(c, &dn, &nx, 0), 0);
	CHECK(!hit(c, &dn, 60 * SEC, false));
	CHECK(lookup(c, &dn, 60 * SEC, true, &rp) > 0);
	CHECK_EQ(rp.m.flags & DNS_RCODE_MASK, DNS_RCODE_NXDOMAIN);
	CHECK_EQ(rp.ttl[0], CACHE_STALE_TTL);
	CHECK_EQ(stats(c).stale_hits, 3);
	cache_free(c);
}

/* -ENOSPC when out is too small, out untouched; an exact fit is fine (ASan watches). */
static void test_nospace(void)
{
	static struct reply rp;
	struct qdesc d = qd("www.example.com");
	struct wire w;
	struct dns_msg q;
	struct cache *c;
	uint8_t *out;
	size_t len;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 0, 15), 0);
	CHECK_EQ(store_ttl(c, d.name, 300, 0), 0);
	CHECK(lookup(c, &d, 0, false, &rp) > 0);
	len = (size_t)rp.n;
	build_query(&w, &d);
	CHECK_EQ(dns_msg_parse(&q, w.b, w.n), 0);

	out = malloc(len);
	CHECK(out != NULL);
	if (!out)
		goto out_free_cache;
	memset(out, 0xa5, len);
	CHECK_EQ(cache_lookup(c, &q, out, len - 1, 0, false), -ENOSPC);
	CHECK_EQ(out[0], 0xa5);
	CHECK_EQ(out[len - 1], 0xa5);
	CHECK_EQ(cache_lookup(c, &q, out, 0, 0, false), -ENOSPC);
	CHECK_EQ(cache_lookup(c, &q, out, len, 0, false), (int)len);
	CHECK(!memcmp(out, rp.b, len));
	CHECK_EQ(stats(c).entries, 1);
	free(out);
out_free_cache:
	cache_free(c);
}

/* cache_free takes NULL, and frees every entry (a leak shows under ASan). */
static void test_free(void)
{
	char name[32];
	struct cache *c;

	cache_free(NULL);
	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 60, 16), 0);
	for (unsigned int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "f%u.example.com", i);
		CHECK_EQ(store_ttl(c, name, 1 + i % 5, 0), 0);
	}
	CHECK_EQ(stats(c).entries, 100);
	cache_free(c);

	/* and an empty one */
	CHECK_EQ(cache_new(&c, 0, MAX_TTL, 0, 17), 0);
	CHECK_EQ(store_ttl(c, "a.example", 300, 0), 1);
	cache_free(c);
}

/* lookup_refresh - cache_lookup_refresh for d: its result, and *refresh (0 before). */
static int lookup_refresh(struct cache *c, const struct qdesc *d, uint64_t now_ms,
			  uint32_t *refresh)
{
	static uint8_t out[16384];
	struct wire w;
	struct dns_msg q;

	*refresh = 0;
	build_query(&w, d);
	if (dns_msg_parse(&q, w.b, w.n) < 0)
		return -EBADMSG;
	return cache_lookup_refresh(c, &q, out, sizeof(out), now_ms, refresh);
}

/* end_refresh - cache_refresh_end for d, the refresh that got mark. */
static void end_refresh(struct cache *c, const struct qdesc *d, uint32_t mark)
{
	struct wire w;
	struct dns_msg q;

	build_query(&w, d);
	CHECK_EQ(dns_msg_parse(&q, w.b, w.n), 0);
	cache_refresh_end(c, &q, mark);
}

/*
 * --prefetch's mark: a hit near the end (prefetch_due) asks for one refresh, and no other hit
 * does until a new answer replaces the entry or the refresh ends without one; a caller that
 * passes no flag never marks; a miss or a stale answer never asks.
 */
static void test_refresh_mark(void)
{
	struct qdesc d = qd("www.example.com"), nothing = qd("nothing.example");
	struct cache *c;
	uint32_t r, mark;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 60, 1), 0);
	CHECK_EQ(lookup_refresh(c, &d, 0, &r), -ENOENT);
	CHECK(!r);
	CHECK_EQ(store_ttl(c, "www.example.com", 5, 0), 0);
	CHECK(lookup_refresh(c, &d, 2999, &r) > 0);
	CHECK(!r); /* not yet: 2.001 s left */
	/* a caller without prefetch (cache_lookup) leaves the entry unmarked */
	CHECK(hit(c, &d, 3000, false));
	CHECK(lookup_refresh(c, &d, 3000, &r) > 0);
	CHECK(r); /* the first hit in the window */
	mark = r;
	CHECK(lookup_refresh(c, &d, 3500, &r) > 0);
	CHECK(!r); /* one refresh at a time */
	/* another refresh's end (none is in flight) leaves the mark */
	end_refresh(c, &d, mark + 1);
	CHECK(lookup_refresh(c, &d, 3600, &r) > 0);
	CHECK(!r);
	/* the refresh found nothing to store: a later hit may try again */
	end_refresh(c, &d, mark);
	CHECK(lookup_refresh(c, &d, 4000, &r) > 0);
	CHECK(r);
	/* its answer replaced the entry: unmarked, fresh, not due */
	CHECK_EQ(store_ttl(c, "www.example.com", 5, 4100), 0);
	CHECK(lookup_refresh(c, &d, 4200, &r) > 0);
	CHECK(!r);
	CHECK(lookup_refresh(c, &d, 7100, &r) > 0);
	CHECK(r);
	/* expired: a miss without asking; a stale answer (serve-stale) never asks either */
	CHECK_EQ(lookup_refresh(c, &d, 9100, &r), -ENOENT);
	CHECK(!r);
	CHECK(hit(c, &d, 9100, true));
	CHECK_EQ(lookup_refresh(c, &d, 9100, &r), -ENOENT);
	CHECK(!r);
	/* unmarking what is not there is harmless */
	end_refresh(c, &nothing, 1);
	cache_free(c);
}

/*
 * A refresh that ends without an answer unmarks the entry it was started for, not a later one
 * of the same key: the entry expired meanwhile (the refresh waits up to --timeout), a miss
 * stored a new one, and a hit marked that one for a refresh of its own, still in flight.
 */
static void test_refresh_end_stale(void)
{
	struct qdesc d = qd("www.example.com");
	struct cache *c;
	uint32_t r, mark;

	CHECK_EQ(cache_new(&c, BIG, MAX_TTL, 60, 2), 0);
	CHECK_EQ(store_ttl(c, "www.example.com", 5, 0), 0);
	CHECK(lookup_refresh(c, &d, 3000, &r) > 0);
	CHECK(r); /* refresh 1, its upstream slow */
	mark = r;
	CHECK_EQ(lookup_refresh(c, &d, 5000, &r), -ENOENT);
	CHECK_EQ(store_ttl(c, "www.example.com", 5, 5100), 0); /* the miss's answer */
	CHECK(lookup_refresh(c, &d, 8100, &r) > 0);
	CHECK(r);		  /* refresh 2 */
	end_refresh(c, &d, mark); /* refresh 1 gives up */
	CHECK(lookup_refresh(c, &d, 8200, &r) > 0);
	CHECK(!r); /* refresh 2 is still in flight */
	cache_free(c);
}

int main(void)
{
	test_ttl_countdown();
	test_case();
	test_negative();
	test_negative_lifetime();
	test_not_stored();
	test_max_ttl();
	test_keys();
	test_rd();
	test_client_options();
	test_eviction();
	test_charge();
	test_small();
	test_replace();
	test_stale_off();
	test_stale();
	test_nospace();
	test_free();
	test_refresh_mark();
	test_refresh_end_stale();
	return check_done("cache");
}

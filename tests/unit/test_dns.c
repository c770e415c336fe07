/*
 * test_dns.c - unit tests for the DNS wire-format module (src/dns.c).
 *
 * Every message is built octet by octet with the small writer below, so each test shows the
 * exact wire layout it feeds to the parser: compression pointers are written by offset.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/dns.h"

#define OPCODE_NOTIFY 4
#define TYPE_NS	      2
#define TYPE_CNAME    5
#define RCODE_BADVERS 16
#define OPT_DO	      0x8000

/* A message under construction. */
struct wire {
	uint8_t b[8192];
	size_t n;
};

static void w_u8(struct wire *w, unsigned int v);
static void w_u16(struct wire *w, unsigned int v);
static void w_u32(struct wire *w, uint32_t v);
static void w_bytes(struct wire *w, const void *p, size_t n);
static void w_labels(struct wire *w, const char *dotted);
static void w_name(struct wire *w, const char *dotted);
static void w_ptr(struct wire *w, size_t off);
static void w_hdr(struct wire *w, unsigned int id, unsigned int flags, unsigned int qd,
		  unsigned int an, unsigned int ns, unsigned int ar);
static void w_rr(struct wire *w, unsigned int type, unsigned int rdlen);
static void w_opt(struct wire *w, unsigned int udp, uint32_t ttl);
static void set_count(struct wire *w, size_t at, unsigned int v);
static void build_query(struct wire *w, const char *name, unsigned int qtype, bool opt);
static void build_long_answer(struct wire *w, bool opt);
static bool parse_fails(const struct wire *w);

static void test_query(void);
static void test_compressed_answer(void);
static void test_names_bad(void);
static void test_structure_bad(void);
static void test_opt_bad(void);
static void test_query_check(void);
static void test_query_is_stub(void);
static void test_opt_options(void);
static void test_question_equal(void);
static void test_udp_limit(void);
static void test_truncate(void);
static void test_build_error(void);
static void test_name_to_text(void);

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

static void w_bytes(struct wire *w, const void *p, size_t n)
{
	const uint8_t *s = p;

	while (n--)
		w_u8(w, *s++);
}

/* Labels of a dotted name, without the terminating root label ("" writes nothing). */
static void w_labels(struct wire *w, const char *dotted)
{
	while (*dotted) {
		size_t len = strcspn(dotted, ".");

		w_u8(w, (unsigned int)len);
		w_bytes(w, dotted, len);
		dotted += len;
		if (*dotted == '.')
			dotted++;
	}
}

/* A whole uncompressed name: labels, then the root. */
static void w_name(struct wire *w, const char *dotted)
{
	w_labels(w, dotted);
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

/* TYPE, CLASS IN, TTL 300, RDLENGTH: the fixed part after an owner name. */
static void w_rr(struct wire *w, unsigned int type, unsigned int rdlen)
{
	w_u16(w, type);
	w_u16(w, DNS_CLASS_IN);
	w_u32(w, 300);
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

/* Overwrite the 16-bit count at header offset at (4 qd, 6 an, 8 ns, 10 ar). */
static void set_count(struct wire *w, size_t at, unsigned int v)
{
	dns_put16(w->b + at, (uint16_t)v);
}

static void build_query(struct wire *w, const char *name, unsigned int qtype, bool opt)
{
	w->n = 0;
	w_hdr(w, 0xbeef, DNS_FLAG_RD | DNS_FLAG_CD, 1, 0, 0, opt ? 1 : 0);
	w_name(w, name);
	w_u16(w, qtype);
	w_u16(w, DNS_CLASS_IN);
	if (opt)
		w_opt(w, 4096, OPT_DO);
}

/* An answer of over 3000 octets: 112 TXT RRs owned by a pointer to the question name. */
static void build_long_answer(struct wire *w, bool opt)
{
	static const char txt[] = "0123456789abcd";
	unsigned int i;

	w->n = 0;
	w_hdr(w, 0x1234, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA, 1, 112, 0, opt ? 1 : 0);
	w_name(w, "big.example.org");
	w_u16(w, DNS_TYPE_TXT);
	w_u16(w, DNS_CLASS_IN);
	for (i = 0; i < 112; i++) {
		w_ptr(w, DNS_HDR_LEN);
		w_rr(w, DNS_TYPE_TXT, 1 + sizeof(txt) - 1);
		w_u8(w, sizeof(txt) - 1);
		w_bytes(w, txt, sizeof(txt) - 1);
	}
	if (opt)
		w_opt(w, 1232, 0);
}

/* Parse must fail with -EBADMSG and leave the output untouched. */
static bool parse_fails(const struct wire *w)
{
	struct dns_msg m, canary;

	memset(&m, 0xa5, sizeof(m));
	memcpy(&canary, &m, sizeof(m));
	return dns_msg_parse(&m, w->b, w->n) == -EBADMSG && !memcmp(&m, &canary, sizeof(m));
}

static void test_query(void)
{
	static const uint8_t qname[] = "\3www\7example\3com";
	struct wire w;
	struct dns_msg m;

	/* Without OPT. */
	build_query(&w, "www.example.com", DNS_TYPE_AAAA, false);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.id, 0xbeef);
	CHECK_EQ(m.flags, DNS_FLAG_RD | DNS_FLAG_CD);
	CHECK_EQ(m.qdcount, 1);
	CHECK_EQ(m.ancount + m.nscount + m.arcount, 0);
	CHECK_EQ(m.q.name_len, sizeof(qname));
	CHECK(!memcmp(m.q.name, qname, sizeof(qname)));
	CHECK_EQ(m.q.qtype, DNS_TYPE_AAAA);
	CHECK_EQ(m.q.qclass, DNS_CLASS_IN);
	CHECK_EQ(m.question_end, DNS_HDR_LEN + sizeof(qname) + 4);
	CHECK_EQ(m.len, w.n);
	CHECK(!m.has_opt);

	/* With OPT. */
	build_query(&w, "www.example.com", DNS_TYPE_A, true);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.arcount, 1);
	CHECK(m.has_opt);
	CHECK_EQ(m.opt_off, m.question_end);
	CHECK_EQ(m.opt_len, 11);
	CHECK_EQ(m.opt_udp_size, 4096);
	CHECK_EQ(m.opt_ttl, OPT_DO);
	CHECK_EQ(m.len, m.opt_off + m.opt_len);

	/* With an OPT carrying a COOKIE option (code 10, 8 octets). */
	w.n -= 2;
	w_u16(&w, 12);
	w_u16(&w, 10);
	w_u16(&w, 8);
	w_bytes(&w, "\1\2\3\4\5\6\7\10", 8);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK(m.has_opt);
	CHECK_EQ(m.opt_len, 11 + 12);

	/* The root name, and no question at all. */
	build_query(&w, "", DNS_TYPE_SOA, false);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.q.name_len, 1);
	CHECK_EQ(m.question_end, DNS_HDR_LEN + 1 + 4);
	w.n = 0;
	w_hdr(&w, 1, 0, 0, 0, 0, 0);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.qdcount, 0);
	CHECK_EQ(m.question_end, DNS_HDR_LEN);
}

/*
 * Offsets of the answer below:
 *   12  question www.example.com A           ("example.com" starts at 16)
 *   33  answer 1: ptr 12, CNAME -> "mail" + ptr 16   (rdata name "mail..." at 45)
 *   ..  answer 2: ptr 45 (mail.example.com, itself ending in a pointer: 2 jumps), A
 *   ..  authority: ptr 16, NS -> "ns1" + ptr 16      (rdata name at ns1_off)
 *   ..  additional: ptr ns1_off, A; then "x" + ptr 12, AAAA; then OPT
 */
static void test_compressed_answer(void)
{
	struct wire w;
	struct dns_msg m;
	size_t ns1_off, opt_off, full;

	w.n = 0;
	w_hdr(&w, 0x4242, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA, 1, 2, 1, 3);
	w_name(&w, "www.example.com");
	w_u16(&w, DNS_TYPE_A);
	w_u16(&w, DNS_CLASS_IN);
	CHECK_EQ(w.n, 33);

	w_ptr(&w, 12);
	w_rr(&w, TYPE_CNAME, 7);
	CHECK_EQ(w.n, 45);
	w_labels(&w, "mail");
	w_ptr(&w, 16);

	w_ptr(&w, 45);
	w_rr(&w, DNS_TYPE_A, 4);
	w_bytes(&w, "\xc0\x00\x02\x01", 4);

	w_ptr(&w, 16);
	w_rr(&w, TYPE_NS, 6);
	ns1_off = w.n;
	w_labels(&w, "ns1");
	w_ptr(&w, 16);

	w_ptr(&w, ns1_off);
	w_rr(&w, DNS_TYPE_A, 4);
	w_bytes(&w, "\xc0\x00\x02\x35", 4);
	w_labels(&w, "x");
	w_ptr(&w, 12);
	w_rr(&w, DNS_TYPE_AAAA, 16);
	w_bytes(&w, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\1", 16);
	opt_off = w.n;
	w_opt(&w, 1232, 0);
	full = w.n;

	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.qdcount, 1);
	CHECK_EQ(m.ancount, 2);
	CHECK_EQ(m.nscount, 1);
	CHECK_EQ(m.arcount, 3);
	CHECK_EQ(m.question_end, 33);
	CHECK(m.has_opt);
	CHECK_EQ(m.opt_off, opt_off);
	CHECK_EQ(m.opt_len, 11);
	CHECK_EQ(m.opt_udp_size, 1232);
	CHECK_EQ(m.len, full);

	/* Every strict prefix is malformed. */
	{
		size_t cut, bad = 0;

		for (cut = 0; cut < full; cut++) {
			w.n = cut;
			if (!parse_fails(&w))
				bad++;
		}
		CHECK_EQ(bad, 0);
		w.n = full;
	}

	/* Trailing garbage after the last RR. */
	w_u8(&w, 0);
	CHECK(parse_fails(&w));
	w.n = full;

	/* One RR fewer in the count: the OPT RR becomes trailing octets. */
	set_count(&w, 10, 2);
	CHECK(parse_fails(&w));
	set_count(&w, 10, 3);

	/* One RR more in the count: the last RR is missing. */
	set_count(&w, 6, 3);
	CHECK(parse_fails(&w));
	set_count(&w, 6, 2);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
}

static void test_names_bad(void)
{
	struct wire w;
	struct dns_msg m;
	size_t at;
	int i;

	/* Question name that is a pointer to itself. */
	w.n = 0;
	w_hdr(&w, 1, 0, 1, 0, 0, 0);
	w_ptr(&w, 12);
	w_u32(&w, 0x00010001);
	CHECK(parse_fails(&w));

	/* A pointer into the header. */
	w.n = 0;
	w_hdr(&w, 1, 0, 1, 0, 0, 0);
	w_ptr(&w, 2);
	w_u32(&w, 0x00010001);
	CHECK(parse_fails(&w));

	/* Owner name: forward pointer (to the CNAME target "b"), self pointer, past the end. */
	build_query(&w, "a.example", DNS_TYPE_A, false);
	set_count(&w, 6, 1);
	at = w.n;
	w_ptr(&w, at + 12);
	w_rr(&w, TYPE_CNAME, 3);
	w_name(&w, "b");
	CHECK(parse_fails(&w));
	dns_put16(w.b + at, (uint16_t)(0xc000 | at));
	CHECK(parse_fails(&w));
	dns_put16(w.b + at, 0xc000 | 0x3fff);
	CHECK(parse_fails(&w));

	/* The same owner as a proper backward pointer parses. */
	dns_put16(w.b + at, 0xc000 | 12);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);

	/* A pointer truncated to its first octet, at the very end. */
	w.n = at;
	w_u8(&w, 0xc0);
	CHECK(parse_fails(&w));

	/*
	 * Loop: the CNAME rdata at 39 is "y" + a pointer to 39 (below its own position 41, but
	 * not below the start of the label run it ends); the next owner is "x" + pointer to 39.
	 * Following it would read "y" and jump back to 39 forever.
	 */
	build_query(&w, "a.example", DNS_TYPE_A, false);
	set_count(&w, 6, 2);
	CHECK_EQ(w.n, 27);
	w_ptr(&w, 12);
	w_rr(&w, TYPE_CNAME, 4);
	CHECK_EQ(w.n, 39);
	w_labels(&w, "y");
	w_ptr(&w, 39);
	w_labels(&w, "x");
	w_ptr(&w, 39);
	w_rr(&w, DNS_TYPE_A, 0);
	CHECK(parse_fails(&w));
	/* Aimed at the "a.example" question instead, it is a plain two-jump name. */
	dns_put16(w.b + 41, 0xc000 | 12);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);

	/*
	 * A chain of pointers in a CNAME rdata at 31, each to the one before it, the first to
	 * the question name at 12. An owner pointing at chain element k makes k + 2 jumps: 127
	 * is the most allowed.
	 */
	w.n = 0;
	w_hdr(&w, 1, 0, 1, 0, 0, 2);
	w_name(&w, "a");
	w_u32(&w, 0x00010001);
	w_ptr(&w, 12);
	w_rr(&w, TYPE_CNAME, 2 * 200);
	at = w.n;
	CHECK_EQ(at, 31);
	w_ptr(&w, 12);
	for (i = 1; i < 200; i++)
		w_ptr(&w, at + 2 * (size_t)(i - 1));
	w_ptr(&w, at + 2 * 125);
	w_rr(&w, DNS_TYPE_A, 0);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	dns_put16(w.b + w.n - 12, 0xc000 | (uint16_t)(at + 2 * 126));
	CHECK(parse_fails(&w));
	dns_put16(w.b + w.n - 12, 0xc000 | (uint16_t)(at + 2 * 199));
	CHECK(parse_fails(&w));

	/*
	 * A pointer backward into the middle of a name whose labels run on past the pointer
	 * itself: the question name at 12 is one 14-octet label whose last octet (26) reads as
	 * a 9-octet label; the answer's owner at 32 points there, and that label ends at 35,
	 * inside the RR that holds the pointer, on the CLASS's high octet 0. Such a name would
	 * change when anything after it is rewritten (an OPT RR, say): it is malformed.
	 */
	w.n = 0;
	w_hdr(&w, 1, 0, 1, 1, 0, 0);
	w_u8(&w, 14);
	for (i = 0; i < 13; i++)
		w_u8(&w, 'q');
	w_u8(&w, 9);
	w_u8(&w, 0);
	w_u32(&w, 0x00010001);
	CHECK_EQ(w.n, 32);
	w_ptr(&w, 26);
	w_rr(&w, DNS_TYPE_A, 4);
	w_u32(&w, 0xc0000201);
	CHECK(parse_fails(&w));
	/* Aimed at the start of the question name, it is a prior occurrence and parses. */
	dns_put16(w.b + 32, 0xc000 | 12);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);

	/* Label types 0x40 and 0x80, i.e. a label "longer" than 63. */
	build_query(&w, "abc", DNS_TYPE_A, false);
	w.b[12] = 0x40;
	CHECK(parse_fails(&w));
	w.b[12] = 0x80 | 3;
	CHECK(parse_fails(&w));
	w.n = 0;
	w_hdr(&w, 1, 0, 1, 0, 0, 0);
	w_u8(&w, 64);
	for (i = 0; i < 64; i++)
		w_u8(&w, 'a');
	w_u8(&w, 0);
	w_u32(&w, 0x00010001);
	CHECK(parse_fails(&w));
	/* 63 is the longest label. */
	w.n = 0;
	w_hdr(&w, 1, 0, 1, 0, 0, 0);
	w_u8(&w, 63);
	for (i = 0; i < 63; i++)
		w_u8(&w, 'a');
	w_u8(&w, 0);
	w_u32(&w, 0x00010001);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.q.name_len, 65);

	/* Names of exactly 255 octets (63+63+63+61 labels) parse, 256 do not. */
	{
		static const unsigned int lens[2][4] = {{63, 63, 63, 61}, {63, 63, 63, 62}};
		int k, j;

		for (k = 0; k < 2; k++) {
			w.n = 0;
			w_hdr(&w, 1, 0, 1, 0, 0, 0);
			for (j = 0; j < 4; j++) {
				w_u8(&w, lens[k][j]);
				for (i = 0; i < (int)lens[k][j]; i++)
					w_u8(&w, 'a' + j);
			}
			w_u8(&w, 0);
			w_u32(&w, 0x00010001);
			if (k == 0) {
				CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
				CHECK_EQ(m.q.name_len, 255);
			} else {
				CHECK(parse_fails(&w));
			}
		}
		/* 255 octets in the question, one more label through compression. */
		w.n = 0;
		w_hdr(&w, 1, 0, 1, 1, 0, 0);
		for (j = 0; j < 4; j++) {
			w_u8(&w, lens[0][j]);
			for (i = 0; i < (int)lens[0][j]; i++)
				w_u8(&w, 'a' + j);
		}
		w_u8(&w, 0);
		w_u32(&w, 0x00010001);
		at = w.n;
		w_ptr(&w, 12);
		w_rr(&w, DNS_TYPE_A, 0);
		CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
		w.n = at;
		w_labels(&w, "x");
		w_ptr(&w, 12);
		w_rr(&w, DNS_TYPE_A, 0);
		CHECK(parse_fails(&w));
	}

	/* A name that runs off the end of the message: label longer than what is left. */
	w.n = 0;
	w_hdr(&w, 1, 0, 1, 0, 0, 0);
	w_u8(&w, 10);
	w_bytes(&w, "abc", 3);
	CHECK(parse_fails(&w));
}

static void test_structure_bad(void)
{
	struct wire w;
	struct dns_msg m;
	size_t at;

	/* Truncated header; the empty message. */
	build_query(&w, "a.example", DNS_TYPE_A, false);
	w.n = 11;
	CHECK(parse_fails(&w));
	w.n = 0;
	CHECK(parse_fails(&w));
	CHECK_EQ(dns_msg_parse(&m, w.b, 0), -EBADMSG);

	/* Question without its class. */
	build_query(&w, "a.example", DNS_TYPE_A, false);
	w.n -= 2;
	CHECK(parse_fails(&w));

	/* qdcount 2, with two complete questions. */
	build_query(&w, "a.example", DNS_TYPE_A, false);
	set_count(&w, 4, 2);
	w_ptr(&w, 12);
	w_u32(&w, 0x001c0001);
	CHECK(parse_fails(&w));

	/* An answer RR cut inside its fixed part; then RDLENGTH past the end. */
	build_query(&w, "a.example", DNS_TYPE_A, false);
	set_count(&w, 6, 1);
	at = w.n;
	w_ptr(&w, 12);
	w_rr(&w, DNS_TYPE_A, 4);
	w_bytes(&w, "\1\2\3\4", 4);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	w.n = at + 2 + 7;
	CHECK(parse_fails(&w));
	w.n = at;
	w_ptr(&w, 12);
	w_rr(&w, DNS_TYPE_A, 5);
	w_bytes(&w, "\1\2\3\4", 4);
	CHECK(parse_fails(&w));
	/* Trailing garbage. */
	w.n = at;
	w_ptr(&w, 12);
	w_rr(&w, DNS_TYPE_A, 4);
	w_bytes(&w, "\1\2\3\4\5", 5);
	CHECK(parse_fails(&w));

	/* A message longer than DNS_MAX_MSG. */
	{
		static uint8_t big[DNS_MAX_MSG + 1];

		build_query(&w, "a", DNS_TYPE_A, false);
		memcpy(big, w.b, w.n);
		CHECK_EQ(dns_msg_parse(&m, big, sizeof(big)), -EBADMSG);
	}
}

static void test_opt_bad(void)
{
	struct wire w;
	struct dns_msg m;
	size_t at;

	/* Two OPT RRs. */
	build_query(&w, "a.example", DNS_TYPE_A, true);
	set_count(&w, 10, 2);
	w_opt(&w, 512, 0);
	CHECK(parse_fails(&w));

	/* OPT in the answer section, and in the authority section. */
	build_query(&w, "a.example", DNS_TYPE_A, true);
	set_count(&w, 10, 0);
	set_count(&w, 6, 1);
	CHECK(parse_fails(&w));
	set_count(&w, 6, 0);
	set_count(&w, 8, 1);
	CHECK(parse_fails(&w));
	set_count(&w, 8, 0);
	set_count(&w, 10, 1);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);

	/*
	 * OPT whose owner is not the root: "x."; then a pointer to a root question name, which
	 * is refused too (RFC 6891 6.1.2: the owner is the single root octet).
	 */
	build_query(&w, "a.example", DNS_TYPE_A, false);
	set_count(&w, 10, 1);
	w_name(&w, "x");
	w_u16(&w, DNS_TYPE_OPT);
	w_u16(&w, 4096);
	w_u32(&w, 0);
	w_u16(&w, 0);
	CHECK(parse_fails(&w));
	build_query(&w, "", TYPE_NS, false);
	set_count(&w, 10, 1);
	w_ptr(&w, 12);
	w_u16(&w, DNS_TYPE_OPT);
	w_u16(&w, 4096);
	w_u32(&w, 0);
	w_u16(&w, 0);
	CHECK(parse_fails(&w));

	/* OPT options that do not fill the RDATA exactly. */
	build_query(&w, "a.example", DNS_TYPE_A, true);
	at = w.n - 2;
	w.n = at;
	w_u16(&w, 3);
	w_bytes(&w, "\0\12\0", 3);
	CHECK(parse_fails(&w));
	w.n = at;
	w_u16(&w, 6);
	w_u16(&w, 10);
	w_u16(&w, 3);
	w_bytes(&w, "\1\2", 2);
	CHECK(parse_fails(&w));
}

static void test_query_check(void)
{
	struct wire w;
	struct dns_msg m;

	build_query(&w, "www.example.com", DNS_TYPE_A, true);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(dns_query_check(&m), 0);

	dns_put16(w.b + 2, DNS_FLAG_QR | DNS_FLAG_RD);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(dns_query_check(&m), -EBADMSG);

	/* other opcodes and header-only queries go to the upstream, which answers them */
	dns_put16(w.b + 2, OPCODE_NOTIFY << 11 | DNS_FLAG_AA);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(dns_query_check(&m), 0);
	CHECK(!dns_query_is_stub(&m));

	w.n = 0;
	w_hdr(&w, 7, DNS_FLAG_RD, 0, 0, 0, 0);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(dns_query_check(&m), 0);
	CHECK(!dns_query_is_stub(&m));
}

/* A stub's query: QUERY, RD, one IN question, no zone transfer. */
static void test_query_is_stub(void)
{
	struct wire w;
	struct dns_msg m;

	build_query(&w, "www.example.com", DNS_TYPE_A, true);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK(dns_query_is_stub(&m));
	dns_put16(w.b + 2, DNS_FLAG_CD); /* RD=0: for the server it was sent to */
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK(!dns_query_is_stub(&m));
	build_query(&w, "example.com", 252, false); /* AXFR */
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK(!dns_query_is_stub(&m));
	build_query(&w, "example.com", 251, false); /* IXFR */
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK(!dns_query_is_stub(&m));
	build_query(&w, "version.bind", DNS_TYPE_TXT, false);
	dns_put16(w.b + w.n - 2, 3); /* class CH */
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK(!dns_query_is_stub(&m));
}

/*
 * The option kinds an OPT RR holds; dns_opt_clear empties the last OPT RR; an extended rcode
 * survives the removal of the OPT RR for a client that sent none (the RR stays, emptied).
 */
static void test_opt_options(void)
{
	static const uint8_t opts[] = {0,    10,   0,	8,  0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
				       0xaa, 0xaa, 0,	8,  0,	  7,	0,    1,    24,	  0,
				       203,  0,	   113, 0,  3,	  0,	0,    0xfd, 0xe9, 0,
				       1,    0xff, 0,	12, 0,	  2,	0,    0};
	struct wire w;
	struct dns_msg m;
	size_t n;

	build_query(&w, "www.example.com", DNS_TYPE_A, true);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.opt_seen, 0);
	CHECK(m.opt_last);
	dns_put16(w.b + w.n - 2, sizeof(opts));
	w_bytes(&w, opts, sizeof(opts));
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.opt_seen, DNS_OPTS_COOKIE | DNS_OPTS_ECS | DNS_OPTS_NSID | DNS_OPTS_OTHER |
				     DNS_OPTS_TRANSPORT);
	n = dns_opt_clear(w.b, &m);
	CHECK_EQ(n, w.n - sizeof(opts));
	CHECK_EQ(m.len, n);
	CHECK_EQ(m.opt_seen, 0);
	CHECK_EQ(dns_msg_parse(&m, w.b, n), 0);
	CHECK_EQ(m.opt_len, 11);
	CHECK_EQ(m.opt_seen, 0);

	/* BADVERS (16: extended rcode 1, rcode 0) to a client that sent no OPT RR */
	w.n = 0;
	w_hdr(&w, 1, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA, 1, 0, 0, 1);
	w_name(&w, "www.example.com");
	w_u16(&w, DNS_TYPE_A);
	w_u16(&w, DNS_CLASS_IN);
	w_opt(&w, 1232, 1u << 24);
	dns_put16(w.b + w.n - 2, 8);
	w_bytes(&w, "\0\12\0\4\xaa\xaa\xaa\xaa", 8); /* a COOKIE option: goes */
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	n = dns_answer_restore_view(w.b, &m, false, NULL);
	CHECK_EQ(dns_msg_parse(&m, w.b, n), 0);
	CHECK(m.has_opt);
	CHECK_EQ(m.opt_len, 11);
	CHECK_EQ(DNS_OPT_TTL_EXT_RCODE(m.opt_ttl), 1);
	CHECK_EQ(m.flags & DNS_RCODE_MASK, 0);
	/* extended rcode 0: the OPT RR goes, as before */
	dns_put32(w.b + m.opt_off + 5, 0);
	CHECK_EQ(dns_msg_parse(&m, w.b, n), 0);
	n = dns_answer_restore_view(w.b, &m, false, NULL);
	CHECK_EQ(dns_msg_parse(&m, w.b, n), 0);
	CHECK(!m.has_opt);
	CHECK_EQ(m.arcount, 0);
}

static void test_question_equal(void)
{
	struct wire w;
	struct dns_msg a, b;

	build_query(&w, "www.example.com", DNS_TYPE_A, false);
	CHECK_EQ(dns_msg_parse(&a, w.b, w.n), 0);
	build_query(&w, "WwW.ExAmple.COM", DNS_TYPE_A, true);
	CHECK_EQ(dns_msg_parse(&b, w.b, w.n), 0);
	CHECK(dns_question_equal(&a.q, &b.q));
	CHECK(dns_question_equal(&b.q, &a.q));

	build_query(&w, "www.example.com", DNS_TYPE_AAAA, false);
	CHECK_EQ(dns_msg_parse(&b, w.b, w.n), 0);
	CHECK(!dns_question_equal(&a.q, &b.q));

	build_query(&w, "www.example.com", DNS_TYPE_A, false);
	dns_put16(w.b + w.n - 2, 3); /* CH */
	CHECK_EQ(dns_msg_parse(&b, w.b, w.n), 0);
	CHECK(!dns_question_equal(&a.q, &b.q));

	build_query(&w, "www.example.net", DNS_TYPE_A, false);
	CHECK_EQ(dns_msg_parse(&b, w.b, w.n), 0);
	CHECK(!dns_question_equal(&a.q, &b.q));

	build_query(&w, "www.example.co", DNS_TYPE_A, false);
	CHECK_EQ(dns_msg_parse(&b, w.b, w.n), 0);
	CHECK(!dns_question_equal(&a.q, &b.q));

	/* '@' and '`' differ from 'A'..'Z' by 0x20 but are not letters. */
	build_query(&w, "a@", DNS_TYPE_A, false);
	CHECK_EQ(dns_msg_parse(&a, w.b, w.n), 0);
	build_query(&w, "a`", DNS_TYPE_A, false);
	CHECK_EQ(dns_msg_parse(&b, w.b, w.n), 0);
	CHECK(!dns_question_equal(&a.q, &b.q));
}

static void test_udp_limit(void)
{
	struct wire w;
	struct dns_msg m;

	build_query(&w, "a.example", DNS_TYPE_A, false);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(dns_udp_limit(&m, DNS_DEFAULT_UDP_CAP), 512);
	CHECK_EQ(dns_udp_limit(&m, 4096), 512);

	build_query(&w, "a.example", DNS_TYPE_A, true);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(m.opt_udp_size, 4096);
	CHECK_EQ(dns_udp_limit(&m, DNS_DEFAULT_UDP_CAP), 1232);
	CHECK_EQ(dns_udp_limit(&m, 65535), 4096);

	m.opt_udp_size = 100;
	CHECK_EQ(dns_udp_limit(&m, DNS_DEFAULT_UDP_CAP), 512);
	m.opt_udp_size = 0;
	CHECK_EQ(dns_udp_limit(&m, DNS_DEFAULT_UDP_CAP), 512);
	m.opt_udp_size = 1400;
	CHECK_EQ(dns_udp_limit(&m, DNS_DEFAULT_UDP_CAP), 1232);
	m.opt_udp_size = 800;
	CHECK_EQ(dns_udp_limit(&m, DNS_DEFAULT_UDP_CAP), 800);
	/* A cap below 512 never lowers the RFC 1035 minimum. */
	CHECK_EQ(dns_udp_limit(&m, 300), 512);
}

static void test_truncate(void)
{
	struct wire w, copy;
	struct dns_msg r, t;
	size_t qend;
	int n;

	/* With OPT. */
	build_long_answer(&w, true);
	CHECK(w.n > 3000);
	CHECK_EQ(dns_msg_parse(&r, w.b, w.n), 0);
	CHECK(r.has_opt);
	qend = r.question_end;
	CHECK_EQ(qend, DNS_HDR_LEN + 17 + 4);
	memcpy(&copy, &w, sizeof(w));

	/* Limit too small by one octet: -ENOSPC, buffer untouched. */
	CHECK_EQ(dns_truncate(w.b, &r, qend + 10), -ENOSPC);
	CHECK(!memcmp(w.b, copy.b, w.n));

	n = dns_truncate(w.b, &r, DNS_DEFAULT_UDP_CAP);
	CHECK_EQ(n, qend + 11);
	CHECK(dns_get16(w.b + 2) & DNS_FLAG_TC);
	CHECK_EQ(dns_get16(w.b + 2) & ~DNS_FLAG_TC, dns_get16(copy.b + 2));
	CHECK_EQ(dns_get16(w.b), 0x1234);
	CHECK_EQ(dns_get16(w.b + 4), 1);
	CHECK_EQ(dns_get16(w.b + 6), 0);
	CHECK_EQ(dns_get16(w.b + 8), 0);
	CHECK_EQ(dns_get16(w.b + 10), 1);
	CHECK(!memcmp(w.b + DNS_HDR_LEN, copy.b + DNS_HDR_LEN, qend - DNS_HDR_LEN));
	CHECK(n > 0 && !memcmp(w.b + qend, copy.b + r.opt_off, 11));
	CHECK_EQ(dns_msg_parse(&t, w.b, (size_t)n), 0);
	CHECK(t.has_opt);
	CHECK_EQ(t.opt_off, qend);
	CHECK_EQ(t.opt_udp_size, 1232);
	CHECK(dns_question_equal(&t.q, &r.q));

	/* Truncating the truncated message again changes nothing. */
	memcpy(&copy, &w, sizeof(w));
	CHECK_EQ(dns_truncate(w.b, &t, qend + 11), n);
	CHECK(!memcmp(w.b, copy.b, (size_t)n));

	/* Without OPT. */
	build_long_answer(&w, false);
	CHECK_EQ(dns_msg_parse(&r, w.b, w.n), 0);
	CHECK(!r.has_opt);
	CHECK_EQ(dns_truncate(w.b, &r, qend - 1), -ENOSPC);
	n = dns_truncate(w.b, &r, DNS_MIN_UDP);
	CHECK_EQ(n, qend);
	CHECK(dns_get16(w.b + 2) & DNS_FLAG_TC);
	CHECK_EQ(dns_get16(w.b + 6) + dns_get16(w.b + 8) + dns_get16(w.b + 10), 0);
	CHECK_EQ(dns_msg_parse(&t, w.b, (size_t)n), 0);
	CHECK(!t.has_opt);
	CHECK_EQ(t.qdcount, 1);
}

static void test_build_error(void)
{
	struct wire w;
	struct dns_msg q, a;
	uint8_t out[600];
	int n;

	/* SERVFAIL to a query with OPT. */
	build_query(&w, "WWW.example.com", DNS_TYPE_A, true);
	CHECK_EQ(dns_msg_parse(&q, w.b, w.n), 0);
	n = dns_build_error(out, sizeof(out), w.b, w.n, &q, DNS_RCODE_SERVFAIL);
	CHECK_EQ(n, q.question_end + 11);
	CHECK_EQ(dns_msg_parse(&a, out, (size_t)n), 0);
	CHECK_EQ(a.id, 0xbeef);
	CHECK_EQ(a.flags,
		 DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_CD | DNS_FLAG_RA | DNS_RCODE_SERVFAIL);
	CHECK_EQ(a.qdcount, 1);
	CHECK_EQ(a.ancount + a.nscount, 0);
	CHECK_EQ(a.arcount, 1);
	CHECK(dns_question_equal(&a.q, &q.q));
	CHECK(!memcmp(out + DNS_HDR_LEN, w.b + DNS_HDR_LEN, q.question_end - DNS_HDR_LEN));
	CHECK(a.has_opt);
	CHECK_EQ(a.opt_udp_size, DNS_DEFAULT_UDP_CAP);
	CHECK_EQ(a.opt_ttl, OPT_DO);

	/* Exactly enough room, one octet short. */
	CHECK_EQ(dns_build_error(out, (size_t)n, w.b, w.n, &q, DNS_RCODE_SERVFAIL), n);
	CHECK_EQ(dns_build_error(out, (size_t)n - 1, w.b, w.n, &q, DNS_RCODE_SERVFAIL), -ENOSPC);

	/* BADVERS: extended rcode 16 goes into the OPT TTL, header rcode 0. */
	n = dns_build_error(out, sizeof(out), w.b, w.n, &q, RCODE_BADVERS);
	CHECK_EQ(dns_msg_parse(&a, out, (size_t)n), 0);
	CHECK_EQ(a.flags & DNS_RCODE_MASK, 0);
	CHECK_EQ(a.opt_ttl, 1u << 24 | OPT_DO);
	CHECK_EQ(dns_build_error(out, sizeof(out), w.b, w.n, &q, 4096), -EINVAL);
	CHECK_EQ(dns_build_error(out, sizeof(out), w.b, w.n, &q, -1), -EINVAL);

	/* Built in place, over the query itself. */
	n = dns_build_error(w.b, sizeof(w.b), w.b, w.n, &q, DNS_RCODE_REFUSED);
	CHECK_EQ(dns_msg_parse(&a, w.b, (size_t)n), 0);
	CHECK_EQ(a.id, 0xbeef);
	CHECK_EQ(a.flags & DNS_RCODE_MASK, DNS_RCODE_REFUSED);
	CHECK(dns_question_equal(&a.q, &q.q));

	/* Without OPT: no OPT in the answer, and no room for an extended rcode. */
	build_query(&w, "www.example.com", DNS_TYPE_AAAA, false);
	dns_put16(w.b + 2, DNS_FLAG_AD | DNS_FLAG_TC | DNS_FLAG_AA);
	CHECK_EQ(dns_msg_parse(&q, w.b, w.n), 0);
	n = dns_build_error(out, sizeof(out), w.b, w.n, &q, DNS_RCODE_NOTIMP);
	CHECK_EQ(n, q.question_end);
	CHECK_EQ(dns_msg_parse(&a, out, (size_t)n), 0);
	CHECK_EQ(a.flags, DNS_FLAG_QR | DNS_FLAG_RA | DNS_RCODE_NOTIMP);
	CHECK(!a.has_opt);
	CHECK_EQ(a.arcount, 0);
	CHECK_EQ(dns_build_error(out, sizeof(out), w.b, w.n, &q, RCODE_BADVERS), -EINVAL);

	/* NULL q: the bare header, opcode kept. */
	memset(out, 0xee, sizeof(out));
	w.n = 0;
	w_hdr(&w, 0x0102, OPCODE_NOTIFY << 11 | DNS_FLAG_RD, 1, 0, 0, 0);
	w_u8(&w, 0xff);
	n = dns_build_error(out, sizeof(out), w.b, w.n, NULL, DNS_RCODE_FORMERR);
	CHECK_EQ(n, DNS_HDR_LEN);
	CHECK_EQ(out[DNS_HDR_LEN], 0xee);
	CHECK_EQ(dns_msg_parse(&a, out, (size_t)n), 0);
	CHECK_EQ(a.id, 0x0102);
	CHECK_EQ(a.flags,
		 OPCODE_NOTIFY << 11 | DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA | DNS_RCODE_FORMERR);
	CHECK_EQ(a.qdcount + a.ancount + a.nscount + a.arcount, 0);
	CHECK_EQ(dns_build_error(out, DNS_HDR_LEN - 1, w.b, w.n, NULL, DNS_RCODE_FORMERR), -ENOSPC);
	CHECK_EQ(dns_build_error(out, sizeof(out), w.b, DNS_HDR_LEN - 1, NULL, DNS_RCODE_FORMERR),
		 -EBADMSG);
	CHECK_EQ(dns_build_error(out, sizeof(out), w.b, w.n, NULL, RCODE_BADVERS), -EINVAL);

	/* EDNS version 1: BADVERS whatever was asked, in a version-0 OPT RR (RFC 6891 6.1.3) */
	build_query(&w, "www.example.com", DNS_TYPE_A, true);
	dns_put32(w.b + w.n - 6, 1u << 16 | OPT_DO);
	CHECK_EQ(dns_msg_parse(&q, w.b, w.n), 0);
	n = dns_build_error(out, sizeof(out), w.b, w.n, &q, DNS_RCODE_REFUSED);
	CHECK_EQ(dns_msg_parse(&a, out, (size_t)n), 0);
	CHECK_EQ(a.flags & DNS_RCODE_MASK, 0);
	CHECK(a.has_opt);
	CHECK_EQ(a.opt_ttl, 1u << 24 | OPT_DO);
	n = dns_build_address(out, sizeof(out), w.b, &q, AF_INET, (const uint8_t *)"\300\0\2\1",
			      60);
	CHECK_EQ(dns_msg_parse(&a, out, (size_t)n), 0);
	CHECK_EQ(a.ancount, 0);
	CHECK(!(a.flags & DNS_FLAG_AA));
	CHECK_EQ(a.opt_ttl >> 24, 1);
}

static void test_name_to_text(void)
{
	static const uint8_t root[] = {0};
	static const uint8_t www[] = "\3www\7Example\3com";
	static const uint8_t odd[] = "\3a.b\3c d\2\\\"\1\377\3_x-";
	static const uint8_t ptr[] = {3, 'w', 'w', 'w', 0xc0, 12};
	static const uint8_t ext[] = {0x41, 'a', 0};
	static const uint8_t overrun[] = {3, 'a', 'b', 0};
	static const uint8_t noroot[] = {1, 'a', 1, 'b'};
	static const uint8_t extra[] = {1, 'a', 0, 0};
	char out[1100];

	CHECK_EQ(dns_name_to_text(root, sizeof(root), out, sizeof(out)), 1);
	CHECK(!strcmp(out, "."));
	CHECK_EQ(dns_name_to_text(root, sizeof(root), out, 2), 1);
	CHECK_EQ(dns_name_to_text(root, sizeof(root), out, 1), -ENOSPC);

	CHECK_EQ(dns_name_to_text(www, sizeof(www), out, sizeof(out)), 16);
	CHECK(!strcmp(out, "www.Example.com."));
	CHECK_EQ(dns_name_to_text(www, sizeof(www), out, 17), 16);
	memset(out, 'z', sizeof(out));
	CHECK_EQ(dns_name_to_text(www, sizeof(www), out, 16), -ENOSPC);
	CHECK_EQ(out[0], 'z');
	CHECK_EQ(dns_name_to_text(www, sizeof(www), out, 0), -ENOSPC);

	CHECK_EQ(dns_name_to_text(odd, sizeof(odd), out, sizeof(out)),
		 (int)strlen("a\\046b.c\\032d.\\092\\034.\\255._x-."));
	CHECK(!strcmp(out, "a\\046b.c\\032d.\\092\\034.\\255._x-."));

	/* The longest name: 255 octets, every one escaped, fits in 4 * 255 + 1 octets. */
	{
		uint8_t name[DNS_MAX_NAME];
		size_t i, j, pos = 0;
		int n;

		for (i = 0; i < 4; i++) {
			size_t len = i < 3 ? 63 : 61;

			name[pos++] = (uint8_t)len;
			for (j = 0; j < len; j++)
				name[pos++] = '.';
		}
		name[pos++] = 0;
		CHECK_EQ(pos, DNS_MAX_NAME);
		n = dns_name_to_text(name, pos, out, sizeof(out));
		CHECK_EQ(n, 4 * 250 + 4);
		CHECK_EQ(strlen(out), (size_t)n);
		CHECK_EQ(dns_name_to_text(name, pos, out, (size_t)n), -ENOSPC);
	}

	CHECK_EQ(dns_name_to_text(root, 0, out, sizeof(out)), -EBADMSG);
	CHECK_EQ(dns_name_to_text(ptr, sizeof(ptr), out, sizeof(out)), -EBADMSG);
	CHECK_EQ(dns_name_to_text(ext, sizeof(ext), out, sizeof(out)), -EBADMSG);
	CHECK_EQ(dns_name_to_text(overrun, sizeof(overrun), out, sizeof(out)), -EBADMSG);
	CHECK_EQ(dns_name_to_text(noroot, sizeof(noroot), out, sizeof(out)), -EBADMSG);
	CHECK_EQ(dns_name_to_text(extra, sizeof(extra), out, sizeof(out)), -EBADMSG);
	CHECK_EQ(dns_name_to_text(www, DNS_MAX_NAME + 1, out, sizeof(out)), -EBADMSG);
}

/* --- OPT rewriting for the upstream (padding, keepalive) and its undoing ------------- */

/* opt_has - does the OPT RR of the parsed message carry option code (with length olen)? */
static bool opt_has(const uint8_t *buf, const struct dns_msg *m, uint16_t code, int olen)
{
	size_t off = m->opt_off + 11, end = m->opt_off + m->opt_len;

	while (end - off >= 4) {
		uint16_t c = dns_get16(buf + off), l = dns_get16(buf + off + 2);

		if (c == code && (olen < 0 || l == olen))
			return true;
		off += 4 + (size_t)l;
	}
	return false;
}

static void test_query_rewrite(void)
{
	/* www.example.test A, RD, no OPT */
	static const uint8_t plain[] = {
		0x12, 0x34, 0x01, 0x00, 0,   1,	  0,   0, 0,   0,   0,	 0,   3, 'w', 'w', 'w', 7,
		'e',  'x',  'a',  'm',	'p', 'l', 'e', 4, 't', 'e', 's', 't', 0, 0,   1,   0,	1};
	uint8_t out[1024], withopt[256], ans[1024];
	struct dns_msg m, r;
	uint16_t ka = 0;
	int n;

	CHECK_EQ(dns_msg_parse(&m, plain, sizeof(plain)), 0);
	n = dns_query_rewrite(out, sizeof(out), plain, &m, true, DNS_PAD_BLOCK);
	CHECK_EQ(n, 128);
	CHECK_EQ(dns_msg_parse(&r, out, (size_t)n), 0);
	CHECK(r.has_opt);
	CHECK_EQ(r.arcount, 1);
	CHECK_EQ(r.opt_udp_size, DNS_DEFAULT_UDP_CAP);
	CHECK(opt_has(out, &r, DNS_EDNS_KEEPALIVE, 0));
	CHECK(opt_has(out, &r, DNS_EDNS_PADDING, -1));
	/* header (but arcount) and question kept */
	CHECK(memcmp(out, plain, 10) == 0);
	CHECK(memcmp(out + 12, plain + 12, sizeof(plain) - 12) == 0);

	/* The answer to it, as a server echoing the OPT with a keepalive timeout of 30 s. */
	memcpy(ans, out, (size_t)n);
	ans[2] |= 0x80;
	CHECK_EQ(dns_msg_parse(&r, ans, (size_t)n), 0);
	/* replace the empty keepalive option's place: rebuild OPT rdata = keepalive(300) + pad */
	{
		size_t rd = r.opt_off + 11;

		dns_put16(ans + rd, DNS_EDNS_KEEPALIVE);
		dns_put16(ans + rd + 2, 2);
		dns_put16(ans + rd + 4, 300);
		dns_put16(ans + r.opt_off + 9, 6);
		CHECK_EQ(dns_msg_parse(&r, ans, rd + 6), 0);
	}
	n = (int)dns_answer_restore(ans, &r, false, &ka);
	CHECK_EQ(ka, 300);
	CHECK_EQ(n, (int)sizeof(plain));
	CHECK_EQ(dns_msg_parse(&r, ans, (size_t)n), 0);
	CHECK(!r.has_opt);
	CHECK_EQ(r.arcount, 0);

	/* A query with its own OPT: a cookie (kept) and its own padding (replaced). */
	memcpy(withopt, plain, sizeof(plain));
	withopt[11] = 1;
	{
		size_t o = sizeof(plain);
		static const uint8_t opt[] = {0, 0,  41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 20,
					      0, 10, 0,	 8,    1,    2, 3, 4,	 5, 6, 7,
					      8, 0,  12, 0,    4,    0, 0, 0,	 0};

		memcpy(withopt + o, opt, sizeof(opt));
		CHECK_EQ(dns_msg_parse(&m, withopt, o + sizeof(opt)), 0);
	}
	n = dns_query_rewrite(out, sizeof(out), withopt, &m, false, DNS_PAD_BLOCK);
	CHECK_EQ(n % DNS_PAD_BLOCK, 0);
	CHECK_EQ(dns_msg_parse(&r, out, (size_t)n), 0);
	CHECK_EQ(r.arcount, 1);
	CHECK_EQ(r.opt_udp_size, 1232);
	CHECK_EQ(r.opt_ttl & 0x8000, 0x8000); /* DO bit kept */
	CHECK(opt_has(out, &r, 10, 8));
	CHECK(!opt_has(out, &r, DNS_EDNS_KEEPALIVE, -1));
	out[2] |= 0x80;
	n = (int)dns_answer_restore(out, &r, true, NULL);
	CHECK_EQ(dns_msg_parse(&r, out, (size_t)n), 0);
	CHECK(r.has_opt);
	CHECK_EQ(r.opt_len, 11 + 12); /* only the cookie is left */
	CHECK(opt_has(out, &r, 10, 8));
	CHECK(!opt_has(out, &r, DNS_EDNS_PADDING, -1));

	/* No padding asked: the OPT RR is added, nothing else. */
	CHECK_EQ(dns_msg_parse(&m, plain, sizeof(plain)), 0);
	CHECK_EQ(dns_query_rewrite(out, sizeof(out), plain, &m, false, 0), (int)sizeof(plain) + 11);
	/* Too small an output buffer. */
	CHECK_EQ(dns_query_rewrite(out, 40, plain, &m, true, DNS_PAD_BLOCK), -ENOSPC);
	/* no room for the padding itself: sent with an empty padding option rather than not */
	CHECK_EQ(dns_query_rewrite(out, 100, plain, &m, true, DNS_PAD_BLOCK),
		 (int)sizeof(plain) + 11 + 4 + 4);
	/* An answer without OPT is left as it is. */
	CHECK_EQ(dns_msg_parse(&r, plain, sizeof(plain)), 0);
	CHECK_EQ(dns_answer_restore(ans, &r, true, NULL), sizeof(plain));
}

/* collect - dns_answer_addrs' callback: the addresses as text-free records, in order. */
struct got {
	int family[8];
	uint8_t addr[8][16];
	uint32_t ttl[8];
	size_t n;
};

static int collect(void *data, int family, const uint8_t *addr, uint32_t ttl)
{
	struct got *g = data;

	if (g->n == 8)
		return 7;
	g->family[g->n] = family;
	memcpy(g->addr[g->n], addr, family == AF_INET6 ? 16 : 4);
	g->ttl[g->n++] = ttl;
	return 0;
}

/*
 * An answer to WWW.example.test A: the chain's records out of order (the A of the last link
 * first, then the CNAMEs backwards), names in mixed case and behind pointers, one A record of
 * a name outside the chain, one A of the wrong length, an AAAA of a link.
 */
static void test_answer_addrs(void)
{
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 9};
	struct wire w = {.n = 0};
	struct dns_msg m;
	struct got g = {.n = 0};
	size_t q = DNS_HDR_LEN, mid, last;

	w_hdr(&w, 1, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA, 1, 6, 0, 0);
	w_name(&w, "WWW.example.test");
	w_u16(&w, DNS_TYPE_A);
	w_u16(&w, DNS_CLASS_IN);
	/* last.cdn.test A 203.0.113.7 (owner written out: the pointers come later) */
	last = w.n;
	w_name(&w, "last.cdn.test");
	w_rr(&w, DNS_TYPE_A, 4);
	w_bytes(&w, "\xcb\x00\x71\x07", 4);
	/* mid.example.test CNAME LAST.cdn.test */
	mid = w.n;
	w_name(&w, "mid.example.test");
	w_rr(&w, TYPE_CNAME, 7);
	w_labels(&w, "LAST");
	w_ptr(&w, last + 5);
	/* www.example.test CNAME mid.example.test */
	w_ptr(&w, q);
	w_rr(&w, TYPE_CNAME, 2);
	w_ptr(&w, mid);
	/* other.test A 192.0.2.1: not in the chain */
	w_name(&w, "other.test");
	w_rr(&w, DNS_TYPE_A, 4);
	w_bytes(&w, "\xc0\x00\x02\x01", 4);
	/* mid.example.test A with 3 octets: not an address */
	w_ptr(&w, mid);
	w_rr(&w, DNS_TYPE_A, 3);
	w_bytes(&w, "\x01\x02\x03", 3);
	/* mid.example.test AAAA 2001:db8::9 */
	w_ptr(&w, mid);
	w_rr(&w, DNS_TYPE_AAAA, 16);
	w_bytes(&w, v6, 16);
	CHECK_EQ(dns_msg_parse(&m, w.b, w.n), 0);
	CHECK_EQ(dns_answer_addrs(w.b, &m, collect, &g), 0);
	CHECK_EQ(g.n, 2);
	CHECK(g.family[0] == AF_INET && memcmp(g.addr[0], "\xcb\x00\x71\x07", 4) == 0);
	CHECK(g.family[1] == AF_INET6 && memcmp(g.addr[1], v6, 16) == 0);
	CHECK_EQ(g.ttl[0], 300);

	/* fn's non-zero return stops the walk and comes back */
	g.n = 8;
	CHECK_EQ(dns_answer_addrs(w.b, &m, collect, &g), 7);

	/* an RR running past the end: -EBADMSG (the parse checked only the counts' fit) */
	g.n = 0;
	m.len -= 1;
	CHECK_EQ(dns_answer_addrs(w.b, &m, collect, &g), -EBADMSG);
}

int main(void)
{
	test_query();
	test_compressed_answer();
	test_names_bad();
	test_structure_bad();
	test_opt_bad();
	test_query_check();
	test_query_is_stub();
	test_opt_options();
	test_question_equal();
	test_udp_limit();
	test_truncate();
	test_build_error();
	test_name_to_text();
	test_query_rewrite();
	test_answer_addrs();
	return check_done("dns");
}

/*
 * test_svcb.c - unit tests for the DDR SVCB reader (src/svcb.c): answers to
 * "_dns.resolver.arpa SVCB" built octet by octet, so each test shows the wire layout it feeds.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "dotgw/svcb.h"

struct wire {
	uint8_t b[2048];
	size_t n;
};

static void w_u8(struct wire *w, unsigned int v)
{
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
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

/* w_name - "a.b" as labels and the root; "." is the root alone. */
static void w_name(struct wire *w, const char *dotted)
{
	const char *p = dotted;

	while (*p && strcmp(p, ".") != 0) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		w_u8(w, (unsigned int)l);
		w_bytes(w, p, l);
		p += l + (dot ? 1 : 0);
	}
	w_u8(w, 0);
}

/* answer - header (QR RD RA, ancount an) and the question _dns.resolver.arpa SVCB IN. */
static void answer(struct wire *w, unsigned int an)
{
	w->n = 0;
	w_u16(w, 0x1234);
	w_u16(w, 0x8180);
	w_u16(w, 1);
	w_u16(w, an);
	w_u16(w, 0);
	w_u16(w, 0);
	w_name(w, "_dns.resolver.arpa");
	w_u16(w, DNS_TYPE_SVCB);
	w_u16(w, 1);
}

/* rr_begin - an SVCB RR owned by the question's name (a pointer to offset 12); returns where
 * its RDLENGTH is, for rr_end. */
static size_t rr_begin(struct wire *w, uint32_t ttl, unsigned int prio, const char *target)
{
	size_t at;

	w_u16(w, 0xc00c);
	w_u16(w, DNS_TYPE_SVCB);
	w_u16(w, 1);
	w_u32(w, ttl);
	at = w->n;
	w_u16(w, 0);
	w_u16(w, prio);
	w_name(w, target);
	return at;
}

static void rr_end(struct wire *w, size_t at)
{
	size_t len = w->n - at - 2;

	w->b[at] = (uint8_t)(len >> 8);
	w->b[at + 1] = (uint8_t)len;
}

static void key_alpn(struct wire *w, const char *ids) /* "dot,h2" */
{
	size_t at, len;
	const char *p = ids;

	w_u16(w, 1);
	at = w->n;
	w_u16(w, 0);
	while (*p) {
		const char *c = strchr(p, ',');
		size_t l = c ? (size_t)(c - p) : strlen(p);

		w_u8(w, (unsigned int)l);
		w_bytes(w, p, l);
		p += l + (c ? 1 : 0);
	}
	len = w->n - at - 2;
	w->b[at] = 0;
	w->b[at + 1] = (uint8_t)len;
}

static void key_port(struct wire *w, unsigned int port)
{
	w_u16(w, 3);
	w_u16(w, 2);
	w_u16(w, port);
}

static void key_v4(struct wire *w, const uint8_t *a, unsigned int n)
{
	w_u16(w, 4);
	w_u16(w, 4 * n);
	w_bytes(w, a, 4 * n);
}

static int pick(const struct wire *w, struct svcb_dot *d, uint32_t *ttl)
{
	struct dns_msg m;

	if (dns_msg_parse(&m, w->b, w->n) < 0)
		return -100;
	return svcb_dot_pick(w->b, &m, d, ttl);
}

static const uint8_t a1[] = {192, 0, 2, 10}, a2[] = {192, 0, 2, 11, 192, 0, 2, 12};

static void test_good(void)
{
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x0a};
	struct wire w;
	struct svcb_dot d;
	uint32_t ttl = 0;
	size_t at;

	/* priority 2 first (DoH only), then priority 2 DoT on 8853, then priority 1 DoT */
	answer(&w, 3);
	at = rr_begin(&w, 300, 2, "doh.Example.TEST");
	key_alpn(&w, "h2,h3");
	w_u16(&w, 7); /* dohpath */
	w_u16(&w, 16);
	w_bytes(&w, "/dns-query{?dns}", 16);
	rr_end(&w, at);
	at = rr_begin(&w, 200, 2, "dot2.example.test");
	key_alpn(&w, "dot");
	key_port(&w, 8853);
	key_v4(&w, a2, 2);
	rr_end(&w, at);
	at = rr_begin(&w, 600, 1, "DNS.example.test");
	w_u16(&w, 0); /* mandatory: alpn, port */
	w_u16(&w, 4);
	w_u16(&w, 1);
	w_u16(&w, 3);
	key_alpn(&w, "h2,dot");
	key_port(&w, 853);
	key_v4(&w, a1, 1);
	w_u16(&w, 6);
	w_u16(&w, 16);
	w_bytes(&w, v6, 16);
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, &ttl), 1);
	CHECK_EQ(d.priority, 1);
	CHECK_EQ(d.port, 853);
	CHECK(strcmp(d.target, "dns.example.test") == 0);
	CHECK_EQ(d.n_v4, 1);
	CHECK(memcmp(d.v4[0], a1, 4) == 0);
	CHECK_EQ(d.n_v6, 1);
	CHECK(memcmp(d.v6[0], v6, 16) == 0);
	CHECK_EQ(d.ttl, 600);
	CHECK_EQ(ttl, 200);
}

static void test_default_port(void)
{
	struct wire w;
	struct svcb_dot d;
	size_t at;

	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 1);
	CHECK_EQ(d.port, SVCB_DOT_PORT);
	CHECK_EQ(d.n_v4, 0);
}

/* Each of these records is skipped: the answer holds no designation. */
static void test_unusable(void)
{
	struct wire w;
	struct svcb_dot d;
	uint32_t ttl;
	size_t at;

	/* DoH only */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	key_alpn(&w, "h2");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, &ttl), 0);
	CHECK_EQ(ttl, 60);

	/* AliasMode */
	answer(&w, 1);
	at = rr_begin(&w, 60, 0, "dns.example.test");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* a mandatory key we do not know (ech) */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	w_u16(&w, 0);
	w_u16(&w, 2);
	w_u16(&w, 5);
	key_alpn(&w, "dot");
	w_u16(&w, 5);
	w_u16(&w, 1);
	w_u8(&w, 0);
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* keys out of order */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	key_port(&w, 853);
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* a repeated key */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	key_alpn(&w, "dot");
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* target "." (no host name to verify) */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, ".");
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* a target with a character no host name has */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.ex ample.test");
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* ipv4hint not a multiple of 4; port of 3 octets; empty alpn id */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	key_alpn(&w, "dot");
	w_u16(&w, 4);
	w_u16(&w, 3);
	w_bytes(&w, a1, 3);
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	key_alpn(&w, "dot");
	w_u16(&w, 3);
	w_u16(&w, 3);
	w_bytes(&w, a1, 3);
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "dns.example.test");
	w_u16(&w, 1);
	w_u16(&w, 5);
	w_u8(&w, 3);
	w_bytes(&w, "dot", 3);
	w_u8(&w, 0);
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* a compressed target (RFC 9460 2.2 forbids it) */
	answer(&w, 1);
	at = rr_begin(&w, 60, 1, "x");
	w.n -= 3; /* drop "\1x\0": write a pointer instead */
	w_u16(&w, 0xc00c);
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 0);

	/* owned by another name */
	answer(&w, 1);
	w_name(&w, "_dns.example.test");
	w_u16(&w, DNS_TYPE_SVCB);
	w_u16(&w, 1);
	w_u32(&w, 60);
	at = w.n;
	w_u16(&w, 0);
	w_u16(&w, 1);
	w_name(&w, "dns.example.test");
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, &ttl), 0);
	CHECK_EQ(ttl, UINT32_MAX);

	/* no answer at all (NODATA) */
	answer(&w, 0);
	CHECK_EQ(pick(&w, &d, &ttl), 0);
	CHECK_EQ(ttl, UINT32_MAX);
}

/* A bad record next to a good one: the good one is used. */
static void test_bad_neighbour(void)
{
	struct wire w;
	struct svcb_dot d;
	size_t at;

	answer(&w, 2);
	at = rr_begin(&w, 60, 1, "bad.example.test");
	key_alpn(&w, "dot");
	w_u16(&w, 3); /* truncated: a key with no room for its length */
	rr_end(&w, at);
	at = rr_begin(&w, 60, 2, "good.example.test");
	key_alpn(&w, "dot");
	rr_end(&w, at);
	CHECK_EQ(pick(&w, &d, NULL), 1);
	CHECK(strcmp(d.target, "good.example.test") == 0);
}

static void test_wrong_question(void)
{
	struct wire w;
	struct svcb_dot d;
	uint8_t q[SVCB_QUERY_LEN];
	struct dns_msg m;
	size_t n;

	answer(&w, 0);
	w.b[w.n - 3] = 1; /* qtype A */
	CHECK_EQ(pick(&w, &d, NULL), -EBADMSG);
	answer(&w, 0);
	w.b[13] = 'X'; /* "_Xns" */
	CHECK_EQ(pick(&w, &d, NULL), -EBADMSG);

	/* the query: one question, RD, not QR; not an answer */
	n = svcb_build_query(q, 0xbeef);
	CHECK_EQ(n, SVCB_QUERY_LEN);
	CHECK_EQ(dns_msg_parse(&m, q, n), 0);
	CHECK_EQ(m.id, 0xbeef);
	CHECK_EQ(m.qdcount, 1);
	CHECK_EQ(m.q.qtype, DNS_TYPE_SVCB);
	CHECK(m.flags & DNS_FLAG_RD);
	CHECK(svcb_is_dns_resolver_arpa(m.q.name, m.q.name_len));
	CHECK_EQ(svcb_dot_pick(q, &m, &d, NULL), -EBADMSG);
}

static void test_name(void)
{
	static const uint8_t upper[] = "\4_DNS\10Resolver\4ARPA";
	static const uint8_t other[] = "\4_dns\10resolver\4arpb";

	CHECK(svcb_is_dns_resolver_arpa(upper, sizeof(upper)));
	CHECK(!svcb_is_dns_resolver_arpa(other, sizeof(other)));
	CHECK(!svcb_is_dns_resolver_arpa(upper, sizeof(upper) - 1));
}

int main(void)
{
	test_good();
	test_default_port();
	test_unusable();
	test_bad_neighbour();
	test_wrong_question();
	test_name();
	return check_done("svcb");
}

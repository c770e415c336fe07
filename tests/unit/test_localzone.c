/* test_localzone.c - the locally served zones: which names, and the answers (RFC 6303, 6761). */
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/localzone.h"
#include "dotgw/policy.h"

static uint8_t q[600], out[1024];
static size_t qlen;
static struct dns_msg m, r;

/* ask - build a query for name/type (with an OPT RR when edns), parse it; 0 or -1. */
static int ask(const char *name, uint16_t type, bool edns)
{
	uint8_t wire[DNS_MAX_NAME], len;

	if (policy_name_parse(name, wire, &len) < 0)
		return -1;
	memset(q, 0, sizeof(q));
	dns_put16(q, 0x1234);
	dns_put16(q + 2, DNS_FLAG_RD);
	dns_put16(q + 4, 1);
	dns_put16(q + 10, edns ? 1 : 0);
	memcpy(q + 12, wire, len);
	qlen = 12u + len;
	dns_put16(q + qlen, type);
	dns_put16(q + qlen + 2, DNS_CLASS_IN);
	qlen += 4;
	if (edns) {
		q[qlen] = 0;
		dns_put16(q + qlen + 1, DNS_TYPE_OPT);
		dns_put16(q + qlen + 3, 1232);
		qlen += DNS_OPT_MIN_LEN;
	}
	return dns_msg_parse(&m, q, qlen);
}

/* answer - dotgw's answer to name/type; its rcode, or -1 (not a local zone / no answer) */
static int answer(const char *name, uint16_t type, bool edns)
{
	struct localzone_match z;
	int n;

	if (ask(name, type, edns) < 0 || !localzone_find(m.q.name, m.q.name_len, &z))
		return -1;
	n = localzone_answer(out, sizeof(out), q, &m, &z);
	if (n < 0 || dns_msg_parse(&r, out, (size_t)n) < 0)
		return -1;
	return r.flags & DNS_RCODE_MASK;
}

static bool found(const char *name, const char *zone)
{
	struct localzone_match z;

	if (ask(name, DNS_TYPE_A, false) < 0 || !localzone_find(m.q.name, m.q.name_len, &z))
		return zone == NULL;
	return zone && strcmp(z.zone, zone) == 0;
}

int main(void)
{
	static const uint8_t soa_tail[] = "\6nobody\7invalid";
	uint8_t a4[4] = {10, 1, 2, 3}, a6[16] = {0xfd};

	/* the table */
	CHECK(found("3.2.1.10.in-addr.arpa", "10.in-addr.arpa"));
	CHECK(found("10.in-addr.arpa", "10.in-addr.arpa"));
	CHECK(found("1.16.172.in-addr.arpa", "172.in-addr.arpa"));
	CHECK(found("31.172.in-addr.arpa", "172.in-addr.arpa"));
	CHECK(found("1.32.172.in-addr.arpa", NULL));
	CHECK(found("1.15.172.in-addr.arpa", NULL));
	CHECK(found("1.016.172.in-addr.arpa", NULL));
	CHECK(found("1.64.100.in-addr.arpa", "100.in-addr.arpa"));
	CHECK(found("1.128.100.in-addr.arpa", NULL));
	CHECK(found("5.168.192.IN-ADDR.ARPA.", "168.192.in-addr.arpa"));
	CHECK(found("1.169.192.in-addr.arpa", NULL));
	CHECK(found("8.8.8.8.in-addr.arpa", NULL));
	CHECK(found("255.255.255.255.in-addr.arpa", "255.255.255.255.in-addr.arpa"));
	CHECK(found("53.2.0.192.in-addr.arpa", "2.0.192.in-addr.arpa"));
	CHECK(found("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
		    "1."
		    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"));
	CHECK(found("0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
		    NULL));
	CHECK(found("1.d.f.ip6.arpa", "d.f.ip6.arpa"));
	CHECK(found("b.e.f.ip6.arpa", "b.e.f.ip6.arpa"));
	CHECK(found("c.e.f.ip6.arpa", NULL));
	CHECK(found("1.8.b.d.0.1.0.0.2.ip6.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"));
	CHECK(found("printer.home.arpa", "home.arpa"));
	CHECK(found("printer.local", "local"));
	CHECK(found("localhost", "localhost"));
	CHECK(found("a.localhost.", "localhost"));
	CHECK(found("x.invalid", "invalid"));
	CHECK(found("_dns.resolver.arpa", "resolver.arpa"));
	CHECK(found("www.example.test", NULL));
	CHECK(found("local.example", NULL));
	CHECK(found("notlocal", NULL));
	CHECK(found("arpa", NULL));
	CHECK(found(".", NULL));

	/* RFC 6303: NXDOMAIN below the apex, with the zone's SOA */
	CHECK_EQ(answer("3.2.1.10.in-addr.arpa", 12, true), DNS_RCODE_NXDOMAIN);
	CHECK_EQ(r.id, 0x1234);
	CHECK(r.flags & DNS_FLAG_AA);
	CHECK(r.flags & DNS_FLAG_RD);
	CHECK_EQ(r.ancount, 0);
	CHECK_EQ(r.nscount, 1);
	CHECK(r.has_opt);
	/* the SOA: owner and MNAME point at the zone's suffix of the question name */
	{
		size_t off = r.question_end, zone = 12 + 6;

		CHECK_EQ(dns_get16(out + off), 0xc000 | zone);
		CHECK_EQ(dns_get16(out + off + 2), DNS_TYPE_SOA);
		CHECK_EQ(dns_get32(out + off + 6), LOCALZONE_TTL);
		CHECK_EQ(dns_get16(out + off + 10), 2 + 16 + 20);
		CHECK_EQ(dns_get16(out + off + 12), 0xc000 | zone);
		CHECK(memcmp(out + off + 14, soa_tail, 16) == 0);
		CHECK_EQ(dns_get32(out + off + 30), 1);
		CHECK_EQ(dns_get32(out + off + 34), 3600);
		CHECK_EQ(dns_get32(out + off + 38), 1200);
		CHECK_EQ(dns_get32(out + off + 42), 604800);
		CHECK_EQ(dns_get32(out + off + 46), 10800);
	}
	/* the apex: SOA and NS answered, other types NODATA */
	CHECK_EQ(answer("10.in-addr.arpa", DNS_TYPE_SOA, false), DNS_RCODE_NOERROR);
	CHECK_EQ(r.ancount, 1);
	CHECK_EQ(r.nscount, 0);
	CHECK(!r.has_opt);
	CHECK_EQ(answer("10.in-addr.arpa", DNS_TYPE_NS, true), DNS_RCODE_NOERROR);
	CHECK_EQ(r.ancount, 1);
	CHECK_EQ(answer("10.in-addr.arpa", DNS_TYPE_A, true), DNS_RCODE_NOERROR);
	CHECK_EQ(r.ancount, 0);
	CHECK_EQ(r.nscount, 1);
	CHECK_EQ(answer("printer.home.arpa", DNS_TYPE_A, true), DNS_RCODE_NXDOMAIN);
	/* RFC 6761 6.3: localhost */
	CHECK_EQ(answer("localhost", DNS_TYPE_A, true), DNS_RCODE_NOERROR);
	CHECK_EQ(r.ancount, 1);
	CHECK(memcmp(out + r.question_end + 12, "\177\0\0\1", 4) == 0);
	CHECK_EQ(answer("www.localhost", DNS_TYPE_AAAA, false), DNS_RCODE_NOERROR);
	CHECK_EQ(r.ancount, 1);
	CHECK_EQ(dns_get16(out + r.question_end + 10), 16);
	CHECK_EQ(out[r.question_end + 12 + 15], 1);
	CHECK_EQ(answer("www.localhost", DNS_TYPE_TXT, true), DNS_RCODE_NOERROR);
	CHECK_EQ(r.ancount, 0);
	CHECK_EQ(r.nscount, 1);
	/* 6.4 invalid, RFC 6762 local: NXDOMAIN, the apex too */
	CHECK_EQ(answer("invalid", DNS_TYPE_SOA, true), DNS_RCODE_NXDOMAIN);
	CHECK_EQ(answer("x.invalid", DNS_TYPE_A, true), DNS_RCODE_NXDOMAIN);
	CHECK_EQ(r.nscount, 1);
	CHECK_EQ(answer("printer.local", DNS_TYPE_A, true), DNS_RCODE_NXDOMAIN);
	/* RFC 9462: no designation */
	CHECK_EQ(answer("_dns.resolver.arpa", 64, true), DNS_RCODE_NOERROR);
	CHECK_EQ(r.ancount, 0);
	CHECK_EQ(r.nscount, 1);
	CHECK_EQ(answer("_DNS.resolver.arpa", 64, true), DNS_RCODE_NOERROR);
	CHECK_EQ(answer("x._dns.resolver.arpa", 64, true), DNS_RCODE_NXDOMAIN);
	CHECK_EQ(answer("other.resolver.arpa", 64, true), DNS_RCODE_NXDOMAIN);
	/* EDNS version 1: BADVERS, no records */
	CHECK_EQ(ask("x.invalid", DNS_TYPE_A, true), 0);
	{
		struct localzone_match z;
		int n;

		q[qlen - 5] = 1; /* version */
		CHECK_EQ(dns_msg_parse(&m, q, qlen), 0);
		CHECK(localzone_find(m.q.name, m.q.name_len, &z));
		n = localzone_answer(out, sizeof(out), q, &m, &z);
		CHECK(n > 0 && dns_msg_parse(&r, out, (size_t)n) == 0);
		CHECK_EQ(r.nscount, 0);
		CHECK_EQ(localzone_answer(out, 30, q, &m, &z) < 0, 1);
	}

	/* private addresses */
	CHECK(localzone_private(AF_INET, a4));
	a4[0] = 192, a4[1] = 168;
	CHECK(localzone_private(AF_INET, a4));
	a4[0] = 172, a4[1] = 31;
	CHECK(localzone_private(AF_INET, a4));
	a4[1] = 32;
	CHECK(!localzone_private(AF_INET, a4));
	a4[0] = 100, a4[1] = 100;
	CHECK(localzone_private(AF_INET, a4));
	a4[1] = 128;
	CHECK(!localzone_private(AF_INET, a4));
	a4[0] = 169, a4[1] = 254;
	CHECK(localzone_private(AF_INET, a4));
	a4[0] = 192, a4[1] = 0, a4[2] = 2;
	CHECK(!localzone_private(AF_INET, a4));
	CHECK(localzone_private(AF_INET6, a6));
	a6[0] = 0xfe, a6[1] = 0x80;
	CHECK(localzone_private(AF_INET6, a6));
	a6[0] = 0x20, a6[1] = 0x01;
	CHECK(!localzone_private(AF_INET6, a6));
	memset(a6, 0, 16);
	a6[15] = 1;
	CHECK(localzone_private(AF_INET6, a6));
	a6[10] = a6[11] = 0xff, a6[12] = 10;
	CHECK(localzone_private(AF_INET6, a6));
	return check_done("localzone");
}

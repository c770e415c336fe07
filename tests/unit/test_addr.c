/* test_addr.c - the one "[ADDR]:PORT" parser, text forms, CIDR prefixes, cmsg reading. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "check.h"
#include "dotgw/addr.h"

static const char *text(const char *s, const char *dhost, uint16_t dport)
{
	static char buf[ADDR_TEXT_MAX];
	union sockaddr_any a;

	if (addr_parse(&a, s, dhost, dport) < 0)
		return "-";
	return addr_text(&a, buf, sizeof(buf));
}

static void test_parse(void)
{
	union sockaddr_any a;

	/* the upstream forms: default port, '@' and bracketed ports */
	CHECK(strcmp(text("192.0.2.1", NULL, 853), "192.0.2.1:853") == 0);
	CHECK(strcmp(text("192.0.2.1@8853", NULL, 853), "192.0.2.1:8853") == 0);
	CHECK(strcmp(text("2001:db8::1", NULL, 853), "[2001:db8::1]:853") == 0);
	CHECK(strcmp(text("2001:db8::1@5353", NULL, 853), "[2001:db8::1]:5353") == 0);
	CHECK(strcmp(text("[2001:db8::1]", NULL, 853), "[2001:db8::1]:853") == 0);
	CHECK(strcmp(text("[2001:db8::1]:54", NULL, 853), "[2001:db8::1]:54") == 0);
	CHECK(strcmp(text("[2001:db8::1]@54", NULL, 853), "[2001:db8::1]:54") == 0);
	CHECK(strcmp(text("[192.0.2.1]:54", NULL, 853), "192.0.2.1:54") == 0);
	/* the metrics forms: a port alone takes the default host; the port is required */
	CHECK(strcmp(text("9153", "127.0.0.1", 0), "127.0.0.1:9153") == 0);
	CHECK(strcmp(text("192.0.2.1:9153", "127.0.0.1", 0), "192.0.2.1:9153") == 0);
	CHECK(strcmp(text("[::1]:9153", "127.0.0.1", 0), "[::1]:9153") == 0);
	CHECK(strcmp(text("192.0.2.1", "127.0.0.1", 0), "-") == 0);
	CHECK(strcmp(text("2001:db8::1", "127.0.0.1", 0), "-") == 0);
	CHECK(strcmp(text("9153", NULL, 853), "-") == 0);

	const char *bad[] = {"",
			     "999.1.1.1",
			     "192.0.2.1@0",
			     "192.0.2.1@65536",
			     "192.0.2.1@",
			     "192.0.2.1@x",
			     "[2001:db8::1",
			     "[2001:db8::1]x",
			     "dns.example",
			     "192.0.2.1@-5",
			     "192.0.2.1@ 53",
			     "192.0.2.1:0x35",
			     "[]:53",
			     ":53",
			     "0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&a, 0x5a, sizeof(a));
		CHECK_EQ(addr_parse(&a, bad[i], NULL, 853), -EINVAL);
		CHECK_EQ(((const unsigned char *)&a)[0], 0x5a); /* untouched on error */
	}
	CHECK_EQ(addr_parse(&a, "0", "127.0.0.1", 0), -EINVAL);
}

static void test_helpers(void)
{
	union sockaddr_any a, b;

	CHECK_EQ(addr_parse(&a, "[2001:db8::5]:53", NULL, 0), 0);
	b = a;
	CHECK(addr_equal(&a, &b));
	CHECK_EQ(addr_port(&a), 53);
	CHECK_EQ(addr_len(&a), sizeof(struct sockaddr_in6));
	CHECK_EQ(addr_bytes(&a)[15], 5);
	addr_set_port(&b, 5353);
	CHECK(!addr_equal(&a, &b));
	b = a;
	b.sin6.sin6_scope_id = 3; /* a link-local peer on another interface is another peer */
	CHECK(!addr_equal(&a, &b));
	CHECK_EQ(addr_parse(&b, "192.0.2.5:53", NULL, 0), 0);
	CHECK(!addr_equal(&a, &b));
	CHECK_EQ(addr_len(&b), sizeof(struct sockaddr_in));
	CHECK_EQ(addr_bytes(&b)[3], 5);
}

static void test_cidr(void)
{
	struct cidr c;
	uint8_t x[16];

	CHECK_EQ(cidr_parse(&c, "198.51.100.0/24"), 0);
	CHECK_EQ(c.family, AF_INET);
	CHECK_EQ(c.plen, 24);
	inet_pton(AF_INET, "198.51.100.200", x);
	CHECK(cidr_contains(&c, AF_INET, x));
	inet_pton(AF_INET, "198.51.101.1", x);
	CHECK(!cidr_contains(&c, AF_INET, x));
	CHECK_EQ(cidr_parse(&c, "2001:db8:1::/49"), 0);
	inet_pton(AF_INET6, "2001:db8:1:7fff::1", x);
	CHECK(cidr_contains(&c, AF_INET6, x));
	inet_pton(AF_INET6, "2001:db8:1:8000::1", x);
	CHECK(!cidr_contains(&c, AF_INET6, x));
	CHECK(!cidr_contains(&c, AF_INET, x));
	CHECK_EQ(cidr_parse(&c, "192.0.2.7"), 0);
	CHECK_EQ(c.plen, 32);
	CHECK_EQ(cidr_parse(&c, "0.0.0.0/0"), 0);
	CHECK_EQ(c.plen, 0);
	CHECK(cidr_contains(&c, AF_INET, x));

	const char *bad[] = {"",
			     "192.0.2.0/33",
			     "2001:db8::/129",
			     "192.0.2.0/",
			     "192.0.2.0/-1",
			     "192.0.2.0/ 8",
			     "example.com/8",
			     "192.0.2.0/8/8"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0x5a, sizeof(c));
		CHECK_EQ(cidr_parse(&c, bad[i]), -EINVAL);
		CHECK_EQ(((const unsigned char *)&c)[0], 0x5a);
	}
}

static void test_cmsg(void)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct sockaddr_in6)) +
			    CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	struct msghdr mh = {.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
	struct sockaddr_in6 o = {.sin6_family = AF_INET6, .sin6_port = htons(53)};
	struct in6_pktinfo pi = {.ipi6_ifindex = 7};
	union sockaddr_any odst;
	unsigned int ifindex = 99;
	struct cmsghdr *c;

	memset(&ctl, 0, sizeof(ctl));
	inet_pton(AF_INET6, "2001:db8::53", &o.sin6_addr);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_IPV6;
	c->cmsg_type = IPV6_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	c = CMSG_NXTHDR(&mh, c);
	c->cmsg_level = SOL_IPV6;
	c->cmsg_type = IPV6_ORIGDSTADDR;
	c->cmsg_len = CMSG_LEN(sizeof(o));
	memcpy(CMSG_DATA(c), &o, sizeof(o));
	CHECK(addr_cmsg_orig_dst(&mh, &odst, &ifindex));
	CHECK_EQ(ifindex, 7);
	CHECK_EQ(odst.sa.sa_family, AF_INET6);
	CHECK_EQ(addr_port(&odst), 53);
	CHECK_EQ(addr_bytes(&odst)[15], 0x53);

	/* the interface alone: no original destination */
	mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	CHECK(!addr_cmsg_orig_dst(&mh, &odst, &ifindex));
	CHECK_EQ(ifindex, 7);
	mh.msg_controllen = 0;
	CHECK(!addr_cmsg_orig_dst(&mh, &odst, &ifindex));
	CHECK_EQ(ifindex, 0);
}

int main(void)
{
	test_parse();
	test_helpers();
	test_cidr();
	test_cmsg();
	return check_done("addr");
}

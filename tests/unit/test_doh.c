/*
 * test_doh.c - doh.c without a network: request paths, the SERVFAIL header of a failed stream,
 * the answer check, the https:// upstream syntax, and a client session fed server frames made
 * here byte by byte: an answer gets its query's id back, a 404 becomes SERVFAIL (flagged for
 * upstream.c, once), a refused stream is sent again, and after GOAWAY the session ends once the
 * processed stream answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "check.h"
#include "dotgw/config.h"
#include "dotgw/dns.h"
#include "dotgw/doh.h"

static const uint8_t q1[] = {0x12, 0x34, 1,   0, 0,   1,   0,	0,   0, 0, 0, 0, 3,
			     'w',  'w',	 'w', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
static const uint8_t a1[] = {0,	  0,   0x81, 0x80, 0,	1,   0,	  1,  0, 0, 0,	 0, 3,	  'w',
			     'w', 'w', 4,    't',  'e', 's', 't', 0,  0, 1, 0,	 1, 0xc0, 0x0c,
			     0,	  1,   0,    1,	   0,	0,   0,	  60, 0, 4, 203, 0, 113,  80};

static size_t frame(uint8_t *p, uint8_t type, uint8_t flags, uint32_t sid, const void *pl,
		    size_t len)
{
	p[0] = (uint8_t)(len >> 16);
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)len;
	p[3] = type;
	p[4] = flags;
	p[5] = (uint8_t)(sid >> 24);
	p[6] = (uint8_t)(sid >> 16);
	p[7] = (uint8_t)(sid >> 8);
	p[8] = (uint8_t)sid;
	memcpy(p + 9, pl, len);
	return 9 + len;
}

static size_t drain(struct doh_session *s)
{
	const uint8_t *p;
	size_t n, all = 0;

	while ((n = doh_session_output(s, &p)) > 0) {
		doh_session_consumed(s, n);
		all += n;
	}
	return all;
}

/* three queries, ids 0x1234, 0x1235, 0x1236, framed as DoT */
static size_t queries(uint8_t *buf)
{
	size_t off = 0;

	for (uint8_t i = 0; i < 3; i++) {
		dns_put16(buf + off, sizeof(q1));
		memcpy(buf + off + 2, q1, sizeof(q1));
		buf[off + 3] = (uint8_t)(0x34 + i);
		off += 2 + sizeof(q1);
	}
	return off;
}

static void test_session(void)
{
	struct upstream_config u;
	struct doh_session *s;
	uint8_t in[4096], out[1024], qs[256], st200 = 0x88, st404 = 0x8d, refused[4] = {0, 0, 0, 7};
	uint8_t goaway[8] = {0, 0, 0, 1, 0, 0, 0, 0}, settings[6] = {0, 3, 0, 0, 0, 2};
	size_t n = 0, qlen = queries(qs);

	CHECK_EQ(config_parse_upstream(&u, "https://192.0.2.1/dns-query#doh.test"), 0);
	CHECK_EQ(doh_session_new(&s, &u), 0);
	CHECK(drain(s) > 24); /* the preface and SETTINGS */
	CHECK_EQ(doh_session_submit(s, qs, qlen), (int)qlen);
	CHECK_EQ(doh_session_submit(s, qs, 5), -EPROTO); /* a cut frame */
	CHECK(drain(s) > 0);
	/* stream 1: 200 and the answer; stream 3: 404; stream 5: refused, then sent again */
	n += frame(in + n, 4, 0, 0, settings, sizeof(settings));
	n += frame(in + n, 1, 4, 1, &st200, 1);
	n += frame(in + n, 0, 1, 1, a1, sizeof(a1));
	n += frame(in + n, 1, 4, 3, &st404, 1);
	n += frame(in + n, 0, 1, 3, "no", 2);
	n += frame(in + n, 3, 0, 5, refused, 4);
	CHECK_EQ(doh_session_recv(s, in, n), 0);
	CHECK(drain(s) > 0); /* the SETTINGS ack and stream 7, the refused query again */
	n = doh_session_take(s, out, sizeof(out));
	CHECK_EQ(n, 2 + sizeof(a1) + 2 + DNS_HDR_LEN);
	CHECK_EQ(dns_get16(out), sizeof(a1));
	CHECK_EQ(dns_get16(out + 2), 0x1234); /* the id put back */
	CHECK(memcmp(out + 4, a1 + 2, sizeof(a1) - 2) == 0);
	CHECK_EQ(dns_get16(out + 2 + sizeof(a1)), DNS_HDR_LEN);
	CHECK_EQ(dns_get16(out + 4 + sizeof(a1)), 0x1235);
	CHECK_EQ(out[4 + sizeof(a1) + 3] & 0x0f, DNS_RCODE_SERVFAIL);
	/* the 404's SERVFAIL is flagged, once; the 200 answer is not */
	CHECK(!doh_session_failed(s, 0x1234));
	CHECK(doh_session_failed(s, 0x1235));
	CHECK(!doh_session_failed(s, 0x1235));
	CHECK(!doh_session_over(s));
	/* GOAWAY: stream 7 (the resubmitted one) was processed; nothing new is taken */
	n = 0;
	goaway[3] = 7;
	n += frame(in + n, 7, 0, 0, goaway, sizeof(goaway));
	CHECK_EQ(doh_session_recv(s, in, n), 0);
	CHECK_EQ(doh_session_submit(s, qs, qlen), 0);
	CHECK(!doh_session_over(s)); /* stream 7 is still to answer */
	n = 0;
	n += frame(in + n, 1, 4, 7, &st200, 1);
	n += frame(in + n, 0, 1, 7, a1, sizeof(a1));
	CHECK_EQ(doh_session_recv(s, in, n), 0);
	CHECK(!doh_session_over(s)); /* its answer is not taken yet */
	n = doh_session_take(s, out, sizeof(out));
	CHECK_EQ(n, 2 + sizeof(a1));
	CHECK_EQ(dns_get16(out + 2), 0x1236);
	CHECK(doh_session_over(s));
	doh_session_free(s);
	doh_session_free(NULL);
}

int main(void)
{
	struct upstream_config u;
	uint8_t hdr[DNS_HDR_LEN];
	char longpath[CONFIG_DOH_PATH_MAX + 2];

	CHECK(doh_path_valid("/dns-query"));
	CHECK(doh_path_valid("/"));
	CHECK(!doh_path_valid(""));
	CHECK(!doh_path_valid("dns-query"));
	CHECK(!doh_path_valid("/dns query"));
	CHECK(!doh_path_valid("/dns?dns=x"));
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK(!doh_path_valid(longpath));

	CHECK_EQ(doh_fake_servfail(hdr, q1, sizeof(q1)), 0);
	CHECK_EQ(dns_get16(hdr), 0x1234);
	CHECK_EQ(hdr[2], 0x81); /* QR, RD */
	CHECK_EQ(hdr[3], DNS_RCODE_SERVFAIL);
	CHECK_EQ(dns_get16(hdr + 4), 0);
	CHECK_EQ(doh_fake_servfail(hdr, q1, 11), -EINVAL);

	CHECK_EQ(doh_answer_check(200, a1, sizeof(a1)), 0);
	CHECK_EQ(doh_answer_check(404, a1, sizeof(a1)), -EPROTO);
	CHECK_EQ(doh_answer_check(200, a1, sizeof(a1) - 1), -EPROTO); /* cut */
	CHECK_EQ(doh_answer_check(200, q1, sizeof(q1)), -EPROTO);     /* a query, not an answer */
	CHECK_EQ(doh_answer_check(200, a1, 11), -EPROTO);

	CHECK_EQ(config_parse_upstream(&u, "https://192.0.2.1/dns-query#doh.test"), 0);
	CHECK(strcmp(u.text, "https://192.0.2.1:443/dns-query#doh.test") == 0);
	CHECK(strcmp(u.doh_path, "/dns-query") == 0);
	CHECK(strcmp(u.auth_name, "doh.test") == 0);
	CHECK_EQ(ntohs(((struct sockaddr_in *)&u.addr)->sin_port), 443);
	CHECK_EQ(config_parse_upstream(&u, "https://[2001:db8::1]:8443/q"), 0);
	CHECK(strcmp(u.text, "https://[2001:db8::1]:8443/q") == 0);
	CHECK_EQ(u.addr.ss_family, AF_INET6);
	CHECK_EQ(config_parse_upstream(&u, "https://192.0.2.1#doh.test"), -EINVAL); /* no path */
	CHECK_EQ(config_parse_upstream(&u, "https://doh.test/dns-query"), -EINVAL); /* a name */
	CHECK_EQ(config_parse_upstream(&u, "https://192.0.2.1/a b#doh.test"), -EINVAL);
	CHECK_EQ(config_parse_upstream(&u, "https://192.0.2.1:0/q"), -EINVAL);
	CHECK_EQ(config_parse_upstream(&u, "192.0.2.1#dot.test"), 0);
	CHECK(u.doh_path[0] == '\0');
	CHECK(strcmp(u.doh_fallback, "/dns-query") == 0); /* on by default for DoT */
	CHECK_EQ(config_parse_upstream(&u, "https://192.0.2.1/q#doh.test"), 0);
	CHECK(u.doh_fallback[0] == '\0');

	test_session();
	return check_done("doh");
}

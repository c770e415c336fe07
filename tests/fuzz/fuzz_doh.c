/*
 * fuzz_doh.c - libFuzzer target for the DoH response path (src/doh.c): the input is what a
 * server sends on an HTTP/2 connection (its SETTINGS, HEADERS, DATA, RST_STREAM, GOAWAY,
 * PING... frames), fed through nghttp2 into a client session that has sent two queries, in
 * two parts so that frames are cut. Every answer taken must be DoT-framed, carry one of the
 * queries' ids and be a DNS message (or the SERVFAIL header doh.c makes for a bad stream).
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "dotgw/dns.h"
#include "dotgw/doh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* two framed queries: www.test A, ids 0x1234 and 0x5678 */
static const uint8_t queries[] = {
	0,   26,  0x12, 0x34, 1, 0,   0,   1,	0, 0,	0,   0,	   0,	 0, 3, 'w', 'w', 'w', 4,
	't', 'e', 's',	't',  0, 0,   1,   0,	1, 0,	26,  0x56, 0x78, 1, 0, 0,   1,	 0,   0,
	0,   0,	  0,	0,    3, 'w', 'w', 'w', 4, 't', 'e', 's',  't',	 0, 0, 1,   0,	 1,
};

static void drain(struct doh_session *s)
{
	const uint8_t *p;
	size_t n;

	while ((n = doh_session_output(s, &p)) > 0)
		doh_session_consumed(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct upstream_config u;
	struct doh_session *s;
	uint8_t buf[2 + DNS_MAX_MSG];
	size_t half = size / 2, n;

	memset(&u, 0, sizeof(u));
	u.addr.ss_family = AF_INET;
	((struct sockaddr_in *)&u.addr)->sin_port = htons(443);
	strcpy(u.auth_name, "doh.test");
	strcpy(u.doh_path, "/dns-query");
	if (doh_session_new(&s, &u) < 0)
		return 0;
	if (doh_session_submit(s, queries, sizeof(queries)) != (int)sizeof(queries))
		abort();
	drain(s);
	if (doh_session_recv(s, data, half) == 0) {
		drain(s);
		(void)doh_session_recv(s, data + half, size - half);
	}
	drain(s);
	/* one answer at a time fits: frames are taken whole when buf is large enough */
	while ((n = doh_session_take(s, buf, sizeof(buf))) > 0) {
		size_t off = 0;

		while (off < n) {
			size_t len;
			uint16_t id;
			struct dns_msg m;

			if (n - off < 4)
				abort();
			len = dns_get16(buf + off);
			id = dns_get16(buf + off + 2);
			if (len < DNS_HDR_LEN || off + 2 + len > n ||
			    (id != 0x1234 && id != 0x5678))
				abort();
			if (len > DNS_HDR_LEN && dns_msg_parse(&m, buf + off + 2, len) < 0)
				abort();
			off += 2 + len;
		}
	}
	(void)doh_session_over(s);
	doh_session_free(s);
	return 0;
}

/*
 * fuzz_dns.c - libFuzzer target for the DNS wire-format module (src/dns.c).
 *
 * Parses the input as a message; when that succeeds, runs every other function on the view
 * and re-parses everything they produce. Any produced message that fails to parse, or breaks
 * an invariant of the header contract, abort()s. Outputs go to heap buffers of the exact size
 * asked for, so ASan sees any write or read past them.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#include "dotgw/dns.h"

#define TEXT_MAX (4 * DNS_MAX_NAME + 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_view(const struct dns_msg *m, const uint8_t *buf, size_t len);
static void fuzz_name_text(const uint8_t *name, size_t name_len, bool must_parse);
static void fuzz_truncate(const struct dns_msg *m, const uint8_t *data, size_t size, size_t limit);
static void fuzz_error(const struct dns_msg *q, const uint8_t *data, size_t size, int rcode);
static void fuzz_opt_clear(const struct dns_msg *m, const uint8_t *data, size_t size);

static void check_view(const struct dns_msg *m, const uint8_t *buf, size_t len)
{
	if (m->len != len || m->qdcount > 1 || m->question_end > len ||
	    m->question_end < DNS_HDR_LEN)
		abort();
	if (m->id != dns_get16(buf) || m->flags != dns_get16(buf + 2))
		abort();
	if (m->qdcount == 1 && (m->q.name_len == 0 || m->q.name_len > DNS_MAX_NAME))
		abort();
	if (m->has_opt) {
		if (m->arcount == 0 || m->opt_off < m->question_end || m->opt_len < 11 ||
		    m->opt_len > len - m->opt_off)
			abort();
		if (buf[m->opt_off] != 0 || dns_get16(buf + m->opt_off + 1) != DNS_TYPE_OPT ||
		    dns_get16(buf + m->opt_off + 3) != m->opt_udp_size)
			abort();
		if (m->opt_last != (m->opt_off + m->opt_len == len))
			abort();
	} else if (m->opt_seen || m->opt_last) {
		abort();
	}
}

static void fuzz_name_text(const uint8_t *name, size_t name_len, bool must_parse)
{
	char *text = malloc(TEXT_MAX);
	int n, small;

	if (!text)
		abort();
	n = dns_name_to_text(name, name_len, text, TEXT_MAX);
	if (must_parse && n < 0)
		abort();
	if (n >= 0) {
		if (n == 0 || n >= TEXT_MAX || strlen(text) != (size_t)n || text[n - 1] != '.')
			abort();
		free(text);
		/* Exactly enough room, then one octet short. */
		text = malloc((size_t)n + 1);
		if (!text || dns_name_to_text(name, name_len, text, (size_t)n + 1) != n)
			abort();
		small = dns_name_to_text(name, name_len, text, (size_t)n);
		if (small != -ENOSPC)
			abort();
	} else if (n != -EBADMSG) {
		abort();
	}
	free(text);
}

/* answer_name - each name dns_answer_names gives is a whole, printable wire-format name. */
static int answer_name(void *data, uint16_t type, bool target, const uint8_t *name, size_t name_len)
{
	size_t *count = data;

	if (target && type != DNS_TYPE_CNAME && type != DNS_TYPE_DNAME)
		abort();
	if (name_len == 0 || name_len > DNS_MAX_NAME || name[name_len - 1] != 0)
		abort();
	fuzz_name_text(name, name_len, true);
	++*count;
	return 0;
}

/* answer_addr - dns_answer_addrs gives only addresses of either family. */
static int answer_addr(void *data, int family, const uint8_t *addr, uint32_t ttl)
{
	size_t *count = data;

	(void)ttl;
	if ((family != AF_INET && family != AF_INET6) || !addr)
		abort();
	++*count;
	return 0;
}

static void fuzz_truncate(const struct dns_msg *m, const uint8_t *data, size_t size, size_t limit)
{
	uint8_t *buf = malloc(size);
	struct dns_msg t;
	size_t need = m->question_end + (m->has_opt ? m->opt_len : 0);
	int n;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	n = dns_truncate(buf, m, limit);
	if (n == -ENOSPC) {
		if (need <= limit || memcmp(buf, data, size))
			abort();
		goto out_free;
	}
	if (n < 0 || (size_t)n != need || (size_t)n > size || (size_t)n > limit)
		abort();
	if (dns_msg_parse(&t, buf, (size_t)n))
		abort();
	check_view(&t, buf, (size_t)n);
	if (!(t.flags & DNS_FLAG_TC) || (t.flags & ~DNS_FLAG_TC) != (m->flags & ~DNS_FLAG_TC))
		abort();
	if (t.id != m->id || t.qdcount != m->qdcount || t.ancount || t.nscount ||
	    t.arcount != (m->has_opt ? 1 : 0) || t.has_opt != m->has_opt)
		abort();
	if (memcmp(buf + DNS_HDR_LEN, data + DNS_HDR_LEN, m->question_end - DNS_HDR_LEN))
		abort();
	if (m->qdcount == 1 && !dns_question_equal(&t.q, &m->q))
		abort();
	if (t.has_opt && (t.opt_off != m->question_end || t.opt_len != m->opt_len ||
			  t.opt_udp_size != m->opt_udp_size || t.opt_ttl != m->opt_ttl))
		abort();
out_free:
	free(buf);
}

/* q NULL: the bare-header answer any input of 12 octets or more may get. */
static void fuzz_error(const struct dns_msg *q, const uint8_t *data, size_t size, int rcode)
{
	size_t cap = DNS_HDR_LEN + DNS_MAX_NAME + 4 + 11;
	uint8_t *out = malloc(cap);
	bool opt = q && q->has_opt;
	struct dns_msg a;
	uint16_t keep = DNS_OPCODE_MASK | DNS_FLAG_RD | DNS_FLAG_CD;
	int n, want = rcode;

	if (!out)
		abort();
	n = dns_build_error(out, cap, data, size, q, rcode);
	if (size < DNS_HDR_LEN) {
		if (n != -EBADMSG)
			abort();
		goto out_free;
	}
	if (rcode > 15 && !opt) {
		if (n != -EINVAL)
			abort();
		goto out_free;
	}
	if (opt && (q->opt_ttl >> 16 & 0xff) != 0)
		want = DNS_RCODE_BADVERS; /* a version we do not speak */
	if (n < DNS_HDR_LEN || (size_t)n > cap || dns_msg_parse(&a, out, (size_t)n))
		abort();
	check_view(&a, out, (size_t)n);
	if (a.id != dns_get16(data) || (a.flags & keep) != (dns_get16(data + 2) & keep))
		abort();
	if (!(a.flags & DNS_FLAG_QR) || !(a.flags & DNS_FLAG_RA) ||
	    (a.flags & DNS_RCODE_MASK) != (want & DNS_RCODE_MASK))
		abort();
	if (a.ancount || a.nscount || a.has_opt != opt || a.arcount != (opt ? 1 : 0))
		abort();
	if (!q && (size_t)n != DNS_HDR_LEN)
		abort();
	if (q && (a.qdcount != q->qdcount || (q->qdcount == 1 && !dns_question_equal(&a.q, &q->q))))
		abort();
	if (opt && (a.opt_udp_size != DNS_DEFAULT_UDP_CAP ||
		    a.opt_ttl >> 24 != (uint32_t)want >> 4 || (a.opt_ttl >> 16 & 0xff) != 0))
		abort();

	/* Exactly enough room, then one octet short. */
	free(out);
	out = malloc((size_t)n);
	if (!out || dns_build_error(out, (size_t)n, data, size, q, rcode) != n)
		abort();
	if (dns_build_error(out, (size_t)n - 1, data, size, q, rcode) != -ENOSPC)
		abort();
out_free:
	free(out);
}

/*
 * fuzz_opt_clear - dns_opt_clear on a copy: a last OPT RR loses its options and nothing else
 * changes; any other message is left exactly as it was.
 */
static void fuzz_opt_clear(const struct dns_msg *m, const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size);
	struct dns_msg v = *m, p;
	size_t n;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	n = dns_opt_clear(buf, &v);
	if (!m->has_opt || !m->opt_last) {
		if (n != size || memcmp(buf, data, size))
			abort();
	} else {
		if (n != m->opt_off + DNS_OPT_MIN_LEN || memcmp(buf, data, m->opt_off + 9) ||
		    dns_msg_parse(&p, buf, n) || !p.has_opt || p.opt_len != DNS_OPT_MIN_LEN ||
		    p.opt_seen || p.opt_ttl != m->opt_ttl || p.len != v.len || v.opt_seen)
			abort();
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {0, DNS_HDR_LEN, DNS_MIN_UDP, DNS_DEFAULT_UDP_CAP};
	struct dns_msg m;
	size_t i, lim;
	int rc;

	/* The whole input as an uncompressed name, for the text form. */
	fuzz_name_text(data, size, false);

	/* What every unparseable query of at least a header gets: FORMERR, bare header. */
	fuzz_error(NULL, data, size, DNS_RCODE_FORMERR);

	if (dns_msg_parse(&m, data, size))
		return 0;
	check_view(&m, data, size);

	/* every parsed message without QR is forwarded; a stub's query is a plain QUERY */
	rc = dns_query_check(&m);
	if (rc != ((m.flags & DNS_FLAG_QR) ? -EBADMSG : 0))
		abort();
	if (dns_query_is_stub(&m) &&
	    (rc || m.qdcount != 1 || (m.flags & DNS_OPCODE_MASK) || !(m.flags & DNS_FLAG_RD)))
		abort();
	fuzz_opt_clear(&m, data, size);

	if (m.qdcount == 1)
		fuzz_name_text(m.q.name, m.q.name_len, true);
	if (!dns_question_equal(&m.q, &m.q))
		abort();

	lim = dns_udp_limit(&m, DNS_DEFAULT_UDP_CAP);
	if (lim < DNS_MIN_UDP || lim > DNS_DEFAULT_UDP_CAP || (!m.has_opt && lim != DNS_MIN_UDP))
		abort();

	fuzz_error(&m, data, size, DNS_RCODE_SERVFAIL);
	fuzz_error(&m, data, size, DNS_RCODE_NOTIMP);
	fuzz_error(&m, data, size, 16); /* BADVERS: needs the OPT RR */

	/* the answer section's owners and alias targets: at most two names per RR */
	{
		size_t names = 0;

		rc = dns_answer_names(data, &m, answer_name, &names);
		if ((rc && rc != -EBADMSG) || names > 2 * (size_t)m.ancount)
			abort();
		/* the addresses of the question's CNAME chain: at most one per RR */
		names = 0;
		rc = dns_answer_addrs(data, &m, answer_addr, &names);
		if ((rc && rc != -EBADMSG) || names > m.ancount)
			abort();
	}

	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		fuzz_truncate(&m, data, size, limits[i]);
	fuzz_truncate(&m, data, size, lim);
	fuzz_truncate(&m, data, size, size);
	return 0;
}

/*
 * fuzz_rewrite.c - libFuzzer target for the path a query and its answer take through
 * src/dns.c on the way to a DoT upstream and back, checked as a round-trip property.
 *
 * A valid query (dns_msg_parse + dns_query_check) is rewritten with keepalive and 128-octet
 * padding (dns_query_rewrite): the result must keep the id, flags, question and every octet
 * outside the OPT RR, carry the client's options but padding and keepalive, then an empty
 * keepalive and a padding option, be a multiple of 128 octets long and parse (see opt_last
 * for the one exception). Made into an answer (QR set) and restored (dns_answer_restore), it
 * must be exactly the query with QR set and without padding and keepalive options (without
 * the OPT RR when the query had none). That answer, cut with dns_truncate to 512 octets and to
 * the client's UDP limit, must parse with TC set. Sinkhole answers (dns_build_address, A and
 * AAAA) to the query must parse and hold the address. Outputs go to heap buffers of the exact
 * size, so ASan sees any octet written or read past them; any broken property abort()s.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/dns.h"

#define UDP_CAP	   DNS_DEFAULT_UDP_CAP
#define OPT_FIXED  11	  /* root owner, TYPE, CLASS, TTL, RDLENGTH */
#define GROWTH_MAX 19	  /* an OPT RR added, a keepalive and a padding option */
#define KA_UNSET   0xbeef /* a keepalive timeout no option below carries */
#define KEEP_FLAGS (DNS_OPCODE_MASK | DNS_FLAG_RD | DNS_FLAG_CD)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *dup_buf(const uint8_t *p, size_t n);
static size_t opt_strip(const uint8_t *rdata, size_t n, uint8_t *out, uint16_t *keepalive);
static bool opt_has(const uint8_t *buf, const struct dns_msg *m, uint16_t code);
static size_t expect_restored(const uint8_t *q, const struct dns_msg *m, uint8_t *out,
			      uint16_t *keepalive);
static bool opt_last(const struct dns_msg *m);
static void check_same_query(const struct dns_msg *a, const struct dns_msg *m);
static size_t check_rewritten(const uint8_t *q, const struct dns_msg *m, const uint8_t *out,
			      size_t n, bool *parses);
static void fuzz_rewrite(const uint8_t *q, const struct dns_msg *m);
static void fuzz_restore(const uint8_t *q, const struct dns_msg *m, const uint8_t *rw, size_t n);
static void fuzz_restore_input(const uint8_t *q, const struct dns_msg *m);
static void fuzz_truncate(const uint8_t *ans, const struct dns_msg *a, const struct dns_msg *m,
			  size_t limit);
static void fuzz_address(const uint8_t *q, const struct dns_msg *m, int family);

static uint8_t *dup_buf(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	if (!b)
		abort();
	memcpy(b, p, n);
	return b;
}

/*
 * opt_strip - an independent copy of the option filter: the options of rdata (n octets,
 * validated) but padding and keepalive, to out; the last 2-octet keepalive timeout seen goes
 * to *keepalive. Returns the length written.
 */
static size_t opt_strip(const uint8_t *rdata, size_t n, uint8_t *out, uint16_t *keepalive)
{
	size_t off = 0, w = 0;

	while (off < n) {
		uint16_t code = dns_get16(rdata + off);
		size_t olen = dns_get16(rdata + off + 2);

		if (code == DNS_EDNS_KEEPALIVE && olen == 2)
			*keepalive = dns_get16(rdata + off + 4);
		if (code != DNS_EDNS_PADDING && code != DNS_EDNS_KEEPALIVE) {
			memcpy(out + w, rdata + off, 4 + olen);
			w += 4 + olen;
		}
		off += 4 + olen;
	}
	return w;
}

/* Does the OPT RR of the parsed message m in buf carry an option code? */
static bool opt_has(const uint8_t *buf, const struct dns_msg *m, uint16_t code)
{
	const uint8_t *rdata = buf + m->opt_off + OPT_FIXED;
	size_t n = m->opt_len - OPT_FIXED, off = 0;

	if (!m->has_opt)
		return false;
	while (off < n) {
		if (dns_get16(rdata + off) == code)
			return true;
		off += 4 + (size_t)dns_get16(rdata + off + 2);
	}
	return false;
}

/*
 * expect_restored - what the answer to query q (parsed into m) looks like after the round
 * trip: q with QR set and, when it has an OPT RR, without padding and keepalive options.
 * out has room for m->len octets. Returns the length.
 */
static size_t expect_restored(const uint8_t *q, const struct dns_msg *m, uint8_t *out,
			      uint16_t *keepalive)
{
	size_t rd, w, tail_off;

	memcpy(out, q, m->len);
	out[2] |= DNS_FLAG_QR >> 8;
	if (!m->has_opt)
		return m->len;
	rd = m->opt_off + OPT_FIXED;
	tail_off = m->opt_off + m->opt_len;
	w = opt_strip(q + rd, m->opt_len - OPT_FIXED, out + rd, keepalive);
	dns_put16(out + m->opt_off + 9, (uint16_t)w);
	memcpy(out + rd + w, q + tail_off, m->len - tail_off);
	return rd + w + m->len - tail_off;
}

/*
 * opt_last - no RR follows the OPT RR of m (or there is none, and the rewrite appends one).
 * Otherwise a later RR's name may be compressed into octets the rewrite changes or moves (the
 * OPT RR's RDLENGTH and options, or an RR after it): the rewritten and the restored message
 * are then only checked octet by octet, not required to parse.
 */
static bool opt_last(const struct dns_msg *m)
{
	return !m->has_opt || m->opt_off + m->opt_len == m->len;
}

/* a (a parse of a rewritten or restored query) has m's id, opcode and question. */
static void check_same_query(const struct dns_msg *a, const struct dns_msg *m)
{
	if (a->id != m->id || (a->flags & ~DNS_FLAG_QR) != (m->flags & ~DNS_FLAG_QR))
		abort();
	if (a->qdcount != m->qdcount || !dns_question_equal(&a->q, &m->q) ||
	    a->q.name_len != m->q.name_len || memcmp(a->q.name, m->q.name, m->q.name_len))
		abort();
	if (a->question_end != m->question_end || a->ancount != m->ancount ||
	    a->nscount != m->nscount)
		abort();
}

/*
 * check_rewritten - out (n octets) is query q rewritten with keepalive and padding: octet by
 * octet, then as a parsed message (*parses: it does, which is required when opt_last(m)).
 * Returns the length of the padding option's data.
 */
static size_t check_rewritten(const uint8_t *q, const struct dns_msg *m, const uint8_t *out,
			      size_t n, bool *parses)
{
	size_t head = m->has_opt ? m->opt_off : m->len;
	size_t tail_off = m->has_opt ? m->opt_off + m->opt_len : m->len;
	size_t tail = m->len - tail_off, rdlen, kept, pad, i;
	uint8_t *stripped = malloc(m->len ? m->len : 1);
	const uint8_t *rd = out + head + OPT_FIXED, *p;
	uint16_t ka = KA_UNSET;
	struct dns_msg r;

	if (!stripped)
		abort();
	if (!opt_last(m)) {
		/* records after the OPT RR: the query goes unchanged */
		if (n != m->len || memcmp(out, q, n))
			abort();
		free(stripped);
		*parses = true;
		return 0;
	}
	if (n < head + OPT_FIXED + 8 + tail)
		abort();
	/* Everything before the OPT RR and after it is the query's, but ARCOUNT. */
	if (memcmp(out, q, 10) || memcmp(out + DNS_HDR_LEN, q + DNS_HDR_LEN, head - DNS_HDR_LEN))
		abort();
	if (dns_get16(out + 10) != m->arcount + (m->has_opt ? 0 : 1))
		abort();
	if (out[head] != 0 || dns_get16(out + head + 1) != DNS_TYPE_OPT)
		abort();
	/* CLASS (payload size) and TTL: the client's, or 1232 and 0 in an added OPT RR */
	if (m->has_opt && memcmp(out + head + 3, q + m->opt_off + 3, 6))
		abort();
	if (!m->has_opt &&
	    (dns_get16(out + head + 3) != UDP_CAP || memcmp(out + head + 5, "\0\0\0", 4)))
		abort();
	rdlen = dns_get16(out + head + 9);
	if (n != head + OPT_FIXED + rdlen + tail || memcmp(out + n - tail, q + tail_off, tail))
		abort();

	/* The client's options but padding and keepalive, in order; keepalive; padding. */
	kept = m->has_opt ? opt_strip(q + m->opt_off + OPT_FIXED, m->opt_len - OPT_FIXED, stripped,
				      &ka)
			  : 0;
	if (rdlen < kept + 8 || memcmp(rd, stripped, kept))
		abort();
	p = rd + kept;
	if (dns_get16(p) != DNS_EDNS_KEEPALIVE || dns_get16(p + 2) != 0)
		abort();
	p += 4;
	pad = dns_get16(p + 2);
	if (dns_get16(p) != DNS_EDNS_PADDING || kept + 8 + pad != rdlen)
		abort();
	for (i = 0; i < pad; i++)
		if (p[4 + i])
			abort();
	if (pad >= DNS_PAD_BLOCK)
		abort();
	/* RFC 8467: a multiple of the block, unless the next multiple is beyond 65535 octets. */
	if (n % DNS_PAD_BLOCK && (pad || n + DNS_PAD_BLOCK - n % DNS_PAD_BLOCK <= DNS_MAX_MSG))
		abort();

	free(stripped);
	*parses = dns_msg_parse(&r, out, n) == 0;
	if (!*parses) {
		if (opt_last(m))
			abort();
		return pad;
	}
	check_same_query(&r, m);
	if (dns_query_check(&r) || !r.has_opt || r.opt_off != head ||
	    r.opt_len != OPT_FIXED + rdlen || r.arcount != m->arcount + (m->has_opt ? 0 : 1))
		abort();
	return pad;
}

static void fuzz_rewrite(const uint8_t *q, const struct dns_msg *m)
{
	uint8_t *out = malloc(DNS_MAX_MSG), *exact, *plain, *want;
	uint16_t ka = KA_UNSET;
	size_t pad, wlen, room;
	bool parses;
	int n, n2;

	if (!out)
		abort();
	n = dns_query_rewrite(out, DNS_MAX_MSG, q, m, true, DNS_PAD_BLOCK);
	if (n == -ENOSPC && m->len + GROWTH_MAX > DNS_MAX_MSG)
		goto out_free;
	if (n < 0 || n > DNS_MAX_MSG)
		abort();
	pad = check_rewritten(q, m, out, (size_t)n, &parses);

	/*
	 * Exactly enough room; one octet short (then only the padding may go). The client's
	 * options are filtered in the output buffer, so it needs room for all of them first,
	 * even when fewer remain.
	 */
	room = (size_t)n > m->len ? (size_t)n : m->len;
	exact = malloc(room);
	if (!exact || dns_query_rewrite(exact, room, q, m, true, DNS_PAD_BLOCK) != n ||
	    memcmp(exact, out, (size_t)n))
		abort();
	if (room == (size_t)n) {
		n2 = dns_query_rewrite(exact, room - 1, q, m, true, DNS_PAD_BLOCK);
		if (pad && room - 1 >= m->len ? n2 != n - (int)pad : n2 != -ENOSPC)
			abort();
	}
	free(exact);

	/* No keepalive, no padding: the query with padding and keepalive taken out (or an OPT
	 * RR added), nothing else. */
	plain = malloc(m->len + OPT_FIXED);
	want = malloc(m->len + OPT_FIXED);
	if (!plain || !want)
		abort();
	if (!opt_last(m)) {
		/* records after the OPT RR: unchanged, padded or not */
		memcpy(want, q, m->len);
		wlen = m->len;
	} else {
		wlen = expect_restored(q, m, want, &ka);
		want[2] = q[2]; /* no QR */
	}
	if (!m->has_opt) {
		memcpy(want + wlen, "\0\0\x29\x04\xd0\0\0\0\0\0\0", OPT_FIXED);
		dns_put16(want + 10, (uint16_t)(m->arcount + 1));
		wlen += OPT_FIXED;
	}
	n2 = dns_query_rewrite(plain, m->len + OPT_FIXED, q, m, false, 0);
	if (n2 < 0 || (size_t)n2 != wlen || memcmp(plain, want, wlen))
		abort();
	free(want);
	free(plain);

	if (parses && opt_last(m))
		fuzz_restore(q, m, out, (size_t)n);
out_free:
	free(out);
}

/* The rewritten query rw (n octets) as the upstream's answer, restored for the client. */
static void fuzz_restore(const uint8_t *q, const struct dns_msg *m, const uint8_t *rw, size_t n)
{
	uint8_t *ans = dup_buf(rw, n), *again = dup_buf(rw, n), *want = malloc(m->len);
	uint16_t ka = KA_UNSET, ka_want = KA_UNSET;
	struct dns_msg r, a;
	size_t len, wlen;

	if (!want)
		abort();
	ans[2] |= DNS_FLAG_QR >> 8;
	again[2] |= DNS_FLAG_QR >> 8;
	if (dns_msg_parse(&r, ans, n))
		abort();
	len = dns_answer_restore(ans, &r, m->has_opt, &ka);
	/* the keepalive option the rewrite added is empty: no timeout to report */
	if (ka != KA_UNSET || len > n)
		abort();
	if (dns_answer_restore(again, &r, m->has_opt, NULL) != len || memcmp(again, ans, len))
		abort();

	wlen = expect_restored(q, m, want, &ka_want);
	if (len != wlen || memcmp(ans, want, len))
		abort();
	if (dns_msg_parse(&a, ans, len)) {
		if (opt_last(m))
			abort();
		goto out_free;
	}
	check_same_query(&a, m);
	if (!(a.flags & DNS_FLAG_QR) || a.has_opt != m->has_opt || a.arcount != m->arcount)
		abort();
	if (opt_has(ans, &a, DNS_EDNS_PADDING) || opt_has(ans, &a, DNS_EDNS_KEEPALIVE))
		abort();
	if (a.has_opt && (a.opt_off != m->opt_off || a.opt_udp_size != m->opt_udp_size ||
			  a.opt_ttl != m->opt_ttl))
		abort();

	fuzz_truncate(ans, &a, m, DNS_MIN_UDP);
	fuzz_truncate(ans, &a, m, dns_udp_limit(m, UDP_CAP));
out_free:
	free(want);
	free(again);
	free(ans);
}

/*
 * The query itself as an answer whose OPT RR carries whatever options the client put there
 * (padding, keepalive with a timeout): restored, it loses exactly those, and the last
 * keepalive timeout is reported.
 */
static void fuzz_restore_input(const uint8_t *q, const struct dns_msg *m)
{
	uint8_t *ans = dup_buf(q, m->len), *want = malloc(m->len);
	uint16_t ka = KA_UNSET, ka_want = KA_UNSET;
	struct dns_msg r;
	size_t len, wlen;

	if (!want || !m->has_opt)
		abort();
	ans[2] |= DNS_FLAG_QR >> 8;
	if (dns_msg_parse(&r, ans, m->len))
		abort();
	len = dns_answer_restore(ans, &r, true, &ka);
	wlen = expect_restored(q, m, want, &ka_want);
	if (len != wlen || memcmp(ans, want, len) || ka != ka_want)
		abort();
	free(want);
	free(ans);
}

/* The restored answer ans (parsed into a) cut for a UDP client, when larger than limit. */
static void fuzz_truncate(const uint8_t *ans, const struct dns_msg *a, const struct dns_msg *m,
			  size_t limit)
{
	size_t need = a->question_end + (a->has_opt ? a->opt_len : 0);
	uint8_t *buf;
	struct dns_msg t;
	int n;

	if (a->len <= limit)
		return;
	buf = dup_buf(ans, a->len);
	n = dns_truncate(buf, a, limit);
	if (n == -ENOSPC) {
		if (need <= limit)
			abort();
		goto out_free;
	}
	if (n < 0 || (size_t)n != need || (size_t)n > limit)
		abort();
	if (dns_msg_parse(&t, buf, (size_t)n))
		abort();
	/* a query may have no question (RFC 7873 cookies): then neither has the cut answer */
	if (!(t.flags & DNS_FLAG_TC) || !(t.flags & DNS_FLAG_QR) || t.id != m->id ||
	    t.qdcount != m->qdcount || (m->qdcount && !dns_question_equal(&t.q, &m->q)) ||
	    t.ancount || t.nscount || t.arcount != (m->has_opt ? 1 : 0) || t.has_opt != m->has_opt)
		abort();
out_free:
	free(buf);
}

static void fuzz_address(const uint8_t *q, const struct dns_msg *m, int family)
{
	static const uint8_t v4[4] = {192, 0, 2, 1};
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	const uint8_t *addr = family == AF_INET6 ? v6 : v4;
	uint16_t type = family == AF_INET6 ? DNS_TYPE_AAAA : DNS_TYPE_A;
	size_t alen = family == AF_INET6 ? 16 : 4, qend = m->question_end;
	size_t cap = DNS_HDR_LEN + DNS_MAX_NAME + 4 + 12 + 16 + OPT_FIXED;
	bool record = m->q.qtype == type && m->q.qclass == DNS_CLASS_IN;
	const uint32_t ttl = 0x12345678;
	uint8_t *out = malloc(cap);
	struct dns_ttl_info info;
	struct dns_msg a;
	uint16_t offs[2];
	int n;

	if (!out)
		abort();
	n = dns_build_address(out, cap, q, m, family, addr, ttl);
	if (n < DNS_HDR_LEN || (size_t)n > cap || dns_msg_parse(&a, out, (size_t)n))
		abort();
	if (m->has_opt && (m->opt_ttl >> 16 & 0xff) != 0) {
		/* an EDNS version we do not speak: BADVERS, no record, not authoritative */
		if ((a.flags & (DNS_FLAG_AA | DNS_RCODE_MASK)) || a.ancount || !a.has_opt ||
		    a.opt_ttl >> 24 != 1)
			abort();
		free(out);
		return;
	}
	if (a.id != m->id || (a.flags & KEEP_FLAGS) != (m->flags & KEEP_FLAGS) ||
	    (a.flags & (DNS_FLAG_QR | DNS_FLAG_AA | DNS_FLAG_RA)) !=
		    (DNS_FLAG_QR | DNS_FLAG_AA | DNS_FLAG_RA) ||
	    (a.flags & (DNS_FLAG_TC | DNS_RCODE_MASK)))
		abort();
	if (a.qdcount != 1 || !dns_question_equal(&a.q, &m->q) || a.question_end != qend ||
	    a.nscount || a.has_opt != m->has_opt || a.arcount != (m->has_opt ? 1 : 0) ||
	    a.ancount != (record ? 1 : 0))
		abort();
	if (record) {
		if (dns_get16(out + qend) != (0xc000 | DNS_HDR_LEN) ||
		    dns_get16(out + qend + 2) != type ||
		    dns_get16(out + qend + 4) != DNS_CLASS_IN ||
		    dns_get16(out + qend + 10) != alen || memcmp(out + qend + 12, addr, alen))
			abort();
		if (dns_ttl_scan(out, &a, offs, 2, &info) || info.nrr != 1 || info.min_ttl != ttl ||
		    offs[0] != qend + 6)
			abort();
	}

	/* Exactly enough room, then one octet short. */
	free(out);
	out = malloc((size_t)n);
	if (!out || dns_build_address(out, (size_t)n, q, m, family, addr, ttl) != n)
		abort();
	if (dns_build_address(out, (size_t)n - 1, q, m, family, addr, ttl) != -ENOSPC)
		abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_msg m;

	if (dns_msg_parse(&m, data, size) || dns_query_check(&m))
		return 0;
	if (m.qdcount == 1) { /* policy answers are only built for a question */
		fuzz_address(data, &m, AF_INET);
		fuzz_address(data, &m, AF_INET6);
	}
	if (m.has_opt)
		fuzz_restore_input(data, &m);
	fuzz_rewrite(data, &m);
	return 0;
}

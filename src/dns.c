/*
 * dns.c - DNS wire format: validate a message into a struct dns_msg view, build error answers,
 * truncate answers for UDP, print names for logs.
 *
 * Pure code: no sockets, no logging, no globals, no allocation. Every read is bounded by the
 * length the caller gave; malformed input yields -EBADMSG. Compression pointers must point
 * strictly below the start of the label run that holds them (the name's start, or the target
 * of the previous pointer), so every jump lowers the read position and a name can never loop;
 * and the labels a pointer leads to must end before that pointer, so a name is made only of
 * octets that come before it (RFC 1035 4.1.4, "a prior occurrence") and rewriting anything
 * after a name never changes it. The jump count and the 255-octet name limit bound the work
 * per name, and every RR takes at least 11 octets, so a parse is linear in the message length.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/dns.h"

#define DNS_MAX_JUMPS 127	     /* a 255-octet name has at most 127 labels */
#define DNS_RR_FIXED  10	     /* TYPE, CLASS, TTL, RDLENGTH after the owner name */
#define DNS_OPT_DO    DNS_OPT_TTL_DO /* DNSSEC OK, in the low 16 bits of the OPT TTL */
#define DNS_TYPE_IXFR 251
#define DNS_TYPE_AXFR 252

enum dns_section { DNS_SEC_AN, DNS_SEC_NS, DNS_SEC_AR };

static int name_walk(const uint8_t *buf, size_t len, size_t off, size_t *end, uint8_t *out,
		     size_t *out_len);
static int opt_options_check(const uint8_t *p, size_t n, uint8_t *seen);
static int rr_walk(struct dns_msg *m, const uint8_t *buf, size_t len, size_t *off,
		   enum dns_section sec);
static int name_check(const uint8_t *name, size_t name_len);
static bool text_plain(uint8_t c);
static uint8_t ascii_lower(uint8_t c);

/*
 * name_walk - validate the possibly compressed name at buf[off], set *end to the offset just
 * past it (past its first pointer, if any). When out is not NULL, copy the uncompressed name
 * there (DNS_MAX_NAME octets room) and its length to *out_len. Returns 0 or -EBADMSG.
 */
static int name_walk(const uint8_t *buf, size_t len, size_t off, size_t *end, uint8_t *out,
		     size_t *out_len)
{
	size_t pos = off, run = off, limit = len, wire = 0, after = 0;
	unsigned int jumps = 0;

	for (;;) {
		size_t target;
		uint8_t c;

		/* limit: the message's end, then the offset of the last pointer followed */
		if (pos >= limit)
			return -EBADMSG;
		c = buf[pos];
		if ((c & 0xc0) == 0xc0) {
			if (limit - pos < 2)
				return -EBADMSG;
			target = (size_t)(c & 0x3f) << 8 | buf[pos + 1];
			/* Never into the header, never forward, at most DNS_MAX_JUMPS times. */
			if (target < DNS_HDR_LEN || target >= run || ++jumps > DNS_MAX_JUMPS)
				return -EBADMSG;
			if (jumps == 1)
				after = pos + 2;
			limit = pos;
			pos = run = target;
			continue;
		}
		/* 0x40 (extended, RFC 6891) and 0x80 (reserved) label types. */
		if (c & 0xc0)
			return -EBADMSG;
		if (c == 0)
			break;
		/* This label, then at least the root label, must fit DNS_MAX_NAME. */
		if (limit - pos <= c || wire + 1 + c + 1 > DNS_MAX_NAME)
			return -EBADMSG;
		if (out)
			memcpy(out + wire, buf + pos, 1 + (size_t)c);
		wire += 1 + (size_t)c;
		pos += 1 + (size_t)c;
	}
	if (out)
		out[wire] = 0;
	wire++;
	*end = jumps ? after : pos + 1;
	if (out_len)
		*out_len = wire;
	return 0;
}

/*
 * opt_options_check - the OPT RDATA is a sequence of {CODE, LENGTH, DATA} that fills it; the
 * DNS_OPTS_* kinds found are or-ed into *seen.
 */
static int opt_options_check(const uint8_t *p, size_t n, uint8_t *seen)
{
	while (n) {
		size_t olen;
		uint16_t code;

		if (n < 4)
			return -EBADMSG;
		code = dns_get16(p);
		olen = dns_get16(p + 2);
		if (n - 4 < olen)
			return -EBADMSG;
		switch (code) {
		case DNS_EDNS_COOKIE:
			*seen |= DNS_OPTS_COOKIE;
			break;
		case DNS_EDNS_ECS:
			*seen |= DNS_OPTS_ECS;
			break;
		case DNS_EDNS_NSID:
			*seen |= DNS_OPTS_NSID;
			break;
		case DNS_EDNS_PADDING:
		case DNS_EDNS_KEEPALIVE:
			*seen |= DNS_OPTS_TRANSPORT;
			break;
		default:
			*seen |= DNS_OPTS_OTHER;
		}
		p += 4 + olen;
		n -= 4 + olen;
	}
	return 0;
}

/*
 * rr_walk - validate the RR at buf[*off] of section sec and advance *off past it; record the
 * OPT RR in *m. Returns 0 or -EBADMSG.
 */
static int rr_walk(struct dns_msg *m, const uint8_t *buf, size_t len, size_t *off,
		   enum dns_section sec)
{
	size_t start = *off, pos, rdlen;
	uint16_t type;
	int rc;

	rc = name_walk(buf, len, start, &pos, NULL, NULL);
	if (rc)
		return rc;
	if (len - pos < DNS_RR_FIXED)
		return -EBADMSG;
	type = dns_get16(buf + pos);
	rdlen = dns_get16(buf + pos + 8);
	if (len - pos - DNS_RR_FIXED < rdlen)
		return -EBADMSG;

	if (type == DNS_TYPE_OPT) {
		/* RFC 6891 6.1.1: one OPT RR, in the additional section, owned by the root. */
		if (sec != DNS_SEC_AR || m->has_opt || pos != start + 1)
			return -EBADMSG;
		rc = opt_options_check(buf + pos + DNS_RR_FIXED, rdlen, &m->opt_seen);
		if (rc)
			return rc;
		m->has_opt = true;
		m->opt_off = start;
		m->opt_len = DNS_OPT_MIN_LEN + rdlen;
		m->opt_udp_size = dns_get16(buf + pos + 2);
		m->opt_ttl = dns_get32(buf + pos + 4);
	}
	*off = pos + DNS_RR_FIXED + rdlen;
	return 0;
}

int dns_msg_parse(struct dns_msg *m, const uint8_t *buf, size_t len)
{
	static const enum dns_section order[] = {DNS_SEC_AN, DNS_SEC_NS, DNS_SEC_AR};
	struct dns_msg v;
	size_t off, i, n;
	uint16_t counts[3];
	int rc;

	if (len < DNS_HDR_LEN || len > DNS_MAX_MSG)
		return -EBADMSG;
	memset(&v, 0, sizeof(v));
	v.id = dns_get16(buf);
	v.flags = dns_get16(buf + 2);
	v.qdcount = dns_get16(buf + 4);
	v.ancount = dns_get16(buf + 6);
	v.nscount = dns_get16(buf + 8);
	v.arcount = dns_get16(buf + 10);
	if (v.qdcount > 1)
		return -EBADMSG;

	off = DNS_HDR_LEN;
	if (v.qdcount == 1) {
		size_t name_len;

		rc = name_walk(buf, len, off, &off, v.q.name, &name_len);
		if (rc)
			return rc;
		if (len - off < 4)
			return -EBADMSG;
		v.q.name_len = (uint8_t)name_len;
		v.q.qtype = dns_get16(buf + off);
		v.q.qclass = dns_get16(buf + off + 2);
		off += 4;
	}
	v.question_end = off;

	counts[0] = v.ancount;
	counts[1] = v.nscount;
	counts[2] = v.arcount;
	for (i = 0; i < 3; i++) {
		for (n = 0; n < counts[i]; n++) {
			rc = rr_walk(&v, buf, len, &off, order[i]);
			if (rc)
				return rc;
		}
	}
	if (off != len)
		return -EBADMSG;
	v.opt_last = v.has_opt && v.opt_off + v.opt_len == len;
	v.len = len;
	*m = v;
	return 0;
}

int dns_query_check(const struct dns_msg *m)
{
	return m->flags & DNS_FLAG_QR ? -EBADMSG : 0;
}

bool dns_query_is_stub(const struct dns_msg *m)
{
	return !(m->flags & DNS_FLAG_QR) &&
	       (m->flags & DNS_OPCODE_MASK) == DNS_OPCODE_QUERY << 11 && (m->flags & DNS_FLAG_RD) &&
	       m->qdcount == 1 && m->q.qclass == DNS_CLASS_IN && m->q.qtype != DNS_TYPE_AXFR &&
	       m->q.qtype != DNS_TYPE_IXFR;
}

static uint8_t ascii_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

bool dns_question_equal(const struct dns_question *a, const struct dns_question *b)
{
	size_t i;

	if (a->qtype != b->qtype || a->qclass != b->qclass || a->name_len != b->name_len)
		return false;
	/* the usual case, an answer's question as asked: one memcmp, not a loop per octet */
	if (memcmp(a->name, b->name, a->name_len < DNS_MAX_NAME ? a->name_len : DNS_MAX_NAME) == 0)
		return true;
	/* Length octets (0..63) are never ASCII letters: folding every octet is exact. */
	for (i = 0; i < a->name_len && i < DNS_MAX_NAME; i++)
		if (ascii_lower(a->name[i]) != ascii_lower(b->name[i]))
			return false;
	return true;
}

/* name_check - an uncompressed name: labels of at most 63 octets, ending with the root. */
static int name_check(const uint8_t *name, size_t name_len)
{
	size_t pos = 0;

	if (name_len == 0 || name_len > DNS_MAX_NAME)
		return -EBADMSG;
	for (;;) {
		uint8_t c = name[pos];

		if (c & 0xc0)
			return -EBADMSG;
		if (c == 0)
			return pos + 1 == name_len ? 0 : -EBADMSG;
		if (name_len - pos - 1 <= c)
			return -EBADMSG;
		pos += 1 + (size_t)c;
	}
}

static bool text_plain(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

int dns_name_to_text(const uint8_t *name, size_t name_len, char *out, size_t outlen)
{
	static const char digits[] = "0123456789";
	size_t pos, need = 0, w = 0;
	int rc;

	rc = name_check(name, name_len);
	if (rc)
		return rc;
	if (name_len == 1)
		need = 1;
	for (pos = 0; name[pos]; pos++) {
		size_t end = pos + name[pos];

		while (pos < end)
			need += text_plain(name[++pos]) ? 1 : 4;
		need++;
	}
	if (outlen <= need)
		return -ENOSPC;

	if (name_len == 1)
		out[w++] = '.';
	for (pos = 0; name[pos]; pos++) {
		size_t end = pos + name[pos];

		while (pos < end) {
			uint8_t c = name[++pos];

			if (text_plain(c)) {
				out[w++] = (char)c;
				continue;
			}
			out[w++] = '\\';
			out[w++] = digits[c / 100];
			out[w++] = digits[c / 10 % 10];
			out[w++] = digits[c % 10];
		}
		out[w++] = '.';
	}
	out[w] = '\0';
	return (int)w;
}

size_t dns_udp_limit(const struct dns_msg *q, size_t cap)
{
	size_t size;

	if (!q->has_opt)
		return DNS_MIN_UDP;
	size = q->opt_udp_size;
	if (size > cap)
		size = cap;
	if (size < DNS_MIN_UDP)
		size = DNS_MIN_UDP;
	return size;
}

int dns_truncate(uint8_t *buf, const struct dns_msg *r, size_t limit)
{
	size_t opt_len = r->has_opt ? r->opt_len : 0;
	size_t n = r->question_end + opt_len;
	uint16_t flags;

	if (n > limit)
		return -ENOSPC;
	if (opt_len)
		memmove(buf + r->question_end, buf + r->opt_off, opt_len);
	flags = (uint16_t)(dns_get16(buf + 2) | DNS_FLAG_TC);
	dns_put16(buf + 2, flags);
	dns_put16(buf + 6, 0);
	dns_put16(buf + 8, 0);
	dns_put16(buf + 10, r->has_opt ? 1 : 0);
	return (int)n;
}

int dns_build_error(uint8_t *out, size_t outlen, const uint8_t *query, size_t qlen,
		    const struct dns_msg *q, int rcode)
{
	bool question = q && q->qdcount == 1;
	bool opt = q && q->has_opt;
	uint16_t id, flags;
	size_t n = DNS_HDR_LEN, name_len = 0;

	if (qlen < DNS_HDR_LEN)
		return -EBADMSG;
	/* Extended rcodes (above 15) live in the OPT RR: they need one. */
	if (rcode < 0 || rcode > (opt ? 0xfff : DNS_RCODE_MASK))
		return -EINVAL;
	if (opt && DNS_OPT_TTL_VERSION(q->opt_ttl) != 0)
		rcode = DNS_RCODE_BADVERS;
	if (question) {
		name_len = q->q.name_len;
		if (name_len == 0)
			return -EINVAL;
		n += name_len + 4;
	}
	if (opt)
		n += DNS_OPT_MIN_LEN;
	if (n > outlen)
		return -ENOSPC;

	/* Read the query's header before writing: out may be the query buffer itself. */
	id = dns_get16(query);
	flags = dns_get16(query + 2);
	flags &= DNS_OPCODE_MASK | DNS_FLAG_RD | DNS_FLAG_CD;
	flags |= DNS_FLAG_QR | DNS_FLAG_RA | (uint16_t)(rcode & DNS_RCODE_MASK);

	dns_put16(out, id);
	dns_put16(out + 2, flags);
	dns_put16(out + 4, question ? 1 : 0);
	dns_put16(out + 6, 0);
	dns_put16(out + 8, 0);
	dns_put16(out + 10, opt ? 1 : 0);
	n = DNS_HDR_LEN;
	if (question) {
		memcpy(out + n, q->q.name, name_len);
		n += name_len;
		dns_put16(out + n, q->q.qtype);
		dns_put16(out + n + 2, q->q.qclass);
		n += 4;
	}
	if (opt) {
		/* TTL: extended rcode, version 0, the query's DO bit (RFC 3225 3), Z clear. */
		out[n] = 0;
		dns_put16(out + n + 1, DNS_TYPE_OPT);
		dns_put16(out + n + 3, DNS_DEFAULT_UDP_CAP);
		dns_put32(out + n + 5, (uint32_t)(rcode >> 4) << 24 | (q->opt_ttl & DNS_OPT_DO));
		dns_put16(out + n + 9, 0);
		n += DNS_OPT_MIN_LEN;
	}
	return (int)n;
}

/*
 * opt_filter - copy the options of rdata (n octets, already validated by dns_msg_parse) to out,
 * leaving out padding and keepalive; a keepalive timeout seen is stored in *keepalive.
 * Returns the length written (never more than n).
 */
static size_t opt_filter(const uint8_t *rdata, size_t n, uint8_t *out, uint16_t *keepalive)
{
	size_t off = 0, w = 0;

	while (n - off >= 4) {
		uint16_t code = dns_get16(rdata + off), olen = dns_get16(rdata + off + 2);

		if (olen > n - off - 4)
			break;
		if (code == DNS_EDNS_KEEPALIVE && olen == 2 && keepalive)
			*keepalive = dns_get16(rdata + off + 4);
		if (code != DNS_EDNS_PADDING && code != DNS_EDNS_KEEPALIVE) {
			memmove(out + w, rdata + off, 4 + (size_t)olen);
			w += 4 + (size_t)olen;
		}
		off += 4 + (size_t)olen;
	}
	return w;
}

int dns_query_rewrite(uint8_t *out, size_t outlen, const uint8_t *q, const struct dns_msg *m,
		      bool keepalive, size_t pad_block)
{
	size_t head = m->has_opt ? m->opt_off : m->len; /* everything before the OPT RR */
	size_t tail_off = m->has_opt ? m->opt_off + m->opt_len : m->len;
	size_t tail = m->len - tail_off, n, rdlen, pad = 0;
	uint16_t arcount = m->arcount;

	if (tail) {
		/*
		 * Records after the OPT RR (rare; TSIG, which any rewrite breaks anyway) may
		 * compress their names into the octets a rewrite would change or move: send the
		 * query as it is, unpadded, rather than corrupt it.
		 */
		if (m->len > outlen)
			return -ENOSPC;
		memcpy(out, q, m->len);
		return (int)m->len;
	}
	if (head + DNS_OPT_MIN_LEN + tail > outlen)
		return -ENOSPC;
	memcpy(out, q, head);
	n = head;
	out[n] = 0; /* root owner */
	dns_put16(out + n + 1, DNS_TYPE_OPT);
	if (m->has_opt) {
		memcpy(out + n + 3, q + m->opt_off + 3, 6); /* class (payload size) and TTL */
		rdlen = m->opt_len - DNS_OPT_MIN_LEN;
		if (n + DNS_OPT_MIN_LEN + rdlen + tail > outlen)
			return -ENOSPC;
		rdlen = opt_filter(q + m->opt_off + DNS_OPT_MIN_LEN, rdlen,
				   out + n + DNS_OPT_MIN_LEN, NULL);
	} else {
		dns_put16(out + n + 3, DNS_DEFAULT_UDP_CAP);
		dns_put32(out + n + 5, 0);
		rdlen = 0;
		arcount++;
	}
	n += DNS_OPT_MIN_LEN + rdlen;
	if (keepalive) {
		if (n + 4 + tail > outlen)
			return -ENOSPC;
		dns_put16(out + n, DNS_EDNS_KEEPALIVE);
		dns_put16(out + n + 2, 0);
		n += 4;
		rdlen += 4;
	}
	if (pad_block) {
		size_t total = n + 4 + tail;

		pad = (pad_block - total % pad_block) % pad_block;
		if (total + pad > outlen || total + pad > DNS_MAX_MSG)
			pad = 0; /* no room to pad: send it unpadded rather than not at all */
		if (total + pad > outlen)
			return -ENOSPC;
		dns_put16(out + n, DNS_EDNS_PADDING);
		dns_put16(out + n + 2, (uint16_t)pad);
		memset(out + n + 4, 0, pad);
		n += 4 + pad;
		rdlen += 4 + pad;
	}
	if (rdlen > 0xffff || n + tail > DNS_MAX_MSG)
		return -ENOSPC;
	dns_put16(out + head + 9, (uint16_t)rdlen);
	memcpy(out + n, q + tail_off, tail);
	dns_put16(out + 10, arcount);
	return (int)(n + tail);
}

size_t dns_answer_restore_view(uint8_t *buf, struct dns_msg *r, bool client_opt,
			       uint16_t *keepalive)
{
	size_t rd = r->opt_off + DNS_OPT_MIN_LEN, rdlen, tail_off, w;

	if (!r->has_opt)
		return r->len;
	rdlen = r->opt_len - DNS_OPT_MIN_LEN;
	tail_off = r->opt_off + r->opt_len;
	w = opt_filter(buf + rd, rdlen, buf + rd, keepalive);
	if (!client_opt && DNS_OPT_TTL_EXT_RCODE(r->opt_ttl) != 0) {
		/* the rcode's upper bits live here: keep the RR, but none of its options */
		w = 0;
	} else if (!client_opt) {
		memmove(buf + r->opt_off, buf + tail_off, r->len - tail_off);
		r->arcount--;
		dns_put16(buf + 10, r->arcount);
		r->len -= r->opt_len;
		r->has_opt = r->opt_last = false;
		r->opt_off = r->opt_len = 0;
		r->opt_seen = 0;
		return r->len;
	}
	dns_put16(buf + r->opt_off + 9, (uint16_t)w);
	memmove(buf + rd + w, buf + tail_off, r->len - tail_off);
	r->opt_len = DNS_OPT_MIN_LEN + w;
	r->len -= rdlen - w;
	r->opt_seen = w ? (uint8_t)(r->opt_seen & ~DNS_OPTS_TRANSPORT) : 0;
	return r->len;
}

size_t dns_opt_clear(uint8_t *buf, struct dns_msg *r)
{
	if (!r->has_opt || !r->opt_last)
		return r->len;
	dns_put16(buf + r->opt_off + 9, 0);
	r->len -= r->opt_len - DNS_OPT_MIN_LEN;
	r->opt_len = DNS_OPT_MIN_LEN;
	r->opt_seen = 0;
	return r->len;
}

size_t dns_answer_restore(uint8_t *buf, const struct dns_msg *r, bool client_opt,
			  uint16_t *keepalive)
{
	struct dns_msg v = *r;

	return dns_answer_restore_view(buf, &v, client_opt, keepalive);
}

int dns_ttl_scan(const uint8_t *buf, const struct dns_msg *m, uint16_t *offs, size_t max,
		 struct dns_ttl_info *info)
{
	size_t off = m->question_end, counts[3] = {m->ancount, m->nscount, m->arcount};
	struct dns_ttl_info r = {.min_ttl = UINT32_MAX};

	/* m was validated by dns_msg_parse: every name and RR fits the buffer */
	for (size_t sec = 0; sec < 3; sec++) {
		for (size_t i = 0; i < counts[sec]; i++) {
			size_t pos, rdlen;
			uint16_t type;
			uint32_t ttl;

			if (name_walk(buf, m->len, off, &pos, NULL, NULL))
				return -EBADMSG;
			type = dns_get16(buf + pos);
			ttl = dns_get32(buf + pos + 4);
			rdlen = dns_get16(buf + pos + 8);
			off = pos + DNS_RR_FIXED + rdlen;
			if (type == DNS_TYPE_OPT)
				continue;
			if (r.nrr == max)
				return -E2BIG;
			offs[r.nrr++] = (uint16_t)(pos + 4);
			if (ttl > 0x7fffffff) /* RFC 2181 8: treat as zero */
				ttl = 0;
			if (ttl < r.min_ttl)
				r.min_ttl = ttl;
			if (sec == 1 && type == DNS_TYPE_SOA && rdlen >= 20) {
				uint32_t minimum = dns_get32(buf + off - 4);

				r.neg_ttl = ttl < minimum ? ttl : minimum;
				r.have_soa = true;
			}
		}
	}
	if (r.nrr == 0)
		r.min_ttl = 0;
	*info = r;
	return 0;
}

int dns_build_address(uint8_t *out, size_t outlen, const uint8_t *q, const struct dns_msg *m,
		      int family, const uint8_t *addr, uint32_t ttl)
{
	uint16_t type = family == AF_INET6 ? DNS_TYPE_AAAA : DNS_TYPE_A;
	size_t alen = type == DNS_TYPE_AAAA ? 16 : 4, rr = 12 + alen;
	size_t qend;
	int n;

	if (m->qdcount != 1)
		return -EINVAL;
	n = dns_build_error(out, outlen, q, m->len, m, DNS_RCODE_NOERROR);
	if (n < 0 || (m->has_opt && DNS_OPT_TTL_VERSION(m->opt_ttl) != 0))
		return n; /* BADVERS */
	dns_put16(out + 2, (uint16_t)(dns_get16(out + 2) | DNS_FLAG_AA));
	if (m->q.qtype != type || m->q.qclass != DNS_CLASS_IN)
		return n; /* NODATA */
	if ((size_t)n + rr > outlen)
		return -ENOSPC;
	qend = DNS_HDR_LEN + m->q.name_len + 4;
	memmove(out + qend + rr, out + qend, (size_t)n - qend); /* the OPT RR, if any */
	dns_put16(out + qend, 0xc000 | DNS_HDR_LEN);		/* the question's name */
	dns_put16(out + qend + 2, type);
	dns_put16(out + qend + 4, DNS_CLASS_IN);
	dns_put32(out + qend + 6, ttl);
	dns_put16(out + qend + 10, (uint16_t)alen);
	memcpy(out + qend + 12, addr, alen);
	dns_put16(out + 6, 1);
	return n + (int)rr;
}

int dns_frame_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **msg, size_t *mlen)
{
	size_t flen;

	if (*off > len || len - *off < 2)
		return 0;
	flen = dns_get16(buf + *off);
	if (flen < DNS_HDR_LEN)
		return -EBADMSG;
	if (len - *off - 2 < flen)
		return 0;
	*msg = buf + *off + 2;
	*mlen = flen;
	*off += 2 + flen;
	return 1;
}

int dns_answer_names(const uint8_t *buf, const struct dns_msg *m,
		     int (*fn)(void *data, uint16_t type, bool target, const uint8_t *name,
			       size_t name_len),
		     void *data)
{
	uint8_t name[DNS_MAX_NAME];
	size_t off = m->question_end;

	for (size_t i = 0; i < m->ancount; i++) {
		size_t pos, nlen, end;
		uint16_t type;
		int r;

		if (name_walk(buf, m->len, off, &pos, name, &nlen) || m->len - pos < DNS_RR_FIXED)
			return -EBADMSG;
		type = dns_get16(buf + pos);
		end = pos + DNS_RR_FIXED + dns_get16(buf + pos + 8);
		if (end > m->len)
			return -EBADMSG;
		r = fn(data, type, false, name, nlen);
		if (r)
			return r;
		if (type == DNS_TYPE_CNAME || type == DNS_TYPE_DNAME) {
			size_t tend;

			/* the target must fill the RDATA exactly */
			if (name_walk(buf, end, pos + DNS_RR_FIXED, &tend, name, &nlen) ||
			    tend != end)
				return -EBADMSG;
			r = fn(data, type, true, name, nlen);
			if (r)
				return r;
		}
		off = end;
	}
	return 0;
}

/* name_equal - two uncompressed names, ASCII case folded (see dns_question_equal). */
static bool name_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

struct chain {
	uint8_t names[DNS_CHAIN_MAX][DNS_MAX_NAME];
	size_t lens[DNS_CHAIN_MAX];
	size_t n;
};

static bool chain_has(const struct chain *c, const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < c->n; i++)
		if (name_equal(c->names[i], c->lens[i], name, len))
			return true;
	return false;
}

/*
 * chain_pass - one walk of the answer section: CNAMEs whose owner is in the chain add their
 * targets; with fn, A/AAAA records whose owner is in the chain go to fn. Sets *grew when the
 * chain grew. 0, fn's non-zero return, or -EBADMSG.
 */
static int chain_pass(const uint8_t *buf, const struct dns_msg *m, struct chain *c, bool *grew,
		      int (*fn)(void *data, int family, const uint8_t *addr, uint32_t ttl),
		      void *data)
{
	uint8_t name[DNS_MAX_NAME], target[DNS_MAX_NAME];
	size_t off = m->question_end;

	for (size_t i = 0; i < m->ancount; i++) {
		size_t pos, nlen, tlen, tend, end, rdlen;
		uint16_t type, class;
		int r;

		if (name_walk(buf, m->len, off, &pos, name, &nlen) || m->len - pos < DNS_RR_FIXED)
			return -EBADMSG;
		type = dns_get16(buf + pos);
		class = dns_get16(buf + pos + 2);
		rdlen = dns_get16(buf + pos + 8);
		end = pos + DNS_RR_FIXED + rdlen;
		if (end > m->len)
			return -EBADMSG;
		off = end;
		if (class != DNS_CLASS_IN || !chain_has(c, name, nlen))
			continue;
		if (type == DNS_TYPE_CNAME && !fn) {
			if (name_walk(buf, end, pos + DNS_RR_FIXED, &tend, target, &tlen) ||
			    tend != end)
				return -EBADMSG;
			if (c->n < DNS_CHAIN_MAX && !chain_has(c, target, tlen)) {
				memcpy(c->names[c->n], target, tlen);
				c->lens[c->n++] = tlen;
				*grew = true;
			}
		} else if (fn && ((type == DNS_TYPE_A && rdlen == 4) ||
				  (type == DNS_TYPE_AAAA && rdlen == 16))) {
			r = fn(data, type == DNS_TYPE_A ? AF_INET : AF_INET6,
			       buf + pos + DNS_RR_FIXED, dns_get32(buf + pos + 4));
			if (r)
				return r;
		}
	}
	return 0;
}

int dns_answer_addrs(const uint8_t *buf, const struct dns_msg *m,
		     int (*fn)(void *data, int family, const uint8_t *addr, uint32_t ttl),
		     void *data)
{
	struct chain c;
	bool grew = true;
	int r;

	if (m->qdcount != 1)
		return 0;
	memcpy(c.names[0], m->q.name, m->q.name_len);
	c.lens[0] = m->q.name_len;
	c.n = 1;
	/* records in chain order need one pass to find the chain; each further pass that finds
	 * a new link means one was out of order, and there are at most DNS_CHAIN_MAX links */
	for (size_t pass = 0; grew && pass < DNS_CHAIN_MAX; pass++) {
		grew = false;
		r = chain_pass(buf, m, &c, &grew, NULL, NULL);
		if (r)
			return r;
	}
	return chain_pass(buf, m, &c, &grew, fn, data);
}

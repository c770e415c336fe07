/*
 * svcb.c - reading DDR's SVCB answers (RFC 9460 wire format, RFC 9461 keys for DNS, RFC 9462
 * discovery); see svcb.h for the contract.
 *
 * Invariants:
 * - Every read is bounded by the message (for names and RR headers) or by the RDATA (for the
 *   SvcParams): nothing past m->len is touched, whatever the input.
 * - A record is either taken whole or skipped whole; *out is written only for the one picked.
 */
#include <errno.h>
#include <string.h>

#include "dotgw/svcb.h"

#define RR_FIXED 10 /* TYPE, CLASS, TTL, RDLENGTH */
#define CLASS_IN 1

enum svcb_key {
	SVCB_KEY_MANDATORY = 0,
	SVCB_KEY_ALPN = 1,
	SVCB_KEY_NO_DEFAULT_ALPN = 2,
	SVCB_KEY_PORT = 3,
	SVCB_KEY_IPV4HINT = 4,
	SVCB_KEY_ECH = 5,
	SVCB_KEY_IPV6HINT = 6,
	SVCB_KEY_DOHPATH = 7,
};

static const uint8_t dns_resolver_arpa[] = "\4_dns\10resolver\4arpa"; /* + the root's 0 */

static int name_skip(const uint8_t *buf, size_t len, size_t off, size_t *end);
static int name_read(const uint8_t *buf, size_t len, size_t off, uint8_t *out, size_t *out_len);
static int record_read(const uint8_t *rd, size_t n, struct svcb_dot *d);

/* name_skip - the offset just past the (possibly compressed) name at buf[off]. 0 or -EBADMSG. */
static int name_skip(const uint8_t *buf, size_t len, size_t off, size_t *end)
{
	size_t total = 0;

	for (;;) {
		if (off >= len)
			return -EBADMSG;
		if ((buf[off] & 0xc0) == 0xc0) {
			if (len - off < 2)
				return -EBADMSG;
			*end = off + 2;
			return 0;
		}
		if (buf[off] & 0xc0)
			return -EBADMSG;
		if (buf[off] == 0) {
			*end = off + 1;
			return 0;
		}
		total += 1u + buf[off];
		if (total >= DNS_MAX_NAME)
			return -EBADMSG;
		off += 1u + buf[off];
	}
}

/*
 * name_read - the name at buf[off] uncompressed into out (DNS_MAX_NAME octets), its length in
 * *out_len. Pointers must go backwards, so a loop cannot be built. 0 or -EBADMSG.
 */
static int name_read(const uint8_t *buf, size_t len, size_t off, uint8_t *out, size_t *out_len)
{
	size_t wire = 0, limit = len;

	for (;;) {
		uint8_t c;

		if (off >= limit)
			return -EBADMSG;
		c = buf[off];
		if ((c & 0xc0) == 0xc0) {
			size_t target;

			if (limit - off < 2)
				return -EBADMSG;
			target = (size_t)(c & 0x3f) << 8 | buf[off + 1];
			if (target < DNS_HDR_LEN || target >= off)
				return -EBADMSG;
			limit = off;
			off = target;
			continue;
		}
		if (c & 0xc0)
			return -EBADMSG;
		if (c == 0)
			break;
		if (limit - off <= c || wire + 1u + c + 1u > DNS_MAX_NAME)
			return -EBADMSG;
		memcpy(out + wire, buf + off, 1u + c);
		wire += 1u + c;
		off += 1u + c;
	}
	out[wire++] = 0;
	*out_len = wire;
	return 0;
}

bool svcb_is_dns_resolver_arpa(const uint8_t *name, size_t name_len)
{
	if (name_len != sizeof(dns_resolver_arpa))
		return false;
	for (size_t i = 0; i < name_len; i++) {
		uint8_t c = name[i];

		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		if (c != dns_resolver_arpa[i]) /* the terminating NUL is the root label */
			return false;
	}
	return true;
}

/*
 * target_text - the uncompressed name at rd (at most n octets): its length in *used, and as
 * lower-case text in out. -EBADMSG: malformed (RFC 9460 2.2: TargetName is never compressed);
 * -EINVAL: well-formed but no host name ("." or a character no host name has).
 */
static int target_text(const uint8_t *rd, size_t n, size_t *used, char *out)
{
	size_t off = 0, o = 0;
	bool host = true;

	for (;;) {
		uint8_t c;

		if (off >= n)
			return -EBADMSG;
		c = rd[off++];
		if (c == 0)
			break;
		if (c & 0xc0 || n - off < c || o + c + 1 >= SVCB_TARGET_TEXT)
			return -EBADMSG;
		if (o)
			out[o++] = '.';
		for (uint8_t i = 0; i < c; i++) {
			uint8_t ch = rd[off++];

			if (ch >= 'A' && ch <= 'Z')
				ch = (uint8_t)(ch - 'A' + 'a');
			if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
			      ch == '_'))
				host = false;
			out[o++] = (char)ch;
		}
	}
	out[o] = 0;
	*used = off;
	return o && host ? 0 : -EINVAL; /* ".": the owner's name, no host name to verify */
}

/* key_known - a key this parser reads or may safely ignore: mandatory may list it. */
static bool key_known(uint16_t k)
{
	return k == SVCB_KEY_ALPN || k == SVCB_KEY_NO_DEFAULT_ALPN || k == SVCB_KEY_PORT ||
	       k == SVCB_KEY_IPV4HINT || k == SVCB_KEY_IPV6HINT || k == SVCB_KEY_DOHPATH;
}

/*
 * alpn_has_dot - the alpn value (a non-empty sequence of non-empty length-prefixed ids that
 * fills it) lists "dot". 1 yes, 0 no, -EBADMSG malformed.
 */
static int alpn_has_dot(const uint8_t *v, size_t n)
{
	bool dot = false;
	size_t off = 0;

	if (n == 0)
		return -EBADMSG;
	while (off < n) {
		uint8_t l = v[off++];

		if (l == 0 || n - off < l)
			return -EBADMSG;
		if (l == 3 && memcmp(v + off, "dot", 3) == 0)
			dot = true;
		off += l;
	}
	return dot;
}

/*
 * record_read - one SVCB RDATA (rd, n octets). 1: a usable DoT designation, in *d; 0: valid
 * but not usable (AliasMode, no "dot", an unknown mandatory key, "." target); -EBADMSG.
 */
static int record_read(const uint8_t *rd, size_t n, struct svcb_dot *d)
{
	const uint8_t *mandatory = NULL;
	size_t off, used, mlen = 0;
	bool dot = false, usable = true;
	long last = -1;
	int r;

	if (n < 3)
		return -EBADMSG;
	memset(d, 0, sizeof(*d));
	d->priority = dns_get16(rd);
	d->port = SVCB_DOT_PORT;
	r = target_text(rd + 2, n - 2, &used, d->target);
	if (r == -EBADMSG)
		return r;
	if (r < 0)
		usable = false;
	off = 2 + used;
	if (d->priority == 0) /* AliasMode: no SvcParams follow (RFC 9460 2.4.2) */
		return off == n ? 0 : -EBADMSG;
	while (off < n) {
		uint16_t key, len;
		const uint8_t *v;

		if (n - off < 4)
			return -EBADMSG;
		key = dns_get16(rd + off);
		len = dns_get16(rd + off + 2);
		off += 4;
		if ((long)key <= last || n - off < len)
			return -EBADMSG; /* RFC 9460 2.2: strictly increasing keys */
		last = key;
		v = rd + off;
		off += len;
		switch (key) {
		case SVCB_KEY_MANDATORY:
			if (len == 0 || len % 2)
				return -EBADMSG;
			mandatory = v;
			mlen = len;
			break;
		case SVCB_KEY_ALPN:
			r = alpn_has_dot(v, len);
			if (r < 0)
				return r;
			dot = r;
			break;
		case SVCB_KEY_NO_DEFAULT_ALPN:
			if (len)
				return -EBADMSG;
			break;
		case SVCB_KEY_PORT:
			if (len != 2)
				return -EBADMSG;
			d->port = dns_get16(v);
			break;
		case SVCB_KEY_IPV4HINT:
			if (len == 0 || len % 4)
				return -EBADMSG;
			for (size_t i = 0; i < len / 4u && d->n_v4 < SVCB_MAX_HINTS; i++)
				memcpy(d->v4[d->n_v4++], v + 4 * i, 4);
			break;
		case SVCB_KEY_IPV6HINT:
			if (len == 0 || len % 16)
				return -EBADMSG;
			for (size_t i = 0; i < len / 16u && d->n_v6 < SVCB_MAX_HINTS; i++)
				memcpy(d->v6[d->n_v6++], v + 16 * i, 16);
			break;
		default: /* dohpath, ech and keys yet to come: not ours to read */
			break;
		}
	}
	/* RFC 9460 8: a record whose mandatory keys we do not all know is not for us */
	for (size_t i = 0; mandatory && i < mlen; i += 2) {
		uint16_t k = dns_get16(mandatory + i);

		if (k == SVCB_KEY_MANDATORY)
			return -EBADMSG;
		if (!key_known(k))
			usable = false;
	}
	return usable && dot && d->port != 0;
}

int svcb_dot_pick(const uint8_t *buf, const struct dns_msg *m, struct svcb_dot *out, uint32_t *ttl)
{
	struct svcb_dot best, d;
	uint8_t owner[DNS_MAX_NAME];
	size_t off = m->question_end, olen;
	uint32_t min_ttl = UINT32_MAX;
	bool found = false;

	if (!(m->flags & DNS_FLAG_QR) || m->qdcount != 1 || m->q.qtype != DNS_TYPE_SVCB ||
	    m->q.qclass != CLASS_IN || !svcb_is_dns_resolver_arpa(m->q.name, m->q.name_len))
		return -EBADMSG;
	for (size_t i = 0; i < m->ancount; i++) {
		size_t pos, rdlen;
		uint32_t t;
		int r;

		if (name_read(buf, m->len, off, owner, &olen) < 0 ||
		    name_skip(buf, m->len, off, &pos) < 0 || m->len - pos < RR_FIXED)
			return -EBADMSG;
		rdlen = dns_get16(buf + pos + 8);
		if (m->len - pos - RR_FIXED < rdlen)
			return -EBADMSG;
		off = pos + RR_FIXED + rdlen;
		if (dns_get16(buf + pos) != DNS_TYPE_SVCB || dns_get16(buf + pos + 2) != CLASS_IN ||
		    !svcb_is_dns_resolver_arpa(owner, olen))
			continue;
		t = dns_get32(buf + pos + 4);
		if (t < min_ttl)
			min_ttl = t;
		r = record_read(buf + pos + RR_FIXED, rdlen, &d);
		if (r <= 0)
			continue; /* one bad record does not spoil its neighbours */
		d.ttl = t;
		if (!found || d.priority < best.priority) {
			best = d;
			found = true;
		}
	}
	if (ttl)
		*ttl = min_ttl;
	if (found)
		*out = best;
	return found;
}

size_t svcb_build_query(uint8_t *out, uint16_t id)
{
	size_t n = DNS_HDR_LEN;

	memset(out, 0, DNS_HDR_LEN);
	dns_put16(out, id);
	dns_put16(out + 2, DNS_FLAG_RD);
	dns_put16(out + 4, 1);
	memcpy(out + n, dns_resolver_arpa, sizeof(dns_resolver_arpa));
	n += sizeof(dns_resolver_arpa);
	dns_put16(out + n, DNS_TYPE_SVCB);
	dns_put16(out + n + 2, CLASS_IN);
	return n + 4;
}

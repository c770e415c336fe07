/*
 * localzone.c - the table of locally served zones and the answers dotgw gives for them; see
 * localzone.h. The table is text (no escapes, lower case) matched against wire-format names
 * label by label; a row with a range stands for one zone per number of its first label
 * (16-31.172.in-addr.arpa, 64-127.100.in-addr.arpa). Answers are built over dns_build_error's
 * header, question and OPT RR: records go between the question and the OPT RR, their owner
 * names compressed to the question name or to the zone's suffix of it.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/localzone.h"

#define ZEROS31 "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"

struct zone_def {
	const char *name;
	uint8_t lo, hi; /* hi != 0: a first label from lo to hi, then name */
	enum localzone_kind kind;
	bool never_asked;
};

static const struct zone_def zones[] = {
	/* RFC 6303 4.1: RFC 1918 */
	{"10.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"172.in-addr.arpa", 16, 31, LOCALZONE_EMPTY, false},
	{"168.192.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	/* RFC 7793: 100.64.0.0/10 */
	{"100.in-addr.arpa", 64, 127, LOCALZONE_EMPTY, false},
	/* RFC 6303 4.2: RFC 5735 and RFC 5737 */
	{"0.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"127.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"254.169.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"2.0.192.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"100.51.198.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"113.0.203.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"255.255.255.255.in-addr.arpa", 0, 0, LOCALZONE_EMPTY, false},
	/* RFC 6303 4.3: :: and ::1 */
	{"0." ZEROS31 ".ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"1." ZEROS31 ".ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	/* RFC 6303 4.4-4.6: fd00::/8, fe80::/10, 2001:db8::/32 */
	{"d.f.ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"8.e.f.ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"9.e.f.ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"a.e.f.ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"b.e.f.ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	{"8.b.d.0.1.0.0.2.ip6.arpa", 0, 0, LOCALZONE_EMPTY, false},
	/* RFC 8375 */
	{"home.arpa", 0, 0, LOCALZONE_EMPTY, false},
	/* RFC 6762 22.1 (4): NXDOMAIN from unicast servers */
	{"local", 0, 0, LOCALZONE_NXDOMAIN, false},
	/* RFC 6761 6.3, 6.4 */
	{"localhost", 0, 0, LOCALZONE_LOCALHOST, false},
	{"invalid", 0, 0, LOCALZONE_NXDOMAIN, false},
	/* RFC 9462 6.1: not forwarded; no designation (see README) */
	{"resolver.arpa", 0, 0, LOCALZONE_RESOLVER, true},
};

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* wire_is_text - is the wire-format name w (len octets, root included) the text name t? */
static bool wire_is_text(const uint8_t *w, size_t len, const char *t)
{
	size_t i = 0;

	for (;;) {
		const char *dot;
		size_t tl;

		if (i >= len)
			return false;
		if (w[i] == 0)
			return *t == '\0' && i + 1 == len;
		dot = strchr(t, '.');
		tl = dot ? (size_t)(dot - t) : strlen(t);
		if (tl != w[i] || i + 1 + tl > len)
			return false;
		for (size_t k = 0; k < tl; k++)
			if (lower(w[i + 1 + k]) != (uint8_t)t[k])
				return false;
		i += 1 + tl;
		t += tl;
		if (*t == '.')
			t++;
	}
}

/* number_label - the label at w (its length octet) as a decimal from 0 to 255, or -1. */
static int number_label(const uint8_t *w)
{
	int v = 0;

	if (w[0] == 0 || w[0] > 3 || (w[0] > 1 && w[1] == '0'))
		return -1;
	for (size_t k = 1; k <= w[0]; k++) {
		if (w[k] < '0' || w[k] > '9')
			return -1;
		v = v * 10 + (w[k] - '0');
	}
	return v;
}

static bool zone_at(const struct zone_def *d, const uint8_t *w, size_t len)
{
	int v;

	if (!d->hi)
		return wire_is_text(w, len, d->name);
	v = number_label(w);
	if (v < d->lo || v > d->hi)
		return false;
	return wire_is_text(w + 1 + w[0], len - 1 - w[0], d->name);
}

/* tld_served - is the last label of name one that ends a zone of the table? Nearly every
 * name fails this cheap test, and is not matched against each row. */
static bool tld_served(const uint8_t *name, size_t name_len)
{
	/* the labels as in wire format, length first: compared without text parsing, as this
	 * runs for every query */
	static const char *const tlds[] = {"\4arpa", "\5local", "\11localhost", "\7invalid"};
	size_t off = 0, last = 0;

	while (off < name_len && name[off] != 0) {
		last = off;
		off += (size_t)name[off] + 1;
	}
	if (off >= name_len || off == 0)
		return false;
	for (size_t i = 0; i < sizeof(tlds) / sizeof(tlds[0]); i++) {
		const uint8_t *t = (const uint8_t *)tlds[i];
		size_t k = 1;

		if (name[last] != t[0])
			continue;
		while (k <= t[0] && lower(name[last + k]) == t[k])
			k++;
		if (k > t[0])
			return true;
	}
	return false;
}

bool localzone_find(const uint8_t *name, size_t name_len, struct localzone_match *z)
{
	size_t off = 0;

	if (!tld_served(name, name_len))
		return false;

	/* the whole name first, then each shorter suffix: the most specific zone wins */
	while (off < name_len && name[off] != 0) {
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
			if (!zone_at(&zones[i], name + off, name_len - off))
				continue;
			z->kind = zones[i].kind;
			z->apex_off = off;
			z->never_asked = zones[i].never_asked;
			z->zone = zones[i].name;
			return true;
		}
		off += (size_t)name[off] + 1;
	}
	return false;
}

/* rr_head - owner (a compression pointer to offset ptr), type, class IN, TTL, rdlength. */
static size_t rr_head(uint8_t *p, size_t ptr, uint16_t type, uint16_t rdlen)
{
	dns_put16(p, (uint16_t)(0xc000 | ptr));
	dns_put16(p + 2, type);
	dns_put16(p + 4, DNS_CLASS_IN);
	dns_put32(p + 6, LOCALZONE_TTL);
	dns_put16(p + 10, rdlen);
	return 12;
}

/* rr_soa - the zone's SOA (RFC 6303 3), its name at offset zone in the message. */
static size_t rr_soa(uint8_t *p, size_t zone)
{
	static const uint8_t rname[] = "\6nobody\7invalid";
	size_t n = rr_head(p, zone, DNS_TYPE_SOA, 2 + sizeof(rname) + 20);

	dns_put16(p + n, (uint16_t)(0xc000 | zone)); /* MNAME: the zone itself */
	n += 2;
	memcpy(p + n, rname, sizeof(rname)); /* with its root label, the string's NUL */
	n += sizeof(rname);
	dns_put32(p + n, 1);	       /* serial */
	dns_put32(p + n + 4, 3600);    /* refresh */
	dns_put32(p + n + 8, 1200);    /* retry */
	dns_put32(p + n + 12, 604800); /* expire */
	dns_put32(p + n + 16, 10800);  /* minimum */
	return n + 20;
}

int localzone_answer(uint8_t *out, size_t outlen, const uint8_t *query, const struct dns_msg *m,
		     const struct localzone_match *z)
{
	static const uint8_t lo4[4] = {127, 0, 0, 1};
	static const uint8_t lo6[16] = {[15] = 1};
	uint8_t rrs[128];
	size_t qname = DNS_HDR_LEN, zone = DNS_HDR_LEN + z->apex_off, len = 0, qend;
	uint16_t qtype = m->q.qtype, an = 0;
	bool apex = z->apex_off == 0, in = m->q.qclass == DNS_CLASS_IN;
	int rcode = DNS_RCODE_NOERROR, n;

	if (m->qdcount != 1)
		return -EINVAL;
	switch (z->kind) {
	case LOCALZONE_NXDOMAIN:
		rcode = DNS_RCODE_NXDOMAIN;
		break;
	case LOCALZONE_LOCALHOST:
		if (in && (qtype == DNS_TYPE_A || qtype == DNS_TYPE_AAAA)) {
			bool v6 = qtype == DNS_TYPE_AAAA;

			len += rr_head(rrs, qname, qtype, v6 ? 16 : 4);
			memcpy(rrs + len, v6 ? lo6 : lo4, v6 ? 16 : 4);
			len += v6 ? 16 : 4;
			an = 1;
		}
		break;
	case LOCALZONE_RESOLVER:
		/* _dns.resolver.arpa exists (the DDR name) but designates nothing: NODATA */
		if (!apex && !(z->apex_off == 5 && m->q.name[0] == 4 && m->q.name[1] == '_' &&
			       lower(m->q.name[2]) == 'd' && lower(m->q.name[3]) == 'n' &&
			       lower(m->q.name[4]) == 's'))
			rcode = DNS_RCODE_NXDOMAIN;
		break;
	case LOCALZONE_EMPTY:
	default:
		if (!apex)
			rcode = DNS_RCODE_NXDOMAIN;
		break;
	}
	n = dns_build_error(out, outlen, query, m->len, m, rcode);
	if (n < 0 || (m->has_opt && DNS_OPT_TTL_VERSION(m->opt_ttl) != 0))
		return n; /* BADVERS */
	dns_put16(out + 2, (uint16_t)(dns_get16(out + 2) | DNS_FLAG_AA));
	if (rcode == DNS_RCODE_NOERROR && apex && in && !an && z->kind != LOCALZONE_NXDOMAIN) {
		if (qtype == DNS_TYPE_SOA) {
			len += rr_soa(rrs + len, zone);
			an = 1;
		} else if (qtype == DNS_TYPE_NS) {
			len += rr_head(rrs + len, zone, DNS_TYPE_NS, 2);
			dns_put16(rrs + len, (uint16_t)(0xc000 | zone));
			len += 2;
			an = 1;
		}
	}
	if (!an)
		len += rr_soa(rrs + len, zone); /* negative: the SOA in the authority section */
	if ((size_t)n + len > outlen)
		return -ENOSPC;
	qend = DNS_HDR_LEN + m->q.name_len + 4;
	memmove(out + qend + len, out + qend, (size_t)n - qend); /* the OPT RR, if any */
	memcpy(out + qend, rrs, len);
	dns_put16(out + 6, an);
	dns_put16(out + 8, an ? 0 : 1);
	return n + (int)len;
}

bool localzone_private(int family, const uint8_t *a)
{
	static const uint8_t v4mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (family == AF_INET6 && memcmp(a, v4mapped, 12) == 0)
		return localzone_private(AF_INET, a + 12);
	if (family == AF_INET)
		return a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		       (a[0] == 192 && a[1] == 168) || (a[0] == 100 && (a[1] & 0xc0) == 64) ||
		       a[0] == 127 || (a[0] == 169 && a[1] == 254);
	if (family != AF_INET6)
		return false;
	if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
		return true;
	for (size_t i = 0; i < 15; i++)
		if (a[i])
			return false;
	return a[15] == 1;
}

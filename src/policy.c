/* policy.c - client groups and domain rules; see policy.h. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/policy.h"

int policy_group_of(const struct policy *p, int family, const uint8_t *addr, const char *ifname)
{
	for (size_t g = 0; g < p->n_groups; g++) {
		for (size_t i = 0; i < p->groups[g].n_cidrs; i++)
			if (cidr_contains(&p->groups[g].cidrs[i], family, addr))
				return (int)g;
		for (size_t i = 0; ifname && i < p->groups[g].n_ifs; i++)
			if (strcmp(p->groups[g].ifnames[i], ifname) == 0)
				return (int)g;
	}
	return -1;
}

bool policy_has_interfaces(const struct policy *p)
{
	for (size_t g = 0; g < p->n_groups; g++)
		if (p->groups[g].n_ifs)
			return true;
	return false;
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* suffix_at - does name (wire) end with suffix (wire, lower case) at a label boundary? */
static bool suffix_at(const uint8_t *name, size_t len, const uint8_t *suffix, size_t slen)
{
	size_t off = 0;

	while (off < len && len - off >= slen) {
		if (len - off == slen) {
			for (size_t i = 0; i < slen; i++)
				if (lower(name[off + i]) != suffix[i])
					return false;
			return true;
		}
		off += (size_t)name[off] + 1;
	}
	return false;
}

enum policy_action policy_check(const struct policy_group *g, const uint8_t *name, size_t name_len,
				const struct policy_rule **rule)
{
	const struct policy_rule *best = NULL;

	for (size_t i = 0; i < g->n_rules; i++) {
		const struct policy_rule *r = &g->rules[i];

		if ((!best || r->name_len > best->name_len) &&
		    suffix_at(name, name_len, r->name, r->name_len))
			best = r;
	}
	*rule = best;
	if (best)
		return best->action;
	return g->allow_list ? POLICY_REFUSED : POLICY_PASS;
}

struct answer_check {
	const struct policy_group *g;
	const struct policy_rule *rule;
	enum policy_action action;
};

static int answer_name_check(void *data, uint16_t type, bool target, const uint8_t *name,
			     size_t name_len)
{
	struct answer_check *c = data;
	enum policy_action a = policy_check(c->g, name, name_len, &c->rule);

	(void)target;
	if (type == DNS_TYPE_DNAME && !c->rule)
		return 0; /* a suffix: the synthesized CNAME that follows is checked as a name */
	if (a == POLICY_PASS)
		return 0;
	c->action = a;
	return 1;
}

enum policy_action policy_check_answer(const struct policy_group *g, const uint8_t *buf,
				       const struct dns_msg *m, const struct policy_rule **rule)
{
	struct answer_check c = {.g = g, .action = POLICY_PASS};
	int r = dns_answer_names(buf, m, answer_name_check, &c);

	*rule = r > 0 ? c.rule : NULL;
	if (r < 0)
		return POLICY_REFUSED;
	return c.action;
}

bool policy_group_polices(const struct policy_group *g)
{
	return g->n_rules || g->allow_list;
}

int policy_name_parse(const char *text, uint8_t *out, uint8_t *out_len)
{
	size_t n = 0, label = 0;

	if (strcmp(text, ".") == 0) {
		out[0] = 0;
		*out_len = 1;
		return 0;
	}
	for (const char *p = text;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0) {
				if (*p == '\0' && n > 0 && p[-1] == '.')
					break; /* a trailing dot */
				return -EINVAL;
			}
			if (n + 1 + label + 1 > DNS_MAX_NAME)
				return -EINVAL;
			out[n] = (uint8_t)label;
			n += 1 + label;
			label = 0;
			if (*p == '\0')
				break;
			continue;
		}
		/* room for this octet, the length octet before it and the root label after */
		if (label == 63 || (unsigned char)*p <= ' ' || n + label + 3 > DNS_MAX_NAME)
			return -EINVAL;
		out[n + 1 + label++] = lower((uint8_t)*p);
	}
	out[n++] = 0;
	*out_len = (uint8_t)n;
	return 0;
}

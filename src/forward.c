/*
 * forward.c - the per-domain forwarding table; see forward.h. Invariant: every rule's target
 * indexes ft->targets, and no two targets are equal (so a target's cache and counters are
 * shared by all of its rules).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dotgw/forward.h"
#include "dotgw/policy.h"

int forward_target_parse(struct forward_target *t, const char *text)
{
	struct forward_target r;
	char a[ADDR_TEXT_MAX];
	char *end;
	unsigned long n;

	memset(&r, 0, sizeof(r));
	if (strcmp(text, "asked") == 0) {
		r.kind = FORWARD_ASKED;
		strcpy(r.text, "asked");
	} else if (strncmp(text, "plain:", 6) == 0) {
		if (addr_parse(&r.addr, text + 6, NULL, 53) < 0)
			return -EINVAL;
		r.kind = FORWARD_PLAIN;
		snprintf(r.text, sizeof(r.text), "plain:%s", addr_text(&r.addr, a, sizeof(a)));
	} else if (text[0] >= '0' && text[0] <= '9' && !strpbrk(text, ".:@#")) {
		n = strtoul(text, &end, 10);
		if (*end || n < 1 || n > 32)
			return -EINVAL;
		r.kind = FORWARD_UPSTREAM;
		r.upstream = (unsigned int)(n - 1);
		snprintf(r.text, sizeof(r.text), "upstream %lu", n);
	} else {
		return -ENOENT;
	}
	*t = r;
	return 0;
}

static bool target_equal(const struct forward_target *a, const struct forward_target *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case FORWARD_UPSTREAM:
		return a->upstream == b->upstream && a->is_new == b->is_new;
	case FORWARD_PLAIN:
		return addr_equal(&a->addr, &b->addr);
	default:
		return true;
	}
}

int forward_rule_add(struct forward_table *ft, const char *group, const char *suffix,
		     const struct forward_target *t)
{
	struct forward_rule r;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.group_idx = -1;
	if (group && strlen(group) >= sizeof(r.group))
		return -EINVAL;
	if (group)
		strcpy(r.group, group);
	if (policy_name_parse(suffix, r.name, &r.name_len) < 0)
		return -EINVAL;
	for (i = 0; i < ft->n_rules; i++)
		if (ft->rules[i].name_len == r.name_len &&
		    memcmp(ft->rules[i].name, r.name, r.name_len) == 0 &&
		    strcmp(ft->rules[i].group, r.group) == 0)
			return -EINVAL;
	if (ft->n_rules == FORWARD_MAX_RULES)
		return -ENOSPC;
	for (i = 0; i < ft->n_targets; i++)
		if (target_equal(&ft->targets[i], t))
			break;
	if (i == ft->n_targets) {
		if (ft->n_targets == FORWARD_MAX_TARGETS)
			return -ENOSPC;
		ft->targets[ft->n_targets++] = *t;
	}
	r.target = (unsigned int)i;
	ft->rules[ft->n_rules++] = r;
	return 0;
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* suffix_match - does name (wire) end with suffix (wire, lower case) at a label boundary? */
static bool suffix_match(const uint8_t *name, size_t len, const uint8_t *suffix, size_t slen)
{
	size_t off = 0;

	while (off < len && len - off > slen)
		off += (size_t)name[off] + 1;
	if (off >= len || len - off != slen)
		return false;
	for (size_t i = 0; i < slen; i++)
		if (lower(name[off + i]) != suffix[i])
			return false;
	return true;
}

const struct forward_rule *forward_lookup(const struct forward_table *ft, int group,
					  const uint8_t *name, size_t name_len)
{
	const struct forward_rule *best = NULL;

	for (size_t i = 0; i < ft->n_rules; i++) {
		const struct forward_rule *r = &ft->rules[i];

		if (r->group_idx >= 0 && r->group_idx != group)
			continue;
		if (best && (r->name_len < best->name_len ||
			     (r->name_len == best->name_len && r->group_idx < 0)))
			continue;
		if (suffix_match(name, name_len, r->name, r->name_len))
			best = r;
	}
	return best;
}

bool forward_has_asked(const struct forward_table *ft)
{
	for (size_t i = 0; i < ft->n_targets; i++)
		if (ft->targets[i].kind == FORWARD_ASKED)
			return true;
	return false;
}

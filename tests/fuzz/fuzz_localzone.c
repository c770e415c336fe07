/*
 * fuzz_localzone.c - libFuzzer target for the locally served zones and the forwarding table
 * (src/localzone.c, src/forward.c): the names they match come from queries, whatever a
 * client sends.
 *
 * Parses the input as a query; when that succeeds and it has a question, looks its name up in
 * the zones and in a small forwarding table, and builds dotgw's answer into a heap buffer of
 * the exact size it asks for (ASan sees any access past it). The answer must parse, keep the
 * query's id and question, and carry at most one record in each section.
 */
#include <stdlib.h>
#include <string.h>

#include "dotgw/dns.h"
#include "dotgw/forward.h"
#include "dotgw/localzone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct forward_table table;

static void table_init(void)
{
	static const char *const suffixes[] = {"corp.example", "a.corp.example", "arpa", "."};
	struct forward_target t;

	if (table.n_rules)
		return;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		memset(&t, 0, sizeof(t));
		t.kind = i % 2 ? FORWARD_ASKED : FORWARD_UPSTREAM;
		t.upstream = (unsigned int)i;
		if (forward_rule_add(&table, i == 1 ? "g" : NULL, suffixes[i], &t) < 0)
			abort();
		table.rules[table.n_rules - 1].group_idx = i == 1 ? 0 : -1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct localzone_match z;
	struct dns_msg m, r;
	uint8_t *out;
	size_t outlen;
	int n;

	table_init();
	if (dns_msg_parse(&m, data, size) < 0 || m.qdcount != 1)
		return 0;
	if (!forward_lookup(&table, 0, m.q.name, m.q.name_len) ||
	    !forward_lookup(&table, -1, m.q.name, m.q.name_len))
		abort(); /* "." matches every name */
	if (!localzone_find(m.q.name, m.q.name_len, &z))
		return 0;
	if (z.apex_off >= m.q.name_len)
		abort();
	outlen = DNS_HDR_LEN + m.q.name_len + 4 + DNS_OPT_MIN_LEN + 128;
	out = malloc(outlen);
	if (!out)
		return 0;
	n = localzone_answer(out, outlen, data, &m, &z);
	if (n >= 0) {
		if (dns_msg_parse(&r, out, (size_t)n) < 0 || r.id != m.id || r.qdcount != 1 ||
		    !dns_question_equal(&r.q, &m.q) || r.ancount > 1 || r.nscount > 1)
			abort();
	}
	free(out);
	return 0;
}

/*
 * fuzz_svcb.c - libFuzzer target for the DDR SVCB reader (src/svcb.c).
 *
 * Parses the input as a DNS message; when that succeeds, reads it as an answer to
 * "_dns.resolver.arpa SVCB". A designation picked must keep the contract of svcb.h: a
 * printable lower-case host name, a port, hints within bounds, the lowest TTL no larger
 * than the picked record's. The input is copied to a buffer of its exact size, so ASan sees
 * any read past it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dotgw/svcb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	struct svcb_dot d;
	struct dns_msg m;
	uint32_t ttl;
	size_t n;
	int r;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	if (dns_msg_parse(&m, buf, size) < 0)
		goto out_free;
	r = svcb_dot_pick(buf, &m, &d, &ttl);
	if (r != 1 && r != 0 && r != -EBADMSG)
		abort();
	if (r == 1) {
		n = strlen(d.target);
		if (n == 0 || n >= SVCB_TARGET_TEXT || d.port == 0 || d.priority == 0)
			abort();
		for (size_t i = 0; i < n; i++)
			if (!((d.target[i] >= 'a' && d.target[i] <= 'z') ||
			      (d.target[i] >= '0' && d.target[i] <= '9') || d.target[i] == '-' ||
			      d.target[i] == '_' || d.target[i] == '.'))
				abort();
		if (d.n_v4 > SVCB_MAX_HINTS || d.n_v6 > SVCB_MAX_HINTS || ttl > d.ttl)
			abort();
	}
out_free:
	free(buf);
	return 0;
}

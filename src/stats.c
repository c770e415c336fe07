/* stats.c - rendering of the counters; see stats.h. */
#include <stdio.h>

#include "dotgw/stats.h"

size_t stats_format(const struct stats *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len)
		buf[0] = '\0';
#define STATS_PRINT(name)                                                                 \
	if (n < len)                                                                      \
		n += (size_t)snprintf(buf + n, len - n, "%s" #name "=%llu", n ? " " : "", \
				      (unsigned long long)stats_get(&s->name));
	STATS_FIELDS(STATS_PRINT)
#undef STATS_PRINT
	return n < len ? n : (len ? len - 1 : 0);
}

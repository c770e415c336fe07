/*
 * standby.c - the standby-connection policy of standby.h; pure (no I/O, no clock): upstream.c
 * asks it after an idle close and opens the connection itself.
 */
#include "dotgw/standby.h"

bool standby_due(uint64_t now_ms, uint64_t last_query_ms, uint64_t last_standby_ms,
		 unsigned int window_s, unsigned int open)
{
	if (!window_s || open || !last_query_ms)
		return false;
	if (now_ms < last_query_ms || now_ms - last_query_ms >= (uint64_t)window_s * 1000)
		return false;
	return !last_standby_ms || now_ms >= last_standby_ms + STANDBY_GAP_MS;
}

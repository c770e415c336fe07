/*
 * fuzz_frame.c - the TCP/DoT stream framing (dns_frame_next) as dotgw's readers use it: the
 * input is a stream cut into reads of arbitrary sizes (the first octet seeds the cut sizes);
 * frames are taken out as each read arrives and the rest kept, as frontend.c and upstream.c
 * do. Property: the frames (and where an error stops the stream) are the same as when the
 * whole stream is walked at once, whatever the cuts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dotgw/dns.h"

#define MAX_FRAMES 4096

struct frames {
	size_t n;
	size_t off[MAX_FRAMES], len[MAX_FRAMES]; /* offsets in the whole stream */
	int end;				 /* 0: ran out; -EBADMSG: bad frame */
};

static void whole(const uint8_t *s, size_t len, struct frames *f)
{
	size_t off = 0, mlen;
	const uint8_t *msg;
	int r;

	f->n = 0;
	while ((r = dns_frame_next(s, len, &off, &msg, &mlen)) == 1 && f->n < MAX_FRAMES) {
		if (msg < s || msg + mlen > s + len || mlen < DNS_HDR_LEN)
			abort();
		f->off[f->n] = (size_t)(msg - s);
		f->len[f->n++] = mlen;
	}
	f->end = r == 1 ? 0 : r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frames *want = malloc(sizeof(*want));
	uint8_t *buf = malloc(size + 1);
	const uint8_t *s = data + 1;
	size_t len = size ? size - 1 : 0, fed = 0, held = 0, consumed = 0, got = 0;
	unsigned int seed = size ? data[0] : 0;
	int end = 0;

	if (!want || !buf)
		abort();
	whole(s, len, want);
	while (fed < len && end == 0 && got < MAX_FRAMES) {
		size_t cut = 1 + (seed = seed * 1103515245u + 12345u) % 700, off = 0, mlen;
		const uint8_t *msg;
		int r;

		if (cut > len - fed)
			cut = len - fed;
		memcpy(buf + held, s + fed, cut);
		held += cut;
		fed += cut;
		while ((r = dns_frame_next(buf, held, &off, &msg, &mlen)) == 1 &&
		       got < MAX_FRAMES) {
			/* the same frame, at the same place of the stream */
			if (got >= want->n || want->off[got] != consumed + (size_t)(msg - buf) ||
			    want->len[got] != mlen || memcmp(msg, s + want->off[got], mlen))
				abort();
			got++;
		}
		if (r < 0)
			end = r;
		memmove(buf, buf + off, held - off);
		held -= off;
		consumed += off;
	}
	if (got < MAX_FRAMES && (got != want->n || end != want->end))
		abort();
	free(buf);
	free(want);
	return 0;
}

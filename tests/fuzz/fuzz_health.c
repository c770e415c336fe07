/*
 * fuzz_health.c - libFuzzer target for the two parsers of `dotgw --health` (src/health.c):
 * the status line of the HTTP response it reads from the network, and the URL it is given.
 *
 * The status parser must return a code in 100..999, -EAGAIN or -EINVAL, reading only the len
 * bytes given (the input is copied to a buffer of its exact size, so ASan sees any read past
 * it). The URL parser, on a NUL-terminated copy, must either refuse or yield an IPv4/IPv6
 * address with a non-zero port and a path that starts with '/' and holds no control
 * character or space.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1), *url = malloc(size + 1), path[256];
	struct sockaddr_storage ss;
	int r;

	if (!buf || !url)
		abort();
	memcpy(buf, data, size);
	r = health_status_parse(buf, size);
	if (r != -EAGAIN && r != -EINVAL && (r < 100 || r > 999))
		abort();

	memcpy(url, data, size);
	url[size] = '\0';
	if (health_url_parse(url, &ss, path, sizeof(path)) == 0) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;

		if (ss.ss_family == AF_INET    ? s4->sin_port == 0
		    : ss.ss_family == AF_INET6 ? s6->sin6_port == 0
					       : 1)
			abort();
		if (path[0] != '/' || strlen(path) >= sizeof(path))
			abort();
		for (const char *c = path; *c; c++)
			if ((unsigned char)*c <= ' ' || *c == 0x7f)
				abort();
	}
	free(url);
	free(buf);
	return 0;
}

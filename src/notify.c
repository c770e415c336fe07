/*
 * notify.c - see notify.h. The protocol is sd_notify(3)'s (systemd documents it as stable for
 * reimplementation): one SOCK_DGRAM datagram per notification, to a path or, with a leading
 * '@', an abstract socket name. Linking libsystemd for this one call cost about 1 MiB of
 * resident memory (it and its compression and crypto libraries). Not supported: "vsock:"
 * addresses and passing file descriptors, which dotgw does not use.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dotgw/notify.h"

int notify_send(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char msg[512];
	size_t plen;
	va_list ap;
	int fd, n, r = 1;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return 0;
	plen = strlen(path);
	if (plen < 2 || plen > sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract: the name's length, not a NUL, ends it */
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EMSGSIZE;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (const struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen)) < 0)
		r = -errno;
	close(fd);
	return r;
}

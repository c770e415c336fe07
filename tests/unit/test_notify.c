/* test_notify.c - sd_notify(3)'s protocol without libsystemd: path and abstract sockets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "dotgw/notify.h"

/* bind a datagram socket to name ('/' path or '@' abstract), as NOTIFY_SOCKET names it */
static int listener(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, (socklen_t)(sizeof(sa.sun_family) + len)))
		return -1;
	return fd;
}

static void got(int fd, const char *want)
{
	char buf[600];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	CHECK(n >= 0);
	if (n < 0)
		return;
	buf[n] = '\0';
	CHECK(strcmp(buf, want) == 0);
}

int main(void)
{
	char path[64], abstract[64], big[600];
	int fd;

	unsetenv("NOTIFY_SOCKET");
	CHECK_EQ(notify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "relative/sock", 1);
	CHECK_EQ(notify_send("READY=1"), 0);

	snprintf(path, sizeof(path), "/tmp/dotgw-test-notify-%d", (int)getpid());
	unlink(path);
	fd = listener(path);
	CHECK(fd >= 0);
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK_EQ(notify_send("READY=1\nSTATUS=serving: %u upstreams", 2u), 1);
	got(fd, "READY=1\nSTATUS=serving: 2 upstreams");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(notify_send("STATUS=%s", big) < 0); /* too long: refused, not cut */
	close(fd);
	unlink(path);

	snprintf(abstract, sizeof(abstract), "@dotgw-test-notify-%d", (int)getpid());
	fd = listener(abstract);
	CHECK(fd >= 0);
	setenv("NOTIFY_SOCKET", abstract, 1);
	CHECK_EQ(notify_send("STOPPING=1"), 1);
	got(fd, "STOPPING=1");
	close(fd);

	setenv("NOTIFY_SOCKET", "/nonexistent/dotgw-notify", 1);
	CHECK(notify_send("READY=1") < 0);
	return check_done("notify");
}

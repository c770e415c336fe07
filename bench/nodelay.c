/*
 * nodelay.c - an LD_PRELOAD shim for bench/run.sh's padded DoT ceiling (dotpad): dnsperf 2.10's
 * DoT client sets no TCP_NODELAY, so with Nagle's algorithm each query waits for the upstream's
 * ACK of the one before (about half a round trip on average across a WAN). dotgw sets
 * TCP_NODELAY on its upstream sockets; this gives dnsperf the same, so the ceiling measures the
 * upstream and the path, not dnsperf's socket options.
 *
 *   cc -shared -fPIC -o nodelay.so nodelay.c -ldl
 *   LD_PRELOAD=./nodelay.so dnsperf -m dot ...
 *
 * Invariant: connect() behaves as libc's; before it, a TCP socket over IPv4 or IPv6 gets
 * TCP_NODELAY (a failure to set it is ignored: the ceiling is then what it was). Bench only.
 */
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	static connect_fn real;
	int type = 0, one = 1;
	socklen_t tlen = sizeof(type);

	if (!real)
		real = (connect_fn)dlsym(RTLD_NEXT, "connect");
	if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) &&
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return real(fd, sa, len);
}

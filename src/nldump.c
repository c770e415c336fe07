/*
 * nldump.c - see nldump.h. EAGAIN or EINTR before a message has come is read again; the dump
 * ends at NLMSG_DONE (MNL_CB_STOP) or an error message.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "dotgw/nldump.h"

int nldump_run(struct mnl_socket *nl, struct nlmsghdr *nlh, void *buf, size_t size, uint32_t seq,
	       mnl_cb_t cb, void *data)
{
	uint32_t portid = mnl_socket_get_portid(nl);
	int r = MNL_CB_OK;

	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		struct pollfd p = {.fd = mnl_socket_get_fd(nl), .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 1000) <= 0)
			return -ETIMEDOUT;
		n = recv(p.fd, buf, size, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
	} while (r > MNL_CB_STOP);
	return r < 0 ? -errno : 0;
}

/*
 * nldump.h - one netlink dump, sent and read to its end on a non-blocking libmnl socket: the
 * loop that ifkind.c (RTM_GETLINK) and dataplane.c (RTM_GETLINK, RTM_GETTFILTER) share.
 */
#ifndef DOTGW_NLDUMP_H
#define DOTGW_NLDUMP_H

#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

/*
 * nldump_run - send the dump request nlh (built in buf) with sequence number seq, then read
 * its answer into buf (size octets) and run cb(message, data) on each message until the dump
 * ends. Each read waits at most 1 s. Returns 0, or -errno (-ETIMEDOUT: no answer within 1 s;
 * cb's MNL_CB_ERROR: the errno it left).
 */
int nldump_run(struct mnl_socket *nl, struct nlmsghdr *nlh, void *buf, size_t size, uint32_t seq,
	       mnl_cb_t cb, void *data);

#endif

/*
 * iftab.h - the names of this network namespace's interfaces by index, kept current by
 * rtnetlink link events (RTMGRP_LINK), for client groups that name an interface: a bridge
 * that is deleted and made again gets a new index, and its clients must stay in their group.
 * One table per worker thread, read and updated by that thread only. Its netlink socket is
 * read from the worker's event loop (iftab_fd, iftab_process); a lookup that misses reads the
 * pending events first, so an interface made a moment ago is known by the time its first
 * packet is looked at (the kernel announces an interface before it can carry traffic). When
 * events were lost (ENOBUFS) the table is dumped again. The names of deleted interfaces are
 * kept a while, for packets that were queued before the deletion.
 */
#ifndef DOTGW_IFTAB_H
#define DOTGW_IFTAB_H

struct iftab;

/* iftab_open - subscribe to link events and dump the interfaces; 0 and *out, or -errno. */
int iftab_open(struct iftab **out);
void iftab_close(struct iftab *t);

/* iftab_fd - the netlink socket, to watch for EPOLLIN. */
int iftab_fd(const struct iftab *t);

/* iftab_process - take in the pending link events (never blocks); 0 or -errno. */
int iftab_process(struct iftab *t);

/*
 * iftab_name - the name of interface ifindex (the one it had when it was deleted, for a
 * deleted one still remembered), or NULL when unknown. The string lives until the next call.
 */
const char *iftab_name(struct iftab *t, unsigned int ifindex);

#endif

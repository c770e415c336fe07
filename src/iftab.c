/*
 * iftab.c - see iftab.h. An open-addressing hash of interface index -> name, linear probing,
 * grown to keep it at most half full, entries removed by backward shift (no tombstones).
 * Deleted interfaces are remembered in a ring of IFTAB_GONE_MAX entries and leave the hash
 * when the ring overwrites them. Invariant: an entry's index is 0 iff the entry is empty.
 */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "dotgw/iftab.h"

#define IFTAB_BUF_SIZE	 32768
#define IFTAB_GONE_MAX	 64 /* deleted interfaces whose names are remembered */
#define IFTAB_DUMP_TRIES 8  /* dumps interrupted by changes are done again, this often */

struct iftab_entry {
	unsigned int ifindex;
	bool gone;
	char name[IFNAMSIZ];
};

struct iftab {
	struct mnl_socket *nl;
	uint32_t portid, seq;
	struct iftab_entry *e;
	size_t cap, n; /* cap: a power of two */
	unsigned int gone[IFTAB_GONE_MAX];
	size_t gone_next;
	bool dump_intr;
	bool stale; /* events were lost and the dump that followed failed: dump again */
	uint32_t buf[IFTAB_BUF_SIZE / sizeof(uint32_t)];
};

static size_t iftab_slot(const struct iftab *t, unsigned int ifindex)
{
	return (ifindex * 2654435761u) & (t->cap - 1);
}

static struct iftab_entry *iftab_find(struct iftab *t, unsigned int ifindex)
{
	for (size_t i = iftab_slot(t, ifindex);; i = (i + 1) & (t->cap - 1)) {
		if (t->e[i].ifindex == ifindex)
			return &t->e[i];
		if (t->e[i].ifindex == 0)
			return NULL;
	}
}

static void iftab_remove(struct iftab *t, unsigned int ifindex)
{
	size_t i = iftab_slot(t, ifindex), j;

	while (t->e[i].ifindex != ifindex) {
		if (t->e[i].ifindex == 0)
			return;
		i = (i + 1) & (t->cap - 1);
	}
	/* backward shift: move up each later entry of the run that may sit at i */
	for (j = (i + 1) & (t->cap - 1); t->e[j].ifindex; j = (j + 1) & (t->cap - 1)) {
		size_t home = iftab_slot(t, t->e[j].ifindex);

		if (((j - home) & (t->cap - 1)) >= ((j - i) & (t->cap - 1))) {
			t->e[i] = t->e[j];
			i = j;
		}
	}
	t->e[i].ifindex = 0;
	t->n--;
}

static int iftab_grow(struct iftab *t)
{
	struct iftab_entry *old = t->e;
	size_t ocap = t->cap, cap = ocap ? ocap * 2 : 64;

	t->e = calloc(cap, sizeof(*t->e));
	if (!t->e) {
		t->e = old;
		return -ENOMEM;
	}
	t->cap = cap;
	t->n = 0;
	for (size_t i = 0; i < ocap; i++) {
		if (old[i].ifindex) {
			size_t k = iftab_slot(t, old[i].ifindex);

			while (t->e[k].ifindex)
				k = (k + 1) & (cap - 1);
			t->e[k] = old[i];
			t->n++;
		}
	}
	free(old);
	return 0;
}

/* iftab_set - ifindex is called name now (and exists). 0 or -ENOMEM. */
static int iftab_set(struct iftab *t, unsigned int ifindex, const char *name)
{
	struct iftab_entry *e = iftab_find(t, ifindex);
	size_t k;

	if (!e) {
		if ((t->n + 1) * 2 > t->cap && iftab_grow(t) < 0)
			return -ENOMEM;
		for (k = iftab_slot(t, ifindex); t->e[k].ifindex; k = (k + 1) & (t->cap - 1))
			;
		e = &t->e[k];
		e->ifindex = ifindex;
		t->n++;
	}
	e->gone = false;
	strncpy(e->name, name, IFNAMSIZ - 1);
	e->name[IFNAMSIZ - 1] = '\0';
	return 0;
}

/* iftab_gone - ifindex was deleted: remember its name a while, forgetting the oldest gone. */
static void iftab_gone(struct iftab *t, unsigned int ifindex)
{
	struct iftab_entry *e = iftab_find(t, ifindex), *old;
	unsigned int *slot = &t->gone[t->gone_next];

	if (!e || e->gone)
		return;
	e->gone = true;
	if (*slot && (old = iftab_find(t, *slot)) && old->gone)
		iftab_remove(t, *slot);
	*slot = ifindex;
	t->gone_next = (t->gone_next + 1) % IFTAB_GONE_MAX;
}

static int iftab_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(a, IFLA_MAX) < 0)
		return MNL_CB_OK; /* unknown: skipped */
	if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
		return MNL_CB_OK;
	tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

static int iftab_msg(const struct nlmsghdr *nlh, void *data)
{
	struct iftab *t = data;
	const struct nlattr *tb[IFLA_MAX + 1] = {NULL};
	const struct ifinfomsg *ifm;

	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		t->dump_intr = true;
	if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK)
		return MNL_CB_OK;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifm))
		return MNL_CB_OK;
	ifm = mnl_nlmsg_get_payload(nlh);
	if (ifm->ifi_index <= 0)
		return MNL_CB_OK;
	if (nlh->nlmsg_type == RTM_DELLINK) {
		iftab_gone(t, (unsigned int)ifm->ifi_index);
		return MNL_CB_OK;
	}
	mnl_attr_parse(nlh, sizeof(*ifm), iftab_attr, tb);
	if (tb[IFLA_IFNAME] &&
	    iftab_set(t, (unsigned int)ifm->ifi_index, mnl_attr_get_str(tb[IFLA_IFNAME])) < 0)
		return MNL_CB_ERROR;
	return MNL_CB_OK;
}

/*
 * iftab_dump - ask for every interface and take in the answer (and the events that come with
 * it), waiting for the kernel at most a second per read. 0 or -errno.
 */
static int iftab_dump(struct iftab *t)
{
	for (int tries = 0; tries < IFTAB_DUMP_TRIES; tries++) {
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(t->buf);
		struct ifinfomsg *ifm;
		int r;

		nlh->nlmsg_type = RTM_GETLINK;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		nlh->nlmsg_seq = ++t->seq;
		ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
		ifm->ifi_family = AF_UNSPEC;
		if (mnl_socket_sendto(t->nl, nlh, nlh->nlmsg_len) < 0)
			return -errno;
		t->dump_intr = false;
		do {
			struct pollfd p = {.fd = mnl_socket_get_fd(t->nl), .events = POLLIN};
			ssize_t n;

			if (poll(&p, 1, 1000) <= 0)
				return -ETIMEDOUT;
			n = recv(p.fd, t->buf, sizeof(t->buf), MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
					continue; /* ENOBUFS: lost events; this dump covers them */
				return -errno;
			}
			r = mnl_cb_run(t->buf, (size_t)n, t->seq, t->portid, iftab_msg, t);
		} while (r > MNL_CB_STOP);
		if (r < 0)
			return -errno;
		if (!t->dump_intr)
			return 0;
	}
	return -EAGAIN;
}

int iftab_open(struct iftab **out)
{
	struct iftab *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!t->nl) {
		r = -errno;
		goto out_free;
	}
	if (mnl_socket_bind(t->nl, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out_close;
	}
	t->portid = mnl_socket_get_portid(t->nl);
	t->seq = (uint32_t)time(NULL);
	r = iftab_grow(t);
	if (r == 0)
		r = iftab_dump(t);
	if (r < 0)
		goto out_close;
	*out = t;
	return 0;

out_close:
	mnl_socket_close(t->nl);
out_free:
	free(t->e);
	free(t);
	return r;
}

void iftab_close(struct iftab *t)
{
	if (!t)
		return;
	mnl_socket_close(t->nl);
	free(t->e);
	free(t);
}

int iftab_fd(const struct iftab *t)
{
	return mnl_socket_get_fd(t->nl);
}

int iftab_process(struct iftab *t)
{
	int r;

	while (!t->stale) {
		ssize_t n = recv(mnl_socket_get_fd(t->nl), t->buf, sizeof(t->buf), MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			if (errno == ENOBUFS) {
				t->stale = true; /* events were lost: the table may be wrong */
				break;
			}
			return -errno;
		}
		/* events carry sequence number 0 and port id 0: any is accepted */
		if (mnl_cb_run(t->buf, (size_t)n, 0, 0, iftab_msg, t) < 0)
			return -errno;
	}
	/* start again from a dump: names of deleted interfaces are forgotten */
	for (size_t i = 0; i < IFTAB_GONE_MAX; i++)
		t->gone[i] = 0;
	memset(t->e, 0, t->cap * sizeof(*t->e));
	t->n = 0;
	r = iftab_dump(t);
	t->stale = r < 0;
	return r;
}

const char *iftab_name(struct iftab *t, unsigned int ifindex)
{
	struct iftab_entry *e;

	if (ifindex == 0)
		return NULL;
	e = t->stale ? NULL : iftab_find(t, ifindex);
	if (!e && iftab_process(t) == 0)
		e = iftab_find(t, ifindex);
	return e ? e->name : NULL;
}

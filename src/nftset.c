/*
 * nftset.c - set elements added in acknowledged netlink batches (see nftset.h).
 *
 * A batch is BEGIN, one NEWSETELEM per request (its own sequence number, NLM_F_ACK), END. The
 * kernel runs it as one transaction and sends every ACK once it has committed or aborted it,
 * usually before sendto returns; they are read at once and, when not all are there yet, as the
 * socket becomes readable. One refused element aborts the whole transaction, so a batch
 * succeeds only when every ACK says 0; otherwise the refused elements complete with their
 * errors and the others are sent again.
 */
#include <endian.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "dotgw/loop.h"
#include "dotgw/nftset.h"

#define NFTSET_BUF_SIZE	      (64 * 1024)
#define NFTSET_RECV_SIZE      8192
#define NFTSET_RCVBUF	      (NFTSET_BATCH_MAX * 2048) /* ACKs are one skb each */
#define NFTSET_ACK_TIMEOUT_MS 2000

TAILQ_HEAD(nftset_reqs, nftset_req);

struct nftset {
	struct loop *loop;
	struct mnl_socket *nl;
	uint32_t portid;
	struct loop_watch watch;
	struct loop_defer flush;
	struct loop_timer ack_timer;
	char table[NFT_TABLE_MAXNAMELEN];
	struct nftset_reqs queued;
	/* the batch in flight: sequence numbers first + 1 .. first + n; NULL when cancelled */
	struct nftset_req *batch[NFTSET_BATCH_MAX];
	uint32_t first, n, acked;
	bool in_flight, aborted; /* aborted: answered by an error for the whole batch */
	uint32_t seq;
	struct nftset_stats stats;
	uint8_t buf[NFTSET_BUF_SIZE];
};

static void nftset_flush(struct loop_defer *d);
static void nftset_readable(struct loop_watch *w, uint32_t revents);
static void nftset_ack_timeout(struct loop_timer *t);

int nftset_new(struct nftset **out, struct loop *loop, const char *table)
{
	struct nftset *ns;
	int one = 1, rcvbuf = NFTSET_RCVBUF, r;

	if (!table || !*table || strlen(table) >= sizeof(ns->table))
		return -EINVAL;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->loop = loop;
	strcpy(ns->table, table);
	TAILQ_INIT(&ns->queued);
	loop_defer_init(&ns->flush, nftset_flush);
	loop_timer_init(&ns->ack_timer, nftset_ack_timeout);
	ns->watch.fd = -1;
	ns->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!ns->nl || mnl_socket_bind(ns->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto out_errno;
	ns->portid = mnl_socket_get_portid(ns->nl);
	/* an ACK carries only the header of the message it answers */
	mnl_socket_setsockopt(ns->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(ns->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
		       sizeof(rcvbuf)) < 0)
		setsockopt(mnl_socket_get_fd(ns->nl), SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			   sizeof(rcvbuf));
	ns->seq = (uint32_t)loop_now_ms(loop);
	ns->watch.fd = mnl_socket_get_fd(ns->nl);
	ns->watch.cb = nftset_readable;
	r = loop_watch_add(loop, &ns->watch, EPOLLIN);
	if (r < 0) {
		ns->watch.fd = -1;
		nftset_free(ns);
		return r;
	}
	*out = ns;
	return 0;

out_errno:
	r = errno ? -errno : -EIO;
	nftset_free(ns);
	return r;
}

void nftset_free(struct nftset *ns)
{
	if (!ns)
		return;
	if (ns->watch.fd >= 0)
		loop_watch_del(ns->loop, &ns->watch);
	loop_defer_cancel(ns->loop, &ns->flush);
	loop_timer_cancel(ns->loop, &ns->ack_timer);
	if (ns->nl)
		mnl_socket_close(ns->nl);
	free(ns);
}

const struct nftset_stats *nftset_stats(const struct nftset *ns)
{
	return &ns->stats;
}

void nftset_add(struct nftset *ns, struct nftset_req *r, const char *set, int family,
		const uint8_t *addr, uint64_t timeout_ms)
{
	r->set = set;
	r->key_len = family == AF_INET6 ? 16 : 4;
	memcpy(r->key, addr, r->key_len);
	r->timeout_ms = timeout_ms;
	r->err = 0;
	r->tries = 0;
	r->sent = false;
	TAILQ_INSERT_TAIL(&ns->queued, r, link);
	if (!ns->in_flight)
		loop_defer(ns->loop, &ns->flush);
}

void nftset_cancel(struct nftset *ns, struct nftset_req *r)
{
	if (!r->sent) {
		TAILQ_REMOVE(&ns->queued, r, link);
		return;
	}
	for (uint32_t i = 0; i < ns->n; i++)
		if (ns->batch[i] == r)
			ns->batch[i] = NULL;
	r->sent = false;
}

/* nftset_put_elem - append r's NEWSETELEM with sequence number seq to b; false when full. */
static bool nftset_put_elem(struct nftset *ns, struct mnl_nlmsg_batch *b,
			    const struct nftset_req *r, uint32_t seq)
{
	struct nlmsghdr *nlh;
	struct nlattr *list, *elem, *key;

	size_t need = 96 + MNL_ALIGN(strlen(ns->table) + 1) + MNL_ALIGN(strlen(r->set) + 1);

	if (mnl_nlmsg_batch_size(b) + need + NLMSG_HDRLEN * 2 > sizeof(ns->buf))
		return false;
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWSETELEM, NFPROTO_INET,
				    NLM_F_CREATE | NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, ns->table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, r->set);
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
	key = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
	mnl_attr_put(nlh, NFTA_DATA_VALUE, r->key_len, r->key);
	mnl_attr_nest_end(nlh, key);
	if (r->timeout_ms)
		mnl_attr_put_u64(nlh, NFTA_SET_ELEM_TIMEOUT, htobe64(r->timeout_ms));
	mnl_attr_nest_end(nlh, elem);
	mnl_attr_nest_end(nlh, list);
	return mnl_nlmsg_batch_next(b);
}

/* nftset_batch_done - every ACK of the batch is in (or will never be): complete or resend. */
static void nftset_batch_done(struct nftset *ns)
{
	bool ok = !ns->aborted;

	ns->in_flight = false;
	loop_timer_cancel(ns->loop, &ns->ack_timer);
	for (uint32_t i = 0; i < ns->n && ok; i++)
		if (ns->batch[i] && ns->batch[i]->err)
			ok = false;
	/* resent ones go first, in their order, ahead of what was queued since */
	for (uint32_t i = ns->n; i-- > 0;) {
		struct nftset_req *r = ns->batch[i];

		if (!r)
			continue;
		r->sent = false;
		if (ok) {
			ns->stats.elements++;
			r->done(r, 0);
		} else if (r->err && r->err != -ENOBUFS && r->err != -ETIMEDOUT) {
			ns->stats.refused++;
			r->done(r, r->err);
		} else if (++r->tries >= NFTSET_TRIES) {
			r->done(r, -EIO);
		} else {
			ns->stats.resent++;
			r->err = 0;
			TAILQ_INSERT_HEAD(&ns->queued, r, link);
		}
	}
	ns->n = 0;
	if (!TAILQ_EMPTY(&ns->queued))
		loop_defer(ns->loop, &ns->flush);
}

/* nftset_fail_batch - the ACKs are lost or late: the whole batch goes again. */
static void nftset_fail_batch(struct nftset *ns, int err)
{
	for (uint32_t i = 0; i < ns->n; i++)
		if (ns->batch[i])
			ns->batch[i]->err = err;
	ns->aborted = true;
	nftset_batch_done(ns);
}

static void nftset_flush(struct loop_defer *d)
{
	struct nftset *ns = container_of(d, struct nftset, flush);
	struct mnl_nlmsg_batch *b;
	struct nftset_req *r;
	ssize_t sent;

	if (ns->in_flight || TAILQ_EMPTY(&ns->queued))
		return;
	b = mnl_nlmsg_batch_start(ns->buf, sizeof(ns->buf));
	if (!b)
		return;
	ns->first = ns->seq++;
	nftnl_batch_begin(mnl_nlmsg_batch_current(b), ns->first);
	mnl_nlmsg_batch_next(b);
	ns->n = 0;
	while ((r = TAILQ_FIRST(&ns->queued)) && ns->n < NFTSET_BATCH_MAX) {
		if (!nftset_put_elem(ns, b, r, ns->seq))
			break;
		TAILQ_REMOVE(&ns->queued, r, link);
		r->sent = true;
		r->err = 0;
		ns->batch[ns->n++] = r;
		ns->seq++;
	}
	nftnl_batch_end(mnl_nlmsg_batch_current(b), ns->seq++);
	mnl_nlmsg_batch_next(b);
	ns->acked = 0;
	ns->aborted = false;
	ns->in_flight = true;
	ns->stats.batches++;
	sent = mnl_socket_sendto(ns->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b));
	mnl_nlmsg_batch_stop(b);
	if (sent < 0) {
		nftset_fail_batch(ns, -errno);
		return;
	}
	if (loop_timer_set(ns->loop, &ns->ack_timer,
			   loop_now_ms(ns->loop) + NFTSET_ACK_TIMEOUT_MS) < 0) {
		nftset_fail_batch(ns, -ETIMEDOUT);
		return;
	}
	nftset_readable(&ns->watch, EPOLLIN); /* the ACKs are usually there already */
}

/* nftset_ack - one ACK or error, nlh, of the batch in flight. */
static void nftset_ack(struct nftset *ns, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	uint32_t k;

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return;
	if (nlh->nlmsg_seq == ns->first) {
		/* the batch as a whole (its BEGIN): no element got in */
		nftset_fail_batch(ns, e->error ? e->error : -EPROTO);
		return;
	}
	k = nlh->nlmsg_seq - ns->first - 1;
	if (k >= ns->n)
		return; /* a late ACK of an earlier batch */
	if (ns->batch[k])
		ns->batch[k]->err = e->error;
	if (e->error)
		ns->aborted = true;
	if (++ns->acked == ns->n)
		nftset_batch_done(ns);
}

static void nftset_readable(struct loop_watch *w, uint32_t revents)
{
	struct nftset *ns = container_of(w, struct nftset, watch);
	uint8_t buf[NFTSET_RECV_SIZE];
	const struct nlmsghdr *nlh;
	ssize_t n;
	int len;

	(void)revents;
	while (ns->in_flight) {
		n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS) /* ACKs were lost: what got in is unknown */
				nftset_fail_batch(ns, -ENOBUFS);
			return;
		}
		len = (int)n;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len) && ns->in_flight;
		     nlh = mnl_nlmsg_next(nlh, &len))
			if (nlh->nlmsg_type == NLMSG_ERROR && nlh->nlmsg_pid == ns->portid)
				nftset_ack(ns, nlh);
	}
	/* nothing in flight: drain what is left of an earlier batch */
	while (recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void nftset_ack_timeout(struct loop_timer *t)
{
	struct nftset *ns = container_of(t, struct nftset, ack_timer);

	if (ns->in_flight)
		nftset_fail_batch(ns, -ETIMEDOUT);
}

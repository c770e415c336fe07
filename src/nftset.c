/*
 * nftset.c - set elements added in acknowledged netlink batches (see nftset.h).
 *
 * A batch is BEGIN, one NEWSETELEM per request (its own sequence number, NLM_F_ACK), END. The
 * kernel runs it as one transaction inside sendmsg and queues every ACK before sendto returns;
 * they are read at once, under the link's lock. One refused element aborts the whole
 * transaction, so a batch succeeds only when every ACK says 0; otherwise the refused elements
 * complete with their errors and the others are sent again. An ACK that is not there (lost to
 * a full receive buffer: ENOBUFS) fails its batch the same way.
 */
#include <endian.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dotgw/loop.h"
#include "dotgw/nftset.h"

#define NFTSET_BUF_SIZE	 (64 * 1024)
#define NFTSET_RECV_SIZE 8192
#define NFTSET_RCVBUF	 (NFTSET_BATCH_MAX * 2048) /* ACKs are one skb each */

TAILQ_HEAD(nftset_reqs, nftset_req);

struct nftset_link {
	pthread_mutex_t lock;
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq; /* under lock */
};

struct nftset {
	struct loop *loop;
	struct nftset_link *link;
	struct loop_defer flush;
	char table[NFT_TABLE_MAXNAMELEN];
	struct nftset_reqs queued;
	struct nftset_req *batch[NFTSET_BATCH_MAX]; /* the one being flushed */
	uint32_t n;
	struct nftset_stats stats;
	uint8_t buf[NFTSET_BUF_SIZE];
};

static void nftset_flush(struct loop_defer *d);

int nftset_link_new(struct nftset_link **out)
{
	struct nftset_link *l = calloc(1, sizeof(*l));
	int one = 1, rcvbuf = NFTSET_RCVBUF, r;

	if (!l)
		return -ENOMEM;
	l->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!l->nl || mnl_socket_bind(l->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = errno ? -errno : -EIO;
		if (l->nl)
			mnl_socket_close(l->nl);
		free(l);
		return r;
	}
	l->portid = mnl_socket_get_portid(l->nl);
	/* an ACK carries only the header of the message it answers */
	mnl_socket_setsockopt(l->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(l->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
		       sizeof(rcvbuf)) < 0)
		setsockopt(mnl_socket_get_fd(l->nl), SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			   sizeof(rcvbuf));
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return 0;
}

void nftset_link_free(struct nftset_link *l)
{
	if (!l)
		return;
	mnl_socket_close(l->nl);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

struct mnl_socket *nftset_link_lock(struct nftset_link *l)
{
	pthread_mutex_lock(&l->lock);
	return l->nl;
}

void nftset_link_unlock(struct nftset_link *l)
{
	pthread_mutex_unlock(&l->lock);
}

int nftset_new(struct nftset **out, struct loop *loop, struct nftset_link *link, const char *table)
{
	struct nftset *ns;

	if (!table || !*table || strlen(table) >= sizeof(ns->table))
		return -EINVAL;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->loop = loop;
	ns->link = link;
	strcpy(ns->table, table);
	TAILQ_INIT(&ns->queued);
	loop_defer_init(&ns->flush, nftset_flush);
	*out = ns;
	return 0;
}

void nftset_free(struct nftset *ns)
{
	if (!ns)
		return;
	loop_defer_cancel(ns->loop, &ns->flush);
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
	TAILQ_INSERT_TAIL(&ns->queued, r, link);
	loop_defer(ns->loop, &ns->flush);
}

void nftset_cancel(struct nftset *ns, struct nftset_req *r)
{
	/* a flush completes all of its batch before it returns: r can only be queued, or done */
	for (uint32_t i = 0; i < ns->n; i++)
		if (ns->batch[i] == r) {
			ns->batch[i] = NULL;
			return;
		}
	TAILQ_REMOVE(&ns->queued, r, link);
}

/* nftset_put_elem - append r's NEWSETELEM with sequence number seq to b; false when full. */
static bool nftset_put_elem(struct nftset *ns, struct mnl_nlmsg_batch *b,
			    const struct nftset_req *r, uint32_t seq)
{
	size_t need = 96 + MNL_ALIGN(strlen(ns->table) + 1) + MNL_ALIGN(strlen(r->set) + 1);
	struct nlattr *list, *elem, *key;
	struct nlmsghdr *nlh;

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

/*
 * nftset_read_acks - the ACKs of the batch whose BEGIN has sequence number first, into each
 * request's err (an error for the BEGIN: for all). Returns 0 when every ACK came, else -errno
 * (the rest are lost: ENOBUFS, or not there: EAGAIN).
 */
static int nftset_read_acks(struct nftset *ns, uint32_t first)
{
	uint8_t buf[NFTSET_RECV_SIZE];
	const struct nlmsghdr *nlh;
	uint32_t acked = 0;
	ssize_t n;
	int len;

	while (acked < ns->n) {
		n = recv(mnl_socket_get_fd(ns->link->nl), buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return -errno;
		len = (int)n;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			uint32_t k = nlh->nlmsg_seq - first - 1;

			if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_pid != ns->link->portid ||
			    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
				continue;
			if (nlh->nlmsg_seq == first) {
				/* the batch as a whole: no element got in */
				for (uint32_t i = 0; i < ns->n; i++)
					if (ns->batch[i])
						ns->batch[i]->err = e->error ? e->error : -EPROTO;
				return 0;
			}
			if (k >= ns->n)
				continue; /* a late ACK of an earlier batch */
			if (ns->batch[k])
				ns->batch[k]->err = e->error;
			acked++;
		}
	}
	return 0;
}

/* nftset_send - send the batch built in b and read its ACKs, under the link's lock. */
static void nftset_send(struct nftset *ns, struct mnl_nlmsg_batch *b, uint32_t first)
{
	uint8_t drain[NFTSET_RECV_SIZE];
	int r = 0;

	/* anything left on the socket is stale (ACKs a failed read gave up on) */
	while (recv(mnl_socket_get_fd(ns->link->nl), drain, sizeof(drain), MSG_DONTWAIT) > 0)
		;
	if (mnl_socket_sendto(ns->link->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
		r = -errno;
	else
		r = nftset_read_acks(ns, first);
	if (r < 0)
		for (uint32_t i = 0; i < ns->n; i++)
			if (ns->batch[i] && !ns->batch[i]->err)
				ns->batch[i]->err = r == -EAGAIN ? -ETIMEDOUT : r;
}

/* nftset_batch_done - every ACK of the batch is in (or will never be): complete or resend. */
static void nftset_batch_done(struct nftset *ns)
{
	bool ok = true;

	for (uint32_t i = 0; i < ns->n && ok; i++)
		if (ns->batch[i] && ns->batch[i]->err)
			ok = false;
	/* resent ones go first, in their order, ahead of what was queued since */
	for (uint32_t i = ns->n; i-- > 0;) {
		struct nftset_req *r = ns->batch[i];
		bool transient = r && (r->err == -ENOBUFS || r->err == -ETIMEDOUT ||
				       r->err == -EINTR || r->err == 0);

		if (!r)
			continue;
		ns->batch[i] = NULL;
		if (ok) {
			ns->stats.elements++;
			r->done(r, 0);
		} else if (!transient) {
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
}

static void nftset_flush(struct loop_defer *d)
{
	struct nftset *ns = container_of(d, struct nftset, flush);
	struct mnl_nlmsg_batch *b;
	struct nftset_req *r;
	uint32_t first, seq;

	while (!TAILQ_EMPTY(&ns->queued)) {
		b = mnl_nlmsg_batch_start(ns->buf, sizeof(ns->buf));
		if (!b)
			return;
		pthread_mutex_lock(&ns->link->lock);
		first = seq = ns->link->seq;
		ns->link->seq += NFTSET_BATCH_MAX + 2;
		pthread_mutex_unlock(&ns->link->lock);
		nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq++);
		mnl_nlmsg_batch_next(b);
		ns->n = 0;
		while ((r = TAILQ_FIRST(&ns->queued)) && ns->n < NFTSET_BATCH_MAX) {
			if (!nftset_put_elem(ns, b, r, seq))
				break;
			TAILQ_REMOVE(&ns->queued, r, link);
			r->err = 0;
			ns->batch[ns->n++] = r;
			seq++;
		}
		nftnl_batch_end(mnl_nlmsg_batch_current(b), seq);
		mnl_nlmsg_batch_next(b);
		ns->stats.batches++;
		pthread_mutex_lock(&ns->link->lock);
		nftset_send(ns, b, first);
		pthread_mutex_unlock(&ns->link->lock);
		mnl_nlmsg_batch_stop(b);
		nftset_batch_done(ns);
	}
}

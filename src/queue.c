/*
 * queue.c - an NFQUEUE consumer on a libmnl socket; see queue.h.
 *
 * Verdicts: every packet read is handed to the callback and then dropped. After each burst of
 * reads one NFQNL_MSG_VERDICT_BATCH covers every id up to the highest seen, so each id gets
 * exactly one verdict and the kernel is written to once per burst, not once per packet. A
 * packet the callback lets pass gets its own NF_ACCEPT at once; it has then left the queue, so
 * it does not count towards the batch's highest id (a batch that finds no packet is an ENOENT
 * error from the kernel); if that send fails, it counts, and the batch drops it.
 * Reads take up to QUEUE_BATCH packets per recvmmsg, into buffers whose untouched pages (all
 * but the first of each, for DNS-sized packets) never become resident.
 * ENOBUFS on the socket means the kernel could not deliver some messages: counted, not fatal.
 * Packets over the queue's length are never queued: with --fail open (the bypass and
 * FAIL_OPEN flags) they pass in plaintext, with --fail closed the kernel drops them.
 */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>

#include "dotgw/log.h"
#include "dotgw/queue.h"

#define QUEUE_BUF_SIZE (0xffff + 4096) /* one packet copied whole, plus attributes */
#define QUEUE_MAX_LEN  4096	       /* packets the kernel may hold for us */
#define QUEUE_RCVBUF   (8 << 20)
#define QUEUE_BURST    64 /* packets per wake-up before the batch verdict */
#define QUEUE_BATCH    16 /* packets per recvmmsg */
#define QUEUE_CFG_BUF  8192

static bool queue_accept(struct queue_source *q, uint32_t id);

struct queue_source {
	struct loop *loop;
	struct loop_watch watch;
	struct mnl_socket *nl;
	uint32_t portid;
	uint16_t num;
	struct stats *stats;
	queue_packet_fn cb;
	void *data;
	uint32_t max_id;
	bool have_id;
	struct log_ratelimit rl;
	struct mmsghdr mmsg[QUEUE_BATCH];
	struct iovec iov[QUEUE_BATCH];
	char buf[QUEUE_BATCH][QUEUE_BUF_SIZE];
};

/*
 * queue_send_cfg - send one configuration message and wait for its own ACK. Anything else
 * read meanwhile (packets already queued by rules left from an earlier run) is skipped: the
 * first batch verdict covers their ids.
 */
static int queue_send_cfg(struct queue_source *q, struct nlmsghdr *nlh)
{
	static uint32_t seq_next;
	uint32_t seq = (uint32_t)time(NULL) + ++seq_next;
	char buf[QUEUE_CFG_BUF];
	ssize_t n;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (int tries = 0; tries < 64; tries++) {
		const struct nlmsghdr *h;
		int len;

		n = mnl_socket_recvfrom(q->nl, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		len = (int)n;
		for (h = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(h, len);
		     h = mnl_nlmsg_next(h, &len)) {
			if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq != seq)
				continue;
			if (mnl_cb_run(h, h->nlmsg_len, seq, q->portid, NULL, NULL) < 0)
				return -errno;
			return 0;
		}
	}
	return -ETIMEDOUT;
}

static int queue_configure(struct queue_source *q, bool fail_open)
{
	/* zeroed: libmnl 1.0.4 (Debian 12) leaves the padding after an attribute unwritten */
	char buf[QUEUE_CFG_BUF] = {0};
	struct nlmsghdr *nlh;
	uint32_t flags = fail_open ? NFQA_CFG_F_FAIL_OPEN : 0;
	int r;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->num);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	r = queue_send_cfg(q, nlh);
	if (r < 0)
		return r;
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, QUEUE_MAX_LEN);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
	return queue_send_cfg(q, nlh);
}

static int queue_packet(const struct nlmsghdr *nlh, void *data)
{
	struct queue_source *q = data;
	struct nlattr *attr[NFQA_MAX + 1] = {NULL};
	const struct nfqnl_msg_packet_hdr *ph;
	uint32_t id, info = 0;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) {
		stats_add(&q->stats->malformed, 1);
		return MNL_CB_OK;
	}
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	stats_add(&q->stats->queue_packets, 1);
	if (!attr[NFQA_PAYLOAD]) {
		stats_add(&q->stats->malformed, 1);
	} else {
		/*
		 * CSUMNOTREADY: the packet's checksum is still partial (CHECKSUM_PARTIAL, typical
		 * of locally sent and veth traffic), not something to check; otherwise it is final.
		 */
		if (attr[NFQA_SKB_INFO] && mnl_attr_get_payload_len(attr[NFQA_SKB_INFO]) >= 4)
			info = ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO]));
		if (q->cb(q->data, mnl_attr_get_payload(attr[NFQA_PAYLOAD]),
			  mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]),
			  attr[NFQA_IFINDEX_INDEV]
				  ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV]))
				  : 0,
			  !(info & NFQA_SKB_CSUMNOTREADY)) &&
		    queue_accept(q, id))
			return MNL_CB_OK;
	}
	/* dropped: the batch verdict covers it */
	if (!q->have_id || (int32_t)(id - q->max_id) > 0)
		q->max_id = id;
	q->have_id = true;
	return MNL_CB_OK;
}

/*
 * queue_accept - NF_ACCEPT for packet id alone, now: the packet leaves the queue, so the
 * batch verdict that follows (every id up to the highest) no longer covers it. Returns false
 * when the verdict could not be sent (the packet is still queued).
 */
static bool queue_accept(struct queue_source *q, uint32_t id)
{
	char buf[MNL_NLMSG_HDRLEN + 64];
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, q->num);
	nfq_nlmsg_verdict_put(nlh, (int)id, NF_ACCEPT);
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0) {
		log_ratelimited(&q->rl, LOG_LVL_ERROR, "queue %u: verdict: %s", q->num,
				strerror(errno));
		return false;
	}
	return true;
}

/* queue_verdict - NF_DROP for every id up to the highest read so far. */
static void queue_verdict(struct queue_source *q)
{
	char buf[MNL_NLMSG_HDRLEN + 64];
	struct nlmsghdr *nlh;

	if (!q->have_id)
		return;
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT_BATCH, q->num);
	nfq_nlmsg_verdict_put(nlh, (int)q->max_id, NF_DROP);
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		log_ratelimited(&q->rl, LOG_LVL_ERROR, "queue %u: verdict: %s", q->num,
				strerror(errno));
	q->have_id = false;
}

static void queue_readable(struct loop_watch *w, uint32_t revents)
{
	struct queue_source *q = container_of(w, struct queue_source, watch);
	int done = 0;

	(void)revents;
	while (done < QUEUE_BURST) {
		int n;

		for (int i = 0; i < QUEUE_BATCH; i++) {
			q->iov[i].iov_base = q->buf[i];
			q->iov[i].iov_len = sizeof(q->buf[i]);
			memset(&q->mmsg[i].msg_hdr, 0, sizeof(q->mmsg[i].msg_hdr));
			q->mmsg[i].msg_hdr.msg_iov = &q->iov[i];
			q->mmsg[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(w->fd, q->mmsg, QUEUE_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == ENOBUFS) {
				stats_add(&q->stats->queue_enobufs, 1);
				done++;
				continue;
			}
			if (errno != EAGAIN && errno != EINTR)
				log_ratelimited(&q->rl, LOG_LVL_ERROR, "queue %u: %s", q->num,
						strerror(errno));
			break;
		}
		/*
		 * An NLMSG_ERROR here answers a verdict, e.g. EPERM without CAP_NET_ADMIN.
		 * ENOENT: the packet left the queue before its verdict: the kernel drops every
		 * queued packet of the namespace when any netfilter hook goes (nfqnl_nf_hook_drop),
		 * as when a table is replaced (reload, a handover); its answer went out anyway.
		 */
		for (int i = 0; i < n; i++)
			if (mnl_cb_run(q->buf[i], q->mmsg[i].msg_len, 0, q->portid, queue_packet,
				       q) < 0)
				log_ratelimited(
					&q->rl, errno == ENOENT ? LOG_LVL_DEBUG : LOG_LVL_ERROR,
					"queue %u: kernel says: %s", q->num, strerror(errno));
		done += n;
		/* fewer than asked: the socket is empty (an error after them shows next time) */
		if (n < QUEUE_BATCH)
			break;
	}
	queue_verdict(q);
}

int queue_open(struct queue_source **out, struct loop *loop, uint16_t num, bool fail_open,
	       struct stats *stats, queue_packet_fn cb, void *data)
{
	struct queue_source *q = calloc(1, sizeof(*q));
	int r, size = QUEUE_RCVBUF, one = 1;

	if (!q)
		return -ENOMEM;
	q->loop = loop;
	q->num = num;
	q->stats = stats;
	q->cb = cb;
	q->data = data;
	/* blocking while we configure it and read the ACKs; non-blocking afterwards */
	q->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!q->nl) {
		r = -errno;
		goto out_free;
	}
	if (mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out_close;
	}
	q->portid = mnl_socket_get_portid(q->nl);
	/* Bursts: a big buffer (SO_RCVBUFFORCE passes rmem_max with CAP_NET_ADMIN). */
	if (setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) <
	    0)
		setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	r = queue_configure(q, fail_open);
	if (r == 0 && fcntl(mnl_socket_get_fd(q->nl), F_SETFL, O_NONBLOCK) < 0)
		r = -errno;
	if (r < 0)
		goto out_close;
	setsockopt(mnl_socket_get_fd(q->nl), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	q->watch.fd = mnl_socket_get_fd(q->nl);
	q->watch.cb = queue_readable;
	r = loop_watch_add(loop, &q->watch, EPOLLIN);
	if (r < 0)
		goto out_close;
	*out = q;
	return 0;

out_close:
	mnl_socket_close(q->nl);
out_free:
	log_error("NFQUEUE %u: %s", num, strerror(-r));
	free(q);
	return r;
}

void queue_close(struct queue_source *q)
{
	if (!q)
		return;
	loop_watch_del(q->loop, &q->watch);
	mnl_socket_close(q->nl);
	free(q);
}

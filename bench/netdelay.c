/*
 * netdelay.c - bench/run.sh's WAN emulator where sch_netem is missing: it holds the packets
 * an NFQUEUE rule hands it for a fixed delay (plus uniform jitter), drops a share of them at
 * random, and lets the others go (NF_ACCEPT) when their time comes.
 *
 *   netdelay -q QUEUE -d DELAY_MS [-j JITTER_MS] [-l LOSS_PCT] [-n LIMIT] [-s SEED]
 *
 * Invariants:
 * - Every packet id read gets exactly one verdict: NF_DROP at once (lost, or the hold queue
 *   full), NF_ACCEPT at its release time, or NF_ACCEPT at exit (what is still held is let go).
 * - Release order is (release time, arrival order). Without jitter every packet gets the same
 *   delay, so packets leave in the order they came, per flow and overall. With jitter they may
 *   be reordered, as on a real path with jitter (netem does the same).
 * - At most LIMIT packets are held, and the kernel's queue has the same length: beyond it the
 *   kernel drops (no fail-open flag: a helper that is not there stops the flow instead of
 *   silently removing the delay). Both kinds of drop are counted and printed.
 * - Bench only: it runs as root inside a namespace the harness created; it needs
 *   CAP_NET_ADMIN for the queue. It never changes a rule: the harness installs them.
 *
 * Counters go to stderr on SIGUSR1 and at exit (SIGTERM, SIGINT, SIGHUP).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>

#define ND_COPY_RANGE  80	 /* IPv4 or IPv6 header and the ports: enough to count */
#define ND_RECV_BATCH  32	 /* messages per recvmmsg */
#define ND_RECV_BUF    2048	 /* one message: a packet's first bytes and its attributes */
#define ND_RECV_BURST  256	 /* messages read before the due packets are released */
#define ND_RCVBUF      (8 << 20) /* bursts; SO_RCVBUFFORCE passes rmem_max as root */
#define ND_CFG_BUF     4096
#define ND_VERDICT_BUF 8192 /* verdicts per write: 8192 / 32 octets */
#define ND_MAX_MS      60000.0

/* A held packet: released at due_ns (CLOCK_MONOTONIC); seq breaks ties in arrival order. */
struct nd_held {
	uint64_t due_ns;
	uint64_t seq;
	uint32_t id;
};

struct nd_counters {
	uint64_t packets;  /* read from the queue */
	uint64_t ipv4;	   /* of which IPv4 */
	uint64_t ipv6;	   /* and IPv6 */
	uint64_t accepted; /* NF_ACCEPT after their delay */
	uint64_t lost;	   /* NF_DROP: the loss probability */
	uint64_t overflow; /* NF_DROP: the hold queue was full */
	uint64_t flushed;  /* NF_ACCEPT at exit, before their time */
	uint64_t enobufs;  /* the socket overflowed: messages (and verdicts) lost */
	uint64_t verdict_errors;
	uint64_t held_max;
	uint64_t late_sum_ns; /* release time minus due time, over the accepted packets */
	uint64_t late_max_ns;
};

struct nd {
	/* settings */
	uint16_t queue;
	uint64_t delay_ns;
	uint64_t jitter_ns;
	double loss; /* probability, 0..1 */
	uint32_t limit;
	uint64_t rng;
	/* state */
	struct mnl_socket *nl;
	uint32_t portid;
	int timer_fd;
	struct nd_held *heap; /* min-heap of limit entries, by (due_ns, seq) */
	uint32_t held;
	uint64_t seq;
	/* arrival time of the batch being read */
	uint64_t now_ns;
	/* verdicts to send; the batch's limit is half the buffer: the last one may overflow */
	char vbuf[2 * ND_VERDICT_BUF];
	struct mnl_nlmsg_batch *verdicts;
	struct nd_counters c;
};

static uint64_t nd_now_ns(void);
static uint64_t nd_random(struct nd *nd);

/* nd_random - splitmix64: small, fast and good enough for loss and jitter. */
static uint64_t nd_random(struct nd *nd)
{
	uint64_t z = (nd->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t nd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool nd_before(const struct nd_held *a, const struct nd_held *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void nd_heap_push(struct nd *nd, struct nd_held h)
{
	uint32_t i = nd->held++;

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!nd_before(&h, &nd->heap[parent]))
			break;
		nd->heap[i] = nd->heap[parent];
		i = parent;
	}
	nd->heap[i] = h;
}

static void nd_heap_pop(struct nd *nd)
{
	struct nd_held last = nd->heap[--nd->held];
	uint32_t i = 0;

	for (;;) {
		uint32_t child = 2 * i + 1;

		if (child >= nd->held)
			break;
		if (child + 1 < nd->held && nd_before(&nd->heap[child + 1], &nd->heap[child]))
			child++;
		if (!nd_before(&nd->heap[child], &last))
			break;
		nd->heap[i] = nd->heap[child];
		i = child;
	}
	nd->heap[i] = last;
}

/* nd_flush - send the verdicts collected so far in one write. */
static void nd_flush(struct nd *nd)
{
	size_t len = mnl_nlmsg_batch_size(nd->verdicts);

	if (len == 0)
		return;
	if (mnl_socket_sendto(nd->nl, mnl_nlmsg_batch_head(nd->verdicts), len) < 0) {
		fprintf(stderr, "netdelay: queue %u: verdicts: %s\n", nd->queue, strerror(errno));
		nd->c.verdict_errors++;
	}
	mnl_nlmsg_batch_reset(nd->verdicts);
}

/* nd_verdict - add a verdict for id to the pending write (sending it first when full). */
static void nd_verdict(struct nd *nd, uint32_t id, int verdict)
{
	struct nlmsghdr *nlh;

	nlh = nfq_nlmsg_put(mnl_nlmsg_batch_current(nd->verdicts), NFQNL_MSG_VERDICT, nd->queue);
	nfq_nlmsg_verdict_put(nlh, (int)id, verdict);
	/* full: send the others; the reset moves this one, written past the limit, to the front */
	if (!mnl_nlmsg_batch_next(nd->verdicts))
		nd_flush(nd);
}

/* nd_release - NF_ACCEPT for every held packet due by now (or all of them, at exit). */
static void nd_release(struct nd *nd, bool all)
{
	uint64_t now = nd_now_ns();

	while (nd->held > 0 && (all || nd->heap[0].due_ns <= now)) {
		const struct nd_held *h = &nd->heap[0];

		if (h->due_ns <= now) {
			uint64_t late = now - h->due_ns;

			nd->c.accepted++;
			nd->c.late_sum_ns += late;
			if (late > nd->c.late_max_ns)
				nd->c.late_max_ns = late;
		} else {
			nd->c.flushed++;
		}
		nd_verdict(nd, h->id, NF_ACCEPT);
		nd_heap_pop(nd);
	}
	nd_flush(nd);
}

/* nd_timer_arm - wake up when the first held packet is due (or never, when none is held). */
static int nd_timer_arm(struct nd *nd)
{
	struct itimerspec its = {0};

	if (nd->held > 0) {
		its.it_value.tv_sec = (time_t)(nd->heap[0].due_ns / 1000000000ULL);
		its.it_value.tv_nsec = (long)(nd->heap[0].due_ns % 1000000000ULL);
		/* 0 would disarm it; a packet due at boot time cannot happen */
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(nd->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	return 0;
}

static int nd_packet(const struct nlmsghdr *nlh, void *data)
{
	struct nd *nd = data;
	struct nlattr *attr[NFQA_MAX + 1] = {NULL};
	const struct nfqnl_msg_packet_hdr *ph;
	struct nd_held h;
	uint32_t id;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK; /* not a packet: nothing to give a verdict to */
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	nd->c.packets++;
	if (attr[NFQA_PAYLOAD] && mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]) > 0) {
		uint8_t version = *(const uint8_t *)mnl_attr_get_payload(attr[NFQA_PAYLOAD]) >> 4;

		if (version == 4)
			nd->c.ipv4++;
		else if (version == 6)
			nd->c.ipv6++;
	}
	/* 53 random bits against the probability: exact for every percentage given */
	if (nd->loss > 0 && (double)(nd_random(nd) >> 11) * 0x1.0p-53 < nd->loss) {
		nd->c.lost++;
		nd_verdict(nd, id, NF_DROP);
		return MNL_CB_OK;
	}
	if (nd->held >= nd->limit) {
		nd->c.overflow++;
		nd_verdict(nd, id, NF_DROP);
		return MNL_CB_OK;
	}
	h.id = id;
	h.seq = nd->seq++;
	h.due_ns = nd->now_ns + nd->delay_ns;
	if (nd->jitter_ns > 0) {
		/* uniform in delay +- jitter, never before the packet came */
		uint64_t r = nd_random(nd) % (2 * nd->jitter_ns + 1);

		if (r >= nd->jitter_ns)
			h.due_ns += r - nd->jitter_ns;
		else if (nd->jitter_ns - r <= nd->delay_ns)
			h.due_ns -= nd->jitter_ns - r;
		else
			h.due_ns = nd->now_ns;
	}
	nd_heap_push(nd, h);
	if (nd->held > nd->c.held_max)
		nd->c.held_max = nd->held;
	return MNL_CB_OK;
}

/* nd_read - read what the socket holds (at most a burst); returns 0 or -errno (fatal). */
static int nd_read(struct nd *nd)
{
	static char bufs[ND_RECV_BATCH][ND_RECV_BUF];
	struct mmsghdr mmsg[ND_RECV_BATCH];
	struct iovec iov[ND_RECV_BATCH];
	int done = 0;

	while (done < ND_RECV_BURST) {
		int n;

		memset(mmsg, 0, sizeof(mmsg));
		for (int i = 0; i < ND_RECV_BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = sizeof(bufs[i]);
			mmsg[i].msg_hdr.msg_iov = &iov[i];
			mmsg[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(mnl_socket_get_fd(nd->nl), mmsg, ND_RECV_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == ENOBUFS) {
				/* lost messages: their packets stay queued until we unbind */
				nd->c.enobufs++;
				done++;
				continue;
			}
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		nd->now_ns = nd_now_ns();
		for (int i = 0; i < n; i++)
			/* an NLMSG_ERROR answers a verdict: count it, go on */
			if (mnl_cb_run(bufs[i], mmsg[i].msg_len, 0, nd->portid, nd_packet, nd) < 0)
				nd->c.verdict_errors++;
		done += n;
		if (n < ND_RECV_BATCH)
			break;
	}
	nd_flush(nd);
	return 0;
}

/* nd_cfg - send one configuration message and read its ACK. */
static int nd_cfg(struct nd *nd, struct nlmsghdr *nlh, uint32_t seq)
{
	char buf[ND_CFG_BUF];
	ssize_t n;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(nd->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(nd->nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if (mnl_cb_run(buf, (size_t)n, seq, nd->portid, NULL, NULL) < 0)
		return -errno;
	return 0;
}

/*
 * nd_open - bind the queue: copy the first bytes only, queue length = limit, no fail-open, no
 * GSO flag (the kernel hands over each segment of a GSO packet on its own, so loss applies per
 * wire packet, as on a real link).
 */
static int nd_open(struct nd *nd)
{
	/* zeroed: libmnl 1.0.4 leaves the padding after an attribute unwritten */
	char buf[ND_CFG_BUF] = {0};
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL);
	int size = ND_RCVBUF, r;

	nd->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nd->nl)
		return -errno;
	if (mnl_socket_bind(nd->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return -errno;
	nd->portid = mnl_socket_get_portid(nd->nl);
	if (setsockopt(mnl_socket_get_fd(nd->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) <
	    0)
		setsockopt(mnl_socket_get_fd(nd->nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	/* AF_INET binds the queue; IPv6 packets arrive on it too */
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, nd->queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	r = nd_cfg(nd, nlh, seq++);
	if (r < 0)
		return r;
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, nd->queue);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, ND_COPY_RANGE);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, nd->limit);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(0));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
	r = nd_cfg(nd, nlh, seq++);
	if (r < 0)
		return r;
	if (fcntl(mnl_socket_get_fd(nd->nl), F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/*
 * nd_kernel_drops - the kernel's own drops for our queue in this namespace: "queue_dropped
 * user_dropped" (over the queue's length; messages the socket could not take), or "? ?".
 */
static void nd_kernel_drops(const struct nd *nd, char *out, size_t size)
{
	unsigned int num, portid, total, mode, range, qdrop, udrop;
	FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "re");
	char line[256];

	snprintf(out, size, "? ?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%u %u %u %u %u %u %u", &num, &portid, &total, &mode, &range,
			   &qdrop, &udrop) == 7 &&
		    num == nd->queue) {
			snprintf(out, size, "%u %u", qdrop, udrop);
			break;
		}
	fclose(f);
}

static void nd_print(const struct nd *nd, const char *when)
{
	char kdrops[64], *sp;

	nd_kernel_drops(nd, kdrops, sizeof(kdrops));
	sp = strchr(kdrops, ' ');
	*sp = '\0';
	fprintf(stderr,
		"netdelay: queue %u %s: packets=%" PRIu64 " ipv4=%" PRIu64 " ipv6=%" PRIu64
		" accepted=%" PRIu64 " lost=%" PRIu64 " overflow=%" PRIu64 " flushed=%" PRIu64
		" held=%u held_max=%" PRIu64 " late_avg_us=%.1f late_max_us=%.1f enobufs=%" PRIu64
		" verdict_errors=%" PRIu64 " kernel_queue_dropped=%s kernel_user_dropped=%s\n",
		nd->queue, when, nd->c.packets, nd->c.ipv4, nd->c.ipv6, nd->c.accepted, nd->c.lost,
		nd->c.overflow, nd->c.flushed, nd->held, nd->c.held_max,
		nd->c.accepted ? (double)nd->c.late_sum_ns / (double)nd->c.accepted / 1e3 : 0.0,
		(double)nd->c.late_max_ns / 1e3, nd->c.enobufs, nd->c.verdict_errors, kdrops,
		sp + 1);
}

/* nd_run - the loop, until SIGTERM, SIGINT or SIGHUP; returns 0 or -errno. */
static int nd_run(struct nd *nd, int sig_fd)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep, r = 0, nl_fd = mnl_socket_get_fd(nd->nl);

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -errno;
	ev.data.fd = nl_fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, nl_fd, &ev) < 0)
		goto out_errno;
	ev.data.fd = nd->timer_fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, nd->timer_fd, &ev) < 0)
		goto out_errno;
	ev.data.fd = sig_fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev) < 0)
		goto out_errno;
	for (;;) {
		struct epoll_event evs[3];
		int n = epoll_wait(ep, evs, 3, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto out_errno;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == nl_fd) {
				r = nd_read(nd);
				if (r < 0)
					goto out;
			} else if (evs[i].data.fd == nd->timer_fd) {
				uint64_t ticks;

				if (read(nd->timer_fd, &ticks, sizeof(ticks)) < 0 &&
				    errno != EAGAIN)
					goto out_errno;
			} else {
				struct signalfd_siginfo si;

				if (read(sig_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
					continue;
				if (si.ssi_signo == SIGUSR1) {
					nd_print(nd, "now");
					continue;
				}
				goto out;
			}
		}
		nd_release(nd, false);
		r = nd_timer_arm(nd);
		if (r < 0)
			goto out;
	}
out_errno:
	r = -errno;
out:
	close(ep);
	return r;
}

static void nd_usage(FILE *f)
{
	fprintf(f,
		"Usage: netdelay -q QUEUE [-d DELAY_MS] [-j JITTER_MS] [-l LOSS_PCT] [-n LIMIT]\n"
		"                [-s SEED]\n"
		"Hold the packets of NFQUEUE QUEUE for a delay, drop some at random, accept the\n"
		"rest (bench/run.sh's WAN emulator where sch_netem is missing). The rules that\n"
		"queue packets are the caller's.\n"
		"  -q QUEUE      queue number, 0 to 65535\n"
		"  -d DELAY_MS   delay of every packet, in ms (decimals allowed; default 0)\n"
		"  -j JITTER_MS  each packet's delay is uniform in DELAY_MS +- JITTER_MS (never\n"
		"                below 0); packets may then be reordered (default 0)\n"
		"  -l LOSS_PCT   share of packets dropped at random, in percent (default 0)\n"
		"  -n LIMIT      most packets held at once; the kernel's queue gets the same\n"
		"                length, and drops beyond it are counted (default 10000)\n"
		"  -s SEED       seed of the random numbers (default: from the clock)\n"
		"Prints \"ready\" when bound, its counters on SIGUSR1 and at exit (SIGTERM).\n");
}

/* nd_number - parse a decimal number in [min, max]; false (and a message) if it is not one. */
static bool nd_number(const char *opt, const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
		fprintf(stderr, "netdelay: %s: '%s' is not a number from %g to %g\n", opt, s, min,
			max);
		return false;
	}
	*out = v;
	return true;
}

/* nd_main - set up, run until a signal says stop, let go of what is held; 0 or -errno. */
static int nd_main(struct nd *nd)
{
	sigset_t mask;
	int sig_fd, r;

	nd->heap = calloc(nd->limit, sizeof(*nd->heap));
	if (!nd->heap)
		return -ENOMEM;
	nd->verdicts = mnl_nlmsg_batch_start(nd->vbuf, ND_VERDICT_BUF);
	if (!nd->verdicts) {
		r = -ENOMEM;
		goto out_free_heap;
	}
	/* the signals of the loop come through a signalfd only */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		r = -errno;
		goto out_stop_batch;
	}
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0) {
		r = -errno;
		goto out_stop_batch;
	}
	nd->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (nd->timer_fd < 0) {
		r = -errno;
		goto out_close_sig;
	}
	r = nd_open(nd);
	if (r < 0)
		goto out_close_nl;
	fprintf(stderr,
		"netdelay: queue %u ready: delay %.3f ms, jitter +-%.3f ms, loss %g%%, "
		"limit %u\n",
		nd->queue, (double)nd->delay_ns / 1e6, (double)nd->jitter_ns / 1e6, nd->loss * 100,
		nd->limit);
	r = nd_run(nd, sig_fd);
	/* what is still held leaves now, early, rather than being dropped by the unbind */
	nd_release(nd, true);
	nd_print(nd, "exit");
out_close_nl:
	if (nd->nl)
		mnl_socket_close(nd->nl);
	close(nd->timer_fd);
out_close_sig:
	close(sig_fd);
out_stop_batch:
	mnl_nlmsg_batch_stop(nd->verdicts);
out_free_heap:
	free(nd->heap);
	return r;
}

int main(int argc, char **argv)
{
	static struct nd nd = {.limit = 10000};
	double v, queue = -1;
	int opt, r;

	nd.rng = nd_now_ns() ^ ((uint64_t)getpid() << 32);
	while ((opt = getopt(argc, argv, "q:d:j:l:n:s:h")) != -1) {
		switch (opt) {
		case 'q':
			if (!nd_number("-q", optarg, 0, 65535, &queue) || queue != floor(queue))
				return 2;
			break;
		case 'd':
			if (!nd_number("-d", optarg, 0, ND_MAX_MS, &v))
				return 2;
			nd.delay_ns = (uint64_t)llround(v * 1e6);
			break;
		case 'j':
			if (!nd_number("-j", optarg, 0, ND_MAX_MS, &v))
				return 2;
			nd.jitter_ns = (uint64_t)llround(v * 1e6);
			break;
		case 'l':
			if (!nd_number("-l", optarg, 0, 100, &v))
				return 2;
			nd.loss = v / 100;
			break;
		case 'n':
			if (!nd_number("-n", optarg, 1, 1000000, &v) || v != floor(v))
				return 2;
			nd.limit = (uint32_t)v;
			break;
		case 's': {
			char *end;

			errno = 0;
			nd.rng = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-') {
				fprintf(stderr, "netdelay: -s: '%s' is not a whole number\n",
					optarg);
				return 2;
			}
			break;
		}
		case 'h':
			nd_usage(stdout);
			return 0;
		default:
			nd_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || queue < 0) {
		nd_usage(stderr);
		return 2;
	}
	nd.queue = (uint16_t)queue;
	nd.timer_fd = -1;
	r = nd_main(&nd);
	if (r < 0)
		fprintf(stderr, "netdelay: queue %u: %s\n", nd.queue, strerror(-r));
	return r < 0 ? 1 : 0;
}

/*
 * handover.c - overlapping instances (see handover.h): this run's generation and slot, the
 * comment that marks its table, and the questions the start and the shutdown ask the kernel
 * about the other dotgw tables.
 *
 * Invariants: this file only reads tables (one GETTABLE dump of family inet); it changes
 * nothing in the kernel. The generation and slot are set once, before the workers open, and
 * read-only afterwards. A table counts as dotgw's only when its comment parses as ours.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "dotgw/config.h"
#include "dotgw/handover.h"
#include "dotgw/log.h"
#include "dotgw/nftbuild.h"
#include "dotgw/snapshot.h"
#include "dotgw/worker.h"

#define HO_TABLES 2 /* slot 0 and slot 1 (fail open: TABLE and TABLE-1) */

struct ho_table {
	bool exists, owned, ours; /* ours: the comment is a dotgw one */
	uint64_t gen;
	unsigned int slot;
};

struct ho_dump {
	const char *names[HO_TABLES];
	struct ho_table t[HO_TABLES];
};

static struct {
	uint64_t gen;
	unsigned int slot;
	char base[sizeof(((struct config *)0)->table_buf) - 2]; /* room for "-1" */
	char comment[64];
} ho;

bool handover_comment_parse(const char *s, uint64_t *gen, unsigned int *slot)
{
	unsigned long long g;
	unsigned int sl;
	int n = -1;

	if (sscanf(s, "dotgw generation=%llu slot=%u%n", &g, &sl, &n) != 2 || n < 0 ||
	    s[n] != '\0' || sl >= HO_TABLES)
		return false;
	*gen = g;
	*slot = sl;
	return true;
}

static int ho_udata_cb(const struct nftnl_udata *attr, void *data)
{
	const char **comment = data;
	const char *v = nftnl_udata_get(attr);
	uint8_t len = nftnl_udata_len(attr);

	if (nftnl_udata_type(attr) == NFTNL_UDATA_TABLE_COMMENT && len > 0 && v[len - 1] == '\0')
		*comment = v;
	return 0;
}

static int ho_table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ho_dump *d = data;
	struct nftnl_table *t = nftnl_table_alloc();
	const char *name, *comment = NULL;
	const void *udata;
	uint32_t ulen = 0;

	if (!t)
		return MNL_CB_ERROR;
	if (nftnl_table_nlmsg_parse(nlh, t) < 0)
		goto out_free;
	name = nftnl_table_get_str(t, NFTNL_TABLE_NAME);
	for (size_t i = 0; name && i < HO_TABLES; i++) {
		struct ho_table *ht = &d->t[i];

		if (strcmp(name, d->names[i]) != 0)
			continue;
		ht->exists = true;
		ht->owned = nftnl_table_is_set(t, NFTNL_TABLE_FLAGS) &&
			    (nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS) & NFT_TABLE_F_OWNER);
		udata = nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &ulen);
		if (udata && ulen)
			nftnl_udata_parse(udata, ulen, ho_udata_cb, &comment);
		ht->ours = comment && handover_comment_parse(comment, &ht->gen, &ht->slot);
	}
out_free:
	nftnl_table_free(t);
	return MNL_CB_OK;
}

/* ho_dump_tables - what exists of d->names now; 0 or -errno. */
static int ho_dump_tables(struct ho_dump *d)
{
	uint32_t buf[NB_RECV_SIZE / sizeof(uint32_t)];
	uint32_t seq = (uint32_t)time(NULL), portid;
	struct mnl_socket *nl = nb_socket_open();
	struct nlmsghdr *nlh;
	ssize_t n;
	int r;

	if (!nl)
		return -errno;
	portid = mnl_socket_get_portid(nl);
	nlh = nftnl_table_nlmsg_build_hdr((char *)buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_DUMP,
					  seq);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		goto out_close;
	}
	do {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			r = -errno;
			goto out_close;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, portid, ho_table_cb, d);
	} while (r > 0);
	r = r < 0 ? -errno : 0;
out_close:
	mnl_socket_close(nl);
	return r;
}

static void ho_dump_init(struct ho_dump *d, char *alt, size_t len)
{
	memset(d, 0, sizeof(*d));
	snprintf(alt, len, "%s-1", ho.base);
	d->names[0] = ho.base;
	d->names[1] = alt;
}

/* ho_read - ho_dump_init and ho_dump_tables, again while the ruleset changed under the dump
 * (NLM_F_DUMP_INTR: EINTR); 0 or -errno. */
static int ho_read(struct ho_dump *d, char *alt, size_t len)
{
	int r = -EINTR;

	for (int i = 0; i < 5 && r == -EINTR; i++) {
		ho_dump_init(d, alt, len);
		r = ho_dump_tables(d);
	}
	return r;
}

/*
 * ho_queues_bound - is one of the n queues from first bound by a process of this network
 * namespace? /proc/net/netfilter/nfnetlink_queue lists them (per namespace, one line each,
 * the queue number first); no file: no queue bound.
 */
static bool ho_queues_bound(unsigned int first, unsigned int n)
{
	FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "re");
	bool bound = false;
	unsigned int q;
	char line[256];

	if (!f)
		return false;
	while (!bound && fgets(line, sizeof(line), f))
		bound = sscanf(line, "%u", &q) == 1 && q >= first && q - first < n;
	fclose(f);
	return bound;
}

void handover_apply(struct config *cfg)
{
	if (ho.slot == 0)
		return;
	if (!cfg->fail_closed) {
		snprintf(cfg->table_buf, sizeof(cfg->table_buf), "%s-1", ho.base);
		cfg->table = cfg->table_buf;
		/* the --egress table, owned too: derived from the table's name (config.c) */
		snprintf(cfg->egress_table, sizeof(cfg->egress_table), "%s_egress", cfg->table);
	}
	if (cfg->mode == MODE_NFQUEUE)
		cfg->queue_num = (uint16_t)(cfg->queue_num + cfg->queues);
}

int handover_prepare(struct config *cfg)
{
	struct timespec ts;
	char alt[sizeof(ho.base) + 2];
	struct ho_dump d;
	int r;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	ho.gen = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	if (strlen(cfg->table) >= sizeof(ho.base)) {
		log_error("--table '%s': too long (at most %zu characters)", cfg->table,
			  sizeof(ho.base) - 1);
		return -ENAMETOOLONG;
	}
	snprintf(ho.base, sizeof(ho.base), "%s", cfg->table);
	r = ho_read(&d, alt, sizeof(alt));
	if (r < 0) {
		log_error("reading the nftables tables: %s", strerror(-r));
		return r;
	}
	if (!cfg->fail_closed) {
		/* an owned table belongs to a live process; an unowned one is stale: replaced */
		if (d.t[0].owned && d.t[1].owned) {
			log_error("tables inet '%s' and '%s' are both owned by running processes: "
				  "two dotgw instances run already",
				  d.names[0], d.names[1]);
			return -EBUSY;
		}
		ho.slot = d.t[0].owned ? 1 : 0;
	} else if (cfg->mode == MODE_NFQUEUE) {
		/* one table, replaced: only the queues tell whether another run serves */
		ho.slot = ho_queues_bound(cfg->queue_num, cfg->queues) ? 1 : 0;
	}
	if (ho.slot && cfg->mode == MODE_NFQUEUE &&
	    (uint32_t)cfg->queue_num + 2u * cfg->queues > 65536u) {
		log_error("--queue-num %u: a second instance needs queues %u-%u too, beyond 65535",
			  cfg->queue_num, cfg->queue_num + cfg->queues,
			  cfg->queue_num + 2 * cfg->queues - 1);
		return -ERANGE;
	}
	snprintf(ho.comment, sizeof(ho.comment), "dotgw generation=%" PRIu64 " slot=%u", ho.gen,
		 ho.slot);
	if (d.t[0].exists || d.t[1].exists)
		log_info("another dotgw table exists: taking over as slot %u (%s)", ho.slot,
			 ho.comment);
	handover_apply(cfg);
	return 0;
}

const char *handover_comment(void)
{
	return ho.comment[0] ? ho.comment : NULL;
}

bool handover_superseded(void)
{
	char alt[sizeof(ho.base) + 2];
	struct ho_dump d;
	int r;

	if (!ho.base[0])
		return false;
	r = ho_read(&d, alt, sizeof(alt));
	if (r < 0) {
		log_warn("handover: reading the nftables tables: %s: stopping as if alone",
			 strerror(-r));
		return false;
	}
	for (size_t i = 0; i < HO_TABLES; i++)
		if (d.t[i].ours && d.t[i].gen > ho.gen)
			return true;
	return false;
}

static uint64_t ho_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool handover_await(unsigned int seconds)
{
	const struct timespec tick = {.tv_nsec = 100 * 1000000};
	uint64_t end = ho_now_ms() + (uint64_t)seconds * 1000u;

	if (handover_superseded())
		return true;
	if (!seconds)
		return false;
	log_info("waiting up to %u s for a newer dotgw to take over (--handover-wait)", seconds);
	while (ho_now_ms() < end) {
		nanosleep(&tick, NULL);
		if (handover_superseded())
			return true;
	}
	return false;
}

unsigned long long handover_drain(struct workers *ws)
{
	const struct timespec tick = {.tv_nsec = 20 * 1000000};
	uint64_t start = ho_now_ms(), now;
	struct stats_snapshot *s = calloc(1, sizeof(*s));
	unsigned long long left = 0;

	if (!s)
		return 0;
	for (;;) {
		memset(s, 0, sizeof(*s));
		workers_snapshot(ws, s);
		left = s->inflight;
		now = ho_now_ms();
		if ((left == 0 && now - start >= HANDOVER_SETTLE_MS) ||
		    now - start >= HANDOVER_DRAIN_MS)
			break;
		nanosleep(&tick, NULL);
	}
	free(s);
	return left;
}

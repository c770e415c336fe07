/*
 * nftset.h - elements added to sets of one nftables table (family inet), in batches, with the
 * kernel's acknowledgement awaited: a request completes only once the kernel has the element
 * (or has said why not). What one loop iteration adds goes out in one netlink batch.
 *
 * Adding an element that is already there sets its timeout anew (kernels since 6.10), so an
 * add is also a refresh. Adds are idempotent, so a batch that failed as a whole (one element of
 * it was refused, the ACKs were lost, none came) is sent again without the refused elements, up
 * to NFTSET_TRIES times.
 *
 * The netlink socket is a struct nftset_link that every worker's nftset shares: a table that a
 * socket owns (fail open) can be changed only through that socket. The kernel runs a batch
 * inside sendmsg, so its ACKs are queued on the socket when sendto returns: a flush sends and
 * reads them under the link's lock, and no ACK of one worker's batch is ever read by another.
 *
 * Invariants: a request is queued or being flushed, never both; its done callback runs once,
 * from the loop, never from nftset_add. The caller owns each request's memory and the set name
 * it points to until done runs or nftset_cancel returns.
 */
#ifndef DOTGW_NFTSET_H
#define DOTGW_NFTSET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct loop;
struct mnl_socket;
struct nftset;
struct nftset_link;

#define NFTSET_BATCH_MAX 256 /* elements per batch */
#define NFTSET_TRIES	 3   /* sends of one element before it fails with -EIO */

struct nftset_req {
	/* set by the caller */
	void (*done)(struct nftset_req *r, int err); /* 0, or -errno: -ENFILE: the set is full */
	/* private */
	TAILQ_ENTRY(nftset_req) link;
	const char *set;
	uint64_t timeout_ms;
	int err;
	uint8_t key[16];
	uint8_t key_len;
	uint8_t tries;
};

struct nftset_stats {
	uint64_t batches;  /* batches sent */
	uint64_t elements; /* elements the kernel acknowledged */
	uint64_t refused;  /* elements the kernel refused (the request's own error) */
	uint64_t resent;   /* elements sent again after their batch failed */
};

/* nftset_link_new - open the shared netfilter netlink socket. 0 or -errno. */
int nftset_link_new(struct nftset_link **out);
void nftset_link_free(struct nftset_link *l);

/*
 * nftset_link_lock / nftset_link_unlock - hold the link to use its socket for something else
 * (the table's own changes: egress_rules_apply), so no worker's flush comes in between.
 */
struct mnl_socket *nftset_link_lock(struct nftset_link *l);
void nftset_link_unlock(struct nftset_link *l);

/* nftset_new - a worker's queue of additions to the sets of table, sent on link. 0 or -errno. */
int nftset_new(struct nftset **out, struct loop *loop, struct nftset_link *link, const char *table);

/* nftset_free - requests still queued are dropped without their done. */
void nftset_free(struct nftset *ns);

/*
 * nftset_add - add the address addr (family AF_INET or AF_INET6) to set with a timeout of
 * timeout_ms (0: the set's own); r->done runs once the kernel has answered.
 */
void nftset_add(struct nftset *ns, struct nftset_req *r, const char *set, int family,
		const uint8_t *addr, uint64_t timeout_ms);

/* nftset_cancel - forget r (queued: nothing is flushed but from the loop); done will not run. */
void nftset_cancel(struct nftset *ns, struct nftset_req *r);

/* nftset_stats - the counters so far. */
const struct nftset_stats *nftset_stats(const struct nftset *ns);

#endif

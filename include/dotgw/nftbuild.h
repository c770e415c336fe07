/*
 * nftbuild.h - building nftables batches (family inet) with libnftnl, and committing them with
 * libmnl, every ACK read. Shared by ruleset.c (the capture table) and the modules that keep
 * other objects of dotgw's own.
 *
 * A batch or a rule under construction keeps its first error: later calls do nothing, and the
 * error comes back once, from nb_batch_finish. Every message but the batch begin/end markers
 * carries NLM_F_ACK.
 */
#ifndef DOTGW_NFTBUILD_H
#define DOTGW_NFTBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/addr.h"

struct mnl_nlmsg_batch;
struct mnl_socket;
struct nftnl_expr;
struct nftnl_rule;

/*
 * Our largest message, a rule of 12 expressions plus a table name of at most
 * NFT_TABLE_MAXNAMELEN bytes, is under 1 KiB.
 */
#define NB_MSG_MAX    4096
#define NB_BATCH_INIT 16384
#define NB_BATCH_MAX  (4u << 20)
#define NB_RECV_SIZE  8192
/* the socket buffer space one ACK takes, with its skb overhead, counted generously */
#define NB_ACK_TRUESIZE 2048

struct nb_batch {
	struct mnl_nlmsg_batch *b;
	size_t buflen;
	uint32_t seq; /* of the next message */
	unsigned int nmsgs;
	int err;
	uint32_t scratch[NB_MSG_MAX / sizeof(uint32_t)];
};

/* A rule under construction; the first failure sticks and later additions do nothing. */
struct nb_rule {
	struct nftnl_rule *r;
	int err;
};

/*
 * nb_batch_new - start a batch in buf (4-byte aligned, buflen octets), its first message
 * numbered seq; NULL when out of memory. nb_batch_finish - store its length and message count
 * (markers included), free bb, and return its first error (-ENOSPC: buf was too small).
 */
struct nb_batch *nb_batch_new(void *buf, size_t buflen, uint32_t seq);
int nb_batch_finish(struct nb_batch *bb, size_t *len, unsigned int *nmsgs);

/* nb_batch_put - append the message of length len built in bb->scratch, or fail -ENOSPC. */
void nb_batch_put(struct nb_batch *bb, size_t len);
/* nb_batch_marker - the batch begin (begin) or end marker. */
void nb_batch_marker(struct nb_batch *bb, bool begin);
/* nb_batch_table - a NEWTABLE or DELTABLE (type) message with nlmsg flags and table flags. */
void nb_batch_table(struct nb_batch *bb, const char *table, uint16_t type, uint16_t flags,
		    uint32_t table_flags);
/* nb_batch_table_comment - the same, with a table comment (NULL: none). */
void nb_batch_table_comment(struct nb_batch *bb, const char *table, uint16_t type, uint16_t flags,
			    uint32_t table_flags, const char *comment);
/* nb_batch_chain - a base chain of policy accept: dotgw never drops what it does not capture. */
void nb_batch_chain(struct nb_batch *bb, const char *table, const char *name, const char *type,
		    uint32_t hooknum, int32_t prio);
/* nb_batch_chain_plain - a regular chain's NEWCHAIN (create) or DELCHAIN message (msg). */
void nb_batch_chain_plain(struct nb_batch *bb, uint16_t msg, const char *table, const char *name);
/* nb_batch_rule - append the finished rule rr (or record its error) and free it. */
void nb_batch_rule(struct nb_batch *bb, struct nb_rule *rr);

void nb_rule_start(struct nb_rule *rr, const char *table, const char *chain);
/* nb_expr_new - a new expression already attached to the rule (which then owns it). */
struct nftnl_expr *nb_expr_new(struct nb_rule *rr, const char *name);
void nb_expr_meta_load(struct nb_rule *rr, uint32_t key);
void nb_expr_cmp(struct nb_rule *rr, uint32_t op, const void *data, uint32_t len);
void nb_expr_payload(struct nb_rule *rr, uint32_t base, uint32_t offset, uint32_t len);
void nb_expr_imm_data(struct nb_rule *rr, const void *data, uint32_t len);
void nb_expr_imm_verdict(struct nb_rule *rr, int verdict);
/* Meta keys of 32 bits (mark, iif) compare in host byte order, as nft encodes them. */
void nb_match_meta_u32(struct nb_rule *rr, uint32_t key, uint32_t op, uint32_t value);
/* iifname "NAME": the whole IFNAMSIZ buffer, zero-padded, for an exact match. */
void nb_match_iifname(struct nb_rule *rr, const char *name);
/*
 * nb_cmp_ifpattern - compare the interface name in register 1 with pattern p, as nft does: a
 * name as the whole IFNAMSIZ buffer, zero-padded; a prefix "tun*" as its characters alone.
 */
void nb_cmp_ifpattern(struct nb_rule *rr, const char *p);
/* meta iifkind "bridge": the input interface is a Linux bridge */
void nb_match_iifkind_bridge(struct nb_rule *rr);
/* "udp dport N" / "tcp dport N" in an inet table: meta l4proto, then the transport header. */
void nb_match_dport(struct nb_rule *rr, uint8_t l4proto, uint16_t port);
/* "ip saddr 192.0.2.0/24" (or daddr, or ip6), encoded as nft encodes a prefix. */
void nb_match_cidr(struct nb_rule *rr, const struct cidr *c, bool src);
/* "ct KEY & mask != 0" (ct status dnat, ct state established,related), host byte order */
void nb_match_ct_bits(struct nb_rule *rr, uint32_t key, uint32_t mask);
void nb_stmt_counter(struct nb_rule *rr);

/*
 * nb_read_acks - read the ACKs of the nacks messages that follow the batch begin (sequence
 * number seq). Returns 0 or the first error as -errno.
 */
int nb_read_acks(struct mnl_socket *nl, uint32_t seq, unsigned int nacks);
/* nb_socket_size - make the socket's buffers room for a batch of len octets and nacks ACKs. */
void nb_socket_size(struct mnl_socket *nl, size_t len, unsigned int nacks);
/* nb_socket_open - a bound NETLINK_NETFILTER socket, or NULL with errno. */
struct mnl_socket *nb_socket_open(void);
/* nb_commit - send a batch on nl and read its ACKs; 0 or the first error. */
int nb_commit(struct mnl_socket *nl, const void *batch, size_t len, uint32_t seq,
	      unsigned int nacks);

/*
 * nb_apply - build(data, ...) a whole batch (begin ... end) into a buffer that grows from
 * NB_BATCH_INIT to NB_BATCH_MAX while build says -ENOSPC, and commit it on nl. 0 or -errno.
 */
int nb_apply(struct mnl_socket *nl,
	     int (*build)(void *data, void *buf, size_t buflen, uint32_t seq, size_t *len,
			  unsigned int *nmsgs),
	     void *data);

#endif

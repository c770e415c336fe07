/*
 * nftbuild.c - see nftbuild.h. Each message is built in the batch's scratch buffer and copied
 * into the caller's buffer only when it fits: libnftnl writes attributes without bounds checks.
 */
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "dotgw/nftbuild.h"

/* nb_batch_put - append the message of length len built in bb->scratch, or fail -ENOSPC. */
struct nb_batch *nb_batch_new(void *buf, size_t buflen, uint32_t seq)
{
	/* the scratch buffer is too big for comfort on a thread's stack */
	struct nb_batch *bb = calloc(1, sizeof(*bb));

	if (!bb)
		return NULL;
	bb->b = mnl_nlmsg_batch_start(buf, buflen);
	if (!bb->b) {
		free(bb);
		return NULL;
	}
	bb->buflen = buflen;
	bb->seq = seq;
	return bb;
}

int nb_batch_finish(struct nb_batch *bb, size_t *len, unsigned int *nmsgs)
{
	int err = bb->err;

	if (!err) {
		*len = mnl_nlmsg_batch_size(bb->b);
		*nmsgs = bb->nmsgs;
	}
	mnl_nlmsg_batch_stop(bb->b);
	free(bb);
	return err;
}

void nb_batch_put(struct nb_batch *bb, size_t len)
{
	if (bb->err)
		return;
	if (len > bb->buflen - mnl_nlmsg_batch_size(bb->b)) {
		bb->err = -ENOSPC;
		return;
	}
	memcpy(mnl_nlmsg_batch_current(bb->b), bb->scratch, len);
	mnl_nlmsg_batch_next(bb->b);
	bb->seq++;
	bb->nmsgs++;
}

void nb_batch_marker(struct nb_batch *bb, bool begin)
{
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	if (begin)
		nlh = nftnl_batch_begin((char *)bb->scratch, bb->seq);
	else
		nlh = nftnl_batch_end((char *)bb->scratch, bb->seq);
	nb_batch_put(bb, nlh->nlmsg_len);
}

void nb_batch_table(struct nb_batch *bb, const char *table, uint16_t type, uint16_t flags,
		    uint32_t table_flags)
{
	nb_batch_table_comment(bb, table, type, flags, table_flags, NULL);
}

/* The comment goes in the user data as nft writes it (NFTNL_UDATA_TABLE_COMMENT), so that
 * `nft list` shows it. */
void nb_batch_table_comment(struct nb_batch *bb, const char *table, uint16_t type, uint16_t flags,
			    uint32_t table_flags, const char *comment)
{
	struct nftnl_udata_buf *ud = NULL;
	struct nftnl_table *t;
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	t = nftnl_table_alloc();
	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, table) < 0) {
		bb->err = -ENOMEM;
		goto out_free_table;
	}
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	if (table_flags)
		nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, table_flags);
	if (comment) {
		ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
		if (!ud || !nftnl_udata_put_strz(ud, NFTNL_UDATA_TABLE_COMMENT, comment) ||
		    nftnl_table_set_data(t, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(ud),
					 nftnl_udata_buf_len(ud)) < 0) {
			bb->err = -ENOMEM;
			goto out_free_table;
		}
	}
	nlh = nftnl_table_nlmsg_build_hdr((char *)bb->scratch, type, NFPROTO_INET,
					  flags | NLM_F_ACK, bb->seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nb_batch_put(bb, nlh->nlmsg_len);
out_free_table:
	nftnl_udata_buf_free(ud);
	nftnl_table_free(t);
}

/* A base chain of policy accept: dotgw never drops what it does not capture. */
/* nb_chain_msg - a chain message: base chain when type is set (hook, priority, policy accept). */
static void nb_chain_msg(struct nb_batch *bb, uint16_t msg, const char *table, const char *name,
			 const char *type, uint32_t hooknum, int32_t prio)
{
	struct nftnl_chain *c;
	struct nlmsghdr *nlh;

	if (bb->err)
		return;
	c = nftnl_chain_alloc();
	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0 ||
	    (type && nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type) < 0)) {
		bb->err = -ENOMEM;
		goto out_free_chain;
	}
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	if (type) {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hooknum);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	nlh = nftnl_chain_nlmsg_build_hdr((char *)bb->scratch, msg, NFPROTO_INET,
					  (msg == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0) | NLM_F_ACK,
					  bb->seq);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nb_batch_put(bb, nlh->nlmsg_len);
out_free_chain:
	nftnl_chain_free(c);
}

void nb_batch_chain(struct nb_batch *bb, const char *table, const char *name, const char *type,
		    uint32_t hooknum, int32_t prio)
{
	nb_chain_msg(bb, NFT_MSG_NEWCHAIN, table, name, type, hooknum, prio);
}

void nb_batch_chain_plain(struct nb_batch *bb, uint16_t msg, const char *table, const char *name)
{
	nb_chain_msg(bb, msg, table, name, NULL, 0, 0);
}

/* nb_batch_rule - append the finished rule rr (or record its error) and free it. */
void nb_batch_rule(struct nb_batch *bb, struct nb_rule *rr)
{
	struct nlmsghdr *nlh;

	if (!bb->err && rr->err)
		bb->err = rr->err;
	if (!bb->err) {
		nlh = nftnl_rule_nlmsg_build_hdr((char *)bb->scratch, NFT_MSG_NEWRULE, NFPROTO_INET,
						 NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, bb->seq);
		nftnl_rule_nlmsg_build_payload(nlh, rr->r);
		nb_batch_put(bb, nlh->nlmsg_len);
	}
	nftnl_rule_free(rr->r);
	rr->r = NULL;
}

void nb_rule_start(struct nb_rule *rr, const char *table, const char *chain)
{
	rr->err = 0;
	rr->r = nftnl_rule_alloc();
	if (!rr->r || nftnl_rule_set_str(rr->r, NFTNL_RULE_TABLE, table) < 0 ||
	    nftnl_rule_set_str(rr->r, NFTNL_RULE_CHAIN, chain) < 0) {
		rr->err = -ENOMEM;
		return;
	}
	nftnl_rule_set_u32(rr->r, NFTNL_RULE_FAMILY, NFPROTO_INET);
}

/* nb_expr_new - a new expression already attached to the rule (which then owns it). */
struct nftnl_expr *nb_expr_new(struct nb_rule *rr, const char *name)
{
	struct nftnl_expr *e;

	if (rr->err)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		rr->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_add_expr(rr->r, e);
	return e;
}

void nb_expr_meta_load(struct nb_rule *rr, uint32_t key)
{
	struct nftnl_expr *e = nb_expr_new(rr, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

void nb_expr_cmp(struct nb_rule *rr, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nb_expr_new(rr, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	if (nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0)
		rr->err = -EINVAL;
}

void nb_expr_payload(struct nb_rule *rr, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = nb_expr_new(rr, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
}

void nb_expr_imm_data(struct nb_rule *rr, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nb_expr_new(rr, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	if (nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len) < 0)
		rr->err = -EINVAL;
}

void nb_expr_imm_verdict(struct nb_rule *rr, int verdict)
{
	struct nftnl_expr *e = nb_expr_new(rr, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
}

/* Meta keys of 32 bits (mark, iif) compare in host byte order, as nft encodes them. */
void nb_match_meta_u32(struct nb_rule *rr, uint32_t key, uint32_t op, uint32_t value)
{
	nb_expr_meta_load(rr, key);
	nb_expr_cmp(rr, op, &value, sizeof(value));
}

/* iifname "NAME": the whole IFNAMSIZ buffer, zero-padded, for an exact match. */
void nb_match_iifname(struct nb_rule *rr, const char *name)
{
	char ifname[IFNAMSIZ] = {0};

	memcpy(ifname, name, strnlen(name, IFNAMSIZ - 1));
	nb_expr_meta_load(rr, NFT_META_IIFNAME);
	nb_expr_cmp(rr, NFT_CMP_EQ, ifname, sizeof(ifname));
}

/*
 * Compare the interface name in register 1 with pattern p, as nft does: a name as the whole
 * IFNAMSIZ buffer, zero-padded; a prefix "tun*" as its characters alone (no terminating NUL).
 */
void nb_cmp_ifpattern(struct nb_rule *rr, const char *p)
{
	char ifname[IFNAMSIZ] = {0};
	size_t len = strnlen(p, IFNAMSIZ - 1);

	memcpy(ifname, p, len);
	if (len && p[len - 1] == '*')
		nb_expr_cmp(rr, NFT_CMP_EQ, ifname, (uint32_t)len - 1);
	else
		nb_expr_cmp(rr, NFT_CMP_EQ, ifname, sizeof(ifname));
}

/* meta iifkind "bridge": the input interface is a Linux bridge (exact match, as iifname) */
void nb_match_iifkind_bridge(struct nb_rule *rr)
{
	char kind[IFNAMSIZ] = "bridge";

	nb_expr_meta_load(rr, NFT_META_IIFKIND);
	nb_expr_cmp(rr, NFT_CMP_EQ, kind, sizeof(kind));
}

/* "udp dport N" / "tcp dport N" in an inet table: meta l4proto, then the transport header. */
void nb_match_dport(struct nb_rule *rr, uint8_t l4proto, uint16_t port)
{
	uint16_t nport = htons(port);

	nb_expr_meta_load(rr, NFT_META_L4PROTO);
	nb_expr_cmp(rr, NFT_CMP_EQ, &l4proto, sizeof(l4proto));
	nb_expr_payload(rr, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(nport));
	nb_expr_cmp(rr, NFT_CMP_EQ, &nport, sizeof(nport));
}

/*
 * "ip saddr 192.0.2.0/24" (or daddr, or ip6): the nfproto, then the address under a mask, as
 * nft encodes a prefix (payload, bitwise, cmp), so nft lists it the same way.
 */
void nb_match_cidr(struct nb_rule *rr, const struct cidr *c, bool src)
{
	uint8_t proto = c->family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
	uint32_t len = c->family == AF_INET6 ? 16 : 4;
	uint32_t off = c->family == AF_INET6 ? (src ? 8 : 24) : (src ? 12 : 16);
	uint8_t mask[16] = {0}, flip[16] = {0}, net[16] = {0};
	struct nftnl_expr *e;

	for (unsigned int i = 0; i < c->plen && i < len * 8; i++)
		mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	for (uint32_t i = 0; i < len; i++)
		net[i] = c->addr[i] & mask[i];
	nb_expr_meta_load(rr, NFT_META_NFPROTO);
	nb_expr_cmp(rr, NFT_CMP_EQ, &proto, sizeof(proto));
	nb_expr_payload(rr, NFT_PAYLOAD_NETWORK_HEADER, off, len);
	if (c->plen < len * 8) {
		e = nb_expr_new(rr, "bitwise");
		if (!e)
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, flip, len);
	}
	nb_expr_cmp(rr, NFT_CMP_EQ, net, len);
}

void nb_match_ct_bits(struct nb_rule *rr, uint32_t key, uint32_t mask)
{
	const uint32_t zero = 0;
	struct nftnl_expr *e = nb_expr_new(rr, "ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	e = nb_expr_new(rr, "bitwise");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
	}
	nb_expr_cmp(rr, NFT_CMP_NEQ, &zero, sizeof(zero));
}

void nb_stmt_counter(struct nb_rule *rr)
{
	struct nftnl_expr *e = nb_expr_new(rr, "counter");

	if (!e)
		return;
	nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_PACKETS, 0);
	nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_BYTES, 0);
}

/*
 * nb_read_acks - read the ACKs of the nacks messages that follow the batch begin (sequence
 * number seq). The kernel reports them in batch order once it has processed the whole batch.
 * An error about the batch as a whole (EPERM, ENOMEM) comes alone, with the begin marker's
 * sequence number. Returns 0 or the first error as -errno.
 */
int nb_read_acks(struct mnl_socket *nl, uint32_t seq, unsigned int nacks)
{
	uint32_t portid = mnl_socket_get_portid(nl);
	uint32_t buf[NB_RECV_SIZE / sizeof(uint32_t)];
	unsigned int acked = 0;
	struct nlmsghdr *nlh;
	uint32_t expect;
	ssize_t n;
	int first_err = 0, ret;
	int len;

	while (acked < nacks) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		len = (int)n;
		for (nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			expect = nlh->nlmsg_seq == seq ? seq : seq + 1 + acked;
			if (nlh->nlmsg_seq != expect)
				return -EPROTO;
			ret = mnl_cb_run(nlh, nlh->nlmsg_len, expect, portid, NULL, NULL);
			if (ret < 0 && !first_err)
				first_err = errno ? -errno : -EPROTO;
			if (expect == seq)
				return first_err ? first_err : -EPROTO;
			acked++;
		}
	}
	return first_err;
}

/*
 * nb_socket_size - make room for a large batch (a long interface list): a netlink datagram
 * larger than the send buffer fails with EMSGSIZE, and ACKs that overflow the receive buffer
 * are lost (ENOBUFS). The kernel sends all ACKs at once after the commit. As in nft, the FORCE
 * variants (CAP_NET_ADMIN, which a batch needs anyway) pass net.core.[rw]mem_max; should both
 * fail, the send or the receive reports the error.
 */
void nb_socket_size(struct mnl_socket *nl, size_t len, unsigned int nacks)
{
	int fd = mnl_socket_get_fd(nl), cur, want;
	socklen_t sl = sizeof(cur);

	if (len > INT_MAX / 2 || nacks > INT_MAX / 2 / NB_ACK_TRUESIZE)
		return;
	want = (int)len; /* the kernel doubles it */
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &sl) == 0 && cur < 2 * want + 1024 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	want = (int)nacks * NB_ACK_TRUESIZE / 2;
	sl = sizeof(cur);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cur, &sl) == 0 && cur < 2 * want &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
}

struct mnl_socket *nb_socket_open(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);

	if (!nl)
		return NULL;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int err = errno;

		mnl_socket_close(nl);
		errno = err;
		return NULL;
	}
	return nl;
}

/* nb_commit - send a batch on nl and read its ACKs; 0 or the first error. */
int nb_commit(struct mnl_socket *nl, const void *batch, size_t len, uint32_t seq,
	      unsigned int nacks)
{
	nb_socket_size(nl, len, nacks);
	if (mnl_socket_sendto(nl, batch, len) < 0)
		return -errno;
	return nb_read_acks(nl, seq, nacks);
}

int nb_apply(struct mnl_socket *nl,
	     int (*build)(void *data, void *buf, size_t buflen, uint32_t seq, size_t *len,
			  unsigned int *nmsgs),
	     void *data)
{
	uint32_t seq = (uint32_t)time(NULL);
	unsigned int nmsgs;
	size_t size, len;
	void *buf;
	int err;

	for (size = NB_BATCH_INIT;; size *= 2) {
		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		err = build(data, buf, size, seq, &len, &nmsgs);
		if (err != -ENOSPC || size >= NB_BATCH_MAX)
			break;
		free(buf);
	}
	if (!err)
		err = nb_commit(nl, buf, len, seq, nmsgs - 2);
	free(buf);
	return err;
}

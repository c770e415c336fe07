/*
 * conntrack.c - ctnetlink lookups of one conntrack entry by its reply tuple, and at start-up
 * the deletion of port-53 flows the bridge redirect has not taken; see conntrack.h.
 *
 * A request is IPCTNL_MSG_CT_GET with CTA_TUPLE_REPLY, without NLM_F_ACK; the kernel answers
 * within the send (the entry, or an error), so the read never waits. Each request has a
 * sequence number of its own; late messages of an earlier request are skipped.
 *
 * Invariants: *odst is written only on success; attributes are validated before use.
 */
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "dotgw/conntrack.h"

#define CT_BUF_SIZE 8192

struct conntrack {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
};

/* what the answer's parser fills in */
struct ct_result {
	int family;
	struct sockaddr_storage *odst;
	bool found;
};

int conntrack_open(struct conntrack **out)
{
	struct conntrack *ct = calloc(1, sizeof(*ct));
	int err;

	if (!ct)
		return -ENOMEM;
	ct->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!ct->nl) {
		err = -errno;
		goto out_free;
	}
	if (mnl_socket_bind(ct->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto out_close;
	}
	ct->portid = mnl_socket_get_portid(ct->nl);
	*out = ct;
	return 0;

out_close:
	mnl_socket_close(ct->nl);
out_free:
	free(ct);
	return err;
}

void conntrack_close(struct conntrack *ct)
{
	if (!ct)
		return;
	mnl_socket_close(ct->nl);
	free(ct);
}

/* ct_put_tuple - CTA_TUPLE_REPLY: src (address, port) to dst (address, port), proto l4proto */
static void ct_put_tuple(struct nlmsghdr *nlh, uint8_t l4proto, const struct sockaddr *src,
			 const struct sockaddr *dst)
{
	const struct sockaddr_in6 *s6 = (const void *)src, *d6 = (const void *)dst;
	const struct sockaddr_in *s4 = (const void *)src, *d4 = (const void *)dst;
	bool v6 = src->sa_family == AF_INET6;
	struct nlattr *tuple, *nest;

	tuple = mnl_attr_nest_start(nlh, CTA_TUPLE_REPLY);
	nest = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	if (v6) {
		mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, &s6->sin6_addr);
		mnl_attr_put(nlh, CTA_IP_V6_DST, 16, &d6->sin6_addr);
	} else {
		mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, &s4->sin_addr);
		mnl_attr_put(nlh, CTA_IP_V4_DST, 4, &d4->sin_addr);
	}
	mnl_attr_nest_end(nlh, nest);
	nest = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, l4proto);
	/* ports in network byte order, as the kernel wants them */
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, v6 ? s6->sin6_port : s4->sin_port);
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, v6 ? d6->sin6_port : d4->sin_port);
	mnl_attr_nest_end(nlh, nest);
	mnl_attr_nest_end(nlh, tuple);
}

/* ct_attr_cb - index attributes by type (validated where used); unknown types are skipped */
static int ct_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type > CTA_MAX)
		return MNL_CB_OK;
	tb[type] = a;
	return MNL_CB_OK;
}

/* ct_parse_orig - the destination of CTA_TUPLE_ORIG into r->odst; false when incomplete */
static bool ct_parse_orig(const struct nlattr *orig, struct ct_result *r)
{
	const struct nlattr *tt[CTA_MAX + 1] = {0}, *ip[CTA_MAX + 1] = {0};
	const struct nlattr *pr[CTA_MAX + 1] = {0};
	uint16_t port;

	if (mnl_attr_validate(orig, MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_parse_nested(orig, ct_attr_cb, tt) < 0 || !tt[CTA_TUPLE_IP] ||
	    !tt[CTA_TUPLE_PROTO] || mnl_attr_validate(tt[CTA_TUPLE_IP], MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_validate(tt[CTA_TUPLE_PROTO], MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_parse_nested(tt[CTA_TUPLE_IP], ct_attr_cb, ip) < 0 ||
	    mnl_attr_parse_nested(tt[CTA_TUPLE_PROTO], ct_attr_cb, pr) < 0)
		return false;
	if (!pr[CTA_PROTO_DST_PORT] || mnl_attr_validate(pr[CTA_PROTO_DST_PORT], MNL_TYPE_U16) < 0)
		return false;
	port = mnl_attr_get_u16(pr[CTA_PROTO_DST_PORT]); /* network byte order */
	if (r->family == AF_INET6) {
		struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = port};

		if (!ip[CTA_IP_V6_DST] || mnl_attr_get_payload_len(ip[CTA_IP_V6_DST]) != 16)
			return false;
		memcpy(&s6.sin6_addr, mnl_attr_get_payload(ip[CTA_IP_V6_DST]), 16);
		memset(r->odst, 0, sizeof(*r->odst));
		memcpy(r->odst, &s6, sizeof(s6));
	} else {
		struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = port};

		if (!ip[CTA_IP_V4_DST] || mnl_attr_get_payload_len(ip[CTA_IP_V4_DST]) != 4)
			return false;
		memcpy(&s4.sin_addr, mnl_attr_get_payload(ip[CTA_IP_V4_DST]), 4);
		memset(r->odst, 0, sizeof(*r->odst));
		memcpy(r->odst, &s4, sizeof(s4));
	}
	return true;
}

static int ct_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[CTA_MAX + 1] = {0};
	struct ct_result *r = data;

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), ct_attr_cb, tb) < 0)
		return MNL_CB_ERROR;
	if (tb[CTA_TUPLE_ORIG] && ct_parse_orig(tb[CTA_TUPLE_ORIG], r))
		r->found = true;
	return MNL_CB_OK;
}

int conntrack_orig_dst(struct conntrack *ct, uint8_t l4proto, const struct sockaddr *local,
		       const struct sockaddr *peer, struct sockaddr_storage *odst)
{
	uint32_t buf[CT_BUF_SIZE / sizeof(uint32_t)];
	struct sockaddr_storage found;
	struct ct_result r = {.family = local->sa_family, .odst = &found};
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	uint32_t seq;
	ssize_t n;
	int ret;

	if ((local->sa_family != AF_INET && local->sa_family != AF_INET6) ||
	    peer->sa_family != local->sa_family)
		return -EAFNOSUPPORT;
	memset(buf, 0, 512);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq = ++ct->seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)local->sa_family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	ct_put_tuple(nlh, l4proto, local, peer);
	if (mnl_socket_sendto(ct->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	/* the entry (or the error) is queued before sendto returns: nothing waits */
	while (!r.found) {
		n = recv(mnl_socket_get_fd(ct->nl), buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		ret = mnl_cb_run(buf, (size_t)n, seq, ct->portid, ct_msg_cb, &r);
		if (ret < 0) {
			/* an old request's late messages: skip them */
			if (errno == EPROTO || errno == ESRCH)
				continue;
			return -errno;
		}
		if (ret == MNL_CB_STOP && !r.found)
			return -ENOENT;
	}
	memcpy(odst, &found, sizeof(found));
	return 0;
}

/* --- start-up: flows that began before the redirect ------------------------------------ */

#define CT_DUMP_BUF_SIZE 32768

struct ct_flush {
	struct mnl_socket *del; /* the deletes go on a socket of their own: the dump is running */
	uint32_t del_portid;
	uint32_t seq;
	bool udp;
	uint16_t redirect_port; /* 0: flows no DNAT touched; else those redirected to it */
	int deleted;
};

/* ct_reply_sport - the source port of CTA_TUPLE_REPLY (host order), or 0 */
static uint16_t ct_reply_sport(const struct nlattr *reply)
{
	const struct nlattr *tt[CTA_MAX + 1] = {0}, *pr[CTA_MAX + 1] = {0};

	if (!reply || mnl_attr_validate(reply, MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_parse_nested(reply, ct_attr_cb, tt) < 0 || !tt[CTA_TUPLE_PROTO] ||
	    mnl_attr_validate(tt[CTA_TUPLE_PROTO], MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_parse_nested(tt[CTA_TUPLE_PROTO], ct_attr_cb, pr) < 0 ||
	    !pr[CTA_PROTO_SRC_PORT] || mnl_attr_validate(pr[CTA_PROTO_SRC_PORT], MNL_TYPE_U16) < 0)
		return 0;
	return ntohs(mnl_attr_get_u16(pr[CTA_PROTO_SRC_PORT]));
}

/* ct_orig_is_dns - CTA_TUPLE_ORIG is TCP (or UDP, when udp) to port 53 */
static bool ct_orig_is_dns(const struct nlattr *orig, bool udp)
{
	const struct nlattr *tt[CTA_MAX + 1] = {0}, *pr[CTA_MAX + 1] = {0};
	uint8_t proto;

	if (mnl_attr_validate(orig, MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_parse_nested(orig, ct_attr_cb, tt) < 0 || !tt[CTA_TUPLE_PROTO] ||
	    mnl_attr_validate(tt[CTA_TUPLE_PROTO], MNL_TYPE_NESTED) < 0 ||
	    mnl_attr_parse_nested(tt[CTA_TUPLE_PROTO], ct_attr_cb, pr) < 0)
		return false;
	if (!pr[CTA_PROTO_NUM] || mnl_attr_validate(pr[CTA_PROTO_NUM], MNL_TYPE_U8) < 0 ||
	    !pr[CTA_PROTO_DST_PORT] || mnl_attr_validate(pr[CTA_PROTO_DST_PORT], MNL_TYPE_U16) < 0)
		return false;
	proto = mnl_attr_get_u8(pr[CTA_PROTO_NUM]);
	if (proto != IPPROTO_TCP && !(udp && proto == IPPROTO_UDP))
		return false;
	return ntohs(mnl_attr_get_u16(pr[CTA_PROTO_DST_PORT])) == 53;
}

/* ct_flush_cb - one entry of the dump: delete it (by its original tuple) when it qualifies */
static int ct_flush_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[CTA_MAX + 1] = {0};
	const struct nfgenmsg *in = mnl_nlmsg_get_payload(nlh);
	struct ct_flush *f = data;
	uint32_t buf[512 / sizeof(uint32_t)];
	struct nlmsghdr *req;
	struct nfgenmsg *nfg;
	bool dnat;
	ssize_t n;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*in) ||
	    mnl_attr_parse(nlh, sizeof(*in), ct_attr_cb, tb) < 0)
		return MNL_CB_OK;
	if (!tb[CTA_TUPLE_ORIG] || !tb[CTA_STATUS] ||
	    mnl_attr_validate(tb[CTA_STATUS], MNL_TYPE_U32) < 0 ||
	    !ct_orig_is_dns(tb[CTA_TUPLE_ORIG], f->udp))
		return MNL_CB_OK;
	dnat = ntohl(mnl_attr_get_u32(tb[CTA_STATUS])) & IPS_DST_NAT;
	if (f->redirect_port ? !dnat || ct_reply_sport(tb[CTA_TUPLE_REPLY]) != f->redirect_port
			     : dnat)
		return MNL_CB_OK;
	if (mnl_attr_get_payload_len(tb[CTA_TUPLE_ORIG]) > 256)
		return MNL_CB_OK; /* no tuple is that large */
	memset(buf, 0, sizeof(buf));
	req = mnl_nlmsg_put_header(buf);
	req->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
	req->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req->nlmsg_seq = ++f->seq;
	nfg = mnl_nlmsg_put_extra_header(req, sizeof(*nfg));
	nfg->nfgen_family = in->nfgen_family;
	nfg->version = NFNETLINK_V0;
	mnl_attr_put(req, CTA_TUPLE_ORIG | NLA_F_NESTED,
		     mnl_attr_get_payload_len(tb[CTA_TUPLE_ORIG]),
		     mnl_attr_get_payload(tb[CTA_TUPLE_ORIG]));
	if (tb[CTA_ZONE] && mnl_attr_validate(tb[CTA_ZONE], MNL_TYPE_U16) == 0)
		mnl_attr_put_u16(req, CTA_ZONE, mnl_attr_get_u16(tb[CTA_ZONE]));
	if (mnl_socket_sendto(f->del, req, req->nlmsg_len) < 0)
		return MNL_CB_OK;
	/* the ACK (or ENOENT: it went meanwhile) */
	n = mnl_socket_recvfrom(f->del, buf, sizeof(buf));
	if (n > 0 && mnl_cb_run(buf, (size_t)n, f->seq, f->del_portid, NULL, NULL) >= 0)
		f->deleted++;
	return MNL_CB_OK;
}

/* ct_socket - a bound ctnetlink socket whose reads give up after 2 s */
static struct mnl_socket *ct_socket(void)
{
	struct timeval tv = {.tv_sec = 2};
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);

	if (!nl)
		return NULL;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		int err = errno;

		mnl_socket_close(nl);
		errno = err;
		return NULL;
	}
	return nl;
}

int conntrack_flush_dns(bool udp, uint16_t redirect_port)
{
	struct ct_flush f = {.udp = udp, .redirect_port = redirect_port, .seq = 1};
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	uint32_t seq = 1, portid;
	uint8_t *buf;
	ssize_t n;
	int ret = 0, err = 0;

	buf = malloc(CT_DUMP_BUF_SIZE);
	if (!buf)
		return -ENOMEM;
	nl = ct_socket();
	if (!nl) {
		err = -errno;
		goto out_free;
	}
	f.del = ct_socket();
	if (!f.del) {
		err = -errno;
		goto out_close;
	}
	portid = mnl_socket_get_portid(nl);
	f.del_portid = mnl_socket_get_portid(f.del);
	memset(buf, 0, 512);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC; /* every family */
	nfg->version = NFNETLINK_V0;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		err = -errno;
		goto out_close_del;
	}
	do {
		n = mnl_socket_recvfrom(nl, buf, CT_DUMP_BUF_SIZE);
		if (n < 0) {
			err = -errno;
			break;
		}
		ret = mnl_cb_run(buf, (size_t)n, seq, portid, ct_flush_cb, &f);
		/* NLM_F_DUMP_INTR (EINTR): the table changed meanwhile; what was seen is done */
		if (ret < 0 && errno != EINTR)
			err = -errno;
	} while (ret > 0);

out_close_del:
	mnl_socket_close(f.del);
out_close:
	mnl_socket_close(nl);
out_free:
	free(buf);
	return err < 0 ? err : f.deleted;
}

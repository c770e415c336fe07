/*
 * snapshot.c - the renderings of a struct stats_snapshot: the Prometheus text exposition
 * (served by metrics.c's thread) and the "stats:" log line. It reads only the snapshot it is
 * given, so the two can never disagree about where a number comes from.
 */
#include <stdio.h>

#include "dotgw/doh.h"
#include "dotgw/log.h"
#include "dotgw/snapshot.h"

static void metric(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP dotgw_%s %s\n# TYPE dotgw_%s %s\n", name, help, name, type);
}

/* render_counters - the daemon-wide counters. */
static void render_counters(const struct stats_snapshot *snap, FILE *out)
{
	const struct stats *s = &snap->sum;

	metric(out, "queries_total", "counter", "Queries accepted from clients, by transport.");
	fprintf(out, "dotgw_queries_total{mode=\"%s\",protocol=\"udp\"} %llu\n", snap->mode,
		(unsigned long long)s->queries_udp);
	fprintf(out, "dotgw_queries_total{mode=\"%s\",protocol=\"tcp\"} %llu\n", snap->mode,
		(unsigned long long)s->queries_tcp);
	metric(out, "queries_by_family_total", "counter", "Queries accepted, by client family.");
	fprintf(out, "dotgw_queries_by_family_total{family=\"ipv4\"} %llu\n",
		(unsigned long long)s->queries_ipv4);
	fprintf(out, "dotgw_queries_by_family_total{family=\"ipv6\"} %llu\n",
		(unsigned long long)s->queries_ipv6);
	metric(out, "responses_total", "counter", "Answers sent to clients, by result.");
#define RESULT(label, field)                                               \
	fprintf(out, "dotgw_responses_total{result=\"" label "\"} %llu\n", \
		(unsigned long long)s->field)
	RESULT("upstream", answered);
	RESULT("cache", cache_hits);
	RESULT("stale", cache_stale);
	RESULT("servfail", servfail);
	RESULT("formerr", formerr);
	RESULT("notimp", notimp);
	RESULT("policy", policy_denied);
	RESULT("truncated", truncated);
#undef RESULT
	metric(out, "drops_total", "counter", "Packets or queries dropped or refused, by cause.");
#define DROP(label, field) \
	fprintf(out, "dotgw_drops_total{cause=\"" label "\"} %llu\n", (unsigned long long)s->field)
	DROP("malformed", malformed);
	DROP("bad_checksum", bad_checksum);
	DROP("rate_limited", rate_limited);
	DROP("overload", overload);
	DROP("client_inflight", client_overload);
	DROP("queue_overflow", queue_enobufs);
	DROP("reply_error", reply_errors);
	DROP("other", dropped);
#undef DROP
	metric(out, "upstream_local_errors_total", "counter",
	       "Upstream connections not opened for want of descriptors or memory here "
	       "(no upstream backed off).");
	fprintf(out, "dotgw_upstream_local_errors_total %llu\n",
		(unsigned long long)s->upstream_local_errors);
	metric(out, "upstream_standby_total", "counter",
	       "Upstream connections opened at once after an idle close, for the next query "
	       "(--standby).");
	fprintf(out, "dotgw_upstream_standby_total %llu\n",
		(unsigned long long)s->upstream_standby);
	metric(out, "upstream_held_total", "counter",
	       "Queries answered SERVFAIL at their deadline while an upstream still had them: "
	       "each kept its place in its client's share until the upstream ended it.");
	fprintf(out, "dotgw_upstream_held_total %llu\n", (unsigned long long)s->upstream_abandoned);
	metric(out, "upstream_held_answered_total", "counter",
	       "Of the held queries, those the upstream answered late (the answer is not used).");
	fprintf(out, "dotgw_upstream_held_answered_total %llu\n",
		(unsigned long long)s->upstream_late_answers);
	metric(out, "policy_alias_total", "counter",
	       "Answers replaced by a policy answer: their CNAME/DNAME chain led to a denied "
	       "name.");
	fprintf(out, "dotgw_policy_alias_total %llu\n", (unsigned long long)s->policy_alias);
	metric(out, "cache_lookups_total", "counter", "Cache lookups, by outcome.");
	fprintf(out, "dotgw_cache_lookups_total{outcome=\"hit\"} %llu\n",
		(unsigned long long)s->cache_hits);
	fprintf(out, "dotgw_cache_lookups_total{outcome=\"miss\"} %llu\n",
		(unsigned long long)s->cache_misses);
	metric(out, "cache_prefetch_total", "counter",
	       "Cache entries refreshed before they expired (--prefetch), by outcome: started, "
	       "completed (the new answer replaced the entry), failed.");
	fprintf(out, "dotgw_cache_prefetch_total{outcome=\"started\"} %llu\n",
		(unsigned long long)s->prefetch_started);
	fprintf(out, "dotgw_cache_prefetch_total{outcome=\"completed\"} %llu\n",
		(unsigned long long)s->prefetch_completed);
	fprintf(out, "dotgw_cache_prefetch_total{outcome=\"failed\"} %llu\n",
		(unsigned long long)s->prefetch_failed);
	metric(out, "local_zone_total", "counter",
	       "Queries for a locally served zone: answered by dotgw, or left to the private "
	       "address the client asked.");
	fprintf(out, "dotgw_local_zone_total{action=\"answered\"} %llu\n",
		(unsigned long long)s->local_answered);
	fprintf(out, "dotgw_local_zone_total{action=\"asked\"} %llu\n",
		(unsigned long long)s->local_asked);
	metric(out, "forwarded_total", "counter",
	       "Queries sent by a --forward rule, by target (transport unencrypted: plain DNS).");
	for (size_t i = 0; i < snap->n_fwd; i++)
		fprintf(out, "dotgw_forwarded_total{target=\"%s\",transport=\"%s\"} %llu\n",
			snap->fwd[i].name, snap->fwd[i].transport,
			(unsigned long long)s->forwarded[i]);
	metric(out, "forward_errors_total", "counter",
	       "Unencrypted or relayed forwarding that failed (answered SERVFAIL).");
	fprintf(out, "dotgw_forward_errors_total %llu\n", (unsigned long long)s->forward_errors);
	metric(out, "inflight", "gauge", "Queries waiting for an upstream now.");
	fprintf(out, "dotgw_inflight %llu\n", snap->inflight);
}

/* render_latency - upstream i's latency histogram (cumulative buckets, as Prometheus has). */
static void render_latency(const struct stats_snapshot *snap, size_t i, FILE *out)
{
	const char *name = snap->up[i].name;
	unsigned long long cum = 0;

	for (size_t b = 0; b < UPSTREAM_RTT_BUCKETS; b++) {
		cum += snap->up[i].s.rtt[b];
		if (b < UPSTREAM_RTT_BUCKETS - 1)
			fprintf(out,
				"dotgw_upstream_latency_seconds_bucket{upstream=\"%s\","
				"le=\"%g\"} %llu\n",
				name, upstream_rtt_bounds_ms[b] / 1000.0, cum);
		else
			fprintf(out,
				"dotgw_upstream_latency_seconds_bucket{upstream=\"%s\","
				"le=\"+Inf\"} %llu\n",
				name, cum);
	}
	fprintf(out, "dotgw_upstream_latency_seconds_sum{upstream=\"%s\"} %.6f\n", name,
		snap->up[i].s.rtt_sum_us / 1e6);
	fprintf(out, "dotgw_upstream_latency_seconds_count{upstream=\"%s\"} %llu\n", name, cum);
}

/* render_ddr - --upstream asked: each asked address, its designated resolver and state. */
static void render_ddr(const struct stats_snapshot *snap, FILE *out)
{
	if (!snap->n_ddr)
		return;
	metric(out, "ddr_resolver_info", "gauge",
	       "--upstream asked: an address clients asked, the DoT resolver it designates "
	       "(verified DDR) and the state of its discovery.");
	for (size_t i = 0; i < snap->n_ddr; i++)
		fprintf(out,
			"dotgw_ddr_resolver_info{asked=\"%s\",designated=\"%s\",state=\"%s\"} 1\n",
			snap->ddr[i].asked, snap->ddr[i].designated, snap->ddr[i].state);
	metric(out, "ddr_queries_total", "counter",
	       "Queries sent to the designated resolver of an asked address.");
	for (size_t i = 0; i < snap->n_ddr; i++)
		fprintf(out, "dotgw_ddr_queries_total{asked=\"%s\"} %llu\n", snap->ddr[i].asked,
			(unsigned long long)snap->ddr[i].queries);
	metric(out, "ddr_failures_total", "counter",
	       "Queries the designated resolver of an asked address failed (sent on to the "
	       "configured upstreams).");
	for (size_t i = 0; i < snap->n_ddr; i++)
		fprintf(out, "dotgw_ddr_failures_total{asked=\"%s\"} %llu\n", snap->ddr[i].asked,
			(unsigned long long)snap->ddr[i].failures);
}

/* render_egress - --egress groups: their sets and what their drop rules dropped. */
static void render_egress(const struct stats_snapshot *snap, FILE *out)
{
	static const struct {
		const char *name, *type, *help;
	} rows[] = {
		{"egress_elements", "gauge",
		 "Addresses an --egress group may reach now, as this process's workers see them."},
		{"egress_added_total", "counter", "Addresses added to an --egress group's sets."},
		{"egress_refreshed_total", "counter",
		 "Elements given a later timeout by a newer answer or a cache hit."},
		{"egress_expired_total", "counter", "Elements that expired."},
		{"egress_overflow_total", "counter",
		 "Addresses not added: the group held --egress-max already."},
		{"egress_refused_total", "counter",
		 "Addresses the kernel refused to add (its set full, or an error)."},
		{"egress_held_total", "counter",
		 "Answers that waited for the kernel to add their addresses."},
	};

	if (!snap->n_egress)
		return;
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		metric(out, rows[r].name, rows[r].type, rows[r].help);
		for (size_t i = 0; i < snap->n_egress; i++) {
			const __typeof__(snap->egress[0]) *e = &snap->egress[i];
			const unsigned long long v[] = {e->elements,	e->adds,      e->refreshes,
							e->expirations, e->overflows, e->refused,
							e->held};

			fprintf(out, "dotgw_%s{group=\"%s\"} %llu\n", rows[r].name, e->group, v[r]);
		}
	}
	metric(out, "egress_dropped_total", "counter",
	       "Packets an --egress group's clients sent elsewhere, dropped (nftables counter).");
	for (size_t i = 0; i < snap->n_egress; i++)
		if (snap->egress[i].dropped != ~0ULL)
			fprintf(out, "dotgw_egress_dropped_total{group=\"%s\"} %llu\n",
				snap->egress[i].group, snap->egress[i].dropped);
	metric(out, "egress_hold_seconds", "histogram",
	       "How long held answers waited for the kernel to acknowledge their set update.");
	for (size_t i = 0; i < snap->n_egress; i++) {
		const __typeof__(snap->egress[0]) *e = &snap->egress[i];
		unsigned long long cum = 0;

		for (size_t b = 0; b < EGRESS_HOLD_BUCKETS; b++) {
			cum += e->hold[b];
			if (b < EGRESS_HOLD_BUCKETS - 1)
				fprintf(out,
					"dotgw_egress_hold_seconds_bucket{group=\"%s\",le=\"%g\"} "
					"%llu\n",
					e->group, egress_hold_bounds_us[b] / 1e6, cum);
			else
				fprintf(out,
					"dotgw_egress_hold_seconds_bucket{group=\"%s\",le=\"+Inf\"}"
					" "
					"%llu\n",
					e->group, cum);
		}
		fprintf(out, "dotgw_egress_hold_seconds_sum{group=\"%s\"} %.6f\n", e->group,
			e->hold_sum_us / 1e6);
		fprintf(out, "dotgw_egress_hold_seconds_count{group=\"%s\"} %llu\n", e->group, cum);
	}
}

/*
 * render_transports - per upstream and transport (dot, doh: a DoT upstream's DoH fallback
 * is its doh), for the transports the upstream may use; then the DoH streams' own counters
 * per upstream.
 */
static void render_transports(const struct stats_snapshot *snap, FILE *out)
{
	static const char *const tr_name[UPSTREAM_TR_N] = {"dot", "doh"};
	static const struct {
		const char *name, *help;
	} rows[] =
		{
			{"upstream_transport_queries_total",
			 "Queries sent, by upstream and transport."},
			{"upstream_transport_answers_total",
			 "Answers received, by upstream and transport."},
			{"upstream_transport_handshakes_total",
			 "TLS handshakes completed, by upstream and transport."},
			{"upstream_transport_resumptions_total",
			 "TLS handshakes that resumed a session, by upstream and transport."},
		},
	  doh_rows[] = {
		  {"upstream_doh_errors_total",
		   "DoH streams that ended otherwise than 200 and one DNS message (SERVFAIL), by "
		   "upstream."},
		  {"upstream_doh_refused_total", "DoH streams the server refused, sent again."},
		  {"upstream_doh_goaways_total", "HTTP/2 GOAWAY frames received, by upstream."},
		  {"upstream_doh_pings_total",
		   "HTTP/2 PINGs sent to silent connections, by upstream."},
		  {"upstream_doh_resent_total",
		   "Queries whose DoH stream failed (status, body), sent once more to another "
		   "upstream."},
	  };

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		metric(out, rows[r].name, "counter", rows[r].help);
		for (size_t i = 0; i < snap->n_upstreams; i++) {
			const struct upstream_snapshot *u = &snap->up[i].s;

			for (size_t t = 0; t < UPSTREAM_TR_N; t++) {
				const uint64_t v[] = {u->tr_queries[t], u->tr_answers[t],
						      u->tr_handshakes[t], u->tr_resumed[t]};

				if (u->can[t])
					fprintf(out,
						"dotgw_%s{upstream=\"%s\",transport=\"%s\"} %llu\n",
						rows[r].name, snap->up[i].name, tr_name[t],
						(unsigned long long)v[r]);
			}
		}
	}
	for (size_t r = 0; r < sizeof(doh_rows) / sizeof(doh_rows[0]); r++) {
		metric(out, doh_rows[r].name, "counter", doh_rows[r].help);
		for (size_t i = 0; i < snap->n_upstreams; i++) {
			const struct upstream_snapshot *u = &snap->up[i].s;
			const uint64_t v[] = {u->doh_errors, u->doh_refused, u->doh_goaways,
					      u->doh_pings, u->doh_resent};

			if (u->can[UPSTREAM_TR_DOH])
				fprintf(out, "dotgw_%s{upstream=\"%s\"} %llu\n", doh_rows[r].name,
					snap->up[i].name, (unsigned long long)v[r]);
		}
	}
}

/* render_doh - the DNS-over-HTTPS transport's counters (all DoH upstreams, all workers). */
static void render_doh(FILE *out)
{
	struct doh_counters c = {0};
	const struct {
		const char *name, *help;
	} rows[] = {
		{"doh_queries_total", "HTTP/2 requests sent (streams opened)."},
		{"doh_answers_total", "Responses of status 200 carrying one DNS message."},
		{"doh_errors_total",
		 "Streams that ended otherwise (status, body, reset): SERVFAIL."},
		{"doh_refused_total", "Streams the server refused, sent again."},
		{"doh_goaways_total", "GOAWAY frames received."},
		{"doh_pings_total", "HTTP/2 PINGs sent to silent connections."},
	};

	doh_stats(&c);
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		const uint64_t val[] = {c.queries, c.answers, c.errors,
					c.refused, c.goaways, c.pings};

		metric(out, rows[r].name, "counter", rows[r].help);
		fprintf(out, "dotgw_%s %llu\n", rows[r].name, (unsigned long long)val[r]);
	}
}

void snapshot_render(const struct stats_snapshot *snap, FILE *out)
{
	size_t n = snap->n_upstreams;

	render_counters(snap, out);
	metric(out, "upstream_up", "gauge", "1 when the upstream is usable (not backing off).");
	for (size_t i = 0; i < n; i++)
		fprintf(out, "dotgw_upstream_up{upstream=\"%s\"} %d\n", snap->up[i].name,
			snap->up[i].s.usable);
#define UPCOUNTER(label, field, help)                                                            \
	metric(out, "upstream_" label "_total", "counter", help);                                \
	for (size_t i = 0; i < n; i++)                                                           \
	fprintf(out, "dotgw_upstream_" label "_total{upstream=\"%s\"} %llu\n", snap->up[i].name, \
		(unsigned long long)snap->up[i].s.field)
	UPCOUNTER("handshakes", handshakes, "TLS handshakes completed.");
	UPCOUNTER("resumptions", resumed, "TLS handshakes that resumed a session.");
	UPCOUNTER("failures", failures, "Connections that failed (connect, authentication, I/O).");
	UPCOUNTER("answers", answers, "Answers received.");
#undef UPCOUNTER
	metric(out, "upstream_latency_seconds", "histogram",
	       "Time from sending a query to its answer.");
	for (size_t i = 0; i < n; i++)
		render_latency(snap, i, out);
	render_ddr(snap, out);
	render_egress(snap, out);
	render_transports(snap, out);
	render_doh(out);
}

void snapshot_log(const struct stats_snapshot *snap)
{
	char buf[1024];

	stats_format(&snap->sum, buf, sizeof(buf));
	log_info("stats: %s", buf);
	for (size_t i = 0; i < snap->n_fwd; i++)
		log_info("forward target %s (%s): %llu queries", snap->fwd[i].name,
			 snap->fwd[i].transport, (unsigned long long)snap->sum.forwarded[i]);
	for (size_t i = 0; i < snap->n_upstreams; i++) {
		const struct upstream_snapshot *u = &snap->up[i].s;

		char doh[128] = "";

		if (u->can[UPSTREAM_TR_DOH])
			snprintf(doh, sizeof(doh),
				 " doh_handshakes=%llu doh_resumed=%llu doh_answers=%llu",
				 (unsigned long long)u->tr_handshakes[UPSTREAM_TR_DOH],
				 (unsigned long long)u->tr_resumed[UPSTREAM_TR_DOH],
				 (unsigned long long)u->tr_answers[UPSTREAM_TR_DOH]);
		log_info("upstream %s: %s, %u connections open, handshakes=%llu resumed=%llu "
			 "failures=%llu answers=%llu srtt_us=%llu%s",
			 snap->up[i].name, u->usable ? "usable" : "backing off", u->open,
			 (unsigned long long)u->handshakes, (unsigned long long)u->resumed,
			 (unsigned long long)u->failures, (unsigned long long)u->answers,
			 u->srtt_n ? (unsigned long long)(u->srtt_us_sum / u->srtt_n) : 0ull, doh);
	}
	for (size_t i = 0; i < snap->n_ddr; i++)
		log_info("asked %s: %s%s%s, queries=%llu failures=%llu", snap->ddr[i].asked,
			 snap->ddr[i].state, snap->ddr[i].designated[0] ? " " : "",
			 snap->ddr[i].designated, (unsigned long long)snap->ddr[i].queries,
			 (unsigned long long)snap->ddr[i].failures);
}

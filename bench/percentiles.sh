#!/bin/bash
# bench/percentiles.sh - sourced by the bench scripts that read dnsperf -v: one answer a line,
# "> NOERROR name A 0.000123" (the latency in seconds, last).

# bench_dnsperf_percentiles: from dnsperf -v output on stdin, print "p50 p99" in ms (the
# answers' latencies sorted, the ones at ranks NR x 0.5 and NR x 0.99, at least the first);
# "- -" when there is no answer line (not a verbose run).
bench_dnsperf_percentiles()
{
	awk '$1 == ">" { print $NF }' | sort -g |
		awk '{ v[NR] = $1 }
		END {
			if (!NR) { print "- -"; exit }
			i = int(NR * 0.5); j = int(NR * 0.99)
			if (i < 1) i = 1
			if (j < 1) j = 1
			printf "%.3f %.3f\n", v[i] * 1000, v[j] * 1000
		}'
}

package loadgen

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Table renders results as a short aligned text table, one line per run.
func Table(results []*Result) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "target\tusers\trooms\tmsg/s\tsend p50\tsend p95\tdeliv p50\tdeliv p95\tdeliv p99\tmissing\terrors\tCPU ms/msg\tpeak RSS MB\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.2f\t%.0f\t\n",
			r.Target, r.Users, r.Rooms, r.Throughput, r.SendLatency.P50, r.SendLatency.P95,
			r.Delivery.P50, r.Delivery.P95, r.Delivery.P99, r.Lost, r.ErrorCount, r.CPUPerMsgMs, r.PeakRSSMB)
	}
	w.Flush()
	var extra []string
	for _, r := range results {
		for k, v := range r.Errors {
			extra = append(extra, fmt.Sprintf("%s: %d× %s", r.Target, v, k))
		}
		if r.SyncLimited > 0 {
			extra = append(extra, fmt.Sprintf("%s: %d limited (gappy) sync timelines", r.Target, r.SyncLimited))
		}
	}
	if len(extra) > 0 {
		b.WriteString(strings.Join(extra, "\n") + "\n")
	}
	return b.String()
}

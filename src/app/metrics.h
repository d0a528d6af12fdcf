/* kycd's metrics: one process-wide registry of counters and histograms,
 * and the Prometheus text exposition (format 0.0.4, hand-written).
 *
 * Counters are cells of atomic integers, one per combination of label
 * values; every label takes its values from a fixed list (a value outside
 * it counts as "other"), so no user id or client byte can become a label
 * and the number of series is bounded. Every label set that can occur is
 * exported at 0 from the first scrape (metrics.c: every route x code and
 * answer x result, DELIVERY_PAIRS for deliveries, and every kind x stored
 * for quarantined deliveries); any other appears
 * once counted. Request threads bump them at
 * thousands per second: an increment is a lookup in short lists and one
 * relaxed atomic add, no lock.
 *
 * Gauges are read at scrape time by the caller (src/cmd/serve.c knows the
 * spool, the database probe, the reconciler) and written with
 * metrics_gauge; the process's own (app/procstat.h) are written here. */
#ifndef KYCD_APP_METRICS_H
#define KYCD_APP_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/check.h"
#include "core/kyc.h"
#include "core/p100.h"
#include "core/state.h"

/* The counters kycd keeps (label values from fixed lists, see metrics.c). */
void metrics_http_request(const char *route, int code);
/* Deliveries and checks by enum (names from core's tables, at the edge). */
void metrics_delivery(enum kyc_kind kind, enum kyc_outcome outcome, enum kyc_reason reason);
void metrics_delivery_refused(enum kyc_kind kind, enum kyc_refusal code);
/* A delivery answered 200 as quarantined: in the database's quarantine,
 * or (spooled) in the spool, marked for it. */
void metrics_quarantined(enum kyc_kind kind, int spooled);
#define METRICS_CHECK_ERROR (-1) /* result: the check could not be recorded */
void metrics_reconciler_check(enum p100_class outcome, int result); /* a kyc_check_result */
/* A state change the reconciler made: cause webhook_overdue when the user
 * was overdue (core's plan.overdue), else the claim's why. */
void metrics_reconciler_correction(enum kyc_check_why why, int overdue);
void metrics_config_reload(int ok);
/* Histograms, in seconds. */
void metrics_observe_ingest(double seconds);
void metrics_observe_p100(double seconds);

/* The route label of a request path ("kyc_verification_status" for a
 * webhook route, "healthz", "readyz", "metrics", "status", "other"). */
const char *metrics_route(const char *path);

/* Every counter and histogram of the registry, appended to out. */
int metrics_write_registry(kbuf *out) KYCD_MUST_CHECK;

/* The process_* gauges a Prometheus client library exports (CPU time,
 * resident memory, open file descriptors, from /proc: app/procstat.h),
 * with the start time given as Unix seconds. */
int metrics_write_process(kbuf *out, double started_s) KYCD_MUST_CHECK;

/* Exposition helpers (unit-tested; used by the registry and the caller's
 * gauges). labels is a NULL-terminated list of name, value pairs (values
 * escaped here: backslash, double quote, newline); NULL for none. HELP and
 * TYPE are written once per name by metrics_family. */
int metrics_family(kbuf *out, const char *name, const char *type, const char *help) KYCD_MUST_CHECK;
int metrics_sample(kbuf *out, const char *name, const char *const *labels,
                   double value) KYCD_MUST_CHECK;
/* A gauge with its HELP and TYPE and one unlabelled sample. */
int metrics_gauge(kbuf *out, const char *name, const char *help, double value) KYCD_MUST_CHECK;

/* A histogram with fixed upper bounds (seconds), lock-free. */
#define METRICS_BUCKETS_MAX 16
typedef struct metrics_histogram {
    const char *name, *help;
    int nbounds;
    double bounds[METRICS_BUCKETS_MAX];           /* ascending; +Inf is implicit */
    atomic_llong counts[METRICS_BUCKETS_MAX + 1]; /* per bucket, not cumulative */
    atomic_llong sum_ns;
} metrics_histogram;

void metrics_histogram_observe(metrics_histogram *h, double seconds);
/* _bucket (cumulative, le="+Inf" last), _sum and _count. */
int metrics_histogram_write(kbuf *out, const metrics_histogram *h) KYCD_MUST_CHECK;

/* Zero every counter and histogram (unit tests). */
void metrics_reset(void);

#endif

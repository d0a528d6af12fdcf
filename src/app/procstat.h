/* The process's own figures, read from /proc (Linux): the CPU time it has
 * used, its resident memory, its open file descriptors. The metrics module
 * writes them as the process_* gauges a Prometheus client library exports
 * (metrics_write_process). */
#ifndef KYCD_APP_PROCSTAT_H
#define KYCD_APP_PROCSTAT_H

typedef struct procstat {
    double cpu_seconds; /* user and system CPU time */
    double rss_bytes;   /* resident memory */
    double open_fds;    /* open file descriptors */
} procstat;

/* Read them now. A figure /proc does not give (no /proc, a file that
 * cannot be read) is 0: the scrape goes on without it. */
void procstat_read(procstat *out);

#endif

/* The process's figures from /proc (see procstat.h). Must never fail a
 * scrape: what cannot be read is 0; nor read anything but /proc/self. */
#include "app/procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void procstat_read(procstat *out)
{
    long long utime = 0, stime = 0, rss_pages = 0;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        const char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
        if (p)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*d %*d %*d %*d %*d %lld %lld", &utime, &stime);
    }
    f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%*d %lld", &rss_pages) != 1)
            rss_pages = 0;
        fclose(f);
    }
    long long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the one opendir holds */
    }
    double tick = (double)sysconf(_SC_CLK_TCK);
    out->cpu_seconds = (double)(utime + stime) / (tick > 0 ? tick : 100);
    out->rss_bytes = (double)rss_pages * (double)sysconf(_SC_PAGESIZE);
    out->open_fds = (double)fds;
}

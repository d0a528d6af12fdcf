/* systemd notify protocol (see sdnotify.h). Must never block for long (the
 * socket is a datagram socket, sent with MSG_DONTWAIT) or fail the caller
 * because systemd is not there. */
#include "io/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || *path == '\0')
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t rc;
    do
        rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
                    len);
    while (rc < 0 && errno == EINTR);
    close(fd);
    return rc == (ssize_t)strlen(state) ? 0 : -1;
}

int64_t sdnotify_watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (usec == NULL || *usec == '\0')
        return 0;
    if (pid != NULL && *pid != '\0' && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    char *end;
    long long v = strtoll(usec, &end, 10);
    if (*end != '\0' || v <= 0)
        return 0;
    return v / 1000 > 0 ? v / 1000 : 1;
}

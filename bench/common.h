/* Shared by the baseline servers: take the socket systemd-style from fd 3
 * (LISTEN_FDS=1), and send READY=1 to NOTIFY_SOCKET once serving, so the
 * harness starts and times every server the same way as dgecho. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int listen_fd(void)
{
    const char *n = getenv("LISTEN_FDS");
    const char *p = getenv("LISTEN_PID");
    if (!n || atoi(n) != 1 || !p || atoi(p) != getpid()) {
        fprintf(stderr, "expected one socket on fd 3 (LISTEN_FDS=1, LISTEN_PID=pid)\n");
        exit(2);
    }
    return 3;
}

static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, len) < 0)
        perror("notify");
    close(fd);
}

static void reverse(unsigned char *b, size_t n)
{
    for (size_t i = 0, j = n ? n - 1 : 0; i < j; i++, j--) {
        unsigned char t = b[i];
        b[i] = b[j];
        b[j] = t;
    }
}

/* The plainest echo loop: one blocking recvfrom and one sendto per datagram,
 * replying with the bytes reversed (dgecho's default). */
#include "common.h"

int main(void)
{
    int fd = listen_fd();
    static unsigned char buf[65536];
    notify_ready();
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("recvfrom");
            return 1;
        }
        reverse(buf, (size_t)n);
        sendto(fd, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&peer, plen);
    }
}

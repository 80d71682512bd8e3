/* The batched echo loop: recvmmsg (blocking for the first datagram, then
 * whatever else is queued, up to 64) and one sendmmsg for the replies. */
#include "common.h"

#define BATCH 64
#define SIZE 65536

int main(void)
{
    int fd = listen_fd();
    static unsigned char bufs[BATCH][SIZE];
    static struct sockaddr_storage peers[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    notify_ready();
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = SIZE};
            msgs[i].msg_hdr = (struct msghdr){
                .msg_name = &peers[i], .msg_namelen = sizeof peers[i],
                .msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("recvmmsg");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            reverse(bufs[i], msgs[i].msg_len);
            iov[i].iov_len = msgs[i].msg_len;
        }
        int sent = 0;
        while (sent < n) {
            int k = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), MSG_DONTWAIT);
            if (k < 0) {
                sent++; /* skip the reply that failed, as dgecho does */
                continue;
            }
            sent += k;
        }
    }
}

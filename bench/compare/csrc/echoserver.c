/* echoserver: the floor of any Varlink server on this machine.
 *
 * Part of bench/compare (see its doc.go); compiled with gcc at bench time.
 *
 *   echoserver SOCKET_PATH
 *
 * Listens on a unix stream socket and, one connection at a time, sends every
 * NUL-terminated message straight back with one blocking write: no parsing,
 * no event loop, no allocation. A client making calls against it measures
 * what the kernel and the client cost for a round trip; no daemon can answer
 * faster. Prints "ready" once listening and runs until killed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
        return 2;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof a.sun_path) {
        fprintf(stderr, "socket path too long\n");
        return 2;
    }
    strcpy(a.sun_path, argv[1]);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(argv[1]);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 64) < 0) {
        perror("echoserver: listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    static char buf[1 << 16];
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        size_t have = 0;
        for (;;) {
            ssize_t n = read(c, buf + have, sizeof buf - have);
            if (n <= 0)
                break;
            have += n;
            char *end = memchr(buf, 0, have);
            while (end) {
                size_t len = end - buf + 1;
                if (write(c, buf, len) != (ssize_t)len)
                    goto done;
                memmove(buf, buf + len, have - len);
                have -= len;
                end = memchr(buf, 0, have);
            }
            if (have == sizeof buf)
                break; /* no terminator in 64 KiB: not a client of ours */
        }
    done:
        close(c);
    }
}

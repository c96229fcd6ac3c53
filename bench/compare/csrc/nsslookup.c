/* nsslookup: user lookups through glibc's NSS stack, as every program does them.
 *
 * Part of bench/compare (see its doc.go); compiled with gcc at bench time, so
 * that getpwuid(3)/getpwnam(3) are called in a loop inside one process instead of one
 * getent(1) exec per lookup.
 *
 *   nsslookup uid|name DURATION_MS KEY...
 *
 * Calls getpwuid (KEY a uid) or getpwnam (KEY a user name) on the keys in turn (pass
 * them in random order) until DURATION_MS have passed, at least once, then prints
 * "CALLS MISSES NANOSECONDS".  A miss is a lookup that found nothing.
 */
#define _GNU_SOURCE
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "uid") && strcmp(argv[1], "name"))) {
        fprintf(stderr, "usage: %s uid|name DURATION_MS KEY...\n", argv[0]);
        return 2;
    }
    int by_uid = !strcmp(argv[1], "uid");
    long long dur = atoll(argv[2]) * 1000000LL;
    int nkeys = argc - 3;
    char **keys = argv + 3;
    uid_t *uids = calloc((size_t)nkeys, sizeof *uids);
    if (!uids) return 1;
    for (int i = 0; i < nkeys; i++) uids[i] = (uid_t)strtoul(keys[i], NULL, 10);

    long long calls = 0, misses = 0, start = now_ns(), el = 0;
    for (;;) {
        int k = (int)(calls % nkeys);
        struct passwd *pw = by_uid ? getpwuid(uids[k]) : getpwnam(keys[k]);
        if (!pw) misses++;
        calls++;
        el = now_ns() - start;
        if (el >= dur) break;
    }
    printf("%lld %lld %lld\n", calls, misses, el);
    return 0;
}

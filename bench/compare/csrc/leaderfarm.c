/* leaderfarm: starts and ends the benchmark's machine leaders, cheaply.
 *
 * Part of bench/compare (see its doc.go); compiled with gcc at bench time.
 * Commands on stdin, one per line, one reply line each on stdout:
 *
 *   s CGROUPDIR SHIFT   create the cgroup directory, fork a child straight into it
 *                       (clone3 with CLONE_INTO_CGROUP) that does nothing but pause();
 *                       with SHIFT > 0 the child gets a new user namespace whose uid
 *                       and gid maps are "0 SHIFT 65536".  Reply: the child's PID, or
 *                       "e ERRNO".
 *   k PID CGROUPDIR     SIGKILL the child and reap it; reply "ok" (or "e ERRNO"), then
 *                       remove its (now empty) cgroup directory.
 *
 * On end of input (the harness exited or closed the pipe) every child still alive is
 * killed and reaped and their cgroup directories are removed.  Children also get
 * PR_SET_PDEATHSIG(SIGKILL), so they die with this process in any case.
 * Forking without exec keeps a leader at a few syscalls instead of an exec of sleep(1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct child { pid_t pid; char *dir; };
static struct child *kids;
static size_t nkids, capkids;

static int write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = write(fd, s, strlen(s));
    int e = n < 0 ? -errno : 0;
    close(fd);
    return e;
}

static int spawn(const char *dir, unsigned long shift) {
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return -errno;
    int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfd < 0) return -errno;
    pid_t parent = getpid();
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_INTO_CGROUP | (shift ? CLONE_NEWUSER : 0);
    a.exit_signal = SIGCHLD;
    a.cgroup = (uint64_t)cfd;
    long pid = syscall(SYS_clone3, &a, sizeof a);
    if (pid < 0) { int e = -errno; close(cfd); rmdir(dir); return e; }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        for (;;) pause();
    }
    close(cfd);
    if (shift) {
        char path[64], map[64];
        snprintf(map, sizeof map, "0 %lu 65536\n", shift);
        snprintf(path, sizeof path, "/proc/%ld/uid_map", pid);
        int e = write_file(path, map);
        if (!e) {
            snprintf(path, sizeof path, "/proc/%ld/gid_map", pid);
            e = write_file(path, map);
        }
        if (e) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); rmdir(dir); return e; }
    }
    if (nkids == capkids) {
        capkids = capkids ? 2 * capkids : 1024;
        kids = realloc(kids, capkids * sizeof *kids);
        if (!kids) abort();
    }
    kids[nkids].pid = pid;
    kids[nkids].dir = strdup(dir);
    nkids++;
    return (int)pid;
}

static void rmdir_retry(const char *dir) {
    for (int i = 0; i < 100; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT) return;
        usleep(10000);
    }
}

/* end kills and reaps one child, replies, and only then removes its cgroup, so
 * that the reply times the kill and the reaping alone. */
static void end(pid_t pid, const char *dir) {
    for (size_t i = 0; i < nkids; i++) {
        if (kids[i].pid != pid) continue;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        printf("ok\n");
        rmdir_retry(dir);
        free(kids[i].dir);
        kids[i] = kids[--nkids];
        return;
    }
    printf("e %d\n", ESRCH);
}

int main(void) {
    char line[4200], dir[4096];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        unsigned long shift;
        long pid;
        if (sscanf(line, "s %4095s %lu", dir, &shift) == 2) {
            int r = spawn(dir, shift);
            if (r < 0) printf("e %d\n", -r); else printf("%d\n", r);
        } else if (sscanf(line, "k %ld %4095s", &pid, dir) == 2) {
            end((pid_t)pid, dir);
        } else {
            printf("e %d\n", EINVAL);
        }
    }
    for (size_t i = 0; i < nkids; i++) kill(kids[i].pid, SIGKILL);
    for (size_t i = 0; i < nkids; i++) {
        while (waitpid(kids[i].pid, NULL, 0) < 0 && errno == EINTR) {}
        rmdir_retry(kids[i].dir);
    }
    return 0;
}

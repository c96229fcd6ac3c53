/* A reader of the machine registry through sd-login (libsystemd), as ps,
 * gnome-system-monitor and other library users read it: from the files in
 * /run/systemd/machines, without asking the daemon. Built and run by
 * tests/sdlogin_test.go.
 *
 *   sdlogin list           one line per machine: NAME CLASS IFINDEX,... ("-": none)
 *   sdlogin pid PID...     one line per PID: PID NAME, or PID -ERRNO
 *   sdlogin monitor        "ready", then after each wake-up of
 *                          sd_login_monitor_new("machine"): "wake NAME..."
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-login.h>

static int list(void) {
        char **names = NULL;
        int n = sd_get_machine_names(&names);
        if (n < 0) {
                fprintf(stderr, "sd_get_machine_names: %s\n", strerror(-n));
                return 1;
        }
        for (int i = 0; i < n; i++) {
                char *class = NULL;
                int *ifi = NULL;
                int r = sd_machine_get_class(names[i], &class);
                if (r < 0) {
                        fprintf(stderr, "sd_machine_get_class(%s): %s\n", names[i], strerror(-r));
                        return 1;
                }
                int k = sd_machine_get_ifindices(names[i], &ifi);
                if (k < 0) {
                        fprintf(stderr, "sd_machine_get_ifindices(%s): %s\n", names[i], strerror(-k));
                        return 1;
                }
                printf("%s %s ", names[i], class);
                if (k == 0)
                        printf("-");
                for (int j = 0; j < k; j++)
                        printf("%s%d", j ? "," : "", ifi[j]);
                printf("\n");
                free(class);
                free(ifi);
                free(names[i]);
        }
        free(names);
        return 0;
}

static int pids(int argc, char **argv) {
        for (int i = 0; i < argc; i++) {
                char *name = NULL;
                int r = sd_pid_get_machine_name((pid_t) atoi(argv[i]), &name);
                if (r < 0)
                        printf("%s %d\n", argv[i], r);
                else
                        printf("%s %s\n", argv[i], name);
                free(name);
        }
        return 0;
}

static int monitor(void) {
        sd_login_monitor *m = NULL;
        int r = sd_login_monitor_new("machine", &m);
        if (r < 0) {
                fprintf(stderr, "sd_login_monitor_new: %s\n", strerror(-r));
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                struct pollfd p = { .fd = sd_login_monitor_get_fd(m), .events = sd_login_monitor_get_events(m) };
                if (poll(&p, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("poll");
                        return 1;
                }
                r = sd_login_monitor_flush(m);
                if (r < 0) {
                        fprintf(stderr, "sd_login_monitor_flush: %s\n", strerror(-r));
                        return 1;
                }
                char **names = NULL;
                int n = sd_get_machine_names(&names);
                printf("wake");
                for (int i = 0; i < n; i++) {
                        printf(" %s", names[i]);
                        free(names[i]);
                }
                printf("\n");
                fflush(stdout);
                free(names);
        }
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "list") == 0)
                return list();
        if (argc >= 2 && strcmp(argv[1], "pid") == 0)
                return pids(argc - 2, argv + 2);
        if (argc >= 2 && strcmp(argv[1], "monitor") == 0)
                return monitor();
        fprintf(stderr, "usage: sdlogin list | pid PID... | monitor\n");
        return 2;
}

/*
 * The pod sandbox ("pause") program of the test cluster's images: it holds the pod's namespaces,
 * reaps orphaned children and exits on SIGINT or SIGTERM. Built with `gcc -static -Os` by
 * tests/support/cluster/images.ts; the same job as Kubernetes' build/pause/linux/pause.c.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction term = {.sa_handler = stop};
  struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &term, NULL);
  sigaction(SIGTERM, &term, NULL);
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
  return 1;
}

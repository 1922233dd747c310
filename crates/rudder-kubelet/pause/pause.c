/* The pod sandbox's init process: holds the pod's namespaces, reaps zombies, exits on
 * SIGINT/SIGTERM. Built static into the rudder binary so no registry is needed for it. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void terminate(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  signal(SIGINT, terminate);
  signal(SIGTERM, terminate);
  signal(SIGCHLD, reap);
  for (;;) pause();
  return 0;
}

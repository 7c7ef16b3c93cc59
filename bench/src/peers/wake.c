// The waker of the engine wake floor (wake.ts): writes the eventfd it inherits as descriptor 3, as the node's ring
// thread writes an engine's eventfd when a call completes. For each line "COUNT GAP_US" on stdin it writes COUNT
// times, GAP_US microseconds apart (absolute deadlines, so the cadence does not drift), then prints "done".
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void add_us(struct timespec* t, long us) {
  t->tv_nsec += us * 1000L;
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec++;
  }
}

int main(void) {
  long count, gap_us;
  while (scanf("%ld %ld", &count, &gap_us) == 2) {
    if (count < 0 || gap_us < 0) return 2;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long i = 0; i < count; i++) {
      add_us(&next, gap_us);
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
      }
      uint64_t one = 1;
      if (write(3, &one, sizeof one) != (ssize_t)sizeof one) {
        perror("wake: write to descriptor 3");
        return 1;
      }
    }
    printf("done\n");
    fflush(stdout);
  }
  return 0;
}

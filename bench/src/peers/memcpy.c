// Reference for the native-copy bench: plain memcpy of the same descriptors with the same threads.
//
//   memcpy --threads T --page-bytes P --slices S --pages N --reps R [--chunk-bytes C] [--serve 1]
//
// Memory is set up like kvfabric's: an engine region in POSIX shared memory (MAP_SHARED) and a pool arena in
// anonymous memory with MADV_HUGEPAGE, both pre-touched. A page of P bytes is gathered from S slices of P/S
// bytes laid out [slice][page] in the region (the engine's per-layer layout), and scattered back. Each rep
// moves N*P bytes per direction, cut into chunks of C bytes (--chunk-bytes; cutting inside slices, as the copy
// engine cuts its batches into parts) that the T threads take from a shared counter, so a thread delayed by other
// work on the machine does not hold up the rep; the threads start together at a barrier, and the rep's time runs
// from the barrier to the last thread done. Prints one JSON line: {"bytes": N*P, "gather": [seconds per rep...], "scatter": [...]}, after one
// untimed warm-up rep per direction.
// With --serve 1 it prints {"ready": true, "bytes": N*P} after setup, then runs one rep per stdin line
// ("gather" or "scatter"), answering {"mode": "...", "seconds": s} each, until EOF or "quit": the bench then
// alternates kvfabric and memcpy reps so that machine noise hits both alike.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct { uint64_t src, dst, len; } desc_t;

static int threads = 2, slices = 16, reps = 5, serve = 0;
static uint64_t page_bytes = 65536, pages = 1024, chunk_bytes = 0;
static atomic_uint_fast64_t next_chunk;
static uint8_t *region, *pool;
static desc_t *gather_d, *scatter_d;
static uint64_t ndesc;
static pthread_barrier_t start_bar, end_bar;
static const desc_t *cur;  // descriptor list of the current rep

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Copies bytes [begin, end) of the concatenation of `cur` descriptors.
static void copy_range(uint64_t begin, uint64_t end, uint8_t *src, uint8_t *dst) {
  uint64_t slice = page_bytes / slices;  // every descriptor has this length
  uint64_t i = begin / slice, off = begin % slice;
  while (begin < end) {
    uint64_t n = slice - off;
    if (n > end - begin) n = end - begin;
    memcpy(dst + cur[i].dst + off, src + cur[i].src + off, n);
    begin += n;
    i++;
    off = 0;
  }
}

static uint8_t *rep_src, *rep_dst;

static void *worker(void *arg) {
  (void)arg;
  uint64_t total = pages * page_bytes;
  for (;;) {
    pthread_barrier_wait(&start_bar);
    if (cur == NULL) return NULL;
    for (;;) {
      uint64_t b = atomic_fetch_add(&next_chunk, 1) * chunk_bytes;
      if (b >= total) break;
      copy_range(b, b + chunk_bytes > total ? total : b + chunk_bytes, rep_src, rep_dst);
    }
    pthread_barrier_wait(&end_bar);
  }
}

// One rep of `mode` (0 gather region->pool, 1 scatter pool->region) on all threads; its wall time in seconds.
static double rep(int mode) {
  cur = mode == 0 ? gather_d : scatter_d;
  rep_src = mode == 0 ? region : pool;
  rep_dst = mode == 0 ? pool : region;
  atomic_store(&next_chunk, 0);
  double t0 = now();
  pthread_barrier_wait(&start_bar);
  pthread_barrier_wait(&end_bar);
  return now() - t0;
}

static void *map_or_die(uint64_t len, int fd) {
  void *p = fd >= 0 ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                    : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); exit(1); }
  return p;
}

int main(int argc, char **argv) {
  char shm_name[64];
  snprintf(shm_name, sizeof shm_name, "/kvf-bench-memcpy-%d", (int)getpid());
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--page-bytes")) page_bytes = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--slices")) slices = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pages")) pages = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--serve")) serve = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--chunk-bytes")) chunk_bytes = strtoull(argv[i + 1], NULL, 10);
    else { fprintf(stderr, "memcpy: unknown flag %s\n", argv[i]); return 2; }
  }
  if (threads < 1 || slices < 1 || page_bytes % slices || pages < 1 || reps < 1) {
    fprintf(stderr, "memcpy: bad arguments\n");
    return 2;
  }
  uint64_t total = pages * page_bytes, slice = page_bytes / slices;
  if (chunk_bytes == 0) chunk_bytes = (total + threads - 1) / threads;
  int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)total) != 0) { perror("shm"); return 1; }
  shm_unlink(shm_name);
  region = map_or_die(total, fd);
  pool = map_or_die(total, -1);
  madvise(pool, total, MADV_HUGEPAGE);
  memset(region, 1, total);
  memset(pool, 2, total);

  ndesc = pages * slices;
  gather_d = malloc(ndesc * sizeof(desc_t));
  scatter_d = malloc(ndesc * sizeof(desc_t));
  for (uint64_t p = 0; p < pages; p++) {
    for (uint64_t l = 0; l < (uint64_t)slices; l++) {
      uint64_t k = p * slices + l;
      gather_d[k] = (desc_t){(l * pages + p) * slice, p * page_bytes + l * slice, slice};
      scatter_d[k] = (desc_t){gather_d[k].dst, gather_d[k].src, slice};
    }
  }

  pthread_barrier_init(&start_bar, NULL, threads + 1);
  pthread_barrier_init(&end_bar, NULL, threads + 1);
  pthread_t *tids = malloc(sizeof(pthread_t) * threads);
  for (int t = 0; t < threads; t++) pthread_create(&tids[t], NULL, worker, (void *)(uintptr_t)t);

  if (serve) {
    printf("{\"ready\":true,\"bytes\":%llu}\n", (unsigned long long)total);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
      int mode = !strncmp(line, "gather", 6) ? 0 : !strncmp(line, "scatter", 7) ? 1 : -1;
      if (mode < 0) break;
      printf("{\"mode\":\"%s\",\"seconds\":%.9f}\n", mode == 0 ? "gather" : "scatter", rep(mode));
      fflush(stdout);
    }
  } else {
    printf("{\"bytes\":%llu", (unsigned long long)total);
    for (int mode = 0; mode < 2; mode++) {
      printf(",\"%s\":[", mode == 0 ? "gather" : "scatter");
      rep(mode);  // warm-up, not reported
      for (int r = 0; r < reps; r++) printf("%s%.9f", r > 0 ? "," : "", rep(mode));
      printf("]");
    }
    printf("}\n");
  }
  cur = NULL;
  pthread_barrier_wait(&start_bar);
  for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
  return 0;
}

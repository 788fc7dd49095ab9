/*
 * unionfs-ts bench helper: tight syscall loops, so the tool costs ~1 us per operation and the filesystem
 * under test dominates. bench/helper.ts compiles it into /tmp at run time (bench/fsops.ts is the Node
 * stand-in with the same arguments and output when there is no C compiler).
 *
 *   fsops stat     BASE LIST [MAXS]            stat() each path of LIST (one a line, relative to BASE)
 *   fsops create   BASE DIR N SIZE TAG [MAXS]  mkdir BASE/DIR if needed; N x (open O_CREAT, write SIZE,
 *                                              close), files DIR/TAG-0000000 …
 *   fsops delete   BASE DIR N TAG RMDIR [MAXS] unlink the first N files of `create`; then rmdir BASE/DIR
 *                                              when RMDIR is 1
 *   fsops append   FILE BYTES                  open(O_WRONLY|O_APPEND), write BYTES, close (a copy-up)
 *   fsops randread FILE SECONDS BS             pread BS bytes at random BS-aligned offsets for SECONDS
 *
 * MAXS (seconds, 0 = none) stops a loop early; then "stopped" is 1 and "n" counts the operations tried.
 * Output: one JSON line {"op","n","ok","fail","errno","seconds","stopped"}; errno is the first failure's
 * (0: none). Only the loop itself is timed (reading the list and setting up buffers are not). The exit
 * status is 0 unless the arguments are wrong or BASE cannot be entered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct tally {
  long ok, fail;
  int first_errno;
};

static void failed(struct tally *t) {
  if (t->fail++ == 0) t->first_errno = errno;
}

static void report(const char *op, long n, const struct tally *t, double secs, int stopped) {
  printf("{\"op\":\"%s\",\"n\":%ld,\"ok\":%ld,\"fail\":%ld,\"errno\":%d,\"seconds\":%.6f,\"stopped\":%d}\n",
         op, n, t->ok, t->fail, t->first_errno, secs, stopped);
}

/* True once MAXS seconds (0 = never) have passed since t0. */
static int late(double t0, double maxs) { return maxs > 0 && mono() - t0 >= maxs; }

static int enter(const char *dir) {
  if (chdir(dir) == 0) return 0;
  perror(dir);
  return -1;
}

static int do_stat(const char *base, const char *list, double maxs) {
  FILE *f = fopen(list, "r");
  if (!f) { perror(list); return 1; }
  size_t n = 0, cap = 1024;
  char **paths = malloc(cap * sizeof *paths);
  char *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  while ((len = getline(&line, &lcap, f)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (len == 0) continue;
    if (n == cap) paths = realloc(paths, (cap *= 2) * sizeof *paths);
    paths[n++] = strdup(line);
  }
  fclose(f);
  if (enter(base)) return 1;
  struct tally t = {0, 0, 0};
  struct stat st;
  double t0 = mono();
  size_t i = 0;
  int stopped = 0;
  for (; i < n; i++) {
    if ((i & 63) == 0 && late(t0, maxs)) { stopped = 1; break; }
    if (stat(paths[i], &st) == 0) t.ok++;
    else failed(&t);
  }
  report("stat", (long)i, &t, mono() - t0, stopped);
  return 0;
}

static int do_create(const char *base, const char *dir, long n, size_t size, const char *tag, double maxs) {
  char *buf = malloc(size + 1);
  memset(buf, 'u', size);
  if (enter(base)) return 1;
  struct tally t = {0, 0, 0};
  char name[4096];
  double t0 = mono();
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) { perror(dir); return 1; }
  long i = 0;
  int stopped = 0;
  for (; i < n; i++) {
    if ((i & 15) == 0 && late(t0, maxs)) { stopped = 1; break; }
    snprintf(name, sizeof name, "%s/%s-%07ld", dir, tag, i);
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { failed(&t); continue; }
    ssize_t w = write(fd, buf, size);
    int bad = w != (ssize_t)size;
    if (bad) failed(&t);
    if (close(fd) != 0 && !bad) { failed(&t); bad = 1; }
    if (!bad) t.ok++;
  }
  report("create", i, &t, mono() - t0, stopped);
  return 0;
}

static int do_delete(const char *base, const char *dir, long n, const char *tag, int rm_dir, double maxs) {
  if (enter(base)) return 1;
  struct tally t = {0, 0, 0};
  char name[4096];
  double t0 = mono();
  long i = 0;
  int stopped = 0;
  for (; i < n; i++) {
    if ((i & 15) == 0 && late(t0, maxs)) { stopped = 1; break; }
    snprintf(name, sizeof name, "%s/%s-%07ld", dir, tag, i);
    if (unlink(name) == 0) t.ok++;
    else failed(&t);
  }
  if (rm_dir && !stopped && rmdir(dir) != 0) failed(&t);
  report("delete", i, &t, mono() - t0, stopped);
  return 0;
}

static int do_append(const char *file, size_t bytes) {
  char *buf = malloc(bytes + 1);
  memset(buf, 'a', bytes);
  struct tally t = {0, 0, 0};
  double t0 = mono();
  int fd = open(file, O_WRONLY | O_APPEND);
  if (fd < 0) failed(&t);
  else if (write(fd, buf, bytes) != (ssize_t)bytes) { failed(&t); close(fd); }
  else if (close(fd) != 0) failed(&t);
  else t.ok++;
  report("append", 1, &t, mono() - t0, 0);
  return 0;
}

/* xorshift64*: a cheap generator so the loop costs nothing next to a read. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static int do_randread(const char *file, double seconds, size_t bs) {
  struct tally t = {0, 0, 0};
  int fd = open(file, O_RDONLY);
  if (fd < 0) { failed(&t); report("randread", 0, &t, 0, 0); return 0; }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < (off_t)bs) { failed(&t); report("randread", 0, &t, 0, 0); return 0; }
  uint64_t blocks = (uint64_t)st.st_size / bs;
  char *buf = malloc(bs);
  double t0 = mono(), now = t0;
  long n = 0;
  while (now - t0 < seconds) {
    for (int k = 0; k < 64; k++, n++) {
      off_t off = (off_t)((rng() % blocks) * bs);
      if (pread(fd, buf, bs, off) == (ssize_t)bs) t.ok++;
      else failed(&t);
    }
    now = mono();
  }
  close(fd);
  report("randread", n, &t, now - t0, 0);
  return 0;
}

int main(int argc, char **argv) {
  const char *op = argc > 1 ? argv[1] : "";
  if (!strcmp(op, "stat") && (argc == 4 || argc == 5))
    return do_stat(argv[2], argv[3], argc == 5 ? atof(argv[4]) : 0);
  if (!strcmp(op, "create") && (argc == 7 || argc == 8))
    return do_create(argv[2], argv[3], atol(argv[4]), (size_t)atol(argv[5]), argv[6], argc == 8 ? atof(argv[7]) : 0);
  if (!strcmp(op, "delete") && (argc == 7 || argc == 8))
    return do_delete(argv[2], argv[3], atol(argv[4]), argv[5], atoi(argv[6]) == 1, argc == 8 ? atof(argv[7]) : 0);
  if (!strcmp(op, "append") && argc == 4) return do_append(argv[2], (size_t)atol(argv[3]));
  if (!strcmp(op, "randread") && argc == 5) return do_randread(argv[2], atof(argv[3]), (size_t)atol(argv[4]));
  fprintf(stderr, "usage: fsops stat|create|delete|append|randread ARGS (see the source)\n");
  return 2;
}

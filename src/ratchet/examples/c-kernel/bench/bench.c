/* The frozen benchmark for kernel.c's matmul: checks it against a plain reference, then times it.
 *
 *   bench check N...   C = A * B for each size N, compared with the reference; exit 1 if wrong
 *   bench time N       check size N first (exit 1 if wrong), then time it: "gflops: <number>"
 *
 * Timing is process CPU time (CLOCK_PROCESS_CPUTIME_ID), not wall time: time spent waiting for
 * a core another program holds is not the kernel's. The kernel runs repeatedly until REPEAT_CPU
 * seconds are spent (at least MIN_REPEATS times) and the fastest run counts, the one least
 * disturbed. Every timed run gets fresh pseudo-random inputs and a C full of NaN, and SAMPLES of
 * its entries are checked afterwards: a kernel that does the work only while it is checked, or
 * hands back a remembered answer, is caught there too. Same seed, same numbers, every time.
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void matmul(int n, const double *a, const double *b, double *c); /* kernel.c */

#define REPEAT_CPU 0.1
#define MIN_REPEATS 3
#define SAMPLES 32

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static unsigned long long state;

static unsigned long long next(void) { /* a 64-bit LCG: the same numbers on every machine */
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 11;
}

static double uniform(void) { return (double)next() / 4503599627370496.0 - 1.0; } /* [-1, 1) */

static double *matrix(int n) {
    double *m = malloc(sizeof(double) * (size_t)n * (size_t)n);
    if (m == NULL) {
        fprintf(stderr, "bench: out of memory for n = %d\n", n);
        exit(2);
    }
    return m;
}

static void fill(double *m, int n, int random) {
    for (long i = 0; i < (long)n * n; i++) m[i] = random ? uniform() : NAN;
}

/* Is c[i][j] the dot product of row i of A and column j of B? The bound scales with the sum of
 * |a_ik * b_kj|, so any summation order passes and a missing or extra term does not. */
static int entry_ok(int n, const double *a, const double *b, const double *c, int i, int j, const char *what) {
    double want = 0.0, scale = 0.0;
    for (int k = 0; k < n; k++) {
        want += a[(long)i * n + k] * b[(long)k * n + j];
        scale += fabs(a[(long)i * n + k] * b[(long)k * n + j]);
    }
    double got = c[(long)i * n + j];
    if (fabs(got - want) <= 1e-12 * n * (scale + 1.0)) return 1; /* false for NaN: unwritten */
    fprintf(stderr, "wrong result for n = %d at [%d][%d]%s: got %.17g, want %.17g\n", n, i, j, what, got, want);
    return 0;
}

static int check(int n) {
    double *a = matrix(n), *b = matrix(n), *c = matrix(n);
    state = 0x5eedULL + (unsigned long long)n;
    fill(a, n, 1);
    fill(b, n, 1);
    fill(c, n, 0); /* the kernel must write every element */
    matmul(n, a, b, c);
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        for (int j = 0; j < n && ok; j++) ok = entry_ok(n, a, b, c, i, j, "");
    free(a);
    free(b);
    free(c);
    return ok;
}

/* GFLOP/s of the fastest timed run, or a negative number if a timed run's result was wrong. */
static double gflops(int n) {
    double *a = matrix(n), *b = matrix(n), *c = matrix(n);
    state = 0xbe9cULL;
    double best = INFINITY, spent = 0.0;
    int ok = 1;
    for (int r = 0; ok && (r < MIN_REPEATS || spent < REPEAT_CPU); r++) {
        fill(a, n, 1);
        fill(b, n, 1);
        fill(c, n, 0);
        double start = cpu_seconds();
        matmul(n, a, b, c);
        double seconds = cpu_seconds() - start;
        spent += seconds;
        if (seconds < best) best = seconds;
        for (int s = 0; s < SAMPLES && ok; s++) ok = entry_ok(n, a, b, c, (int)(next() % n), (int)(next() % n), " in a timed run");
    }
    free(a);
    free(b);
    free(c);
    if (!ok) return -1.0;
    return 2.0 * n * n * (double)n / (best > 1e-9 ? best : 1e-9) / 1e9;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "check") == 0) {
        int ok = 1;
        for (int i = 2; i < argc; i++) ok &= check(atoi(argv[i]));
        if (!ok) return 1;
        printf("correct for %d sizes\n", argc - 2);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "time") == 0) {
        int n = atoi(argv[2]);
        if (n < 1 || !check(n)) return 1; /* a wrong kernel is never timed */
        double result = gflops(n);
        if (result < 0) return 1;
        printf("gflops: %.4f\n", result);
        return 0;
    }
    fprintf(stderr, "usage: bench check N... | bench time N\n");
    return 2;
}

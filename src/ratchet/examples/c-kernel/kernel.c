/* The mutable scope: C = A * B for n x n matrices of doubles, row-major. bench/bench.c checks
 * it against a reference and times it; bench/run.py compiles the two with flags.toml's flags.
 *
 * The starting point is the textbook loop nest, tiled: for each element of C the k loop walks a
 * column of B, n doubles apart, which neither the cache nor the vector units like.
 */

/* The tile edge, for the optuna proposer to tune (the trailing comment is its range). */
#define BLOCK 16 // ratchet: int log 4..256

static int min(int x, int y) { return x < y ? x : y; }

void matmul(int n, const double *a, const double *b, double *c) {
    for (long i = 0; i < (long)n * n; i++) c[i] = 0.0;
    for (int i0 = 0; i0 < n; i0 += BLOCK)
        for (int j0 = 0; j0 < n; j0 += BLOCK)
            for (int k0 = 0; k0 < n; k0 += BLOCK)
                for (int i = i0; i < min(i0 + BLOCK, n); i++)
                    for (int j = j0; j < min(j0 + BLOCK, n); j++) {
                        double sum = c[(long)i * n + j];
                        for (int k = k0; k < min(k0 + BLOCK, n); k++) sum += a[(long)i * n + k] * b[(long)k * n + j];
                        c[(long)i * n + j] = sum;
                    }
}

/* What one probed TLS library call costs the calling process: calls
 * SSL_free(NULL) (a no-op that sidetap's TLS probes hook, at the first
 * instruction of the function, like every probed OpenSSL function) in a
 * loop and prints the mean time per call, once a second. Run it, attach
 * `sidetap capture --tls-pid PID`, compare the lines before and after
 * (bench/tls_bench.py --probe-cost does this). */
#include <openssl/ssl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void) {
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (;;) {
        long n = 0;
        const double t0 = now();
        double t1 = t0;
        while (t1 - t0 < 1.0) {
            for (int i = 0; i < 1000; i++) SSL_free(NULL);
            n += 1000;
            t1 = now();
        }
        printf("%.1f ns/call\n", (t1 - t0) / (double)n * 1e9);
        fflush(stdout);
    }
}

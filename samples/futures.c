/*
 * Recipe: concurrent.futures, the Python documentation's is_prime example
 * (written there for ProcessPoolExecutor.map), on a ThreadPoolExecutor and
 * with as_completed as well: CPU-bound work handed to a pool, results
 * printed as each one completes, then the map style, in order:
 *
 *     import concurrent.futures
 *     import math
 *
 *     PRIMES = [
 *         112272535095293,
 *         112582705942171,
 *         112272535095293,
 *         115280095190773,
 *         115797848077099,
 *         1099726899285419]
 *
 *     def is_prime(n):
 *         if n < 2:
 *             return False
 *         if n == 2:
 *             return True
 *         if n % 2 == 0:
 *             return False
 *         sqrt_n = int(math.floor(math.sqrt(n)))
 *         for i in range(3, sqrt_n + 1, 2):
 *             if n % i == 0:
 *                 return False
 *         return True
 *
 *     with concurrent.futures.ThreadPoolExecutor() as executor:
 *         futures = {executor.submit(is_prime, n): n for n in PRIMES}
 *         for future in concurrent.futures.as_completed(futures):
 *             print('%d is prime: %s' % (futures[future], future.result()))
 *         for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
 *             print('%d is prime: %s' % (number, prime))
 *
 * It prints "As completed:", the six lines in whatever order the checks
 * finish, then "Map, in order:" and the six lines in the order of PRIMES
 * (the last number, 1099726899285419, is the only one that is not prime).
 *
 * The port: a future is a greenlet that hands is_prime to the thread pool
 * with green_threadpool_call and waits for it cooperatively, so the checks
 * run in parallel on the pool's OS threads (GREEN_THREADPOOL_SIZE, default
 * the number of cores) while the hub stays free. as_completed is
 * green_iwait over those greenlets; map spawns the same futures and gets
 * their results in submission order.
 */
#include <green.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

static const int64_t PRIMES[] = {
    112272535095293, 112582705942171, 112272535095293,
    115280095190773, 115797848077099, 1099726899285419,
};
#define NPRIMES (sizeof PRIMES / sizeof PRIMES[0])

/* CPU-bound: runs on a pool thread, never on a greenlet's stack. */
static void *is_prime(void *arg)
{
    int64_t n = *(const int64_t *)arg;
    if (n < 2)
        return (void *)0;
    if (n == 2)
        return (void *)1;
    if (n % 2 == 0)
        return (void *)0;
    int64_t sqrt_n = (int64_t)floor(sqrt((double)n));
    for (int64_t i = 3; i <= sqrt_n; i += 2)
        if (n % i == 0)
            return (void *)0;
    return (void *)1;
}

/* executor.submit(is_prime, n): the greenlet's value is the future's result. */
static void *future(void *arg)
{
    void *prime = NULL;
    if (green_threadpool_call(is_prime, arg, &prime, GREEN_FOREVER) != 0) {
        perror("green_threadpool_call");
        return (void *)-1;
    }
    return prime;
}

static int submit_all(green_t **futures)
{
    for (size_t i = 0; i < NPRIMES; i++) {
        futures[i] = green_spawn(future, (void *)&PRIMES[i]);
        if (!futures[i]) {
            perror("green_spawn");
            return -1;
        }
    }
    return 0;
}

static void print_result(int64_t n, void *prime)
{
    printf("%lld is prime: %s\n", (long long)n, prime ? "True" : "False");
}

static size_t index_of(green_t *const *futures, green_t *g)
{
    size_t i = 0;
    while (futures[i] != g)
        i++;
    return i;
}

int main(void)
{
    green_t *futures[NPRIMES];
    int rc = 0;

    /* as_completed */
    if (submit_all(futures) != 0)
        return 1;
    printf("As completed:\n");
    green_iwait_t *it = green_iwait_new(futures, NPRIMES);
    if (!it) {
        perror("green_iwait_new");
        return 1;
    }
    green_t *done;
    while ((done = green_iwait_next(it, GREEN_FOREVER)) != NULL) {
        void *prime = green_value(done);
        rc |= prime == (void *)-1;
        print_result(PRIMES[index_of(futures, done)], prime);
    }
    green_iwait_free(it);
    for (size_t i = 0; i < NPRIMES; i++)
        green_release(futures[i]);

    /* map: the same work, the results in submission order */
    if (submit_all(futures) != 0)
        return 1;
    printf("Map, in order:\n");
    for (size_t i = 0; i < NPRIMES; i++) {
        void *prime = NULL;
        if (green_get(futures[i], &prime, GREEN_FOREVER) != 0) {
            perror("green_get");
            rc = 1;
        }
        rc |= prime == (void *)-1;
        print_result(PRIMES[i], prime);
        green_release(futures[i]);
    }
    return rc ? 1 : 0;
}

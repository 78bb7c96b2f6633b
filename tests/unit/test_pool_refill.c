/* When the daemon's server forks the pool's next worker (pool.h,
 * aidp_daemon_pool_refill_wait): not while a client waits for its run and
 * connections keep coming, but never later than the quiet time after the
 * pool first lacked a worker, whatever the traffic (a long run and a trickle
 * of connections, or a client that never reads its status, held the pool
 * empty for as long as they lasted). */
#include <criterion/criterion.h>

#include "supervisor/daemon/pool.h"

Test(pool_refill, nobody_waiting_forks_at_once)
{
        cr_assert_eq(aidp_daemon_pool_refill_wait(0, 0, 0, 100), 0);
        cr_assert_eq(aidp_daemon_pool_refill_wait(0, 5, 0, 100), 0);
}

Test(pool_refill, a_waiting_client_and_a_fresh_connection_wait_for_the_sooner_bound)
{
        cr_assert_eq(aidp_daemon_pool_refill_wait(1, 30, 10, 100), 70);
        cr_assert_eq(aidp_daemon_pool_refill_wait(1, 10, 30, 100), 70);
        cr_assert_eq(aidp_daemon_pool_refill_wait(3, 0, 0, 100), 100);
}

Test(pool_refill, a_quiet_time_without_connections_forks)
{
        cr_assert_eq(aidp_daemon_pool_refill_wait(1, 100, 0, 100), 0);
        cr_assert_eq(aidp_daemon_pool_refill_wait(1, 5000, 0, 100), 0);
}

/* Connections every 50 ms with a 100 ms quiet time: since_accept never
 * reaches it, the time waited does. */
Test(pool_refill, a_trickle_of_connections_waits_no_longer_than_the_quiet_time)
{
        int64_t waited = 0, forked_at = -1;
        for (int64_t t = 0; t <= 1000 && forked_at < 0; t += 10) {
                int64_t since_accept = t % 50;
                waited = t;
                if (aidp_daemon_pool_refill_wait(1, since_accept, waited, 100) == 0)
                        forked_at = t;
        }
        cr_assert_eq(forked_at, 100, "forked at %lld ms", (long long)forked_at);
}

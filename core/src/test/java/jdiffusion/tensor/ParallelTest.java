package jdiffusion.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class ParallelTest {
    private final int saved = Parallel.threads();

    @AfterEach
    void restore() {
        Parallel.setThreads(saved);
    }

    @Test
    void everyIndexRunsExactlyOnce() {
        for (int threads : new int[] {1, 2, 3, 5}) {
            Parallel.setThreads(threads);
            for (int n : new int[] {1, 2, 7, 1000}) {
                AtomicIntegerArray hits = new AtomicIntegerArray(n);
                for (int round = 0; round < 50; round++) {
                    Parallel.forRange(n, hits::incrementAndGet);
                }
                for (int i = 0; i < n; i++) {
                    assertEquals(50, hits.get(i), "index " + i + " with " + threads + " threads, n = " + n);
                }
            }
        }
    }

    @Test
    void resultsWrittenByWorkersAreVisibleToTheCaller() {
        Parallel.setThreads(2);
        for (int round = 0; round < 200; round++) {
            long[] out = new long[64];
            int r = round;
            Parallel.forRange(out.length, i -> out[i] = (long) i * i + r);
            long[] expected = new long[64];
            for (int i = 0; i < 64; i++) {
                expected[i] = (long) i * i + round;
            }
            assertArrayEquals(expected, out);
        }
    }

    @Test
    void nestedRangesRunOnTheCallingThread() {
        Parallel.setThreads(2);
        AtomicIntegerArray hits = new AtomicIntegerArray(16 * 16);
        Parallel.forRange(16, i -> Parallel.forRange(16, j -> hits.incrementAndGet(i * 16 + j)));
        for (int i = 0; i < hits.length(); i++) {
            assertEquals(1, hits.get(i));
        }
    }

    @Test
    void aFailureReachesTheCallerAndThePoolKeepsWorking() {
        Parallel.setThreads(2);
        IllegalStateException boom = new IllegalStateException("boom");
        IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> Parallel.forRange(100, i -> {
            if (i == 37) {
                throw boom;
            }
        }));
        assertSame(boom, thrown);
        AtomicIntegerArray hits = new AtomicIntegerArray(100);
        Parallel.forRange(100, hits::incrementAndGet);
        for (int i = 0; i < 100; i++) {
            assertEquals(1, hits.get(i));
        }
    }

    @Test
    void concurrentCallersTakeTurns() throws InterruptedException {
        Parallel.setThreads(2);
        int callers = 4;
        AtomicIntegerArray hits = new AtomicIntegerArray(callers * 500);
        Thread[] ts = new Thread[callers];
        for (int c = 0; c < callers; c++) {
            int base = c * 500;
            ts[c] = Thread.ofPlatform().start(() -> {
                for (int round = 0; round < 20; round++) {
                    Parallel.forRange(500, i -> hits.incrementAndGet(base + i));
                }
            });
        }
        for (Thread t : ts) {
            t.join();
        }
        for (int i = 0; i < hits.length(); i++) {
            assertEquals(20, hits.get(i));
        }
    }

    @Test
    void rejectsZeroThreads() {
        assertThrows(IllegalArgumentException.class, () -> Parallel.setThreads(0));
    }
}

package jdiffusion.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Issue 16 item 12: the cancellation check runs inside long operations (every index of a range: an attention query
 * block, a GEMM tile), so an interrupt stops a long attention in well under a second, not at the end of the step.
 */
class CancellationInKernelsTest {
    static final class Stop extends RuntimeException {
        Stop() {
            super("stopped", null, false, false);
        }
    }

    private static float[] random(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    @Test
    void checkRunsPerAttentionBlock() {
        int nq = Attention.QB * 20;
        int nk = 256;
        int heads = 2;
        int hd = 8;
        float[] q = random(nq * heads * hd, 1);
        float[] k = random(nk * heads * hd, 2);
        float[] v = random(nk * heads * hd, 3);
        AtomicInteger calls = new AtomicInteger();
        float[] plain = Attention.forward(q, k, v, 1, nq, nk, heads, hd, false);
        float[] checked = Parallel.cancellable(calls::incrementAndGet,
                () -> Attention.forward(q, k, v, 1, nq, nk, heads, hd, false));
        assertTrue(java.util.Arrays.equals(plain, checked), "a check that never fires changes nothing");
        assertTrue(calls.get() >= heads * 20, "checked per query block: " + calls.get());
        // a check that fires on its 5th call stops the attention
        AtomicInteger n = new AtomicInteger();
        assertThrows(Stop.class, () -> Parallel.cancellable(() -> {
            if (n.incrementAndGet() >= 5) {
                throw new Stop();
            }
        }, () -> Attention.forward(q, k, v, 1, nq, nk, heads, hd, false)));
        // outside cancellable nothing is checked
        Parallel.checkCancelled();
    }

    @Test
    void aLongAttentionStopsSoonAfterTheInterrupt() throws Exception {
        // about 1.2 GFLOP per head: seconds on a loaded machine, far longer than the deadline below
        int nq = 4096;
        int nk = 4096;
        int heads = 8;
        int hd = 40;
        float[] q = random(nq * heads * hd, 4);
        float[] k = random(nk * heads * hd, 5);
        float[] v = random(nk * heads * hd, 6);
        AtomicBoolean interrupted = new AtomicBoolean();
        long[] stoppedAt = new long[1];
        Thread t = Thread.ofPlatform().start(() -> {
            try {
                Parallel.cancellable(() -> {
                    if (interrupted.get()) {
                        throw new Stop();
                    }
                }, () -> Attention.forward(q, k, v, 1, nq, nk, heads, hd, false));
            } catch (Stop expected) {
                stoppedAt[0] = System.nanoTime();
            }
        });
        Thread.sleep(100);
        long asked = System.nanoTime();
        interrupted.set(true);
        t.join(10_000);
        assertTrue(!t.isAlive(), "still running 10 s after the interrupt");
        if (stoppedAt[0] != 0) {
            double s = (stoppedAt[0] - asked) / 1e9;
            assertTrue(s < 2.0, "stopped " + s + " s after the interrupt");
        }
    }
}

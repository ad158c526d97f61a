package jdiffusion.pipeline;

import com.sun.management.HotSpotDiagnosticMXBean;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;

/**
 * Keeps the heap, and so the resident memory, near what the loaded models occupy. A generation allocates activations
 * of hundreds of MB layer after layer; a collector left to itself lets them pile up to many GB before it collects
 * (19 GB resident for an SD1.5 image with ParallelGC and no -Xmx). With ZGC (the launcher's collector) the soft heap
 * limit can be changed while running: after the models are loaded it is set just above the heap they occupy, so ZGC
 * collects continuously instead of growing the heap. That costs little here: the heap is mostly large float arrays,
 * with no references to trace, and an SD1.5 generation ran no slower (41 s against 44 to 49 s with higher limits)
 * while its peak resident memory fell from 4.6 GB to 3.8 GB. -Xmx stays the hard limit. Other collectors (an
 * application embedding the library) are left alone.
 */
public final class HeapBudget {
    /** Room above the models for the sampler's latents and the like before ZGC starts collecting early. */
    static final long HEADROOM = 128L << 20;
    /**
     * The soft limit never goes below this (the launcher's starting value): small models allocate quickly too, and a
     * limit just above a tiny model kept ZGC collecting back to back (500 cycles in 14 s, 40% slower sampling).
     */
    static final long FLOOR = 2L << 30;

    private HeapBudget() {
    }

    /** The soft limit for a heap whose models occupy used bytes: at least FLOOR, at most the hard limit. */
    static long softLimit(long used, long max) {
        return Math.min(max, Math.max(FLOOR, used + HEADROOM));
    }

    /**
     * Sets ZGC's soft heap limit for the models now loaded (call after loading); a no-op on other collectors. The
     * workflow engine calls it after each model it loads, the pipeline after loading a checkpoint's models.
     */
    public static void fit() {
        if (!zgc()) {
            return;
        }
        try {
            System.gc(); // ZGC: one concurrent cycle, waited for; afterwards "used" is the models and little else
            long used = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
            long soft = softLimit(used, Runtime.getRuntime().maxMemory());
            ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class)
                    .setVMOption("SoftMaxHeapSize", Long.toString(soft));
            if (Boolean.getBoolean("jdiffusion.heap.verbose")) {
                System.err.printf("heap: %d MB in use after load, soft limit %d MB%n", used >> 20, soft >> 20);
            }
        } catch (RuntimeException e) {
            // not a HotSpot VM, or the flag is not writable here: the collector's own sizing applies
        }
    }

    /**
     * Collects now, after a one-shot run dropped a model (ZGC only). The model sits in the old generation; under a
     * maximum heap sized to the work (the launcher's heap plan) the next stage's large arrays stalled on young
     * collections that could not free it, and ZGC threw an OutOfMemoryError before its major collection finished
     * (SD1.5 VAE decode under -Xmx2840m, measured). One major collection here frees it up front.
     */
    public static void collectFreed() {
        if (zgc()) {
            System.gc();
        }
    }

    private static boolean zgc() {
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            if (gc.getName().startsWith("ZGC")) {
                return true;
            }
        }
        return false;
    }
}

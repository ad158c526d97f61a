package jdiffusion.bench;

import java.util.EnumMap;
import java.util.Map;
import java.util.Set;

/**
 * Where the time of a run goes, by kind of operation, without touching the kernels: a daemon thread samples the
 * stacks of the running threads every few milliseconds and files each running sample by the innermost engine frame
 * (attention wins over the GEMM it calls; GEMM and convolution are the kernels; group/layer norm; elementwise
 * activations and adds; memory moves are layout changes, concatenation, resizing, copies). Sampling at safepoints
 * biases single samples, not the shares of a run of seconds.
 */
public final class OpProfile implements AutoCloseable {
    /** What a sample was doing. */
    public enum Category {
        GEMM_CONV("GEMM/convolution"), ATTENTION("attention"), NORM("normalisation"), ELEMENTWISE("elementwise"),
        MEMORY("memory moves"), OTHER("other");

        public final String label;

        Category(String label) {
            this.label = label;
        }
    }

    private static final Set<String> NORM_OPS = Set.of("groupNorm", "layerNorm", "groupStats", "channelSums",
            "affineRow", "centredSquares");
    private static final Set<String> MEMORY_OPS = Set.of("nchwToNhwc", "nhwcToNchw", "concatChannels",
            "resizeNearest", "arraycopy", "copyOf", "copyOfRange", "fill");

    private final EnumMap<Category, Long> samples = new EnumMap<>(Category.class);
    private final Thread sampler;
    private final long periodMillis;
    private volatile boolean running = true;

    private OpProfile(long periodMillis) {
        this.periodMillis = periodMillis;
        for (Category c : Category.values()) {
            samples.put(c, 0L);
        }
        sampler = Thread.ofPlatform().daemon().name("jdiffusion-op-profile").unstarted(this::loop);
    }

    /** Starts sampling every periodMillis. */
    public static OpProfile start(long periodMillis) {
        OpProfile p = new OpProfile(periodMillis);
        p.sampler.start();
        return p;
    }

    private void loop() {
        while (running) {
            for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
                Thread t = e.getKey();
                if (t != sampler && t.getState() == Thread.State.RUNNABLE && e.getValue().length > 0) {
                    Category c = classify(e.getValue());
                    if (c != null) {
                        synchronized (samples) {
                            samples.merge(c, 1L, Long::sum);
                        }
                    }
                }
            }
            try {
                Thread.sleep(periodMillis);
            } catch (InterruptedException ie) {
                return;
            }
        }
    }

    /** The category of one stack (innermost frame first); null for threads that are not engine work. */
    static Category classify(StackTraceElement[] stack) {
        boolean engine = false;
        for (StackTraceElement f : stack) {
            if (f.getClassName().startsWith("jdiffusion.tensor.Attention")) {
                return Category.ATTENTION;
            }
            if (f.getClassName().equals("jdiffusion.tensor.Ops") && NORM_OPS.contains(f.getMethodName())) {
                return Category.NORM;
            }
            engine |= f.getClassName().startsWith("jdiffusion.");
        }
        if (!engine) {
            return null;
        }
        for (StackTraceElement f : stack) {
            String cls = f.getClassName();
            String m = f.getMethodName();
            if (MEMORY_OPS.contains(m)) {
                return Category.MEMORY;
            }
            if (cls.startsWith("jdiffusion.tensor.Gemm") || cls.startsWith("jdiffusion.tensor.Conv2d")
                    || cls.startsWith("jdiffusion.tensor.Linear")) {
                return Category.GEMM_CONV;
            }
            if (cls.startsWith("jdiffusion.tensor.Ops") || cls.startsWith("jdiffusion.tensor.Vec")) {
                return Category.ELEMENTWISE;
            }
        }
        return Category.OTHER;
    }

    /** Stops sampling; the shares so far, summing to 1 (empty when nothing was sampled). */
    public Map<Category, Double> stop() {
        running = false;
        sampler.interrupt();
        try {
            sampler.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return shares();
    }

    /** Each category's share of the samples. */
    public Map<Category, Double> shares() {
        EnumMap<Category, Double> out = new EnumMap<>(Category.class);
        synchronized (samples) {
            long total = samples.values().stream().mapToLong(Long::longValue).sum();
            if (total > 0) {
                samples.forEach((c, n) -> out.put(c, n / (double) total));
            }
        }
        return out;
    }

    @Override
    public void close() {
        stop();
    }
}

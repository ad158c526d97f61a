package jdiffusion.pipeline;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** Wall-clock seconds per pipeline stage, in the order the stages ran. */
public final class Timings {
    private final Map<String, Double> seconds = new LinkedHashMap<>();

    /** Runs body and adds its duration to stage. */
    public <T> T time(String stage, java.util.function.Supplier<T> body) {
        long t0 = System.nanoTime();
        try {
            return body.get();
        } finally {
            add(stage, (System.nanoTime() - t0) / 1e9);
        }
    }

    public void add(String stage, double s) {
        seconds.merge(stage, s, Double::sum);
    }

    public Map<String, Double> seconds() {
        return Collections.unmodifiableMap(seconds);
    }

    public double total() {
        return seconds.values().stream().mapToDouble(Double::doubleValue).sum();
    }

    /** "load 1.20s, text 0.05s, ..., total 9.80s" */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        seconds.forEach((k, v) -> sb.append(k).append(' ').append(String.format(java.util.Locale.ROOT, "%.2fs", v))
                .append(", "));
        return sb.append("total ").append(String.format(java.util.Locale.ROOT, "%.2fs", total())).toString();
    }
}

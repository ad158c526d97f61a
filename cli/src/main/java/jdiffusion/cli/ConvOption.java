package jdiffusion.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import jdiffusion.bench.Timing;
import picocli.CommandLine.Option;

/**
 * {@code --conv winograd|direct|f2|f4[,...]} for the model benchmarks: which path the stride-1 3x3 convolutions take
 * (system property {@code jdiffusion.conv}). Several modes, comma separated, alternate run by run in one process (on
 * a loaded machine only such interleaved runs compare), and each mode's runs and median are printed.
 */
final class ConvOption {
    static final String PROPERTY = "jdiffusion.conv";

    @Option(names = "--conv", paramLabel = "MODE[,MODE...]", split = ",",
            description = "3x3 convolutions: winograd (Winograd where the shape pays, the default), direct, f2 or f4"
                    + " (Winograd F(2x2,3x3) / F(4x4,3x3) on every one); several modes alternate run by run")
    List<String> modes;

    /** The property value of a mode, or a CliException naming it. */
    static String property(String mode) {
        return switch (mode.toLowerCase(Locale.ROOT)) {
            case "winograd", "auto" -> "auto";
            case "direct" -> "direct";
            case "f2" -> "f2";
            case "f4" -> "f4";
            default -> throw new CliException("--conv must be winograd, direct, f2 or f4, got " + mode);
        };
    }

    /** Checks the modes and applies the first (warm-up runs then use it). */
    void apply() {
        if (modes != null && !modes.isEmpty()) {
            modes.forEach(ConvOption::property);
            System.setProperty(PROPERTY, property(modes.get(0)));
        }
    }

    /** Runs work n times untimed for each mode (each path's code compiled before the timed runs). */
    void warmup(int n, Runnable work) {
        List<String> order = modes == null ? List.of() : modes.stream().distinct().toList();
        if (order.isEmpty()) {
            for (int i = 0; i < n; i++) {
                work.run();
            }
            return;
        }
        for (String m : order) {
            System.setProperty(PROPERTY, property(m));
            for (int i = 0; i < n; i++) {
                work.run();
            }
        }
        apply();
    }

    /**
     * Times work runs times per mode, the modes alternating within each round; prints each mode's runs when there
     * are several, and returns the first mode's (the report's).
     */
    Timing.Runs run(int runs, Runnable work) {
        if (modes == null || modes.size() < 2) {
            apply();
            return Timing.run(0, runs, work);
        }
        apply();
        Map<String, double[]> seconds = new LinkedHashMap<>();
        for (String m : modes) {
            seconds.putIfAbsent(m, new double[runs]);
        }
        List<String> order = new ArrayList<>(seconds.keySet());
        for (int r = 0; r < runs; r++) {
            for (String m : order) {
                System.setProperty(PROPERTY, property(m));
                seconds.get(m)[r] = Timing.run(0, 1, work).seconds()[0];
            }
        }
        double first = Double.NaN;
        for (String m : order) {
            Timing.Runs t = new Timing.Runs(seconds.get(m));
            if (Double.isNaN(first)) {
                first = t.median();
            }
            StringBuilder each = new StringBuilder();
            for (double s : t.seconds()) {
                each.append(String.format(Locale.ROOT, " %.2f", s));
            }
            System.out.printf(Locale.ROOT, "conv %s: runs (s):%s; median %.2f s (%.2fx the first mode's)%n", m,
                    each, t.median(), t.median() / first);
        }
        System.setProperty(PROPERTY, property(order.get(0)));
        return new Timing.Runs(seconds.get(order.get(0)));
    }
}

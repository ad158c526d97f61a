package jdiffusion.cli;

import java.io.PrintStream;
import java.util.Locale;
import jdiffusion.pipeline.ProgressListener;

/**
 * Sampling progress on stderr: a redrawn bar with step, it/s and ETA on a terminal, one plain line per step
 * otherwise (logs, pipes), and the stage names as they begin.
 */
final class ProgressBar implements ProgressListener {
    private static final int WIDTH = 30;
    private final PrintStream out;
    private final boolean quiet;
    private final boolean terminal;
    private final String banner;
    private long startNanos;
    private boolean drawing;

    ProgressBar(PrintStream out, boolean quiet, boolean terminal) {
        this(out, quiet, terminal, null);
    }

    /** banner: a line printed (even when quiet) when the first stage starts, i.e. once the request is valid. */
    ProgressBar(PrintStream out, boolean quiet, boolean terminal, String banner) {
        this.out = out;
        this.quiet = quiet;
        this.terminal = terminal;
        this.banner = banner;
    }

    @Override
    public void onStage(String stage) {
        if (banner != null && stage.equals("load")) {
            out.println(banner);
        }
        if (quiet) {
            return;
        }
        endLine();
        if (stage.equals("sampling")) {
            startNanos = System.nanoTime();
        }
        out.println(stage + "...");
    }

    @Override
    public void onStep(int step, int total, float[] latent) {
        if (quiet) {
            return;
        }
        double elapsed = (System.nanoTime() - startNanos) / 1e9;
        String line = line(step, total, elapsed);
        if (terminal) {
            out.print("\r" + line + "  ");
            drawing = true;
            if (step == total) {
                endLine();
            }
        } else {
            out.println(line);
        }
        out.flush();
    }

    /** "[#######.......] 5/20  1.23 it/s  ETA 12s" (s/it below one step per second, as tqdm does). */
    static String line(int step, int total, double elapsedSeconds) {
        int filled = total == 0 ? WIDTH : (int) Math.round((double) WIDTH * step / total);
        String bar = "#".repeat(filled) + ".".repeat(WIDTH - filled);
        double perStep = step == 0 ? 0 : elapsedSeconds / step;
        String rate = perStep == 0 ? "-" : perStep < 1
                ? String.format(Locale.ROOT, "%.2f it/s", 1 / perStep)
                : String.format(Locale.ROOT, "%.2f s/it", perStep);
        long eta = Math.round(perStep * (total - step));
        return String.format(Locale.ROOT, "[%s] %d/%d  %s  ETA %s", bar, step, total, rate, duration(eta));
    }

    static String duration(long seconds) {
        if (seconds < 60) {
            return seconds + "s";
        }
        if (seconds < 3600) {
            return String.format(Locale.ROOT, "%dm%02ds", seconds / 60, seconds % 60);
        }
        return String.format(Locale.ROOT, "%dh%02dm", seconds / 3600, seconds % 3600 / 60);
    }

    private void endLine() {
        if (drawing) {
            out.println();
            drawing = false;
        }
    }

    void finish() {
        endLine();
        out.flush();
    }
}

package jdiffusion.pipeline;

/** Cooperative cancellation: another thread calls {@link #cancel()}; the pipeline checks it between steps. */
public final class CancellationToken {
    private volatile boolean cancelled;

    public static CancellationToken none() {
        return new CancellationToken();
    }

    public void cancel() {
        cancelled = true;
    }

    public boolean isCancelled() {
        return cancelled;
    }

    /** Throws {@link GenerationCancelledException} when cancelled; stage names where it stopped. */
    public void check(String stage) {
        if (cancelled) {
            throw new GenerationCancelledException("generation cancelled during " + stage);
        }
    }
}

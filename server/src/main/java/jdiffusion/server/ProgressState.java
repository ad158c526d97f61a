package jdiffusion.server;

/**
 * The running prompt's progress as the worker last reported it: which prompt and node, the sampler step of its
 * maximum, when the prompt started, and a copy of the latest denoised latent (for a preview made only when asked:
 * AUTOMATIC1111's {@code /sdapi/v1/progress} current_image). Written by the worker thread, read by requests.
 */
final class ProgressState {
    /** One consistent picture of the progress. */
    record Snapshot(String promptId, String node, int value, int max, long startNanos, long stepNanos,
            float[] latent, int[] shape, LatentPreview.Format format, int nodesDone, int nodesTotal) {
        boolean running() {
            return promptId != null;
        }
    }

    private volatile Snapshot now = new Snapshot(null, null, 0, 0, 0, 0, null, null, null, 0, 0);
    private volatile boolean skipRequested;

    void start(String promptId, int nodesTotal) {
        now = new Snapshot(promptId, null, 0, 0, System.nanoTime(), 0, null, null, null, 0, nodesTotal);
        skipRequested = false;
    }

    void node(String nodeId) {
        Snapshot s = now;
        if (s.promptId() != null) {
            now = new Snapshot(s.promptId(), nodeId, 0, 0, s.startNanos(), System.nanoTime(), s.latent(), s.shape(),
                    s.format(), s.node() == null ? s.nodesDone() : s.nodesDone() + 1, s.nodesTotal());
        }
    }

    void step(String nodeId, int value, int max, float[] latent, int[] shape, LatentPreview.Format format) {
        Snapshot s = now;
        if (s.promptId() == null) {
            return;
        }
        float[] copy = latent == null ? s.latent() : latent.clone();
        now = new Snapshot(s.promptId(), nodeId, value, max, s.startNanos(),
                s.stepNanos() == 0 || value <= 1 ? System.nanoTime() : s.stepNanos(), copy,
                latent == null ? s.shape() : shape.clone(), format == null ? s.format() : format, s.nodesDone(),
                s.nodesTotal());
    }

    void end() {
        now = new Snapshot(null, null, 0, 0, 0, 0, null, null, null, 0, 0);
    }

    Snapshot snapshot() {
        return now;
    }

    /** A1111's skip: the running image is given up like an interrupt (one prompt is one job here). */
    void requestSkip() {
        skipRequested = true;
    }

    boolean skipRequested() {
        return skipRequested;
    }
}

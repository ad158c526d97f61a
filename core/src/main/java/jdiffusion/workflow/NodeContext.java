package jdiffusion.workflow;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * What a running node may use: the folders, the shared model cache, the prompt itself (SaveImage stores it in the
 * PNG), progress reporting and the interruption flag (checked between sampler steps).
 */
public record NodeContext(String nodeId, String promptId, ModelPaths paths, ModelCache models, JsonNode prompt,
        JsonNode extraPngInfo, ExecutionListener listener, Interrupt interrupt) {

    /** Another thread sets it; the running prompt stops at its next check. */
    public static final class Interrupt {
        private volatile boolean requested;

        public void request() {
            requested = true;
        }

        public void clear() {
            requested = false;
        }

        public boolean isRequested() {
            return requested;
        }

        /** Throws {@link InterruptedExecution} when an interruption was requested. */
        public void check() {
            if (requested) {
                throw new InterruptedExecution();
            }
        }
    }

    /** Thrown inside a node when the prompt was interrupted; the engine reports execution_interrupted. */
    public static final class InterruptedExecution extends RuntimeException {
        public InterruptedExecution() {
            super("interrupted", null, false, false);
        }
    }

    /** Reports sampler progress: step value of max, with the current denoised latent (model space) for previews. */
    public void progress(int value, int max, float[] latent, int[] shape) {
        listener.progress(promptId, nodeId, value, max, latent, shape);
    }
}

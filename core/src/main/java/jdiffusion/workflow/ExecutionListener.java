package jdiffusion.workflow;

import java.util.List;
import java.util.Map;

/**
 * The events of one prompt's execution, named as ComfyUI's websocket messages. Called on the executing thread, in
 * this order: executionStart, executionCached, then executing(node) / progress / executed per node, and one of
 * executionSuccess, executionError, executionInterrupted; finally executing(null).
 */
public interface ExecutionListener {
    default void executionStart(String promptId) {
    }

    /** The nodes taken from the cache instead of being run. */
    default void executionCached(String promptId, List<String> nodeIds) {
    }

    /** A node starts; null when the prompt is done. */
    default void executing(String promptId, String nodeId) {
    }

    /**
     * A sampler step: value of max, with the current denoised latent [B,4,h,w] (model space; belongs to the sampler,
     * copy to keep) for previews.
     */
    default void progress(String promptId, String nodeId, int value, int max, float[] latent, int[] shape) {
    }

    /** An output node produced its ui output (images). */
    default void executed(String promptId, String nodeId, Map<String, Object> ui) {
    }

    /** An output node hands an encoded image (PNG) to the client (ComfyUI's SaveImageWebsocket). */
    default void image(String promptId, String nodeId, byte[] png) {
    }

    default void executionSuccess(String promptId) {
    }

    /**
     * A node failed.
     *
     * @param executed the nodes that had finished before it
     */
    default void executionError(String promptId, String nodeId, String nodeType, List<String> executed,
            String exceptionMessage, String exceptionType) {
    }

    default void executionInterrupted(String promptId, String nodeId, String nodeType, List<String> executed) {
    }

    ExecutionListener NONE = new ExecutionListener() {
    };
}

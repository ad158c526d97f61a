package jdiffusion.pipeline;

/** Thrown when a {@link CancellationToken} was cancelled; nothing is written after it. */
public final class GenerationCancelledException extends GenerateException {
    public GenerationCancelledException(String message) {
        super(message);
    }
}

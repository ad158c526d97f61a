package jdiffusion.pipeline;

/** A generation that cannot run or failed: the message is one line naming the problem (value, file, tensor). */
public class GenerateException extends RuntimeException {
    public GenerateException(String message) {
        super(message);
    }

    public GenerateException(String message, Throwable cause) {
        super(message, cause);
    }
}

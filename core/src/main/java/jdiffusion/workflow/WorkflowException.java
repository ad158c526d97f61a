package jdiffusion.workflow;

/** A workflow that cannot be read, validated or executed; the message is one line naming the node, input or file. */
public class WorkflowException extends RuntimeException {
    public WorkflowException(String message) {
        super(message);
    }

    public WorkflowException(String message, Throwable cause) {
        super(message, cause);
    }
}

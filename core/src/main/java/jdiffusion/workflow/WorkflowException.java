package jdiffusion.workflow;

/** A workflow that cannot be read, validated or executed; the message is one line naming the node, input or file. */
public class WorkflowException extends RuntimeException {
    public WorkflowException(String message) {
        super(oneLine(message));
    }

    public WorkflowException(String message, Throwable cause) {
        super(oneLine(message), cause);
    }

    /** Names and values quoted from a request may hold line breaks: shown escaped, the message stays one line. */
    static String oneLine(String message) {
        return message == null ? null : message.replace("\r", "\\r").replace("\n", "\\n");
    }
}

package jdiffusion.io;

import java.io.IOException;

/** A model or tensor file that cannot be used; the message names the file and the problem in one line. */
public class ModelFormatException extends IOException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}

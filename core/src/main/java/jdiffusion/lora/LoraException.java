package jdiffusion.lora;

import jdiffusion.io.ModelFormatException;

/** A LoRA file that cannot be read or does not fit the model; the message is one line naming the file and problem. */
public class LoraException extends ModelFormatException {
    public LoraException(String message) {
        super(message);
    }
}

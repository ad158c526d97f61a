package jdiffusion.tensor;

/**
 * The cheap per-stage check for NaN and infinity: a model file holding them (or a weight or strength that
 * overflows) would otherwise give an all-black image and success. One pass over an output, done once per stage
 * (text encoder, each sampling step's UNet output, VAE), costs far less than the stage itself.
 */
public final class Finite {
    private Finite() {
    }

    /** Thrown when a stage's output holds NaN or infinity; the message names the stage. */
    public static final class NonFiniteException extends RuntimeException {
        public NonFiniteException(String message) {
            super(message);
        }
    }

    /** Throws {@link NonFiniteException} naming stage when v holds a NaN or an infinity. */
    public static void check(float[] v, String stage) {
        if (v == null) {
            return;
        }
        int bad = firstNonFinite(v);
        if (bad >= 0) {
            throw new NonFiniteException(stage + " produced non-finite values (" + v[bad] + " at index " + bad
                    + " of " + v.length + "); the model file may hold NaN/Inf weights, or a weight or strength is"
                    + " too large");
        }
    }

    /** The index of the first NaN or infinity, or -1. */
    public static int firstNonFinite(float[] v) {
        // x * 0 is 0 for finite x and NaN otherwise: blocks of 1024 summed, then the bad block scanned
        for (int start = 0; start < v.length; start += 1024) {
            int end = Math.min(v.length, start + 1024);
            float acc = 0;
            for (int i = start; i < end; i++) {
                acc += v[i] * 0f;
            }
            if (acc != 0) {
                for (int i = start; i < end; i++) {
                    if (!Float.isFinite(v[i])) {
                        return i;
                    }
                }
            }
        }
        return -1;
    }
}

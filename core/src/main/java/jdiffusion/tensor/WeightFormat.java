package jdiffusion.tensor;

/**
 * How packed weights are stored in memory. F16 and BF16 halve the memory of a model (an SDXL UNet drops from about
 * 10 GB to 5 GB); the GEMM widens each block of weights to float32 in a per-thread buffer just before the
 * micro-kernel uses it (the widening is amortised over a whole block of rows), and all arithmetic stays float32.
 * Weights read from an fp16 (or bf16) checkpoint lose nothing when stored back in the same format.
 */
public enum WeightFormat {
    F32,
    F16,
    BF16;

    short encode(float x) {
        return switch (this) {
            case F16 -> Float.floatToFloat16(x);
            case BF16 -> bf16(x);
            case F32 -> throw new IllegalStateException("F32 weights are not encoded");
        };
    }

    /** Round to nearest even on the 16 dropped bits (NaN stays NaN). */
    private static short bf16(float x) {
        int bits = Float.floatToRawIntBits(x);
        if (Float.isNaN(x)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }

    /** Widens n values of src from off into dst from dOff. */
    void decode(short[] src, int off, float[] dst, int dOff, int n) {
        if (this == F16) {
            for (int i = 0; i < n; i++) {
                dst[dOff + i] = Float.float16ToFloat(src[off + i]);
            }
        } else {
            for (int i = 0; i < n; i++) {
                dst[dOff + i] = Float.intBitsToFloat(src[off + i] << 16);
            }
        }
    }
}

package jdiffusion.tensor;

/**
 * How packed weights are stored in memory. F16 and BF16 halve the memory of a model (an SDXL UNet drops from about
 * 10 GB to 5 GB); the GEMM widens each block of weights to float32 in a per-thread buffer just before the
 * micro-kernel uses it (the widening is amortised over a whole block of rows), and all arithmetic stays float32.
 * Weights read from an fp16 (or bf16) checkpoint lose nothing when stored back in the same format. The 8-bit
 * formats (fp8 files such as {@code t5xxl_fp8_e4m3fn}) quarter the memory the same way, widened through a table.
 */
public enum WeightFormat {
    F32,
    F16,
    BF16,
    F8_E4M3,
    F8_E5M2;

    /** Bytes per stored weight. */
    public int bytes() {
        return switch (this) {
            case F32 -> 4;
            case F16, BF16 -> 2;
            case F8_E4M3, F8_E5M2 -> 1;
        };
    }

    /** Narrows to an 8-bit format (nearest, ties to even). */
    byte encode8(float x) {
        return switch (this) {
            case F8_E4M3 -> Fp8.toE4m3(x);
            case F8_E5M2 -> Fp8.toE5m2(x);
            default -> throw new IllegalStateException(this + " weights are not 8-bit");
        };
    }

    /** Widens n 8-bit values of src from off into dst from dOff. */
    void decode(byte[] src, int off, float[] dst, int dOff, int n) {
        if (this == F8_E4M3) {
            Fp8.decodeE4m3(src, off, dst, dOff, n);
        } else {
            Fp8.decodeE5m2(src, off, dst, dOff, n);
        }
    }

    short encode(float x) {
        return switch (this) {
            case F16 -> Float.floatToFloat16(x);
            case BF16 -> bf16(x);
            default -> throw new IllegalStateException(this + " weights are not 16-bit");
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

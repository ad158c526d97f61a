package jdiffusion.tensor;

/**
 * The two 8-bit float formats of safetensors files: {@code float8_e4m3fn} (1 sign, 4 exponent bits with bias 7, 3
 * mantissa bits; no infinities, only 0x7F/0xFF are NaN; largest 448), the format of {@code t5xxl_fp8_e4m3fn} and
 * fp8 checkpoints, and {@code float8_e5m2} (the top byte of an IEEE half). Widening goes through a 256-entry table;
 * narrowing rounds to nearest even as torch's casts do (e4m3fn: magnitudes of 464 and more become NaN).
 */
public final class Fp8 {
    private static final float[] E4M3 = new float[256];
    private static final float[] E5M2 = new float[256];

    static {
        for (int code = 0; code < 256; code++) {
            E4M3[code] = e4m3Formula(code);
            E5M2[code] = Float.float16ToFloat((short) (code << 8));
        }
    }

    private Fp8() {
    }

    /** The value of an e4m3fn code from its bit fields (the table's definition). */
    static float e4m3Formula(int code) {
        int sign = (code >> 7) & 1;
        int exp = (code >> 3) & 0xF;
        int mant = code & 7;
        float v;
        if (exp == 0xF && mant == 7) {
            v = Float.NaN;
        } else if (exp == 0) {
            v = mant / 8f * 0x1p-6f;
        } else {
            v = (1 + mant / 8f) * (float) Math.pow(2, exp - 7);
        }
        return sign == 1 ? -v : v;
    }

    /** Widens an e4m3fn byte. */
    public static float e4m3(byte b) {
        return E4M3[b & 0xFF];
    }

    /** Widens an e5m2 byte. */
    public static float e5m2(byte b) {
        return E5M2[b & 0xFF];
    }

    /**
     * The e4m3fn code nearest to x (ties to the even code), by bit arithmetic as torch's cast does it: a normal
     * result rounds the float's mantissa to 3 bits in place; a subnormal one comes from a float addition that
     * rounds at the 2^-9 step. NaN and |x| >= 464 give NaN (0x7F, signed): torch rounds [464, 480) up onto the NaN
     * pattern rather than saturating at 448.
     */
    public static byte toE4m3(float x) {
        int bits = Float.floatToRawIntBits(x);
        int sign = (bits >>> 24) & 0x80;
        bits &= 0x7FFFFFFF;
        int code;
        if (bits >= 1087 << 20) {
            code = 0x7F; // 480 and above, infinities and NaN
        } else if (bits < 121 << 23) {
            // below 2^-6: adding 2^14 puts the 2^-9 subnormal step at the float's last mantissa bit, so the addition
            // rounds to nearest even exactly there
            float sum = Float.intBitsToFloat(bits) + Float.intBitsToFloat(141 << 23);
            code = Float.floatToRawIntBits(sum) - (141 << 23);
        } else {
            int mantOdd = (bits >>> 20) & 1;
            bits += ((7 - 127) << 23) + 0x7FFFF + mantOdd;
            code = bits >>> 20;
        }
        return (byte) (sign | code);
    }

    /** The e5m2 code nearest to x (ties to even), via the half-precision rounding of its top byte. */
    public static byte toE5m2(float x) {
        short h = Float.floatToFloat16(x);
        if (Float.isNaN(x)) {
            return (byte) ((h >> 8) | 0x02);
        }
        int bits = h & 0xFFFF;
        int low = bits & 0xFF;
        int high = bits >> 8;
        // round the dropped byte to nearest even (an exact float -> half -> e5m2 double rounding is rare and
        // only matters for values that are not e5m2 already)
        if (low > 0x80 || low == 0x80 && (high & 1) == 1) {
            high++;
        }
        return (byte) high;
    }

    /** Widens n e4m3fn bytes of src from off into dst from dOff. */
    static void decodeE4m3(byte[] src, int off, float[] dst, int dOff, int n) {
        for (int i = 0; i < n; i++) {
            dst[dOff + i] = E4M3[src[off + i] & 0xFF];
        }
    }

    /** Widens n e5m2 bytes of src from off into dst from dOff. */
    static void decodeE5m2(byte[] src, int off, float[] dst, int dOff, int n) {
        for (int i = 0; i < n; i++) {
            dst[dOff + i] = E5M2[src[off + i] & 0xFF];
        }
    }
}

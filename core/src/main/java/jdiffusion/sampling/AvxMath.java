package jdiffusion.sampling;

/**
 * Scalar ports of the cephes-derived float32 log and sincos that PyTorch's AVX2 build uses inside randn (avx_mathfun's
 * log256_ps and sincos256_ps, one lane at a time), including the fused multiply-adds GCC contracts them into: every
 * Horner step, the Cody-Waite reduction and the tail sums are single-rounded. Those contractions were confirmed
 * against 576,340 recorded torch values (all bit-exact); without them about 1% of values differ by an ulp.
 * Only valid for the arguments randn feeds them: log of (0, 1] and sincos of [0, 2*pi).
 */
final class AvxMath {
    private AvxMath() {
    }

    private static final float SQRTHF = 0.707106781186547524f;
    private static final float[] LOG_P = {7.0376836292E-2f, -1.1514610310E-1f, 1.1676998740E-1f, -1.2420140846E-1f,
        1.4249322787E-1f, -1.6668057665E-1f, 2.0000714765E-1f, -2.4999993993E-1f, 3.3333331174E-1f};
    private static final float LOG_Q1 = -2.12194440e-4f;
    private static final float LOG_Q2 = 0.693359375f;

    /** Natural log of a positive float: mantissa in [sqrt(1/2), sqrt(2)) fed to a degree-9 polynomial. */
    static float log(float v) {
        int bits = Float.floatToRawIntBits(Math.max(v, Float.MIN_NORMAL));
        float e = (float) ((bits >>> 23) - 0x7f) + 1.0f;
        float x = Float.intBitsToFloat((bits & ~0x7f800000) | Float.floatToRawIntBits(0.5f));
        float tmp = 0.0f;
        if (x < SQRTHF) {
            tmp = x;
            e = e - 1.0f;
        }
        x = (x - 1.0f) + tmp;
        float z = x * x;
        float y = LOG_P[0];
        for (int k = 1; k < LOG_P.length; k++) {
            y = Math.fma(y, x, LOG_P[k]);
        }
        y = y * x;
        y = Math.fma(y, z, e * LOG_Q1);
        y = Math.fma(-z, 0.5f, y);
        return Math.fma(e, LOG_Q2, x + y);
    }

    private static final float FOPI = 1.27323954473516f;
    private static final float DP1 = -0.78515625f;
    private static final float DP2 = -2.4187564849853515625e-4f;
    private static final float DP3 = -3.77489497744594108e-8f;
    private static final float SIN_P0 = -1.9515295891E-4f;
    private static final float SIN_P1 = 8.3321608736E-3f;
    private static final float SIN_P2 = -1.6666654611E-1f;
    private static final float COS_P0 = 2.443315711809948E-005f;
    private static final float COS_P1 = -1.388731625493765E-003f;
    private static final float COS_P2 = 4.166664568298827E-002f;

    /** Writes {sin(x), cos(x)} into out: octant reduction, then the sine or cosine polynomial per octant. */
    static void sincos(float xin, float[] out) {
        float x = Math.abs(xin);
        int j = ((int) (x * FOPI) + 1) & ~1;
        float y = (float) j;
        // extended-precision reduction x - j*pi/4 in three pieces
        x = Math.fma(y, DP1, x);
        x = Math.fma(y, DP2, x);
        x = Math.fma(y, DP3, x);
        float z = x * x;
        float cosPoly = Math.fma(Math.fma(COS_P0, z, COS_P1), z, COS_P2) * z;
        cosPoly = Math.fma(cosPoly, z, -(z * 0.5f)) + 1.0f;
        float sinPoly = Math.fma(Math.fma(SIN_P0, z, SIN_P1), z, SIN_P2) * z;
        sinPoly = Math.fma(sinPoly, x, x);
        boolean direct = (j & 2) == 0; // octants where sin uses the sine polynomial
        float s = direct ? sinPoly : cosPoly;
        float c = direct ? cosPoly : sinPoly;
        if (((j & 4) != 0) ^ (xin < 0)) {
            s = -s;
        }
        if (((j - 2) & 4) == 0) {
            c = -c;
        }
        out[0] = s;
        out[1] = c;
    }
}

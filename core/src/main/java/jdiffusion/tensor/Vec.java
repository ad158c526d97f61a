package jdiffusion.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Vectorised activation functions shared by {@link Ops} (same formulas as the scalar ones in {@link Reference}). */
final class Vec {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();
    private static final float INV_SQRT2 = (float) (1 / Math.sqrt(2));

    private Vec() {
    }

    // exp(x) = 2^k * p(r), k = round(x / ln 2), r = x - k ln 2 (two-part ln 2), p a degree-7 Taylor polynomial
    // (relative error < 1e-8 on |r| <= ln2/2). Only add, mul and fma, which round identically in the interpreter and
    // in JIT-compiled code: VectorOperators.EXP is SVML once compiled but Math.exp per lane before, so results changed
    // by an ulp during warm-up and the same seed could give different pixels from run to run.
    private static final float EXP_HI = 88.0f;
    static final float EXP_LO = -87.0f;
    private static final float LOG2E = 1.44269504f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float ROUNDER = 12582912f; // 1.5 * 2^23: adding it rounds to an integer
    private static final int ROUNDER_BITS = Float.floatToRawIntBits(ROUNDER);
    private static final float[] EXP_POLY = {1f / 5040, 1f / 720, 1f / 120, 1f / 24, 1f / 6, 0.5f, 1f, 1f};

    static FloatVector exp(FloatVector x) {
        return expReduced(x.max(EXP_LO).min(EXP_HI), EXP_POLY).blend(0f, x.compare(VectorOperators.LT, EXP_LO));
    }

    /** The scalar twin of {@link #exp(FloatVector)}: bit-identical lane by lane. */
    static float exp(float x) {
        return x < EXP_LO ? 0f : expReduced(Math.min(x, EXP_HI), EXP_POLY);
    }

    /**
     * 2^k p(r) for xc already clamped to [{@link #EXP_LO}, {@link #EXP_HI}]: k = round(xc / ln 2), r = xc - k ln 2
     * (two-part ln 2), p the polynomial poly (highest degree first). The one range reduction every exp here shares
     * ({@link Bf16Attention} passes a shorter polynomial).
     */
    static FloatVector expReduced(FloatVector xc, float[] poly) {
        FloatVector t = xc.fma(LOG2E, ROUNDER);
        FloatVector k = t.sub(ROUNDER);
        FloatVector r = k.fma(FloatVector.broadcast(S, -LN2_HI), xc);
        r = k.fma(FloatVector.broadcast(S, -LN2_LO), r);
        FloatVector p = FloatVector.broadcast(S, poly[0]);
        for (int i = 1; i < poly.length; i++) {
            p = p.fma(r, FloatVector.broadcast(S, poly[i]));
        }
        IntVector bits = ((IntVector) t.reinterpretAsInts()).sub(ROUNDER_BITS).add(127).lanewise(VectorOperators.LSHL, 23);
        return p.mul((FloatVector) bits.reinterpretAsFloats());
    }

    /** The scalar twin of {@link #expReduced(FloatVector, float[])}: bit-identical lane by lane. */
    static float expReduced(float xc, float[] poly) {
        float t = Math.fma(xc, LOG2E, ROUNDER);
        float k = t - ROUNDER;
        float r = Math.fma(k, -LN2_HI, xc);
        r = Math.fma(k, -LN2_LO, r);
        float p = poly[0];
        for (int i = 1; i < poly.length; i++) {
            p = Math.fma(p, r, poly[i]);
        }
        return p * Float.intBitsToFloat((Float.floatToRawIntBits(t) - ROUNDER_BITS + 127) << 23);
    }

    /** Sum of the lanes in lane order: reduceLanes(ADD) may add in another order once compiled. */
    static float sumLanes(FloatVector v) {
        float[] lanes = new float[L];
        v.intoArray(lanes, 0);
        float s = 0;
        for (float f : lanes) {
            s += f;
        }
        return s;
    }

    /** x * sigmoid(x); exp(-x) overflowing to infinity gives the right limit, -0. */
    static FloatVector silu(FloatVector x) {
        return x.div(exp(x.neg()).add(1f));
    }

    static float silu(float x) {
        return x / (1 + exp(-x));
    }

    static FloatVector quickGelu(FloatVector x) {
        return x.div(exp(x.mul(-1.702f)).add(1f));
    }

    static float quickGelu(float x) {
        return x / (1 + exp(-1.702f * x));
    }

    /**
     * Exact GELU x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)), with erfc from the Chebyshev fit of Numerical Recipes
     * (absolute error below 1.2e-7). For negative x, 1 + erf = erfc(|z|) is used directly, so the small result does
     * not lose digits to cancellation.
     */
    static FloatVector gelu(FloatVector x) {
        FloatVector z = x.mul(INV_SQRT2);
        FloatVector az = z.abs();
        FloatVector t = az.mul(0.5f).add(1f);
        t = FloatVector.broadcast(S, 1f).div(t);
        FloatVector poly = t.mul(0.17087277f).add(-0.82215223f);
        poly = poly.mul(t).add(1.48851587f);
        poly = poly.mul(t).add(-1.13520398f);
        poly = poly.mul(t).add(0.27886807f);
        poly = poly.mul(t).add(-0.18628806f);
        poly = poly.mul(t).add(0.09678418f);
        poly = poly.mul(t).add(0.37409196f);
        poly = poly.mul(t).add(1.00002368f);
        poly = poly.mul(t).add(-1.26551223f);
        FloatVector erfc = t.mul(exp(poly.sub(az.mul(az))));
        // 1 + erf(z): 2 - erfc(z) for z >= 0, erfc(|z|) for z < 0
        FloatVector onePlusErf = erfc.neg().add(2f).blend(erfc, z.compare(VectorOperators.LT, 0f));
        return x.mul(0.5f).mul(onePlusErf);
    }

    static float gelu(float x) {
        double z = x / Math.sqrt(2);
        double az = Math.abs(z);
        double t = 1.0 / (1.0 + 0.5 * az);
        double erfc = t * Math.exp(-az * az - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return (float) (0.5 * x * (z >= 0 ? 2 - erfc : erfc));
    }
}

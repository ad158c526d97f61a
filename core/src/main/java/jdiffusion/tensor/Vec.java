package jdiffusion.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Vectorised activation functions shared by {@link Ops} (same formulas as the scalar ones in {@link Reference}). */
final class Vec {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();
    private static final float INV_SQRT2 = (float) (1 / Math.sqrt(2));

    private Vec() {
    }

    static FloatVector exp(FloatVector x) {
        return x.lanewise(VectorOperators.EXP);
    }

    /** x * sigmoid(x); exp(-x) overflowing to infinity gives the right limit, -0. */
    static FloatVector silu(FloatVector x) {
        return x.div(exp(x.neg()).add(1f));
    }

    static float silu(float x) {
        return x / (1 + (float) Math.exp(-x));
    }

    static FloatVector quickGelu(FloatVector x) {
        return x.div(exp(x.mul(-1.702f)).add(1f));
    }

    static float quickGelu(float x) {
        return x / (1 + (float) Math.exp(-1.702f * x));
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

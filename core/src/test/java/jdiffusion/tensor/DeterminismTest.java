package jdiffusion.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * The same inputs must give the same bits before and after the JIT compiles the kernels (so a seed reproduces its
 * image exactly), and the vector exp must be accurate and agree with its scalar twin lane by lane.
 */
class DeterminismTest {
    @Test
    void vectorExpMatchesItsScalarTwinAndMathExp() {
        Random rnd = new Random(5);
        float[] x = new float[4096];
        for (int i = 0; i < x.length; i++) {
            x[i] = (rnd.nextFloat() - 0.5f) * 200f; // covers underflow and overflow clamps
        }
        x[0] = 0f;
        x[1] = -87.5f;
        x[2] = 88.5f;
        float[] v = new float[x.length];
        for (int i = 0; i < x.length; i += Vec.L) {
            Vec.exp(FloatVector.fromArray(Vec.S, x, i)).intoArray(v, i);
        }
        for (int i = 0; i < x.length; i++) {
            float s = Vec.exp(x[i]);
            assertEquals(Float.floatToRawIntBits(s), Float.floatToRawIntBits(v[i]), "lane " + i + " x=" + x[i]);
            double want = x[i] < -87f ? 0 : Math.exp(Math.min(x[i], 88f));
            assertTrue(Math.abs(s - want) <= 3e-7 * want + 1e-37, "exp(" + x[i] + ") = " + s + ", want " + want);
        }
        assertEquals(1f, Vec.exp(0f));
    }

    @Test
    void kernelsGiveTheSameBitsColdAndWarm() {
        Random rnd = new Random(11);
        int rows = 37;
        int c = 64;
        float[] x = new float[rows * c];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian() * 3;
        }
        float[] gamma = new float[c];
        float[] beta = new float[c];
        for (int i = 0; i < c; i++) {
            gamma[i] = 1 + 0.1f * (float) rnd.nextGaussian();
            beta[i] = 0.1f * (float) rnd.nextGaussian();
        }
        float[][] cold = run(x, rows, c, gamma, beta);
        for (int i = 0; i < 3000; i++) {
            run(x, rows, c, gamma, beta);
        }
        float[][] warm = run(x, rows, c, gamma, beta);
        for (int k = 0; k < cold.length; k++) {
            assertArrayEquals(cold[k], warm[k], "output " + k + " changed after JIT warm-up");
        }
    }

    private static float[][] run(float[] x, int rows, int c, float[] gamma, float[] beta) {
        float[] gn = Ops.groupNorm(x, 1, rows, c, 32, gamma, beta, 1e-5f, true);
        float[] ln = Ops.layerNorm(x, rows, c, gamma, beta, 1e-5f);
        float[] sm = x.clone();
        Ops.softmaxRows(sm, rows, c);
        float[] ge = x.clone();
        Ops.geluInPlace(ge);
        float[] qg = x.clone();
        Ops.quickGeluInPlace(qg);
        float[] att = Ops.attention(x, x, x, 1, rows, rows, 2, c / 2, false);
        return new float[][] {gn, ln, sm, ge, qg, att};
    }
}

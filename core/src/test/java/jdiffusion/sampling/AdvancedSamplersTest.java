package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Registry wiring and seeded runs of the advanced sampler families (the golden runners check their numbers). */
class AdvancedSamplersTest {
    private static final List<String> BROWNIAN = List.of("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun",
            "dpmpp_3m_sde");

    @Test
    void everyComfyUiSamplerNameIsImplemented() {
        for (String name : Samplers.NAMES) {
            assertTrue(Samplers.isImplemented(name), name);
        }
        assertEquals(Samplers.NAMES, Samplers.implemented());
    }

    @Test
    void theSdeSamplersAndTheirGpuAliasesDrawFromTheBrownianTree() {
        double[] sigmas = {14.6, 3.0, 0.5, 0.03, 0.0};
        for (String name : BROWNIAN) {
            for (String n : List.of(name, name + "_gpu")) {
                SamplerInfo s = Samplers.get(n);
                assertSame(BrownianTreeNoise.FACTORY, s.noise(), n);
                BrownianTreeNoise tree = assertInstanceOf(BrownianTreeNoise.class, s.noise().create(7, 16, sigmas));
                assertEquals(0.03, tree.t0());
                assertEquals(14.6, tree.t1());
            }
        }
        assertTrue(Samplers.get("uni_pc").dropsPenultimateSigma());
        assertTrue(Samplers.get("uni_pc_bh2").dropsPenultimateSigma());
        assertFalse(Samplers.get("deis").dropsPenultimateSigma());
    }

    @Test
    void seededSdeRunsAreReproducibleAndDependOnTheSeed() {
        long[] shape = {1, 4, 8, 8};
        for (String name : BROWNIAN) {
            float[] a = run(name, shape, 42);
            float[] b = run(name, shape, 42);
            float[] c = run(name, shape, 43);
            assertArrayEquals(a, b, name + ": same seed, same result");
            double diff = 0;
            for (int i = 0; i < a.length; i++) {
                assertTrue(Float.isFinite(a[i]), name + " finite");
                diff = Math.max(diff, Math.abs(a[i] - c[i]));
            }
            assertTrue(diff > 1e-3, name + ": another seed gives other noise");
        }
    }

    private static float[] run(String sampler, long[] shape, long seed) {
        KSampler.Request r = new KSampler.Request(new AnalyticModel(shape), ModelSamplingDiscrete.DEFAULT,
                new float[4 * 8 * 8], 0.18215, seed, 6, 1.0, sampler, "karras", 1.0);
        return KSampler.sample(r, StepCallback.NONE);
    }

    @Test
    void saSolverCoefficientsIntegrateTheLagrangeBasis() {
        // b_j = alpha_t * integral over [ls, lt] of (1 + tau^2) e^{(1+tau^2)(l - lt)} L_j(l) dl: check by quadrature
        double[] lambdas = {-1.2, -0.7, -0.1};
        double ls = -0.1;
        double lt = 0.4;
        double tau = 1.0;
        double sigmaNext = Math.exp(-lt);
        double[] b = SaSolver.adamsCoefficients(sigmaNext, lambdas, ls, lt, tau);
        double tauMul = 1 + tau * tau;
        int n = 20000;
        for (int j = 0; j < lambdas.length; j++) {
            double sum = 0;
            for (int k = 0; k < n; k++) {
                double l = ls + (k + 0.5) * (lt - ls) / n;
                double basis = 1;
                for (int m = 0; m < lambdas.length; m++) {
                    if (m != j) {
                        basis *= (l - lambdas[m]) / (lambdas[j] - lambdas[m]);
                    }
                }
                sum += tauMul * Math.exp(tauMul * (l - lt)) * basis;
            }
            double expected = sigmaNext * Math.exp(lt) * sum * (lt - ls) / n;
            assertEquals(expected, b[j], 1e-7, "b_" + j);
        }
    }
}

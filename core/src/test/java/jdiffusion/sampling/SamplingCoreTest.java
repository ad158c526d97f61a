package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The denoiser wrappers, CFG, KSampler helpers and noise seeding, against the math they implement. */
class SamplingCoreTest {

    @Test
    void predictionTypesRecoverTheCleanLatent() {
        // x = x0 + sigma * eps; eps-prediction outputs eps, v-prediction outputs alpha * eps - sigma_vp * x0.
        Random r = new Random(1);
        for (double sigma : new double[] {0.03, 0.7, 3.0, 14.6}) {
            float[] x0 = new float[16];
            float[] eps = new float[16];
            float[] x = new float[16];
            float[] v = new float[16];
            double alpha = 1 / Math.sqrt(sigma * sigma + 1);
            double sigmaVp = sigma * alpha;
            for (int i = 0; i < 16; i++) {
                x0[i] = (float) r.nextGaussian();
                eps[i] = (float) r.nextGaussian();
                x[i] = (float) (x0[i] + sigma * eps[i]);
                v[i] = (float) (alpha * eps[i] - sigmaVp * x0[i]);
            }
            double tol = 2e-6 * (1 + sigma);
            assertArrayEquals(x0, PredictionType.EPS.denoised(x, eps, sigma), (float) tol, "eps at " + sigma);
            assertArrayEquals(x0, PredictionType.V.denoised(x, v, sigma), (float) tol, "v at " + sigma);
            assertArrayEquals(x0, PredictionType.X0.denoised(x, x0, sigma), 0f, "x0 at " + sigma);
        }
    }

    @Test
    void discreteModelScalesInputAndBatchesUncondFirst() {
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.DEFAULT;
        float[] x = {1f, -2f, 0.5f, 4f};
        double sigma = 2.5;
        float[] seenTimestep = new float[1];
        float[][] seenInput = new float[1][];
        // The network answers 1 on uncond rows and 2 on cond rows, so the halves are told apart.
        DiscreteModel.Network net = (xc, t, withUncond) -> {
            seenTimestep[0] = t;
            seenInput[0] = xc;
            float[] out = new float[xc.length];
            Arrays.fill(out, 0, xc.length / 2, withUncond ? 1f : 2f);
            Arrays.fill(out, xc.length / 2, xc.length, 2f);
            return out;
        };
        DiscreteModel model = new DiscreteModel(net, ms, PredictionType.EPS);
        ConditionalModel.Pair p = model.evaluate(x, sigma, true);
        assertEquals(625, (int) seenTimestep[0], "nearest training timestep of sigma 2.5");
        assertEquals(8, seenInput[0].length);
        for (int i = 0; i < 4; i++) {
            float scaled = (float) (x[i] / Math.sqrt(sigma * sigma + 1));
            assertEquals(scaled, seenInput[0][i], 1e-6f);
            assertEquals(scaled, seenInput[0][i + 4], 1e-6f);
            assertEquals(x[i] - 1f * sigma, p.uncond()[i], 1e-5);
            assertEquals(x[i] - 2f * sigma, p.cond()[i], 1e-5);
        }
        ConditionalModel.Pair single = model.evaluate(x, sigma, false);
        assertNull(single.uncond());
        assertEquals(4, seenInput[0].length);
    }

    @Test
    void cfgOneSkipsUncondUnlessForced() {
        int[] uncondCalls = {0};
        ConditionalModel m = (x, sigma, withUncond) -> {
            if (withUncond) {
                uncondCalls[0]++;
            }
            return new ConditionalModel.Pair(new float[] {3f}, withUncond ? new float[] {1f} : null);
        };
        Denoiser.Prediction skipped = Cfg.guider(m, 1.0, false).predict(new float[1], 1.0);
        assertEquals(0, uncondCalls[0]);
        assertEquals(3f, skipped.denoised()[0]);
        assertThrows(IllegalStateException.class, skipped::requireUncond);

        Denoiser.Prediction forced = Cfg.guider(m, 1.0, true).predict(new float[1], 1.0);
        assertEquals(1, uncondCalls[0]);
        assertEquals(3f, forced.denoised()[0]);
        assertEquals(1f, forced.requireUncond()[0]);

        assertEquals(1f + (3f - 1f) * 7.5f, Cfg.guider(m, 7.5, false).denoise(new float[1], 1.0)[0]);
    }

    @Test
    void latentScalingLeavesAnEmptyLatentAlone() {
        assertArrayEquals(new float[3], KSampler.processLatentIn(new float[3], 0.18215));
        assertArrayEquals(new float[] {0f, 0.18215f * 2f}, KSampler.processLatentIn(new float[] {0f, 2f}, 0.18215));
        assertArrayEquals(new float[] {2f / 0.13025f}, KSampler.processLatentOut(new float[] {2f}, 0.13025));
    }

    @Test
    void initialNoiseScaling() {
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.DEFAULT;
        assertTrue(KSampler.isMaxDenoise(ms, 14.614640235900879)); // normal's first sigma, 1 ulp below sigma_max
        assertTrue(KSampler.isMaxDenoise(ms, 20.0));
        assertTrue(!KSampler.isMaxDenoise(ms, 14.5));
        float[] full = KSampler.noiseScaling(14.614641189575195, new float[] {1f}, new float[] {0.5f}, true);
        assertEquals(Math.sqrt(1 + 14.614641189575195 * 14.614641189575195) + 0.5, full[0], 1e-5);
        float[] partial = KSampler.noiseScaling(0.8, new float[] {1f}, new float[] {0.5f}, false);
        assertEquals(1.3f, partial[0], 1e-6f);
    }

    @Test
    void setStepsWithDenoiseKeepsTheTail() {
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.DEFAULT;
        double[] full = Schedulers.sigmas("karras", ms, 26); // int(20 / 0.75) = 26
        double[] cut = KSampler.sigmas(ms, "karras", "euler", 20, 0.75);
        assertArrayEquals(Arrays.copyOfRange(full, full.length - 21, full.length), cut);
        double[] plain = Schedulers.sigmas("normal", ms, 11);
        double[] dropped = KSampler.sigmas(ms, "normal", "dpm_2", 10, 1.0);
        assertEquals(11, dropped.length);
        assertArrayEquals(Arrays.copyOf(plain, 10), Arrays.copyOf(dropped, 10));
        assertEquals(0.0, dropped[10]);
    }

    @Test
    void badScheduleSettingsAreRejectedClearly() {
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.DEFAULT;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KSampler.sigmas(ms, "normal", "euler", 20, 0.0));
        assertTrue(e.getMessage().contains("denoise"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KSampler.sigmas(ms, "normal", "euler", 20, 1.5));
        e = assertThrows(IllegalArgumentException.class, () -> KSampler.sigmas(ms, "normal", "euler", 0, 1.0));
        assertTrue(e.getMessage().contains("steps"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> KSampler.sigmas(ms, "nope", "euler", 5, 1.0));
        assertTrue(e.getMessage().contains("karras"), e.getMessage());
    }

    @Test
    void defaultNoiseIsSeedPlusOneTruncatedTo32BitsAndAdvances() {
        long seed = (1L << 32) + 5;
        NoiseSource noise = NoiseSources.DEFAULT.create(seed, 20, new double[] {1, 0});
        TorchGenerator reference = new TorchGenerator(6);
        assertArrayEquals(reference.randn(20), noise.next(1, 0.5));
        // the second call is the generator's second draw, whatever the sigmas
        assertArrayEquals(reference.randn(20), noise.next(0.5, 0.5));
        assertArrayEquals(TorchGenerator.randn(5, 20), KSampler.initialNoise(seed, 20));
    }

    @Test
    void lmsCoefficientsIntegrateTheLagrangeBasis() {
        double[] t = {14.6, 9.1, 5.5, 3.2, 1.7};
        // order 2 at step 1: nodes t1, t0; basis of t1 is (tau - t0) / (t1 - t0), integrated over [t1, t2]
        double exact = (Math.pow(t[2] - t[0], 2) - Math.pow(t[1] - t[0], 2)) / 2 / (t[1] - t[0]);
        assertEquals(exact, LmsSampler.coefficient(2, t, 1, 0), 1e-12);
        // the basis polynomials sum to 1, so the coefficients sum to the step
        for (int order = 1; order <= 4; order++) {
            double sum = 0;
            for (int j = 0; j < order; j++) {
                sum += LmsSampler.coefficient(order, t, 3, j);
            }
            assertEquals(t[4] - t[3], sum, 1e-12, "order " + order);
        }
    }
}

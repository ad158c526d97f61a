package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * ComfyUI's {@code _RF} ancestral samplers, which euler_ancestral and dpmpp_2s_ancestral become on a rectified-flow
 * model (x = (1 - sigma) x0 + sigma z): with a perfect denoiser (always the true x0), every step must land exactly
 * on the flow's marginal at sigma_next, x = (1 - sigma_next) x0 + sigma_next z' with z' a unit-variance mix of the
 * old z and fresh noise (the variance-exploding ancestral step would leave x0 unscaled and the noise too large);
 * the last step returns x0. The 2S midpoint is taken halfway in lambda = log((1 - sigma) / sigma).
 */
class RfAncestralSamplersTest {
    private static final int N = 200_000;
    private static final double[] SIGMAS = {1.0, 0.9, 0.75, 0.5, 0.0};

    private static float[] gaussian(long seed) {
        Random r = new Random(seed);
        float[] v = new float[N];
        for (int i = 0; i < N; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    private record Run(float[] out, List<float[]> stepX, List<Double> calledAt) {
    }

    private static Run run(String sampler, float[] x0) {
        List<Double> calls = new ArrayList<>();
        Denoiser perfect = Denoiser.of((x, sigma) -> {
            calls.add(sigma);
            return x0.clone();
        }).asFlow();
        List<float[]> steps = new ArrayList<>();
        long[] draws = {0};
        NoiseSource noise = (s, sn) -> gaussian(1000 + draws[0]++);
        float[] start = gaussian(7); // sigma 1: pure noise
        float[] out = Samplers.get(sampler).sampler().sample(perfect, start, SIGMAS.clone(), noise,
                (i, x, denoised) -> steps.add(x.clone()));
        return new Run(out, steps, calls);
    }

    /** The noise part of x at sigma, (x - (1 - sigma) x0) / sigma, must have unit variance and no x0 left in it. */
    private static void assertOnMarginal(float[] x, float[] x0, double sigma, String what) {
        double sq = 0;
        double dot = 0;
        for (int i = 0; i < N; i++) {
            double z = (x[i] - (1 - sigma) * x0[i]) / sigma;
            sq += z * z;
            dot += z * x0[i];
        }
        assertEquals(1.0, sq / N, 0.015, what + ": noise variance at sigma " + sigma);
        assertEquals(0.0, dot / N, 0.015, what + ": noise correlated with x0 at sigma " + sigma);
    }

    @Test
    void eulerAncestralOnAFlowModelStaysOnTheFlowMarginal() {
        float[] x0 = gaussian(3);
        for (int i = 0; i < N; i++) {
            x0[i] = 0.5f * x0[i] + 1.5f;
        }
        Run r = run("euler_ancestral", x0);
        // steps 1..3 start at sigma 0.9, 0.75, 0.5: the x each step starts from is the previous step's result
        for (int i = 1; i < SIGMAS.length - 1; i++) {
            assertOnMarginal(r.stepX().get(i), x0, SIGMAS[i], "euler_ancestral RF step " + i);
        }
        assertArrayEquals(x0, r.out(), "the last step returns denoised");
        assertEquals(List.of(1.0, 0.9, 0.75, 0.5), r.calledAt());
    }

    @Test
    void dpmpp2sAncestralOnAFlowModelStaysOnTheFlowMarginalWithTheLambdaMidpoint() {
        float[] x0 = gaussian(4);
        Run r = run("dpmpp_2s_ancestral", x0);
        for (int i = 1; i < SIGMAS.length - 1; i++) {
            assertOnMarginal(r.stepX().get(i), x0, SIGMAS[i], "dpmpp_2s_ancestral RF step " + i);
        }
        assertArrayEquals(x0, r.out());
        List<Double> calls = r.calledAt();
        // two calls per step but the last: sigma, then the midpoint (0.9999 from sigma 1, where lambda is infinite)
        assertEquals(7, calls.size(), calls.toString());
        assertEquals(0.9999, calls.get(1), 1e-15);
        for (int step = 1; step < 3; step++) {
            double s = SIGMAS[step];
            double next = SIGMAS[step + 1];
            double down = next * (1 + (next / s - 1)); // eta 1: sigma_down = sigma_next^2 / sigma
            double mid = calls.get(2 * step + 1);
            assertEquals(s, calls.get(2 * step), 0);
            assertEquals((lambda(s) + lambda(down)) / 2, lambda(mid), 1e-12, "midpoint of step " + step);
            assertTrue(mid < s && mid > down);
        }
    }

    private static double lambda(double sigma) {
        return Math.log((1 - sigma) / sigma);
    }

    @Test
    void withoutTheFlowMarkTheVarianceExplodingStepRuns() {
        // the same denoiser unmarked takes k-diffusion's step (sigma_down 0.81, sigma_up 0.392 from sigma 1 to 0.9):
        // x = z + (z - x0) (0.81 - 1) + 0.392 eps, whose flow-noise part still holds 0.1 x0
        float[] x0 = gaussian(5);
        float[] start = gaussian(7);
        List<float[]> steps = new ArrayList<>();
        long[] draws = {0};
        Samplers.get("euler_ancestral").sampler().sample(Denoiser.of((x, s) -> x0.clone()), start, SIGMAS.clone(),
                (s, sn) -> gaussian(1000 + draws[0]++), (i, x, d) -> steps.add(x.clone()));
        float[] eps = gaussian(1000);
        double up = 0.9 * Math.sqrt(1 - 0.81);
        double down = Math.sqrt(0.81 - up * up);
        for (int i = 0; i < 1000; i++) {
            double want = start[i] + (start[i] - (double) x0[i]) * (down - 1) + eps[i] * up;
            assertEquals(want, steps.get(1)[i], 1e-5);
        }
    }
}

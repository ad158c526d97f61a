package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicNode;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every ComfyUI sampler on a rectified-flow (CONST) model against a second implementation: ComfyUI's own sampler
 * functions run by {@code flowsde/make_reference.py} on a toy flow model whose denoiser is the exact posterior mean of
 * per-element Gaussian data (cond and uncond means, CFG), with recorded noise draws that are replayed here
 * ({@link RecordedNoise}), on ModelSamplingSD3's shift-3 "simple" schedules (one from sigma 1, where the half-log-SNR
 * samplers offset the first sigma, one img2img-like tail below 1). Each sampler must reproduce ComfyUI's final latent
 * (float32 against float32), consume the same number of draws and evaluate the model at the same sigmas. The
 * samplers ComfyUI runs unchanged on flow (the reference file has no entry for them) must give the same result
 * whether or not the model is marked as flow.
 */
class FlowSamplersTest {
    /** Relative tolerance: float32 reference against float32 latents computed in double per step. */
    private static final double RTOL = 1e-5;

    private static final JsonNode REF = load();

    /**
     * The samplers whose ComfyUI code takes another path on a CONST model: the _RF ancestral forms, the half-log-SNR
     * ones (lambda = log((1 - sigma) / sigma), first sigma offset), CFG++ Euler (alpha = 1 - sigma) and lcm (CONST
     * noise_scaling). All other names run the same code on flow as on eps.
     */
    private static final java.util.Set<String> CHANGED_ON_FLOW = java.util.Set.of("euler_ancestral", "euler_cfg_pp",
            "euler_ancestral_cfg_pp", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
            "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde", "lcm", "er_sde", "seeds_2", "seeds_3",
            "exp_heun_2_x0", "exp_heun_2_x0_sde", "sa_solver", "sa_solver_pece");

    private static JsonNode load() {
        try (InputStream in = FlowSamplersTest.class.getResourceAsStream("/flowsde/flow_samplers.json")) {
            if (in == null) {
                throw new IllegalStateException("flowsde/flow_samplers.json missing from the test resources");
            }
            return new ObjectMapper().readTree(in);
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static float[] floats(JsonNode array) {
        float[] out = new float[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) array.get(i).asDouble();
        }
        return out;
    }

    private static double[] doubles(JsonNode array) {
        double[] out = new double[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asDouble();
        }
        return out;
    }

    /** E[x0 | x_t] of x0 ~ N(mu, s^2), x_t = (1 - t) x0 + t eps, rounded to float32 (as the reference model). */
    private static float[] posterior(float[] x, double t, float[] mu, float[] std) {
        float[] out = new float[x.length];
        for (int k = 0; k < x.length; k++) {
            double s2 = (double) std[k] * std[k];
            double gain = (1 - t) * s2 / ((1 - t) * (1 - t) * s2 + t * t);
            out[k] = (float) (mu[k] + gain * (x[k] - (1 - t) * mu[k]));
        }
        return out;
    }

    /** The toy model: CFG in float32 as ComfyUI combines it; sigma seen as the float32 the reference passes. */
    private static Denoiser toy(List<Double> calls) {
        JsonNode toy = REF.get("toy");
        float[] muC = floats(toy.get("mu_cond"));
        float[] muU = floats(toy.get("mu_uncond"));
        float[] std = floats(toy.get("std"));
        float cfg = (float) REF.get("cfg").asDouble();
        return (x, sigma) -> {
            calls.add(sigma);
            double t = (float) sigma;
            float[] cond = posterior(x, t, muC, std);
            float[] uncond = posterior(x, t, muU, std);
            float[] guided = new float[x.length];
            for (int k = 0; k < x.length; k++) {
                guided[k] = uncond[k] + (cond[k] - uncond[k]) * cfg;
            }
            return new Denoiser.Prediction(guided, uncond);
        };
    }

    private static ModelSamplingDiscrete modelSampling() {
        return ModelSamplingDiscrete.flow(REF.get("shift").asDouble());
    }

    private static List<float[]> draws() {
        List<float[]> out = new ArrayList<>();
        for (JsonNode d : REF.get("noise")) {
            out.add(floats(d));
        }
        return out;
    }

    private record Run(float[] out, int draws, List<Double> calls) {
    }

    private static Run run(String sampler, JsonNode c, boolean flow) {
        List<Double> calls = new ArrayList<>();
        Denoiser model = toy(calls);
        if (flow) {
            model = model.asFlow(modelSampling());
        }
        RecordedNoise noise = new RecordedNoise(draws());
        double[] sigmas = doubles(c.get("sigmas"));
        double[] given = sigmas.clone();
        float[] x = floats(c.get("x"));
        float[] xGiven = x.clone();
        float[] out = Samplers.get(sampler).sampler().sample(model, x, sigmas, noise, StepCallback.NONE);
        assertArrayEquals(given, sigmas, sampler + " modified the sigmas");
        assertArrayEquals(xGiven, x, sampler + " modified x");
        return new Run(out, noise.used(), calls);
    }

    private static void assertMatches(String sampler, JsonNode c, JsonNode expected) {
        Run r = run(sampler, c, true);
        float[] want = floats(expected.get("x"));
        assertEquals(expected.get("draws").asInt(), r.draws(), sampler + ": noise draws");
        double[] wantCalls = doubles(expected.get("model_sigmas"));
        assertEquals(wantCalls.length, r.calls().size(), sampler + ": model evaluations");
        for (int i = 0; i < wantCalls.length; i++) {
            assertEquals(wantCalls[i], r.calls().get(i), 1e-6 * Math.max(1, wantCalls[i]),
                    sampler + ": sigma of model evaluation " + i);
        }
        double scale = 0;
        double err = 0;
        for (int k = 0; k < want.length; k++) {
            scale = Math.max(scale, Math.abs(want[k]));
            err = Math.max(err, Math.abs(want[k] - r.out()[k]));
            assertTrue(Float.isFinite(r.out()[k]), sampler + ": non-finite output at " + k);
        }
        double rel = err / Math.max(1.0, scale);
        System.out.printf("flow %-32s %-7s max |err| %.3g (relative %.3g)%n", sampler, c.get("name").asText(), err,
                rel);
        assertTrue(rel <= RTOL, sampler + ": max |err| " + err + " against max |x| " + scale);

        // the flow form is really another computation (or really the same one) as the eps form
        String base = sampler.endsWith("_gpu") ? sampler.substring(0, sampler.length() - 4) : sampler;
        float[] eps = run(sampler, c, false).out();
        if (CHANGED_ON_FLOW.contains(base)) {
            double diff = 0;
            for (int k = 0; k < want.length; k++) {
                diff = Math.max(diff, Math.abs(eps[k] - r.out()[k]));
            }
            assertTrue(diff > 1e-3, sampler + ": its eps form gives the same result, max |diff| " + diff);
        } else {
            assertArrayEquals(eps, r.out(), sampler + ": ComfyUI runs the same code on flow");
        }
    }

    @TestFactory
    Stream<DynamicNode> everySamplerOnFlow() {
        List<DynamicNode> out = new ArrayList<>();
        for (String name : Samplers.NAMES) {
            String refName = name.endsWith("_gpu") ? name.substring(0, name.length() - 4) : name;
            List<DynamicTest> cases = new ArrayList<>();
            for (JsonNode c : REF.get("cases")) {
                JsonNode expected = c.get("outputs").get(refName);
                String caseName = c.get("name").asText();
                if (expected != null) {
                    cases.add(DynamicTest.dynamicTest(caseName, () -> assertMatches(name, c, expected)));
                } else {
                    // ComfyUI runs these without looking at the model sampling: flow changes nothing
                    cases.add(DynamicTest.dynamicTest(caseName + " (unchanged on flow)", () -> {
                        Run flow = run(name, c, true);
                        Run eps = run(name, c, false);
                        assertArrayEquals(eps.out(), flow.out(), name + " differs on a flow model");
                        assertEquals(eps.draws(), flow.draws(), name + ": noise draws");
                    }));
                }
            }
            out.add(DynamicContainer.dynamicContainer(name, cases));
        }
        return out.stream();
    }

    /** The reference schedules are ours: ComfyUI's simple scheduler on ModelSamplingSD3's shift-3 table. */
    @Test
    void referenceSchedulesAreOurSimpleSchedules() {
        double[] full = Schedulers.sigmas("simple", modelSampling(), 10);
        double[] ref = doubles(REF.get("cases").get(0).get("sigmas"));
        assertArrayEquals(ref, full, 1e-7);
        double[] longer = Schedulers.sigmas("simple", modelSampling(), 14);
        double[] tail = java.util.Arrays.copyOfRange(longer, longer.length - 9, longer.length);
        assertArrayEquals(doubles(REF.get("cases").get(1).get("sigmas")), tail, 1e-7);
    }

    /** offset_first_sigma_for_snr: only a flow schedule starting at sigma >= 1 changes, to percent_to_sigma(1e-4). */
    @Test
    void firstSigmaOffset() {
        Denoiser plain = Denoiser.of((x, s) -> x);
        Denoiser flow = plain.asFlow(ModelSamplingDiscrete.flow(3.0));
        double[] s = {1.0, 0.5, 0.0};
        assertArrayEquals(s, SamplerMath.offsetFirstSigma(s, plain));
        double[] off = SamplerMath.offsetFirstSigma(s, flow);
        assertEquals((float) (3 * 0.9999 / (1 + 2 * 0.9999)), off[0], 0.0);
        assertEquals(1.0, s[0], "the input is not modified");
        double[] below = {0.9, 0.5, 0.0};
        assertArrayEquals(below, SamplerMath.offsetFirstSigma(below, flow));
        // without its model sampling a flow denoiser cannot be offset: a clear error, not a silent shift
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> SamplerMath.offsetFirstSigma(s, plain.asFlow()));
        assertTrue(e.getMessage().contains("asFlow(modelSampling)"), e.getMessage());
    }

    /** The half log-SNR and its inverse: -log sigma / exp(-lambda), logit form for flow; round trips. */
    @Test
    void halfLogSnr() {
        assertEquals(-Math.log(0.25), SamplerMath.halfLogSnr(0.25, false), 0.0);
        assertEquals(Math.log(3.0), SamplerMath.halfLogSnr(0.25, true), 1e-15);
        assertEquals(Double.NEGATIVE_INFINITY, SamplerMath.halfLogSnr(1.0, true));
        assertEquals(Double.POSITIVE_INFINITY, SamplerMath.halfLogSnr(0.0, true));
        for (double sigma : new double[] {0.01, 0.3, 0.5, 0.97}) {
            assertEquals(sigma, SamplerMath.sigmaOfHalfLogSnr(SamplerMath.halfLogSnr(sigma, true), true), 1e-15);
            assertEquals(sigma, SamplerMath.sigmaOfHalfLogSnr(SamplerMath.halfLogSnr(sigma, false), false), 1e-15);
            // alpha = sigma * exp(lambda) = 1 - sigma on flow
            assertEquals(1 - sigma, sigma * Math.exp(SamplerMath.halfLogSnr(sigma, true)), 1e-15);
        }
    }
}

package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The golden cases of the SDE / multistep / adaptive sampler families (samplers/index.json, ComfyUI's own code on
 * the analytic denoisers D_A and D_B): x_start and the sigmas from the case, every noise draw replayed from the
 * recorded {@code noise_draws}, and the output compared at the README's check
 * {@code max(10 * f32_vs_f64.max_abs, 1e-5 * max(1, max|golden|))}.
 */
class AdvancedSamplersGoldenTest {
    static final Set<String> FAMILY = Set.of("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde",
            "exp_heun_2_x0_sde", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "deis", "uni_pc",
            "uni_pc_bh2", "dpm_fast", "dpm_adaptive");

    @TestFactory
    List<DynamicTest> advancedSamplerCases() {
        Path dir = Golden.dir().resolve("samplers");
        JsonNode index = Golden.json(dir.resolve("index.json"));
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : index.path("cases")) {
            String sampler = c.path("sampler").asText();
            if (FAMILY.contains(sampler)) {
                tests.add(DynamicTest.dynamicTest(c.path("id").asText(),
                        () -> runCase(dir, dir.resolve(c.path("manifest").asText()))));
            }
        }
        assertTrue(tests.size() > 100, "index.json lists the advanced samplers' cases");
        return tests;
    }

    static void runCase(Path dir, Path manifest) throws Exception {
        JsonNode m = Golden.json(manifest);
        SamplerInfo info = Samplers.get(m.path("sampler").asText());
        int[] shape = new int[m.path("shape").size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = m.path("shape").get(i).asInt();
        }
        try (SafeTensors st = SafeTensors.open(dir.resolve(m.path("tensor_file").asText()))) {
            float[] xStart = st.floats("x_start");
            float[] sigmaF = st.floats("sigmas");
            double[] sigmas = new double[sigmaF.length];
            for (int i = 0; i < sigmas.length; i++) {
                sigmas[i] = sigmaF[i];
            }
            NoiseSource noise = st.contains("noise_draws") ? recorded(st.floats("noise_draws"), xStart.length)
                    : (s, sn) -> {
                        throw new AssertionError("unexpected noise draw at sigma " + s);
                    };
            Denoiser model = analytic(shape, m.path("cfg").asDouble(), m.path("uncond_evaluated").asBoolean());
            float[] samples = info.sampler().sample(model, xStart, sigmas, noise, StepCallback.NONE);
            double scale = m.path("latent_scale_factor").asDouble();
            float[] output = new float[samples.length];
            for (int i = 0; i < output.length; i++) {
                output[i] = (float) (samples[i] / scale);
            }
            float[] golden = st.floats("output");
            double maxAbs = 0;
            for (float g : golden) {
                maxAbs = Math.max(maxAbs, Math.abs(g));
            }
            double tol = Math.max(10 * m.path("f32_vs_f64").path("max_abs").asDouble(), 1e-5 * Math.max(1, maxAbs));
            Golden.assertClose(m.path("id").asText() + " output", golden, output, tol);
            if (noise instanceof RecordedNoise rec) {
                assertEquals(m.path("n_noise_draws").asInt(), rec.used(), "noise draws consumed");
            }
        }
    }

    static NoiseSource recorded(float[] all, int size) {
        List<float[]> draws = new ArrayList<>();
        for (int off = 0; off + size <= all.length; off += size) {
            draws.add(Arrays.copyOfRange(all, off, off + size));
        }
        return new RecordedNoise(draws);
    }

    /** cond = D_A, uncond = D_B, ComfyUI's CFG in x0 space; uncond skipped at cfg 1 unless the case evaluated it. */
    static Denoiser analytic(int[] shape, double cfg, boolean uncondEvaluated) {
        int channels = shape[1];
        int plane = shape[2] * shape[3];
        return (x, sigma) -> {
            float[] cond = new float[x.length];
            float[] uncond = uncondEvaluated ? new float[x.length] : null;
            float s = (float) sigma;
            for (int i = 0; i < x.length; i++) {
                double c = (i / plane) % channels - 1.5;
                double v = x[i];
                cond[i] = (float) (0.8 * Math.tanh(v) / (1 + 0.1 * s) + 0.05 * v / (1 + s * s) + 0.1 * c / (1 + s));
                if (uncond != null) {
                    uncond[i] = (float) (0.6 * Math.sin(v) / (1 + 0.2 * s) - 0.02 * v / (1 + s * s)
                            - 0.05 * c / (1 + s));
                }
            }
            if (uncond == null) {
                return new Denoiser.Prediction(cond, null);
            }
            return new Denoiser.Prediction(Cfg.combine(cond, uncond, cfg), uncond);
        };
    }
}

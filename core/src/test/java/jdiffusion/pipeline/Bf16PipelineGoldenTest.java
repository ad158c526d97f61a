package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.tensor.Precision;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The diffusers txt2img golden cases (Euler family: {@code pipe_sd1_txt2img_*}, {@code pipe_sdxl_txt2img_*}) run on
 * the bf16 path, fp16 file and fp32 twin, against the fp32 goldens.
 *
 * <p>The bound. One bf16 product has a relative error of about 2^-9 per rounded input (2^-8 worst case per term,
 * less on average as the errors of a sum's terms are independent): 0.2-0.4% relative L2 per product. A UNet pass
 * chains some 20-40 products (convolutions, attention projections, attention's QK^T and PV, feed-forward) whose
 * errors add up in quadrature through the residual stream, classifier-free guidance multiplies the difference of two
 * such outputs by the cfg scale (7.5 in the SD1 cases), and each sampler step feeds the next. Measured on these cases
 * the final latents' relative L2 error is 1.0% and 1.3% (SD1, cfg 7.5, Euler and Euler ancestral) and 0.55% (SDXL)
 * with attention in bf16 too (1.1%, 1.4%, 0.5% with -Djdiffusion.bf16.attention=off), the same for the fp16 file
 * and its fp32 twin (bf16 weights from either are identical); PNGs differ by at most 5 levels. The test
 * allows {@value #LATENT_REL_L2} (3.5 times the worst measured, still invisible) and {@value #PNG_LEVELS} levels.
 */
class Bf16PipelineGoldenTest {
    static final double LATENT_REL_L2 = 0.05;
    static final int PNG_LEVELS = 8;
    private static final Set<String> SAMPLERS = Set.of("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler");

    @TestFactory
    Stream<DynamicTest> txt2imgCasesInBf16() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifests("pipe_")) {
            String name = Golden.caseName(manifest);
            JsonNode p = PipeGolden.json(manifest).path("params");
            if (!name.matches("pipe_(sd1|sdxl)_txt2img_.*") || !SAMPLERS.contains(p.path("scheduler_class").asText())
                    || p.has("lora") || p.has("embedding") || p.has("img2img")) {
                continue;
            }
            for (String dtype : List.of("fp16", "fp32")) {
                tests.add(DynamicTest.dynamicTest(name + " [" + dtype + ", bf16]", () -> run(manifest, dtype)));
            }
        }
        assertTrue(tests.size() >= 2, "txt2img Euler cases found: " + tests.size());
        return tests.stream();
    }

    @AfterAll
    static void cleanUp() throws Exception {
        PipelineGoldenTest.cleanUp();
    }

    private static void run(Path manifest, String dtype) throws Exception {
        assumeTrue(Precision.describe(Precision.BF16).startsWith("bf16 via oneDNN"), Precision.describe(Precision.BF16));
        String caseName = Golden.caseName(manifest);
        JsonNode m = PipeGolden.json(manifest);
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        String sampler = p.path("scheduler_class").asText().equals("EulerDiscreteScheduler") ? "euler" : "euler_ancestral";
        String predictionType = p.path("scheduler_config").path("prediction_type").asText("epsilon");
        GenerateRequest request = GenerateRequest.builder(PipelineGoldenTest.checkpoint(p.path("model").asText(), dtype))
                .prompt(call.path("prompt").asText())
                .negativePrompt(call.hasNonNull("negative_prompt") ? call.get("negative_prompt").asText() : null)
                .steps(call.path("num_inference_steps").asInt())
                .cfg(call.path("guidance_scale").asDouble())
                .seed(p.path("generator_seed").asLong(100))
                .scheduler(p.path("scheduler_config").path("timestep_spacing").asText())
                .prediction(predictionType.equals("v_prediction") ? GenerateRequest.Prediction.V
                        : GenerateRequest.Prediction.EPS)
                .sampler(sampler)
                .size(p.path("size_hw").get(1).asInt(), p.path("size_hw").get(0).asInt())
                .build();
        GenerateResult r;
        try (PipelineModels models = Pipeline.load(request, Precision.BF16)) {
            r = Pipeline.generate(models, request, ProgressListener.NONE, CancellationToken.none());
        }
        try (SafeTensors t = Golden.tensors(manifest)) {
            float[] expected = t.floats(m.path("outputs").path("latents_final").get("tensor").asText());
            float[] got = r.latent();
            assertEquals(expected.length, got.length, caseName + " latents size");
            double num = 0;
            double den = 0;
            for (int i = 0; i < got.length; i++) {
                num += (got[i] - (double) expected[i]) * (got[i] - (double) expected[i]);
                den += (double) expected[i] * expected[i];
            }
            double rel = Math.sqrt(num / den);
            System.out.printf("%s [%s] bf16: final latents relative L2 error %.5f%n", caseName, dtype, rel);
            assertTrue(rel <= LATENT_REL_L2, caseName + " bf16 latents rel. L2 error " + rel + " > " + LATENT_REL_L2);
            assertTrue(rel > 1e-6, caseName + ": no bf16 rounding visible, the native path did not run");
        }
        PngImage expected = PngReader.read(manifest.resolveSibling(p.path("png").path("file").asText()));
        PngImage ours = r.images().get(0);
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (ours.rgb()[i] & 0xFF)));
        }
        System.out.printf("%s [%s] bf16: PNG max level difference %d%n", caseName, dtype, worst);
        assertTrue(worst <= PNG_LEVELS, caseName + " bf16 PNG max level difference " + worst + " > " + PNG_LEVELS);
    }
}

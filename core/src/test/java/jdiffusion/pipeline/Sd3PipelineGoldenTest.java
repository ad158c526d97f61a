package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.PngImage;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The SD3.5 pipeline cases end to end through the library API ({@link Pipeline}, {@link GenerateRequest}), text
 * encoders included: diffusers' StableDiffusion3Pipeline with and without T5 ({@code pipe_sd35_*}: first MMDiT
 * call's inputs and output, latents after every step, final latents, image, PNG) and ComfyUI's KSampler semantics
 * ({@code pipe_comfy_sd35_*}: first call, x and denoised per step, final latents, image, PNG); fp16 and fp32 files.
 * The tiny CLIPs' head counts (not readable from shapes) come from the {@code textenc_sd35_clip_*} manifests.
 */
class Sd3PipelineGoldenTest {

    @TestFactory
    Stream<DynamicTest> everySd3PipelineCase() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path m : Golden.manifestsIn("sd35", "pipe_")) {
            String name = Golden.caseName(m);
            if (!name.startsWith("pipe_sd35") && !name.startsWith("pipe_comfy_sd35")) {
                continue;
            }
            for (String dtype : List.of("fp16", "fp32")) {
                tests.add(DynamicTest.dynamicTest(name + " [" + dtype + "]", () -> {
                    if (name.startsWith("pipe_comfy_")) {
                        comfy(m, dtype);
                    } else {
                        diffusers(m, dtype);
                    }
                }));
            }
        }
        return tests.stream();
    }

    static int heads(String clip) {
        return Golden.json(Golden.manifestsIn("sd35", "textenc_sd35_" + clip).getFirst()).get("params")
                .get("config").get("num_attention_heads").asInt();
    }

    private static void diffusers(Path manifest, String dtype) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = PipeGolden.json(manifest);
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        String model = p.path("model").asText();
        boolean noT5 = model.contains("NOT used") || m.path("description").asText().contains("text_encoder_3=None");
        GenerateRequest request = GenerateRequest.builder(PipelineGoldenTest.checkpoint(model, dtype))
                .prompt(call.path("prompt").asText())
                .negativePrompt(call.hasNonNull("negative_prompt") ? call.get("negative_prompt").asText() : null)
                .steps(call.path("num_inference_steps").asInt())
                .cfg(call.path("guidance_scale").asDouble())
                .seed(p.path("generator_seed").asLong())
                .size(call.path("width").asInt(), call.path("height").asInt())
                .sampler("euler").scheduler("linspace")
                .sd3(new GenerateRequest.Sd3Options(null, noT5, null, null,
                        p.path("scheduler_config").path("shift").asDouble(),
                        call.path("max_sequence_length").asInt(256), heads("clip_l"), heads("clip_g")))
                .build();
        PipelineGoldenTest.StepRecorder steps = new PipelineGoldenTest.StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifest);
             RecordingModels models = new RecordingModels(Sd3Models.load(request))) {
            PngImage init = RequestValidator.validate(request);
            r = Pipeline.generate(models, request, init, null, steps, CancellationToken.none(), new Timings());
            JsonNode in = m.path("inputs");
            Golden.assertClose(name + " call0.hidden_states", t.floats(in.path("call0.hidden_states").path("tensor")
                    .asText()), models.firstX, 1e-6);
            assertEquals(t.floats(in.path("call0.timestep").path("tensor").asText())[0], models.firstTimesteps[0],
                    1e-3, name + " call0.timestep");
            Golden.assertClose(name + " call0.encoder_hidden_states", t.floats(in.path("call0.encoder_hidden_states")
                    .path("tensor").asText()), models.firstContext, 1e-4);
            Golden.assertClose(name + " call0.pooled_projections", t.floats(in.path("call0.pooled_projections")
                    .path("tensor").asText()), models.firstY, 1e-4);
            PipeGolden.check(name, m, t, "call0.out", models.firstOut);
            List<float[]> after = new ArrayList<>(steps.xs.subList(1, steps.xs.size()));
            after.add(r.latent());
            PipeGolden.check(name, m, t, "step_latents", concat(after));
            PipeGolden.check(name, m, t, "latents_final", r.latent());
            PipeGolden.check(name, m, t, "image01", r.image01());
        }
        JsonNode png = p.path("png");
        PipeGolden.checkPng(name, manifest.resolveSibling(png.path("file").asText()), r.images().get(0),
                png.path("recommended_tolerance").asInt(1));
    }

    private static void comfy(Path manifest, String dtype) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = PipeGolden.json(manifest);
        JsonNode p = m.path("params");
        GenerateRequest request = GenerateRequest.builder(PipelineGoldenTest.checkpoint(p.path("model").asText(),
                        dtype))
                .prompt(p.path("prompt").asText())
                .negativePrompt(p.path("negative").asText(""))
                .size(p.path("width").asInt(), p.path("height").asInt())
                .batch(p.path("batch").asInt(1))
                .seed(p.path("seed").asLong())
                .steps(p.path("steps").asInt())
                .cfg(p.path("cfg").asDouble())
                .sampler(p.path("sampler_name").asText())
                .scheduler(p.path("scheduler").asText())
                .denoise(p.path("denoise").asDouble(1.0))
                .sd3(new GenerateRequest.Sd3Options(null, false, null, null,
                        p.path("model_sampling").path("shift").asDouble(), null, heads("clip_l"), heads("clip_g")))
                .build();
        PipelineGoldenTest.StepRecorder steps = new PipelineGoldenTest.StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifest);
             RecordingModels models = new RecordingModels(Sd3Models.load(request))) {
            PngImage init = RequestValidator.validate(request);
            r = Pipeline.generate(models, request, init, null, steps, CancellationToken.none(), new Timings());
            Golden.assertClose(name + " call0.x", t.floats("out.call0.x"), models.firstX, 1e-6);
            Golden.assertClose(name + " call0.context", t.floats("out.call0.context"), models.firstContext, 1e-4);
            Golden.assertClose(name + " call0.y", t.floats("out.call0.y"), models.firstY, 1e-4);
            assertEquals(t.floats("out.call0.timestep")[0], models.firstTimesteps[0], 1e-3, name + " timestep");
            PipeGolden.check(name, m, t, "call0.model_output", models.firstOut);
            PipeGolden.check(name, m, t, "step_x", concat(steps.xs));
            PipeGolden.check(name, m, t, "step_denoised", concat(steps.denoised));
            PipeGolden.check(name, m, t, "latents_final", r.latent());
            PipeGolden.check(name, m, t, "image01", r.image01());
        }
        JsonNode png = p.path("png");
        PipeGolden.checkPng(name, manifest.resolveSibling(png.path("file").asText()), r.images().get(0),
                png.path("recommended_tolerance").asInt(1));
    }

    private static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int at = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, out, at, a.length);
            at += a.length;
        }
        return Arrays.copyOf(out, n);
    }
}

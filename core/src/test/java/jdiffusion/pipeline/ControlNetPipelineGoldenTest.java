package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.PngImage;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.model.ControlResiduals;
import jdiffusion.sampling.PredictionType;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every ControlNet pipeline golden case through the library API ({@link Pipeline#generate}): the diffusers
 * {@code pipe_*controlnet*} cases (first UNet call, the residuals of the manifest's ControlNet call, which calls were
 * steered, every step's latents, final latents, image, PNG) and the ComfyUI case {@code pipe_comfy_*controlnet*}
 * (first call inside the sigma window, per-step x and denoised, final latents, image, PNG); each with every
 * ControlNet layout the manifest names and with fp16 and fp32 weights.
 */
class ControlNetPipelineGoldenTest {
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?\\.safetensors)");

    @TestFactory
    Stream<DynamicTest> everyControlNetPipelineCase(@TempDir Path tmp) {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path m : Golden.manifestsIn("controlnet", "pipe_")) {
            if (!Golden.caseName(m).contains("controlnet")) {
                continue;
            }
            JsonNode p = PipeGolden.json(m).path("params");
            for (Map.Entry<String, String> layout : layouts(p.path("controlnet_model")).entrySet()) {
                for (String dtype : List.of("fp16", "fp32")) {
                    String name = Golden.caseName(m) + " [" + layout.getKey() + ", " + dtype + "]";
                    Path cn = Golden.model(layout.getValue());
                    tests.add(DynamicTest.dynamicTest(name, () -> {
                        Path file = dtype.equals("fp16") ? cn : fp32(cn, tmp);
                        Path base = baseModel(p.path("model").asText(), dtype, tmp);
                        if (Golden.caseName(m).startsWith("pipe_comfy_")) {
                            comfyCase(m, file, base);
                        } else {
                            diffusersCase(m, file, base);
                        }
                    }));
                }
            }
        }
        return tests.stream();
    }

    /** layout name -> models/ file: "ldm_layout"/"diffusers_layout" entries, or the single "file". */
    static Map<String, String> layouts(JsonNode controlnetModel) {
        Map<String, String> out = new java.util.LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : controlnetModel.properties()) {
            if (e.getKey().endsWith("_layout") || e.getKey().equals("file")) {
                Matcher mm = MODEL.matcher(e.getValue().asText());
                if (mm.find()) {
                    out.put(e.getKey(), mm.group(1));
                }
            }
        }
        if (out.isEmpty()) {
            throw new AssertionError("manifest names no ControlNet file: " + controlnetModel);
        }
        return out;
    }

    /** The checkpoint the manifest names: the shipped fp16 file or its fp32 twin written into dir. */
    static Path baseModel(String modelParam, String dtype, Path dir) throws Exception {
        Matcher mm = MODEL.matcher(modelParam);
        if (!mm.find()) {
            throw new AssertionError("no models/<file>.safetensors in '" + modelParam + "'");
        }
        Path fp16 = Golden.model(mm.group(1).replaceAll("-fp(16|32)\\.safetensors$", "-fp16.safetensors"));
        return dtype.equals("fp16") ? fp16 : fp32(fp16, dir);
    }

    static Path fp32(Path fp16, Path dir) throws Exception {
        Path twin = dir.resolve(fp16.getFileName().toString().replace("-fp16.", "-fp32."));
        synchronized (ControlNetPipelineGoldenTest.class) {
            if (!Files.exists(twin)) {
                try (SafeTensors src = SafeTensors.open(fp16)) {
                    SafeTensorsWriter.convert(src, twin, DType.F32, false);
                }
            }
        }
        return twin;
    }

    private static void diffusersCase(Path manifest, Path controlNet, Path checkpoint) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = PipeGolden.json(manifest);
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        if (!p.path("scheduler_class").asText().equals("EulerDiscreteScheduler")) {
            throw new AssertionError(name + ": scheduler " + p.path("scheduler_class").asText() + " has no mapping");
        }
        double start = call.path("control_guidance_start").asDouble(0.0);
        double end = call.path("control_guidance_end").asDouble(1.0);
        GenerateRequest request = GenerateRequest.builder(checkpoint)
                .prompt(call.path("prompt").asText())
                .negativePrompt(call.hasNonNull("negative_prompt") ? call.get("negative_prompt").asText() : null)
                .steps(call.path("num_inference_steps").asInt())
                .cfg(call.path("guidance_scale").asDouble())
                .seed(p.path("generator_seed").asLong())
                .scheduler(p.path("scheduler_config").path("timestep_spacing").asText())
                .sampler("euler")
                .size(p.path("size_hw").get(1).asInt(), p.path("size_hw").get(0).asInt())
                .controls(List.of(new GenerateRequest.ControlSpec(controlNet,
                        manifest.resolveSibling(p.path("hint_png").asText()),
                        call.path("controlnet_conditioning_scale").asDouble(1.0), start, end, "none", 0.4, 0.8)))
                .build();
        PipelineGoldenTest.StepRecorder steps = new PipelineGoldenTest.StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifest);
             ControlRecorder models = new ControlRecorder(CheckpointModels.load(request))) {
            r = Pipeline.generate(models, request, RequestValidator.validate(request), null, steps,
                    CancellationToken.none(), new Timings());
            PipeGolden.check(name, m, t, "unet_call0.out", models.outs.getFirst());
            JsonNode calls = p.path("controlnet_calls");
            assertEquals(calls.size(), models.controls.size(), name + " UNet calls");
            for (int i = 0; i < calls.size(); i++) {
                boolean steered = calls.get(i).path("conditioning_scale").asDouble() != 0.0;
                assertEquals(steered, models.controls.get(i) != null, name + " call " + i + " steered");
            }
            int k = p.path("cn_call_index").asInt();
            ControlResiduals res = models.controls.get(k);
            assertNotNull(res, name + " ControlNet call " + k);
            if (m.path("inputs").has("cn_call.sample")) {
                Golden.assertClose(name + " cn_call.sample", t.floats(m.path("inputs").path("cn_call.sample")
                        .path("tensor").asText()), models.xs.get(k),
                        // the input of a later step carries the error of the steps before it
                        m.path("outputs").path("step_latents").path("tolerance").path("atol").asDouble());
            }
            for (int i = 0; i < res.down().size(); i++) {
                PipeGolden.check(name, m, t, "cn_call.down_res." + i, res.down().get(i).nchw());
            }
            assertNull(m.path("outputs").get("cn_call.down_res." + res.down().size()), name + " residual count");
            PipeGolden.check(name, m, t, "cn_call.mid_res", res.mid().nchw());
            if (m.path("outputs").has("cn_call.unet_out")) {
                PipeGolden.check(name, m, t, "cn_call.unet_out", models.outs.get(k));
            }
            JsonNode o = m.path("outputs").path("step_latents");
            float[] expected = t.floats(o.get("tensor").asText());
            int iterations = o.get("shape").get(0).asInt();
            int per = expected.length / iterations;
            assertEquals(iterations, steps.xs.size(), name + " loop iterations");
            for (int i = 0; i < iterations; i++) {
                float[] ours = i + 1 < steps.xs.size() ? steps.xs.get(i + 1) : r.latent();
                Golden.assertClose(name + " step_latents[" + i + "]",
                        Arrays.copyOfRange(expected, i * per, (i + 1) * per), ours,
                        o.path("tolerance").path("atol").asDouble());
            }
            PipeGolden.check(name, m, t, "latents_final", r.latent());
            PipeGolden.check(name, m, t, "image01", r.image01());
        }
        PipeGolden.checkPng(name, manifest.resolveSibling(p.path("png").path("file").asText()), r.images().get(0),
                p.path("png").path("recommended_tolerance").asInt(1));
    }

    private static void comfyCase(Path manifest, Path controlNet, Path checkpoint) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = PipeGolden.json(manifest);
        JsonNode p = m.path("params");
        GenerateRequest request = GenerateRequest.builder(checkpoint)
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
                .prediction(GenerateRequest.Prediction.EPS)
                .controls(List.of(new GenerateRequest.ControlSpec(controlNet,
                        manifest.resolveSibling(p.path("hint_png").asText()), p.path("strength").asDouble(),
                        p.path("start_percent").asDouble(), p.path("end_percent").asDouble(), "none", 0.4, 0.8)))
                .build();
        PipelineGoldenTest.StepRecorder steps = new PipelineGoldenTest.StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifest);
             ControlRecorder models = new ControlRecorder(CheckpointModels.load(request))) {
            r = Pipeline.generate(models, request, RequestValidator.validate(request), null, steps,
                    CancellationToken.none(), new Timings());
            checkComfyCalls(name, m, t, models);
            PipeGolden.check(name, m, t, "step_x", concat(steps.xs));
            PipeGolden.check(name, m, t, "step_denoised", concat(steps.denoised));
            PipeGolden.check(name, m, t, "latents_final", r.latent());
            PipeGolden.check(name, m, t, "image01", r.image01());
        }
        JsonNode files = p.path("png").path("files");
        assertEquals(files.size(), r.images().size(), name + " images");
        for (int i = 0; i < files.size(); i++) {
            PipeGolden.checkPng(name, manifest.resolveSibling(files.get(i).asText()), r.images().get(i),
                    p.path("png").path("recommended_tolerance").asInt(1));
        }
    }

    /** Which calls were steered (the sigma window), the first steered call's inputs, residuals and UNet output. */
    static void checkComfyCalls(String name, JsonNode m, SafeTensors t, ControlRecorder models) {
        JsonNode p = m.path("params");
        JsonNode calls = p.path("unet_calls");
        assertEquals(calls.size(), models.controls.size(), name + " UNet calls");
        for (int i = 0; i < calls.size(); i++) {
            assertEquals(calls.get(i).path("control_applied").asBoolean(), models.controls.get(i) != null,
                    name + " call " + i + " (sigma " + calls.get(i).path("sigma") + ") steered");
            assertEquals(calls.get(i).path("timestep").get(0).asDouble(), models.timesteps.get(i)[0], 0.0,
                    name + " call " + i + " timestep");
        }
        PipeGolden.check(name, m, t, "unet_call0.model_output", models.outs.getFirst());
        int k = p.path("control_call_index").asInt();
        ControlResiduals res = models.controls.get(k);
        assertNotNull(res, name + " control call " + k);
        Golden.assertClose(name + " control_call.x", t.floats(m.path("outputs").path("control_call.x").path("tensor")
                .asText()), models.xs.get(k), m.path("outputs").path("step_x").path("tolerance").path("atol").asDouble());
        for (int i = 0; i < res.down().size(); i++) {
            // ComfyUI's outputs are before strength; ours carry it
            float[] ours = res.down().get(i).nchw();
            PipeGolden.check(name, m, t, "control_call.output." + i, divide(ours, (float) p.path("strength").asDouble()));
        }
        PipeGolden.check(name, m, t, "control_call.middle", divide(res.mid().nchw(), (float) p.path("strength").asDouble()));
        if (m.path("outputs").has("control_call.unet_model_output")) {
            PipeGolden.check(name, m, t, "control_call.unet_model_output", models.outs.get(k));
        }
    }

    private static float[] divide(float[] v, float d) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i] / d;
        }
        return out;
    }

    static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int at = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, out, at, a.length);
            at += a.length;
        }
        return out;
    }

    /** Passes everything to the real models and keeps every UNet call's input, timesteps, residuals and output. */
    static final class ControlRecorder implements PipelineModels {
        private final PipelineModels inner;
        final List<float[]> xs = new ArrayList<>();
        final List<float[]> timesteps = new ArrayList<>();
        final List<ControlResiduals> controls = new ArrayList<>();
        final List<float[]> outs = new ArrayList<>();

        ControlRecorder(PipelineModels inner) {
            this.inner = inner;
        }

        @Override
        public String family() {
            return inner.family();
        }

        @Override
        public PredictionType detectedPrediction() {
            return inner.detectedPrediction();
        }

        @Override
        public double latentScale() {
            return inner.latentScale();
        }

        @Override
        public TextCond encodeText(String prompt, int clipSkip) {
            return inner.encodeText(prompt, clipSkip);
        }

        @Override
        public float[] unet(float[] x, int batch, int h, int w, float[] t, float[] context, int tokens, float[] y) {
            return unet(x, batch, h, w, t, context, tokens, y, null);
        }

        @Override
        public float[] unet(float[] x, int batch, int h, int w, float[] t, float[] context, int tokens, float[] y,
                ControlResiduals control) {
            float[] out = inner.unet(x, batch, h, w, t, context, tokens, y, control);
            xs.add(x.clone());
            timesteps.add(t.clone());
            controls.add(control);
            outs.add(out.clone());
            return out;
        }

        @Override
        public float[] sdxlAdm(float[] pooled, int batch, int height, int width) {
            return inner.sdxlAdm(pooled, batch, height, width);
        }

        @Override
        public float[] decode(float[] latent, int batch, int h, int w) {
            return inner.decode(latent, batch, h, w);
        }

        @Override
        public Moments encode(float[] image, int batch, int height, int width) {
            return inner.encode(image, batch, height, width);
        }

        @Override
        public void close() {
            inner.close();
        }
    }
}

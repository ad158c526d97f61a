package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.PngImage;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.sampling.DiffusersSchedule;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every {@code pipe_*} golden case end to end, discovered from the manifests: diffusers cases (unet_call0,
 * step_latents, latents_final, image01, PNG) and ComfyUI KSampler cases {@code pipe_comfy_*} (first UNet call,
 * per-step x and denoised, latents_final, image01, PNGs), each with the fp16 tiny checkpoint and an fp32 copy written
 * by the project's safetensors writer. diffusers schedulers other than the Euler family (DDIM, DPMSolverMultistep)
 * run through the explicit-sigmas path with the manifest's timesteps.
 */
class PipelineGoldenTest {
    private static Path fp32Dir;

    @TestFactory
    Stream<DynamicTest> everyPipelineCase() {
        List<DynamicTest> tests = new ArrayList<>();
        // JDIFFUSION_CASES=substring narrows the run while developing; unset, every case runs
        String only = System.getenv().getOrDefault("JDIFFUSION_CASES", "");
        for (Path manifest : Golden.manifests("pipe_")) {
            if (!Golden.caseName(manifest).contains(only) || InpaintPipelineGoldenTest.isInpaintCase(manifest)) {
                continue; // inpaint cases (a mask) are InpaintPipelineGoldenTest's
            }
            for (String dtype : List.of("fp16", "fp32")) {
                String name = Golden.caseName(manifest) + " [" + dtype + "]";
                tests.add(DynamicTest.dynamicTest(name, () -> {
                    if (Golden.caseName(manifest).startsWith("pipe_comfy_")) {
                        comfyCase(manifest, dtype);
                    } else {
                        diffusersCase(manifest, dtype);
                    }
                }));
            }
        }
        return tests.stream();
    }

    @AfterAll
    static synchronized void cleanUp() throws IOException {
        if (fp32Dir != null) {
            try (Stream<Path> files = Files.list(fp32Dir)) {
                for (Path f : files.toList()) {
                    Files.deleteIfExists(f);
                }
            }
            Files.deleteIfExists(fp32Dir);
            fp32Dir = null; // other test classes of this JVM may ask for fp32 copies again
        }
    }

    private static final java.util.regex.Pattern MODEL = java.util.regex.Pattern.compile("models/(\\S+?)\\.safetensors");

    /**
     * The checkpoint a manifest's model string names ("models/tiny-sd1-fp32.safetensors (or the fp16 file...)"):
     * the shipped fp16 file of that model, or an fp32 copy of it written with the project's writer.
     */
    static synchronized Path checkpoint(String modelParam, String dtype) throws IOException {
        java.util.regex.Matcher mm = MODEL.matcher(modelParam);
        if (!mm.find()) {
            throw new AssertionError("no models/<file>.safetensors in manifest model '" + modelParam + "'");
        }
        String named = mm.group(1);
        String base = named.replaceAll("-fp(16|32)$", "");
        Path fp16 = Golden.model(base + "-fp16.safetensors");
        if (!Files.exists(fp16)) {
            fp16 = Golden.model(named + ".safetensors");
        }
        if (dtype.equals("fp16")) {
            return fp16;
        }
        if (fp32Dir == null) {
            fp32Dir = Files.createTempDirectory("jdiffusion-fp32-");
        }
        Path fp32 = fp32Dir.resolve(base + "-fp32.safetensors");
        if (!Files.exists(fp32)) {
            try (SafeTensors in = SafeTensors.open(fp16)) {
                SafeTensorsWriter w = SafeTensorsWriter.to(fp32);
                for (String name : in.names()) {
                    w.addFrom(in, name, name, DType.F32);
                }
                w.write();
            }
        }
        return fp32;
    }

    // ---------------------------------------------------------------- diffusers cases

    static void diffusersCase(Path manifestPath, String dtype) throws Exception {
        String caseName = Golden.caseName(manifestPath);
        JsonNode m = PipeGolden.json(manifestPath);
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        String modelParam = p.path("model").asText();
        String schedulerClass = p.path("scheduler_class").asText();
        String spacing = p.path("scheduler_config").path("timestep_spacing").asText();
        int[] hw = {p.path("size_hw").get(0).asInt(), p.path("size_hw").get(1).asInt()};
        GenerateRequest.Builder b = GenerateRequest.builder(checkpoint(modelParam, dtype))
                .prompt(call.path("prompt").asText())
                .negativePrompt(call.hasNonNull("negative_prompt") ? call.get("negative_prompt").asText() : null)
                .steps(call.path("num_inference_steps").asInt())
                .cfg(call.path("guidance_scale").asDouble())
                .seed(p.path("generator_seed").asLong(100))
                .scheduler(spacing)
                .prediction(prediction(p.path("scheduler_config").path("prediction_type").asText("epsilon")));
        if (!p.path("img2img").isMissingNode()) {
            b.initImage(manifestPath.resolveSibling(p.path("input_image_png").asText()))
                    .denoise(call.path("strength").asDouble());
        } else {
            b.size(hw[1], hw[0]);
        }
        java.util.regex.Matcher unet = MODEL.matcher(modelParam);
        if (unet.find() && unet.find()) {
            b.unet(Golden.model(unet.group(1) + ".safetensors")); // "... with the UNet replaced by models/X"
        }
        if (p.has("embedding")) {
            // textual inversion: ComfyUI's embedding:name form of the prompts, the file's folder as embeddings
            b.prompt(p.path("prompt_comfy").asText()).negativePrompt(p.hasNonNull("negative_comfy")
                    ? p.get("negative_comfy").asText() : null)
                    .embeddings(Golden.dir().resolve(p.path("embedding").path("file").asText()).getParent());
        }
        if (!p.path("lora").isMissingNode()) {
            b.loras(List.of(new GenerateRequest.LoraSpec(manifestPath.resolveSibling(p.path("lora").path("file").asText()),
                    p.path("lora").path("scale").asDouble())));
        }
        boolean variancePreserving = false;
        double[] sigmas = null;
        switch (schedulerClass) {
            case "EulerDiscreteScheduler" -> b.sampler("euler");
            case "EulerAncestralDiscreteScheduler" -> b.sampler("euler_ancestral");
            case "HeunDiscreteScheduler" -> b.sampler("heun");
            case "DDIMScheduler" -> {
                // DDIM (eta 0) is Euler in sigma space; without set_alpha_to_one it stops at the first training sigma
                double[] t = doubles(p.path("unet_call_timesteps"));
                float[] train = DiffusersSchedule.trainingSigmas();
                sigmas = new double[t.length + 1];
                for (int i = 0; i < t.length; i++) {
                    sigmas[i] = train[(int) t[i]];
                }
                boolean alphaToOne = p.path("scheduler_config").path("set_alpha_to_one").asBoolean(false);
                sigmas[t.length] = alphaToOne ? 0.0 : train[0];
                b.sampler("euler").schedule(new GenerateRequest.ExplicitSchedule(sigmas, t, true));
                variancePreserving = true;
            }
            case "DPMSolverMultistepScheduler" -> {
                sigmas = doubles(p.path("sigmas"));
                b.sampler("dpmpp_2m").schedule(new GenerateRequest.ExplicitSchedule(sigmas,
                        doubles(p.path("unet_call_timesteps")), true));
                variancePreserving = true;
            }
            default -> throw new AssertionError(caseName + ": scheduler " + schedulerClass + " has no mapping");
        }
        GenerateRequest request = b.build();
        StepRecorder steps = new StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifestPath);
             RecordingModels models = new RecordingModels(CheckpointModels.load(request))) {
            PngImage init = RequestValidator.validate(request);
            r = Pipeline.generate(models, request, init, null, steps, CancellationToken.none(), new Timings());
            checkUnetInputs(caseName, m, t, models);
            PipeGolden.check(caseName, m, t, "unet_call0.out", models.firstOut);
            checkStepLatents(caseName, m, t, steps, r.latent(), schedulerClass, variancePreserving, sigmas);
            PipeGolden.check(caseName, m, t, "latents_final", r.latent());
            PipeGolden.check(caseName, m, t, "image01", r.image01());
        }
        JsonNode png = p.path("png");
        PipeGolden.checkPng(caseName, manifestPath.resolveSibling(png.path("file").asText()), r.images().get(0),
                png.path("recommended_tolerance").asInt(1));
    }

    /**
     * step_latents holds the latents after every loop iteration: for Euler-like samplers the state at the start of
     * the next step (and finally the result); Heun's odd iterations end a step (its even ones are the Euler
     * predictor, which a k-diffusion Heun does not expose); DDIM / DPM-Solver keep them in VP space.
     */
    private static void checkStepLatents(String caseName, JsonNode m, SafeTensors t, StepRecorder steps,
            float[] latentFinal, String schedulerClass, boolean vp, double[] sigmas) {
        JsonNode o = m.path("outputs").path("step_latents");
        float[] expected = t.floats(o.get("tensor").asText());
        double atol = o.path("tolerance").path("atol").asDouble();
        int iterations = o.get("shape").get(0).asInt();
        int per = expected.length / iterations;
        boolean heun = schedulerClass.equals("HeunDiscreteScheduler");
        int stepCount = steps.xs.size();
        for (int k = 1; k <= stepCount; k++) {
            int iteration = heun ? Math.min(2 * k - 1, iterations - 1) : k - 1;
            float[] ours = k < stepCount ? steps.xs.get(k) : latentFinal;
            if (vp && k < stepCount) {
                ours = divide(ours, (float) Math.sqrt(1f + (float) sigmas[k] * (float) sigmas[k]));
            }
            Golden.assertClose(caseName + " step_latents[" + iteration + "]",
                    Arrays.copyOfRange(expected, iteration * per, (iteration + 1) * per), ours, atol);
        }
        assertEquals(heun ? 2 * stepCount - 1 : stepCount, iterations, caseName + " loop iterations");
    }

    /**
     * The first UNet call's inputs (scaled latent, timestep, context, SDXL pooled text_embeds and time_ids) as
     * diffusers made them, so a mismatch of the output points at its cause. Inputs carry no tolerance: the context
     * and pooled are text-encoder outputs (atol 2e-5 there); the latent input follows the noise exactly.
     */
    private static void checkUnetInputs(String caseName, JsonNode m, SafeTensors t, RecordingModels models) {
        JsonNode in = m.path("inputs");
        Golden.assertClose(caseName + " unet_call0.sample", t.floats(in.path("unet_call0.sample").path("tensor").asText()),
                models.firstX, 1e-5);
        float expectedT = t.floats(in.path("unet_call0.timestep").path("tensor").asText())[0];
        for (float ts : models.firstTimesteps) {
            assertEquals(expectedT, ts, 1e-3, caseName + " unet_call0.timestep");
        }
        Golden.assertClose(caseName + " unet_call0.context",
                t.floats(in.path("unet_call0.context").path("tensor").asText()), models.firstContext, 1e-4);
        if (in.has("unet_call0.text_embeds")) {
            float[] pooled = t.floats(in.path("unet_call0.text_embeds").path("tensor").asText());
            int rows = models.firstTimesteps.length;
            int per = pooled.length / rows;
            int adm = models.firstY.length / rows;
            float[] ours = new float[pooled.length];
            for (int r = 0; r < rows; r++) {
                System.arraycopy(models.firstY, r * adm, ours, r * per, per);
            }
            Golden.assertClose(caseName + " unet_call0.text_embeds", pooled, ours, 1e-4);
        }
    }

    // ---------------------------------------------------------------- ComfyUI cases

    private static void comfyCase(Path manifestPath, String dtype) throws Exception {
        String caseName = Golden.caseName(manifestPath);
        JsonNode m = PipeGolden.json(manifestPath);
        JsonNode p = m.path("params");
        GenerateRequest.Builder b = GenerateRequest.builder(checkpoint(p.path("model").asText(), dtype))
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
                .prediction(prediction(p.path("model_sampling").path("prediction").asText("EPS")));
        // img2img (LoadImage + VAEEncode): the input image is the top-level parameter naming a .png file
        for (var it = p.fields(); it.hasNext(); ) {
            var e = it.next();
            if (e.getValue().isTextual() && e.getValue().asText().endsWith(".png")) {
                b.initImage(manifestPath.resolveSibling(e.getValue().asText())).width(null).height(null);
            }
        }
        GenerateRequest request = b.build();
        StepRecorder steps = new StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifestPath);
             RecordingModels models = new RecordingModels(CheckpointModels.load(request))) {
            PngImage init = RequestValidator.validate(request);
            r = Pipeline.generate(models, request, init, null, steps, CancellationToken.none(), new Timings());
            PipeGolden.check(caseName, m, t, "unet_call0.model_output", models.firstOut);
            if (m.path("outputs").has("step_x")) {
                PipeGolden.check(caseName, m, t, "step_x", concat(steps.xs));
            }
            if (m.path("outputs").has("step_denoised")) {
                PipeGolden.check(caseName, m, t, "step_denoised", concat(steps.denoised));
            }
            PipeGolden.check(caseName, m, t, "latents_final", r.latent());
            PipeGolden.check(caseName, m, t, "image01", r.image01());
        }
        JsonNode png = p.path("png");
        JsonNode files = png.path("files");
        assertEquals(files.size(), r.images().size(), caseName + " images");
        for (int i = 0; i < files.size(); i++) {
            PipeGolden.checkPng(caseName, manifestPath.resolveSibling(files.get(i).asText()), r.images().get(i),
                    png.path("recommended_tolerance").asInt(1));
        }
    }

    private static GenerateRequest.Prediction prediction(String comfyName) {
        return switch (comfyName.toUpperCase(java.util.Locale.ROOT)) {
            case "V", "V_PREDICTION" -> GenerateRequest.Prediction.V;
            case "X0", "SAMPLE" -> GenerateRequest.Prediction.X0;
            default -> GenerateRequest.Prediction.EPS;
        };
    }

    // ---------------------------------------------------------------- helpers

    /** Keeps the sampler's per-step state x and denoised estimate. */
    static final class StepRecorder implements ProgressListener {
        final List<float[]> xs = new ArrayList<>();
        final List<float[]> denoised = new ArrayList<>();

        @Override
        public void onStep(int step, int total, float[] latent) {
        }

        @Override
        public void onSamplerState(int i, float[] x, float[] d) {
            xs.add(x.clone());
            denoised.add(d.clone());
        }
    }

    static double[] doubles(JsonNode array) {
        double[] out = new double[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asDouble();
        }
        return out;
    }

    private static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int at = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, out, at, a.length);
            at += a.length;
        }
        return out;
    }

    private static float[] divide(float[] v, float d) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i] / d;
        }
        return out;
    }
}

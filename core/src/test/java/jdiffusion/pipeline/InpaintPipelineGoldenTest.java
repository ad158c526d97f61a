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
 * The inpainting pipelines of the golden inpaint folder through the library API ({@link GenerateRequest} with an
 * {@link GenerateRequest.Inpaint}), on the fp16 checkpoint and its fp32 twin: diffusers' StableDiffusion(XL)
 * InpaintPipeline cases ({@code pipe_sd*_inpaint_*}: 9-channel model, legacy 4-channel blend, strength, SDXL) and
 * ComfyUI's ({@code pipe_comfy_*inpaint*}: the init image's alpha as the mask; VAEEncodeForInpaint = a mask grow,
 * InpaintModelConditioning = none, SetLatentNoiseMask for an ordinary checkpoint).
 */
class InpaintPipelineGoldenTest {

    @TestFactory
    Stream<DynamicTest> diffusersInpaintCases() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifestsIn("inpaint", "pipe_")) {
            JsonNode p = PipeGolden.json(manifest).path("params");
            if (Golden.caseName(manifest).startsWith("pipe_comfy_") || p.path("mask_png").isMissingNode()) {
                continue;
            }
            for (String dtype : List.of("fp16", "fp32")) {
                tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest) + " [" + dtype + "]",
                        () -> diffusersCase(manifest, dtype)));
            }
        }
        return tests.stream();
    }

    @TestFactory
    Stream<DynamicTest> comfyInpaintCases() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifestsIn("inpaint", "pipe_comfy_")) {
            String workflow = PipeGolden.json(manifest).path("params").path("workflow").asText();
            if (!workflow.matches(".*(SetLatentNoiseMask|VAEEncodeForInpaint|InpaintModelConditioning).*")) {
                continue;
            }
            for (String dtype : List.of("fp16", "fp32")) {
                tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest) + " [" + dtype + "]",
                        () -> comfyCase(manifest, dtype)));
            }
        }
        return tests.stream();
    }

    /**
     * A 9-channel UNet as a separate UNet file (bare LDM names) over the ordinary checkpoint of the same family: the
     * 9-channel diffusers cases give the same numbers (the tiny inpaint checkpoint differs from tiny-sd1 only in
     * conv_in).
     */
    @TestFactory
    Stream<DynamicTest> inpaintUnetAsSeparateFile(@org.junit.jupiter.api.io.TempDir Path tmp) {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifestsIn("inpaint", "pipe_sd1_inpaint")) {
            JsonNode p = PipeGolden.json(manifest).path("params");
            if (p.path("inpaint").path("num_channels_unet").asInt(4) <= 4) {
                continue;
            }
            tests.add(DynamicTest.dynamicTest(Golden.caseName(manifest), () -> {
                Path inpaintCkpt = PipelineGoldenTest.checkpoint(p.path("model").asText(), "fp16");
                Path unetFile = tmp.resolve(Golden.caseName(manifest) + "-unet.safetensors");
                try (SafeTensors in = SafeTensors.open(inpaintCkpt)) {
                    jdiffusion.io.SafeTensorsWriter w = jdiffusion.io.SafeTensorsWriter.to(unetFile);
                    for (String name : in.names()) {
                        if (name.startsWith("model.diffusion_model.")) {
                            w.addFrom(in, name, name.substring("model.diffusion_model.".length()),
                                    in.info(name).dtype());
                        }
                    }
                    w.write();
                }
                Path base = Golden.model(inpaintCkpt.getFileName().toString().replace("-inpaint", ""));
                GenerateRequest request = diffusersRequest(manifest, base).toBuilder().unet(unetFile).build();
                GenerateResult r = Pipeline.generate(request, ProgressListener.NONE, CancellationToken.none());
                JsonNode m = PipeGolden.json(manifest);
                try (SafeTensors t = Golden.tensors(manifest)) {
                    PipeGolden.check(Golden.caseName(manifest), m, t, "latents_final", r.latent());
                }
            }));
        }
        return tests.stream();
    }

    /** A pipeline case with a mask: diffusers' mask_png or a ComfyUI workflow through an inpaint node. */
    static boolean isInpaintCase(Path manifest) {
        JsonNode p = PipeGolden.json(manifest).path("params");
        return p.has("mask_png") || p.path("workflow").asText().matches(
                ".*(SetLatentNoiseMask|VAEEncodeForInpaint|InpaintModelConditioning).*");
    }

    /** The request a diffusers inpaint manifest describes (also what the CLI test turns into flags). */
    static GenerateRequest diffusersRequest(Path manifestPath, Path checkpoint) {
        JsonNode p = PipeGolden.json(manifestPath).path("params");
        JsonNode call = p.path("call");
        String sampler = switch (p.path("scheduler_class").asText()) {
            case "EulerDiscreteScheduler" -> "euler";
            case "EulerAncestralDiscreteScheduler" -> "euler_ancestral";
            case "HeunDiscreteScheduler" -> "heun";
            case "DDIMScheduler" -> "ddim";
            case "DPMSolverMultistepScheduler" -> "dpmpp_2m";
            default -> throw new AssertionError("scheduler " + p.path("scheduler_class").asText() + " has no mapping");
        };
        return GenerateRequest.builder(checkpoint)
                .prompt(call.path("prompt").asText())
                .negativePrompt(call.hasNonNull("negative_prompt") ? call.get("negative_prompt").asText() : null)
                .steps(call.path("num_inference_steps").asInt())
                .cfg(call.path("guidance_scale").asDouble())
                .seed(p.path("generator_seed").asLong(100))
                .sampler(sampler)
                .scheduler(p.path("scheduler_config").path("timestep_spacing").asText())
                .initImage(manifestPath.resolveSibling(p.path("input_image_png").asText()))
                .denoise(call.path("strength").asDouble(1.0))
                .inpaint(GenerateRequest.Inpaint.mask(manifestPath.resolveSibling(p.path("mask_png").asText())))
                .build();
    }

    private static void diffusersCase(Path manifestPath, String dtype) throws Exception {
        String caseName = Golden.caseName(manifestPath);
        JsonNode m = PipeGolden.json(manifestPath);
        JsonNode p = m.path("params");
        GenerateRequest request = diffusersRequest(manifestPath,
                PipelineGoldenTest.checkpoint(p.path("model").asText(), dtype));
        boolean vp = p.path("scheduler_class").asText().equals("DDIMScheduler");
        PipelineGoldenTest.StepRecorder steps = new PipelineGoldenTest.StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifestPath);
             RecordingModels models = new RecordingModels(CheckpointModels.load(request))) {
            PngImage init = RequestValidator.validate(request);
            r = Pipeline.generate(models, request, init, null, steps, CancellationToken.none(), new Timings());
            Golden.assertClose(caseName + " unet_call0.sample", t.floats(m.path("inputs").path("unet_call0.sample")
                    .path("tensor").asText()), models.firstX, 1e-4);
            PipeGolden.check(caseName, m, t, "unet_call0.out", models.firstOut);
            float[] start = steps.xs.getFirst();
            if (vp) {
                start = divide(start, vpFactor(firstSigma(p)));
            }
            PipeGolden.check(caseName, m, t, "init_latents", start);
            JsonNode o = m.path("outputs").path("step_latents");
            float[] expected = t.floats(o.get("tensor").asText());
            int iterations = o.get("shape").get(0).asInt();
            assertEquals(iterations, steps.xs.size(), caseName + " loop iterations");
            int per = expected.length / iterations;
            double[] runSigmas = runSigmas(p);
            for (int k = 1; k <= iterations; k++) {
                float[] ours = k < iterations ? steps.xs.get(k) : r.latent();
                if (vp && k < iterations) {
                    ours = divide(ours, vpFactor(runSigmas[k]));
                }
                Golden.assertClose(caseName + " step_latents[" + (k - 1) + "]",
                        Arrays.copyOfRange(expected, (k - 1) * per, k * per), ours,
                        o.path("tolerance").path("atol").asDouble());
            }
            PipeGolden.check(caseName, m, t, "latents_final", r.latent());
            PipeGolden.check(caseName, m, t, "image01", r.image01());
        }
        JsonNode png = p.path("png");
        PipeGolden.checkPng(caseName, manifestPath.resolveSibling(png.path("file").asText()), r.images().get(0),
                png.path("recommended_tolerance").asInt(1));
    }

    private static void comfyCase(Path manifestPath, String dtype) throws Exception {
        String caseName = Golden.caseName(manifestPath);
        JsonNode m = PipeGolden.json(manifestPath);
        JsonNode p = m.path("params");
        String workflow = p.path("workflow").asText();
        // VAEEncodeForInpaint is the grow_mask_by path; InpaintModelConditioning and SetLatentNoiseMask grow nothing
        int grow = workflow.contains("VAEEncodeForInpaint") ? p.path("grow_mask_by").asInt(6) : 0;
        GenerateRequest request = GenerateRequest.builder(PipelineGoldenTest.checkpoint(p.path("model").asText(),
                        dtype))
                .prompt(p.path("prompt").asText())
                .negativePrompt(p.path("negative").asText(""))
                .seed(p.path("seed").asLong())
                .steps(p.path("steps").asInt())
                .cfg(p.path("cfg").asDouble())
                .sampler(p.path("sampler_name").asText())
                .scheduler(p.path("scheduler").asText())
                .denoise(p.path("denoise").asDouble(1.0))
                .initImage(manifestPath.resolveSibling(p.path("input_image_png").asText().split("\\s+")[0]))
                .inpaint(GenerateRequest.Inpaint.alpha().withGrow(grow))
                .build();
        PipelineGoldenTest.StepRecorder steps = new PipelineGoldenTest.StepRecorder();
        GenerateResult r;
        try (SafeTensors t = Golden.tensors(manifestPath);
             RecordingModels models = new RecordingModels(CheckpointModels.load(request))) {
            PngImage init = RequestValidator.validate(request);
            r = Pipeline.generate(models, request, init, null, steps, CancellationToken.none(), new Timings());
            if (m.path("outputs").has("unet_call0.xc")) {
                PipeGolden.check(caseName, m, t, "unet_call0.xc", models.firstX);
            }
            PipeGolden.check(caseName, m, t, "unet_call0.model_output", models.firstOut);
            PipeGolden.check(caseName, m, t, "step_x", concat(steps.xs));
            PipeGolden.check(caseName, m, t, "step_denoised", concat(steps.denoised));
            PipeGolden.check(caseName, m, t, "latents_final", r.latent());
            PipeGolden.check(caseName, m, t, "image01", r.image01());
        }
        JsonNode png = p.path("png");
        PipeGolden.checkPng(caseName, manifestPath.resolveSibling(png.path("file").asText()), r.images().get(0),
                png.path("recommended_tolerance").asInt(1));
    }

    /** The sigma of each timestep the loop runs (DDIM: the training sigma of the integer timestep). */
    private static double[] runSigmas(JsonNode p) {
        JsonNode ts = p.path("unet_call_timesteps");
        float[] train = jdiffusion.sampling.DiffusersSchedule.trainingSigmas();
        double[] out = new double[ts.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = train[(int) ts.get(i).asDouble()];
        }
        return out;
    }

    private static double firstSigma(JsonNode p) {
        return runSigmas(p)[0];
    }

    private static float vpFactor(double sigma) {
        float s = (float) sigma;
        return (float) Math.sqrt(1f + s * s);
    }

    private static float[] divide(float[] v, float d) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i] / d;
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
}

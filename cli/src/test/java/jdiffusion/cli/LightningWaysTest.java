package jdiffusion.cli;

import static jdiffusion.cli.LightningCli.cli;
import static jdiffusion.cli.LightningCli.model;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.Pipeline;
import jdiffusion.pipeline.PipelineModels;
import jdiffusion.pipeline.TextCond;
import jdiffusion.sampling.TorchGenerator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The four ways ByteDance ships SDXL-Lightning, run from the CLI on the tiny SDXL files with {@code --preset
 * lightning}: the all-in-one checkpoint, the UNet-only file (diffusers layout), the LoRA, and the 1-step x0 UNet.
 * The tiny files are copied under Lightning-style names where the name carries the step count or x0, as the real
 * ones do. Each run must write a PNG whose workflow shows the choices (steps, sampler, scheduler, prediction).
 */
class LightningWaysTest {
    private static final String PROMPT = "a majestic lion in the savanna at sunset, cinematic";
    private static final int SIZE = 64;

    @TempDir
    Path dir;

    private Path copyAs(String goldenModel, String name) throws Exception {
        return Files.copy(model(goldenModel), dir.resolve(name));
    }

    private LightningCli.Run generate(Path png, String... flags) {
        List<String> args = new ArrayList<>(List.of("generate", "-p", PROMPT, "-W", "" + SIZE, "-H", "" + SIZE, "-s",
                "7", "-o", png.toString(), "-q"));
        args.addAll(List.of(flags));
        LightningCli.Run r = cli(args.toArray(String[]::new));
        assertEquals(0, r.exit(), String.join(" ", args) + ": " + r.err());
        assertTrue(Files.exists(png), "PNG written: " + r.out());
        return r;
    }

    /** The workflow in the PNG records what ran: sampler, scheduler, steps, cfg and (non-eps) the prediction. */
    private static void assertRan(Path png, int steps, String prediction) throws Exception {
        LightningCli.Workflow wf = LightningCli.workflow(png);
        assertEquals("euler", wf.ksampler().path("sampler_name").asText());
        assertEquals("sgm_uniform", wf.ksampler().path("scheduler").asText());
        assertEquals(steps, wf.ksampler().path("steps").asInt());
        assertEquals(1.0, wf.ksampler().path("cfg").asDouble());
        if (prediction == null) {
            assertNull(wf.modelSampling(), "eps needs no ModelSamplingDiscrete node");
        } else {
            assertEquals(prediction, wf.modelSampling().path("sampling").asText());
        }
        assertTrue(PngReader.text(png).get("parameters").contains("Steps: " + steps + ", Sampler: Euler"),
                PngReader.text(png).get("parameters"));
    }

    @Test
    void allInOneCheckpointTakesTheStepsFromItsName() throws Exception {
        Path ckpt = copyAs("tiny-sdxl-fp16.safetensors", "tiny_sdxl_lightning_8step.safetensors");
        Path png = dir.resolve("full.png");
        Path latent = dir.resolve("full.safetensors");
        LightningCli.Run r = generate(png, "-m", ckpt.toString(), "--preset", "lightning", "--save-latent",
                latent.toString());
        assertEquals("preset lightning: euler + sgm_uniform, 8 steps (from tiny_sdxl_lightning_8step.safetensors), cfg 1",
                r.errLine("preset "));
        assertFalse(r.err().contains("prediction:"), "no prediction hint in an eps file: " + r.err());
        assertTrue(r.err().contains("SDXL 64x64, 8 steps, euler + sgm_uniform, cfg 1.0"), r.err());
        assertRan(png, 8, null);
        // the preset is exactly the explicit flags it names
        Path explicit = dir.resolve("explicit.safetensors");
        generate(dir.resolve("explicit.png"), "-m", ckpt.toString(), "--sampler", "euler", "--scheduler",
                "sgm_uniform", "--steps", "8", "--cfg", "1", "--save-latent", explicit.toString());
        try (SafeTensors a = SafeTensors.open(latent); SafeTensors b = SafeTensors.open(explicit)) {
            assertTrue(java.util.Arrays.equals(a.floats("latent"), b.floats("latent")), "preset == explicit flags");
        }
    }

    @Test
    void unetOnlyFileInDiffusersLayout() throws Exception {
        Path unet = copyAs("tiny-sdxl-unet-diffusers-fp16.safetensors", "tiny_sdxl_lightning_2step_unet.safetensors");
        Path png = dir.resolve("unet.png");
        LightningCli.Run r = generate(png, "-m", model("tiny-sdxl-fp16.safetensors").toString(), "--unet",
                unet.toString(), "--preset", "lightning");
        assertEquals("preset lightning: euler + sgm_uniform, 2 steps (from tiny_sdxl_lightning_2step_unet.safetensors),"
                + " cfg 1", r.errLine("preset "));
        assertFalse(r.err().contains("prediction:"), r.err());
        assertRan(png, 2, null);
        assertEquals("tiny_sdxl_lightning_2step_unet.safetensors",
                workflowNode(png, "UNETLoader").path("unet_name").asText());
    }

    @Test
    void loraOverTheBaseCheckpoint() throws Exception {
        Path lora = copyAs("tiny-sdxl-lora-kohya.safetensors", "tiny_sdxl_lightning_4step_lora.safetensors");
        Path png = dir.resolve("lora.png");
        LightningCli.Run r = generate(png, "-m", model("tiny-sdxl-fp16.safetensors").toString(), "--lora",
                lora.toString(), "--preset", "lightning");
        assertEquals("preset lightning: euler + sgm_uniform, 4 steps (from tiny_sdxl_lightning_4step_lora.safetensors),"
                + " cfg 1", r.errLine("preset "));
        assertRan(png, 4, null);
        assertEquals("tiny_sdxl_lightning_4step_lora.safetensors",
                workflowNode(png, "LoraLoader").path("lora_name").asText());
    }

    /**
     * The 1-step x0 UNet: x0 is detected from the name and one euler step from sigma_max to 0 returns the denoised
     * estimate, which for x0 is the UNet output itself, on the noise the KSampler starts from: x * c_in = noise at
     * the first sigma, timestep 999. The test computes that UNet call separately and compares.
     */
    @Test
    void oneStepX0UnetIsTheUnetOutputTakenAsX0() throws Exception {
        Path unet = copyAs("tiny-sdxl-unet-diffusers-fp16.safetensors", "tiny_sdxl_lightning_1step_unet_x0.safetensors");
        Path ckpt = model("tiny-sdxl-fp16.safetensors");
        Path png = dir.resolve("x0.png");
        Path latent = dir.resolve("x0.safetensors");
        LightningCli.Run r = generate(png, "-m", ckpt.toString(), "--unet", unet.toString(), "--preset", "lightning",
                "--save-latent", latent.toString());
        assertEquals("preset lightning: euler + sgm_uniform, 1 step (from tiny_sdxl_lightning_1step_unet_x0.safetensors),"
                + " cfg 1", r.errLine("preset "));
        assertEquals("prediction: x0 (UNet file name tiny_sdxl_lightning_1step_unet_x0.safetensors)",
                r.errLine("prediction: "));
        assertRan(png, 1, "x0");

        float[] expected = unetOnNoise(ckpt, model("tiny-sdxl-unet-diffusers-fp16.safetensors"), 7);
        try (SafeTensors st = SafeTensors.open(latent)) {
            float[] actual = st.floats("latent");
            assertEquals(expected.length, actual.length);
            for (int i = 0; i < expected.length; i++) {
                // noise * sqrt(1 + s^2) / sqrt(1 + s^2) rounds in float32 before the UNet sees it (measured 2e-6)
                assertEquals(expected[i], actual[i], 2e-5, "latent[" + i + "]");
            }
        }
    }

    @Test
    void explicitPredictionWinsOverTheX0Name() throws Exception {
        Path unet = copyAs("tiny-sdxl-unet-diffusers-fp16.safetensors", "tiny_sdxl_lightning_1step_unet_x0.safetensors");
        Path png = dir.resolve("eps.png");
        LightningCli.Run r = generate(png, "-m", model("tiny-sdxl-fp16.safetensors").toString(), "--unet",
                unet.toString(), "--preset", "lightning", "--prediction", "eps");
        assertFalse(r.err().contains("prediction:"), r.err());
        assertRan(png, 1, null);
    }

    /** One UNet call on the seed's noise at timestep 999 with the prompt's conditioning (cfg 1: no uncond). */
    private static float[] unetOnNoise(Path ckpt, Path unet, long seed) {
        GenerateRequest request = GenerateRequest.builder(ckpt).unet(unet).prompt(PROMPT).size(SIZE, SIZE).build();
        try (PipelineModels m = Pipeline.load(request)) {
            int h = SIZE / 8;
            int w = SIZE / 8;
            float[] noise = new TorchGenerator(seed).randn(4 * h * w);
            TextCond c = m.encodeText(PROMPT, 1);
            float[] y = m.sdxlAdm(c.pooled(), 1, SIZE, SIZE);
            return m.unet(noise, 1, h, w, new float[] {999f}, c.context(), c.tokens(), y);
        }
    }

    private static com.fasterxml.jackson.databind.JsonNode workflowNode(Path png, String classType) throws Exception {
        var wf = LightningCli.JSON.readTree(PngReader.text(png).get("prompt"));
        for (var node : wf) {
            if (node.path("class_type").asText().equals(classType)) {
                return node.path("inputs");
            }
        }
        throw new AssertionError("no " + classType + " node in " + wf);
    }
}

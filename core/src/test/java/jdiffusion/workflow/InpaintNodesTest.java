package jdiffusion.workflow;

import static jdiffusion.workflow.Workflows.link;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.Mask;
import jdiffusion.workflow.WorkflowEngine.ExecutionResult;
import jdiffusion.workflow.WorkflowEngine.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The mask nodes on small inputs (values checked by hand from ComfyUI's definitions), and the noise mask path on the
 * tiny SD1 checkpoint: with a mask of zeros nothing is repainted, the KSampler output keeps the noise mask.
 */
class InpaintNodesTest {
    @TempDir
    Path base;

    private ExecutionResult run(Workflows.Builder b) {
        try (WorkflowEngine engine = new WorkflowEngine(ModelPaths.of(base), 1L << 30)) {
            ExecutionResult r = engine.execute(b.build(), null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, r.status(), r.message());
            return r;
        }
    }

    /** A 4x2 RGBA image: red = x * 60, green = y * 100, blue 7, alpha = 255 - 50 * x. */
    private void writeRgba(String name) throws Exception {
        BufferedImage bi = new BufferedImage(4, 2, BufferedImage.TYPE_INT_ARGB);
        for (int y = 0; y < 2; y++) {
            for (int x = 0; x < 4; x++) {
                bi.setRGB(x, y, (255 - 50 * x) << 24 | (x * 60) << 16 | (y * 100) << 8 | 7);
            }
        }
        ImageIO.write(bi, "png", ModelPaths.of(base).inputDir().resolve(name).toFile());
    }

    @Test
    void maskNodesComputeComfysValues() throws Exception {
        writeRgba("rgba.png");
        Workflows.Builder b = new Workflows.Builder()
                .node("1", "LoadImage", "image", "rgba.png")
                .node("2", "LoadImageMask", "image", "rgba.png", "channel", "alpha")
                .node("3", "LoadImageMask", "image", "rgba.png", "channel", "red")
                .node("4", "InvertMask", "mask", link("2", 0))
                .node("5", "SolidMask", "value", 0.25, "width", 3, "height", 2)
                .node("6", "ImageToMask", "image", link("1", 0), "channel", "green")
                .node("7", "MaskToImage", "mask", link("3", 0))
                .node("8", "GrowMask", "mask", link("4", 0), "expand", -1, "tapered_corners", false)
                .node("9", "PreviewImage", "images", link("7", 0));
        // only what feeds an output node runs: preview every mask
        for (String id : new String[] {"1:1", "2:0", "3:0", "4:0", "5:0", "6:0", "8:0"}) {
            String[] at = id.split(":");
            b.node("m" + at[0], "MaskToImage", "mask", link(at[0], Integer.parseInt(at[1])));
            b.node("p" + at[0], "PreviewImage", "images", link("m" + at[0], 0));
        }
        ExecutionResult r = run(b);
        Mask loadImageMask = (Mask) r.values().get("1").get(1);
        Mask alpha = (Mask) r.values().get("2").getFirst();
        float[] expectedAlpha = new float[8];
        float[] expectedRed = new float[8];
        float[] expectedGreen = new float[8];
        for (int y = 0; y < 2; y++) {
            for (int x = 0; x < 4; x++) {
                expectedAlpha[y * 4 + x] = 1f - (255 - 50 * x) / 255f;
                expectedRed[y * 4 + x] = x * 60 / 255f;
                expectedGreen[y * 4 + x] = y * 100 / 255f;
            }
        }
        assertArrayEquals(expectedAlpha, loadImageMask.values());
        assertArrayEquals(expectedAlpha, alpha.values());
        assertEquals(2, alpha.height());
        assertEquals(4, alpha.width());
        assertArrayEquals(expectedRed, ((Mask) r.values().get("3").getFirst()).values());
        float[] inverted = ((Mask) r.values().get("4").getFirst()).values();
        for (int i = 0; i < 8; i++) {
            assertEquals(1f - expectedAlpha[i], inverted[i]);
        }
        Mask solid = (Mask) r.values().get("5").getFirst();
        assertArrayEquals(new float[] {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f}, solid.values());
        assertArrayEquals(expectedGreen, ((Mask) r.values().get("6").getFirst()).values());
        Image asImage = (Image) r.values().get("7").getFirst();
        for (int c = 0; c < 3; c++) {
            for (int i = 0; i < 8; i++) {
                assertEquals(expectedRed[i], asImage.pixels()[c * 8 + i]);
            }
        }
        // erosion with a 3x3 square: every cell takes the minimum of its neighbourhood (outside ignored)
        float[] eroded = ((Mask) r.values().get("8").getFirst()).values();
        for (int y = 0; y < 2; y++) {
            for (int x = 0; x < 4; x++) {
                float min = 1;
                for (int xx = Math.max(0, x - 1); xx <= Math.min(3, x + 1); xx++) {
                    min = Math.min(min, inverted[xx]);
                }
                assertEquals(min, eroded[y * 4 + x]);
            }
        }
    }

    /** The PNG's ComfyUI workflow of an inpaint / outpaint generation is a valid prompt of these nodes. */
    @Test
    void generatedWorkflowOfAnInpaintRequestValidates() throws Exception {
        Workflows.place(base, "checkpoints", "tiny-sd1-fp16.safetensors");
        writeRgba("photo.png");
        writeRgba("mask.png");
        jdiffusion.pipeline.GenerateRequest.Inpaint[] variants = {
            jdiffusion.pipeline.GenerateRequest.Inpaint.alpha().withGrow(4).withBlur(2),
            jdiffusion.pipeline.GenerateRequest.Inpaint.mask(Path.of("mask.png")).withInvert(true),
            new jdiffusion.pipeline.GenerateRequest.Inpaint(null, false, 0, 0,
                    new jdiffusion.pipeline.GenerateRequest.Outpaint(8, 0, 8, 0, 4), true, false)};
        for (jdiffusion.pipeline.GenerateRequest.Inpaint in : variants) {
            var s = new jdiffusion.pipeline.ResolvedSettings("SD1",
                    jdiffusion.pipeline.ResolvedSettings.Semantics.COMFY, "a cat", "", 64, 64, 4, 5.0, "euler",
                    "normal", 1L, 1, Path.of("photo.png"), 0.8, jdiffusion.sampling.PredictionType.EPS, 1,
                    "tiny-sd1-fp16.safetensors", null, null, java.util.List.of(), null, java.util.List.of(), in);
            String wf = jdiffusion.pipeline.PngMetadata.comfyWorkflow(s);
            PromptValidator.Result r = PromptValidator.validate(Prompt.parse(
                    new com.fasterxml.jackson.databind.ObjectMapper().readTree(wf)), ModelPaths.of(base));
            assertTrue(r.ok(), wf + " -> " + r.toJson());
            assertTrue(wf.contains("InpaintModelConditioning"), wf);
        }
    }

    @Test
    void aZeroNoiseMaskRepaintsNothingAndStaysWithTheLatent() throws Exception {
        Workflows.place(base, "checkpoints", "tiny-sd1-fp16.safetensors");
        ExecutionResult r = run(new Workflows.Builder()
                .node("4", "CheckpointLoaderSimple", "ckpt_name", "tiny-sd1-fp16.safetensors")
                .node("6", "CLIPTextEncode", "text", "a lighthouse", "clip", link("4", 1))
                .node("7", "CLIPTextEncode", "text", "", "clip", link("4", 1))
                .node("5", "SolidMask", "value", 0.0, "width", 64, "height", 64)
                .node("10", "SolidMask", "value", 1.0, "width", 64, "height", 64)
                .node("11", "MaskToImage", "mask", link("10", 0))
                .node("12", "VAEEncode", "pixels", link("11", 0), "vae", link("4", 2))
                .node("13", "SetLatentNoiseMask", "samples", link("12", 0), "mask", link("5", 0))
                .node("3", "KSampler", "model", link("4", 0), "seed", 5L, "steps", 3, "cfg", 4.0,
                        "sampler_name", "euler", "scheduler", "normal", "positive", link("6", 0), "negative",
                        link("7", 0), "latent_image", link("13", 0), "denoise", 1.0)
                .node("14", "KSampler", "model", link("4", 0), "seed", 5L, "steps", 3, "cfg", 4.0,
                        "sampler_name", "euler", "scheduler", "normal", "positive", link("6", 0), "negative",
                        link("7", 0), "latent_image", link("12", 0), "denoise", 1.0)
                .node("20", "VAEDecode", "samples", link("3", 0), "vae", link("4", 2))
                .node("21", "PreviewImage", "images", link("20", 0))
                .node("22", "VAEDecode", "samples", link("14", 0), "vae", link("4", 2))
                .node("23", "PreviewImage", "images", link("22", 0)));
        Latent in = (Latent) r.values().get("12").getFirst();
        Latent masked = (Latent) r.values().get("3").getFirst();
        Latent free = (Latent) r.values().get("14").getFirst();
        assertTrue(masked.noiseMask() != null, "KSampler keeps the noise mask");
        double worst = 0;
        for (int i = 0; i < in.samples().length; i++) {
            worst = Math.max(worst, Math.abs(in.samples()[i] - masked.samples()[i]));
        }
        assertTrue(worst < 1e-4, "outside the mask the latent stays the input's, max diff " + worst);
        assertNotEquals(in.samples()[0], free.samples()[0], "without a mask the latent is resampled");
    }
}

package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.PngReader;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateException;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.GenerateResult;
import jdiffusion.pipeline.HiresFix;
import jdiffusion.pipeline.ProgressListener;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.WorkflowEngine.ExecutionResult;
import jdiffusion.workflow.WorkflowEngine.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The pipeline's hires fix against the composition of verified pieces: the ComfyUI workflow it writes into the PNG
 * (KSampler, LatentUpscaleBy or VAEDecode + ImageUpscaleWithModel [+ ImageScale lanczos] + VAEEncode, KSampler,
 * VAEDecode), run by the workflow engine, gives the same image; the A1111 parameters carry the hires fields.
 */
class HiresFixTest {
    private static final String SD1 = "tiny-sd1-fp16.safetensors";
    private static final String X2 = "tiny-esrgan-old-x2-fp16.safetensors";

    @TempDir
    Path base;

    private GenerateRequest request(Path out) {
        return GenerateRequest.builder(Golden.model(SD1)).prompt("a red apple").negativePrompt("blurry").size(64, 64)
                .steps(3).cfg(5.0).sampler("euler").scheduler("normal").seed(21L).output(out).build();
    }

    /** Runs the hires fix, then the workflow from its PNG; returns the PNG's parameters. */
    private String compareWithWorkflow(HiresFix hires, int expectedSide) throws Exception {
        Path out = base.resolve("hires.png");
        GenerateResult r = HiresFix.generate(request(out), hires, ProgressListener.NONE, CancellationToken.none());
        assertEquals(expectedSide, r.settings().width());
        assertEquals(expectedSide, r.images().getFirst().height());
        Map<String, String> text = PngReader.text(r.files().getFirst());
        Workflows.place(base, "checkpoints", SD1);
        Workflows.place(base, "upscale_models", X2);
        try (WorkflowEngine engine = new WorkflowEngine(ModelPaths.of(base), 1L << 30)) {
            ExecutionResult w = engine.execute(Prompt.parse(text.get("prompt")), null, null, ExecutionListener.NONE);
            assertEquals(Status.SUCCESS, w.status(), w.message());
            Image decoded = (Image) w.values().get("36").getFirst();
            assertEquals(expectedSide, decoded.width());
            // the kernels' parallel sums may round differently from run to run: a tolerance, not bit equality
            Golden.assertClose("hires fix = its ComfyUI workflow", decoded.pixels(), r.image01(), 1e-4);
        }
        return text.get("parameters");
    }

    @Test
    void latentUpscaleEqualsTheTwoKSamplerWorkflow() throws Exception {
        String p = compareWithWorkflow(new HiresFix(1.5, "latent-bislerp", 2, 0.6), 96);
        assertTrue(p.contains("Steps: 3,"), p);
        assertTrue(p.contains("Size: 64x64"), p);
        assertTrue(p.contains("Denoising strength: 0.6, Hires upscale: 1.5, Hires steps: 2, Hires upscaler: Latent"
                + " (bislerp), Version: jdiffusion"), p);
    }

    @Test
    void modelUpscaleEqualsDecodeUpscaleEncode() throws Exception {
        Path model = Workflows.place(base, "upscale_models", X2);
        String p = compareWithWorkflow(new HiresFix(2, model.toString(), null, 0.5), 128);
        assertTrue(p.contains("Hires upscale: 2, Hires steps: 3, Hires upscaler: tiny-esrgan-old-x2-fp16"), p);
    }

    @Test
    void modelUpscaleToAnotherScaleResizesWithLanczos() throws Exception {
        Path model = Workflows.place(base, "upscale_models", X2);
        compareWithWorkflow(new HiresFix(1.25, model.toString(), 2, 0.5), 80);
    }

    @Test
    void badOptionsAreOneLineErrors() {
        GenerateRequest r = request(null);
        assertThrows(GenerateException.class, () -> HiresFix.generate(r, new HiresFix(2, "latent-lanczos", null,
                0.5), ProgressListener.NONE, CancellationToken.none()));
        assertThrows(GenerateException.class, () -> HiresFix.generate(r, new HiresFix(0, null, null, 0.5),
                ProgressListener.NONE, CancellationToken.none()));
        assertThrows(GenerateException.class, () -> HiresFix.generate(r, new HiresFix(2, null, null, 1.5),
                ProgressListener.NONE, CancellationToken.none()));
        GenerateException e = assertThrows(GenerateException.class, () -> HiresFix.generate(r,
                new HiresFix(2, base.resolve("missing.pth").toString(), null, 0.5), ProgressListener.NONE,
                CancellationToken.none()));
        assertEquals(1, e.getMessage().lines().count());
        assertThrows(GenerateException.class, () -> HiresFix.generate(r.toBuilder().scheduler("leading").build(),
                new HiresFix(2, null, null, 0.5), ProgressListener.NONE, CancellationToken.none()));
        assertThrows(GenerateException.class, () -> HiresFix.generate(r, new HiresFix(128, null, null, 0.5),
                ProgressListener.NONE, CancellationToken.none()));
    }
}

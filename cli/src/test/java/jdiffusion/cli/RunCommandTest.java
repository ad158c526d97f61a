package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jdiffusion run WORKFLOW.json --base-dir DIR}: the ComfyUI workflow of pipe_comfy_sd1_euler_ancestral_normal
 * reproduces the golden PNG; bad workflows fail with one line and no stack trace.
 */
class RunCommandTest {
    @TempDir
    Path dir;

    private static final String WORKFLOW = """
            {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1-fp16.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo of a cat wearing a hat, oil painting",
                   "clip": ["4", 1]}},
             "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "lowres", "clip": ["4", 1]}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 12345, "steps": 6, "cfg": 5.0,
                   "sampler_name": "euler_ancestral", "scheduler": "normal", "positive": ["6", 0],
                   "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
             "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
             "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "cat/ComfyUI"}}}
            """;

    @Test
    void runsAComfyWorkflowAndReproducesTheGoldenImage() throws Exception {
        Path base = dir.resolve("base");
        Files.createDirectories(base.resolve("models/checkpoints"));
        Files.copy(CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors"),
                base.resolve("models/checkpoints/tiny-sd1-fp16.safetensors"));
        Path wf = dir.resolve("wf.json");
        Files.writeString(wf, WORKFLOW);
        CliTests.Result r = CliTests.run("run", wf.toString(), "--base-dir", base.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("step 6/6"), r.out());
        Path saved = base.resolve("output/cat/ComfyUI_00001_.png");
        assertTrue(r.out().contains("saved " + saved), r.out());
        PngImage ours = PngReader.read(saved);
        PngImage golden = PngReader.read(CliTests.golden()
                .resolve("pipe_comfy_sd1_euler_ancestral_normal.png"));
        int worst = 0;
        for (int i = 0; i < golden.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((golden.rgb()[i] & 0xFF) - (ours.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= 1, "PNG within 1 level of the golden, got " + worst);
        assertTrue(PngReader.text(saved).get("prompt").contains("\"KSampler\""));
    }

    @Test
    void badWorkflowsFailWithOneLine() throws Exception {
        Path base = dir.resolve("empty");
        Path wf = dir.resolve("wf.json");
        Files.writeString(wf, WORKFLOW);
        CliTests.Result missingModel = CliTests.run("run", wf.toString(), "--base-dir",
                base.toString());
        assertEquals(2, missingModel.code());
        assertOneLine(missingModel.err());
        assertTrue(missingModel.err().contains("ckpt_name: 'tiny-sd1-fp16.safetensors' not in []"),
                missingModel.err());

        Files.writeString(wf, "{\"1\": {\"class_type\": \"KSampler\", ");
        CliTests.Result badJson = CliTests.run("run", wf.toString(), "--base-dir",
                base.toString());
        assertEquals(2, badJson.code());
        assertOneLine(badJson.err());
        assertTrue(badJson.err().contains("not valid JSON"), badJson.err());

        Files.writeString(wf, "{\"1\": {\"class_type\": \"EmptyLatentImage\", \"inputs\": {\"width\": 64,"
                + " \"height\": 64, \"batch_size\": 1}}}");
        CliTests.Result noOutputs = CliTests.run("run", wf.toString(), "--base-dir",
                base.toString());
        assertEquals(2, noOutputs.code());
        assertTrue(noOutputs.err().contains("Prompt has no outputs"), noOutputs.err());

        CliTests.Result noFile = CliTests.run("run", dir.resolve("nope.json").toString());
        assertEquals(2, noFile.code());
        assertTrue(noFile.err().contains("workflow file not found"), noFile.err());
    }

    private static void assertOneLine(String err) {
        assertEquals(1, err.strip().lines().count(), err);
        assertFalse(err.contains("Exception"), err);
    }
}

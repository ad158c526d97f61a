package jdiffusion.cli;

import static jdiffusion.cli.CliTests.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import jdiffusion.cli.CliTests.Result;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code jdiffusion info} and {@code jdiffusion dev random-checkpoint}: output, exit codes, one-line errors. */
class InfoCommandTest {
    @TempDir
    Path dir;

    private static Path model(String name) {
        return CliTests.golden().resolve("models").resolve(name);
    }

    /** Fails unless the command failed with exactly one line on stderr containing expected. */
    private static void assertOneLineError(Result r, String expected) {
        assertNotEquals(0, r.code(), r.err());
        String[] lines = r.err().strip().split("\n");
        assertEquals(1, lines.length, "one line: " + r.err());
        assertTrue(lines[0].startsWith("jdiffusion: error: ") && lines[0].contains(expected), lines[0]);
        assertFalse(r.err().contains("Exception"), r.err());
    }

    @Test
    void tinySd1() throws Exception {
        Path f = model("tiny-sd1-fp16.safetensors");
        Result r = run("info", f.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("SD1 checkpoint, 983 tensors"), r.out());
        assertTrue(r.out().contains("unet: model channels 32, channel mult [1, 2, 4, 4], 2 res blocks per level, "
                + "transformer depth [1, 1, 1, 0] (middle 1), context 64, conv 1x1 proj_in, 8 heads"), r.out());
        assertTrue(r.out().contains("clip_l: CLIP (HF), width 64, 3 layers, 1 heads, MLP 256"), r.out());
        long floats = 0;
        try (SafeTensors st = SafeTensors.open(f)) {
            for (TensorInfo t : st.tensors().values()) {
                floats += t.dtype().isFloat() ? t.numel() : 0;
            }
        }
        assertTrue(r.out().contains(String.format(Locale.ROOT, "total %,15d", floats).replace("total", "total     ")), r.out());
    }

    @Test
    void tinySdxlAsJsonWithTheDiffusersUnet() throws Exception {
        Result r = run("info", "--json", model("tiny-sdxl-fp16.safetensors").toString(),
                "--unet", model("tiny-sdxl-unet-diffusers-fp16.safetensors").toString());
        assertEquals(0, r.code(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals("SDXL", j.get("config").get("family").asText());
        assertEquals("[0,1,2]", j.get("config").get("unet").get("transformerDepth").toString());
        assertEquals(1664, j.get("config").get("unet").get("admInChannels").asInt());
        assertEquals("clip_g", j.get("config").get("textEncoders").get(1).get("name").asText());
        assertTrue(j.get("unet_file").asText().endsWith("tiny-sdxl-unet-diffusers-fp16.safetensors"));
    }

    @Test
    void unetAloneIsDescribed() {
        Result r = run("info", model("tiny-sdxl-unet-diffusers-fp16.safetensors").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("UNet alone (diffusers layout, SDXL-style), 620 tensors"), r.out());
    }

    @Test
    void badInputIsOneLineAndNonZero() throws Exception {
        // a tensor file that is neither checkpoint, UNet nor LoRA (a LoRA file is described: InfoLoraTest)
        assertOneLineError(run("info", model("../pipe_sd1_txt2img_lora.safetensors").toString()),
                "not a Stable Diffusion checkpoint, missing UNet (model.diffusion_model.*), VAE (first_stage_model.*), text encoder");
        assertOneLineError(run("info", dir.resolve("missing.safetensors").toString()), "missing.safetensors: file not found");
        assertOneLineError(run("info", dir.toString()), "is a directory");
        byte[] all = Files.readAllBytes(model("tiny-sd1-fp16.safetensors"));
        Path cut = dir.resolve("cut.safetensors");
        Files.write(cut, Arrays.copyOf(all, all.length / 2));
        assertOneLineError(run("info", cut.toString()), "(truncated or corrupt file)");
        Path text = dir.resolve("notes.safetensors");
        Files.writeString(text, "these are not tensors at all");
        assertOneLineError(run("info", text.toString()), "not a safetensors file");
        assertOneLineError(run("info", model("tiny-sdxl-fp16.safetensors").toString(), "--unet",
                model("tiny-sd1-fp16.safetensors").toString()), "UNet does not fit tiny-sdxl-fp16.safetensors (SDXL): tensor '");
    }

    @Test
    void randomCheckpointRefusesBadArgumentsAndExistingFiles() throws Exception {
        assertOneLineError(run("dev", "random-checkpoint", "--arch", "sd3", "-o", dir.resolve("x.safetensors").toString()),
                "unknown architecture 'sd3' (known: sd15, sd21, sdxl)");
        assertOneLineError(run("dev", "random-checkpoint", "--arch", "sd15", "--dtype", "q4", "-o",
                dir.resolve("x.safetensors").toString()), "--dtype: unknown type 'q4'");
        Path existing = dir.resolve("existing.safetensors");
        Files.writeString(existing, "keep me");
        assertOneLineError(run("dev", "random-checkpoint", "--arch", "sd15", "-o", existing.toString()),
                "already exists (refusing to overwrite)");
        assertEquals("keep me", Files.readString(existing));
    }
}

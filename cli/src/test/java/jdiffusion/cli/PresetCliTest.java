package jdiffusion.cli;

import static jdiffusion.cli.LightningCli.cli;
import static jdiffusion.cli.LightningCli.model;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code generate --preset lcm|turbo} from the CLI: the line telling what was chosen, and what actually ran. */
class PresetCliTest {
    @TempDir
    Path dir;

    @Test
    void turboIsOneEulerAncestralStepAt512() throws Exception {
        Path png = dir.resolve("turbo.png");
        LightningCli.Run r = cli("generate", "-m", model("tiny-sd1-fp16.safetensors").toString(), "-p", "a cat",
                "--preset", "turbo", "-s", "3", "-o", png.toString(), "-q");
        assertEquals(0, r.exit(), r.err());
        assertEquals("preset turbo: euler_ancestral + sgm_uniform, 1 step, cfg 1, size 512x512", r.errLine("preset "));
        PngImage image = PngReader.read(png);
        assertEquals(512, image.width());
        assertEquals(512, image.height());
        LightningCli.Workflow wf = LightningCli.workflow(png);
        assertEquals("euler_ancestral", wf.ksampler().path("sampler_name").asText());
        assertEquals("sgm_uniform", wf.ksampler().path("scheduler").asText());
        assertEquals(1, wf.ksampler().path("steps").asInt());
        assertEquals(1.0, wf.ksampler().path("cfg").asDouble());
    }

    /** The SD1 LoRA stands in for an LCM-LoRA; the user's --cfg wins over the preset's 1.5. */
    @Test
    void lcmWithALoraAndTheUsersCfg() throws Exception {
        Path png = dir.resolve("lcm.png");
        LightningCli.Run r = cli("generate", "-m", model("tiny-sd1-fp16.safetensors").toString(), "-p", "a cat",
                "--lora", model("tiny-sd1-lora-kohya.safetensors").toString(), "--preset", "lcm", "--cfg", "2",
                "-W", "64", "-H", "64", "-s", "3", "-o", png.toString(), "-q");
        assertEquals(0, r.exit(), r.err());
        assertEquals("preset lcm: lcm + sgm_uniform, 4 steps, cfg 2 (yours)", r.errLine("preset "));
        LightningCli.Workflow wf = LightningCli.workflow(png);
        assertEquals("lcm", wf.ksampler().path("sampler_name").asText());
        assertEquals("sgm_uniform", wf.ksampler().path("scheduler").asText());
        assertEquals(4, wf.ksampler().path("steps").asInt());
        assertEquals(2.0, wf.ksampler().path("cfg").asDouble());
    }

    @Test
    void anUnknownPresetIsOneLineAndWritesNothing() {
        Path png = dir.resolve("none.png");
        LightningCli.Run r = cli("generate", "-m", model("tiny-sd1-fp16.safetensors").toString(), "--preset", "hyper",
                "-o", png.toString(), "-q");
        assertTrue(r.exit() != 0);
        assertEquals("jdiffusion: error: unknown --preset 'hyper'; valid: lightning, lcm, turbo, sd35-turbo", r.err().strip());
        assertFalse(Files.exists(png));
    }
}

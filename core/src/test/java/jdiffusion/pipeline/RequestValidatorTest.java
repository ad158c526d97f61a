package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import jdiffusion.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every bad input of the issue: one line naming the problem, and nothing written. */
class RequestValidatorTest {
    @TempDir
    Path dir;

    private GenerateRequest.Builder base() {
        return GenerateRequest.builder(Golden.model("tiny-sd1-fp16.safetensors")).prompt("a cat")
                .output(dir.resolve("out.png")).saveLatent(dir.resolve("out.safetensors")).steps(2);
    }

    private void rejects(UnaryOperator<GenerateRequest.Builder> change, String... mustContain) throws Exception {
        GenerateRequest r = change.apply(base()).build();
        GenerateException e = assertThrows(GenerateException.class,
                () -> Pipeline.generate(r, ProgressListener.NONE, CancellationToken.none()));
        String msg = e.getMessage();
        assertTrue(!msg.contains("\n"), "one line: " + msg);
        for (String s : mustContain) {
            assertTrue(msg.contains(s), "'" + msg + "' should mention " + s);
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(0, files.filter(f -> f.getFileName().toString().startsWith("out")).count(),
                    "nothing written for: " + msg);
        }
    }

    @Test
    void sizes() throws Exception {
        rejects(b -> b.width(500), "width", "multiple of 8", "500");
        rejects(b -> b.height(60), "height", "64", "60");
        rejects(b -> b.width(4104), "width", "4096");
    }

    @Test
    void stepsCfgDenoiseBatch() throws Exception {
        rejects(b -> b.steps(0), "steps", "0");
        rejects(b -> b.steps(1001), "steps", "1001");
        rejects(b -> b.cfg(-1.0), "cfg", "-1");
        rejects(b -> b.denoise(0), "denoise", "(0, 1]");
        rejects(b -> b.denoise(1.5), "denoise", "1.5");
        rejects(b -> b.batch(0), "batch");
        rejects(b -> b.denoise(0.5).scheduler("trailing"), "denoise", "init image", "trailing");
    }

    @Test
    void unknownSamplerAndSchedulerListValidNames() throws Exception {
        rejects(b -> b.sampler("eulr"), "unknown sampler 'eulr'", "euler", "dpmpp_2m");
        rejects(b -> b.scheduler("karas"), "unknown scheduler 'karas'", "karras", "normal", "trailing");
    }

    @Test
    void initImageProblems() throws Exception {
        rejects(b -> b.initImage(dir.resolve("missing.png")), "missing.png", "not found");
        Path junk = Files.writeString(dir.resolve("junk.png"), "not an image");
        rejects(b -> b.initImage(junk), "junk.png");
        Path odd = dir.resolve("odd.png");
        jdiffusion.io.PngWriter.writeNew(odd, new jdiffusion.io.PngImage(70, 64, new byte[70 * 64 * 3]),
                java.util.Map.of());
        rejects(b -> b.initImage(odd), "70x64", "multiple");
    }

    @Test
    void missingFilesAndUnwritableOutput() throws Exception {
        rejects(b -> GenerateRequest.builder(dir.resolve("nope.safetensors")).output(dir.resolve("out.png")),
                "model", "nope.safetensors");
        rejects(b -> b.vae(dir.resolve("vae.safetensors")), "VAE", "vae.safetensors");
        rejects(b -> b.output(dir.resolve("no/such/dir/out.png")), "output folder", "does not exist");
        rejects(b -> b.saveLatent(dir), "directory");
    }

    @Test
    void aUnetThatDoesNotFitNamesTensorAndShape() throws Exception {
        rejects(b -> b.unet(Golden.model("tiny-sdxl-fp16.safetensors")), "UNet", "tensor", "[");
    }
}

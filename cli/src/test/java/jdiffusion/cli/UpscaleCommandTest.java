package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.PngWriter;
import jdiffusion.io.SafeTensors;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.GenerateResult;
import jdiffusion.pipeline.HiresFix;
import jdiffusion.pipeline.ProgressListener;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jdiffusion upscale} reproduces every {@code esrgan_*} golden from a PNG of its input (the output is 8-bit:
 * truncated as ComfyUI's SaveImage, so within one level of the reference, equal almost everywhere), and
 * {@code generate --hires-*} gives what the library's hires fix gives for the same request.
 */
class UpscaleCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @TestFactory
    Stream<DynamicTest> upscaleReproducesTheEsrganCases() throws IOException {
        try (Stream<Path> files = Files.walk(CliTests.golden().resolve("upscale"))) {
            return files.filter(f -> f.getFileName().toString().startsWith("esrgan_")
                    && f.getFileName().toString().endsWith(".json")).sorted().toList().stream()
                    .flatMap(m -> {
                        JsonNode params = read(m).path("params");
                        String name = m.getFileName().toString().replace(".json", "");
                        DynamicTest safetensors = DynamicTest.dynamicTest(name, () -> reproduce(m,
                                params.path("model_file").asText()));
                        // the PyTorch twin (params.pth_file: "models/x.pth (...)"), read by the safe pickle reader
                        return params.has("pth_file") ? Stream.of(safetensors, DynamicTest.dynamicTest(name + " .pth",
                                () -> reproduce(m, params.path("pth_file").asText().split(" ")[0])))
                                : Stream.of(safetensors);
                    });
        }
    }

    private static JsonNode read(Path manifest) {
        try {
            return JSON.readTree(manifest.toFile());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private void reproduce(Path manifest, String modelFile) throws Exception {
        JsonNode m = read(manifest);
        String name = manifest.getFileName().toString().replace(".json", "");
        Path model = CliTests.golden().resolve(modelFile);
        JsonNode in = m.path("inputs").path("image");
        JsonNode out = m.path("outputs").path("output");
        int h = in.path("shape").get(2).asInt();
        int w = in.path("shape").get(3).asInt();
        int oh = out.path("shape").get(2).asInt();
        int ow = out.path("shape").get(3).asInt();
        float[] image;
        float[] expected;
        try (SafeTensors t = SafeTensors.open(manifest.resolveSibling(name + ".safetensors"))) {
            image = t.floats(in.path("tensor").asText());
            expected = t.floats(out.path("tensor").asText());
        }
        byte[] rgb = new byte[h * w * 3];
        for (int p = 0; p < h * w; p++) {
            for (int c = 0; c < 3; c++) {
                rgb[p * 3 + c] = (byte) Math.round(image[c * h * w + p] * 255f); // the inputs are k/255
            }
        }
        Path png = PngWriter.writeNew(dir.resolve(name + ".in.png"), new PngImage(w, h, rgb), Map.of());
        Path target = dir.resolve(name + "." + model.getFileName() + ".out.png");
        CliTests.Result r = CliTests.run("upscale", "-m", model.toString(), "-i", png.toString(), "-o",
                target.toString(), "--tile", "512");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("wrote " + target), r.out());
        PngImage got = PngReader.read(target);
        assertEquals(ow, got.width());
        assertEquals(oh, got.height());
        int exact = 0;
        for (int p = 0; p < oh * ow; p++) {
            for (int c = 0; c < 3; c++) {
                int want = (int) (255f * Math.min(1f, Math.max(0f, expected[c * oh * ow + p])));
                int diff = Math.abs(want - got.value(p % ow, p / ow, c));
                assertTrue(diff <= 1, name + ": pixel " + p + " channel " + c + " off by " + diff);
                exact += diff == 0 ? 1 : 0;
            }
        }
        assertTrue(exact >= 0.99 * oh * ow * 3, name + ": only " + exact + " of " + oh * ow * 3 + " exact");
        assertTrue(PngReader.text(target).get("parameters").startsWith("Postprocess upscale by: "
                + m.path("params").path("spandrel").path("scale").asInt() + ", Postprocess upscaler: "));
    }

    @Test
    void badInputIsOneLine() throws IOException {
        CliTests.Result r = CliTests.run("upscale", "-m", CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors")
                .toString(), "-i", dir.resolve("none.png").toString());
        assertEquals(2, r.code());
        assertEquals(1, r.err().lines().count(), r.err());
        Path png = PngWriter.writeNew(dir.resolve("in.png"), new PngImage(8, 8, new byte[8 * 8 * 3]), Map.of());
        r = CliTests.run("upscale", "-m", CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors").toString(),
                "-i", png.toString(), "-o", dir.resolve("o.png").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("not a known upscale model"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void generateWithHiresFlagsIsTheLibrarysHiresFix() throws Exception {
        Path sd1 = CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors");
        Path png = dir.resolve("cli.png");
        CliTests.Result r = CliTests.run("generate", "-m", sd1.toString(), "-p", "a lighthouse", "-W", "64", "-H",
                "64", "--steps", "2", "--cfg", "4", "--sampler", "euler", "--scheduler", "karras", "-s", "9", "-o",
                png.toString(), "-q", "--hires-scale", "1.5", "--hires-upscaler", "latent-area", "--hires-steps", "3",
                "--hires-denoise", "0.55");
        assertEquals(0, r.code(), r.err());
        GenerateResult lib = HiresFix.generate(GenerateRequest.builder(sd1).prompt("a lighthouse").size(64, 64)
                .steps(2).cfg(4.0).sampler("euler").scheduler("karras").seed(9L).build(),
                new HiresFix(1.5, "latent-area", 3, 0.55), ProgressListener.NONE, CancellationToken.none());
        PngImage got = PngReader.read(png);
        PngImage want = lib.images().getFirst();
        assertEquals(96, got.width());
        int worst = 0;
        for (int i = 0; i < want.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((want.rgb()[i] & 0xFF) - (got.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= 1, "CLI and library hires images differ by " + worst + " levels");
        String params = PngReader.text(png).get("parameters");
        assertTrue(params.contains("Steps: 2, ") && params.contains("Size: 64x64") && params.contains(
                "Denoising strength: 0.55, Hires upscale: 1.5, Hires steps: 3, Hires upscaler: Latent (area)"), params);

        CliTests.Result bad = CliTests.run("generate", "-m", sd1.toString(), "--hires-steps", "3", "-o",
                dir.resolve("x.png").toString());
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("need --hires-scale"), bad.err());
    }

}

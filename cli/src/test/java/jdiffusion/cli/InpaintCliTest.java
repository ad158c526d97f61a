package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code generate -i photo.png --mask mask.png} with flags only reproduces every diffusers inpaint case of the golden
 * inpaint folder (9-channel model, strength, legacy 4-channel blend, SDXL): the saved latent within the manifest's
 * tolerance, the PNG within its recommended levels, the A1111 parameters naming the mask. And the outpaint, alpha,
 * paste-back and error paths of the flags.
 */
class InpaintCliTest {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());

    @TempDir
    Path dir;

    /** Diffusers inpaint manifests (a mask PNG, not ComfyUI) in the inpaint folder (recursively) and at top level. */
    static List<Path> cases() {
        Path g = CliTests.golden();
        try (Stream<Path> top = Files.list(g); Stream<Path> sub = Files.isDirectory(g.resolve("inpaint"))
                ? Files.walk(g.resolve("inpaint")) : Stream.empty()) {
            return Stream.concat(top, sub).filter(f -> {
                String n = f.getFileName().toString();
                return n.startsWith("pipe_") && !n.startsWith("pipe_comfy_") && n.endsWith(".json")
                        && json(f).path("params").has("mask_png");
            }).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static JsonNode json(Path f) {
        try {
            return JSON.readTree(f.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @TestFactory
    Stream<DynamicTest> reproducesTheDiffusersInpaintCases() {
        List<Path> cases = cases();
        assertTrue(!cases.isEmpty(), "no diffusers inpaint cases found");
        return cases.stream().map(m -> DynamicTest.dynamicTest(name(m), () -> reproduce(m)));
    }

    private static String name(Path manifest) {
        String n = manifest.getFileName().toString();
        return n.substring(0, n.length() - ".json".length());
    }

    private void reproduce(Path manifest) throws Exception {
        String caseName = name(manifest);
        JsonNode m = json(manifest);
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        java.util.regex.Matcher mm = java.util.regex.Pattern.compile("models/(\\S+?)\\.safetensors")
                .matcher(p.path("model").asText());
        assertTrue(mm.find(), "model file in the manifest");
        String model = mm.group(1).replaceAll("-fp(16|32)$", "") + "-fp16.safetensors";
        String sampler = switch (p.path("scheduler_class").asText()) {
            case "EulerDiscreteScheduler" -> "euler";
            case "EulerAncestralDiscreteScheduler" -> "euler_ancestral";
            case "HeunDiscreteScheduler" -> "heun";
            case "DDIMScheduler" -> "ddim";
            default -> throw new AssertionError("scheduler " + p.path("scheduler_class").asText());
        };
        Path png = dir.resolve(caseName + ".png");
        Path latent = dir.resolve(caseName + ".safetensors");
        List<String> args = new ArrayList<>(List.of("generate", "-m",
                CliTests.golden().resolve("models").resolve(model).toString(), "-p", call.path("prompt").asText(),
                "--steps", call.path("num_inference_steps").asText(), "--cfg", call.path("guidance_scale").asText(),
                "--sampler", sampler, "--scheduler", p.path("scheduler_config").path("timestep_spacing").asText(),
                "-s", p.path("generator_seed").asText("100"),
                "-i", manifest.resolveSibling(p.path("input_image_png").asText()).toString(),
                "--mask", manifest.resolveSibling(p.path("mask_png").asText()).toString(),
                "--denoise", call.path("strength").asText("1.0"),
                "-o", png.toString(), "--save-latent", latent.toString(), "-q"));
        if (call.hasNonNull("negative_prompt")) {
            args.addAll(List.of("-n", call.get("negative_prompt").asText()));
        }
        CliTests.Result r = CliTests.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), caseName + ": " + r.err());
        JsonNode lat = m.path("outputs").path("latents_final");
        try (SafeTensors golden = SafeTensors.open(manifest.resolveSibling(caseName + ".safetensors"));
             SafeTensors ours = SafeTensors.open(latent)) {
            float[] expected = golden.floats(lat.get("tensor").asText());
            float[] actual = ours.floats("latent");
            assertEquals(expected.length, actual.length, caseName + " latent size");
            double atol = lat.path("tolerance").path("atol").asDouble();
            for (int i = 0; i < expected.length; i++) {
                double d = Math.abs(expected[i] - actual[i]);
                if (!(d <= atol)) {
                    throw new AssertionError(caseName + " latent[" + i + "]: |diff| " + d + " > " + atol);
                }
            }
        }
        PngImage expected = PngReader.read(manifest.resolveSibling(p.path("png").path("file").asText()));
        PngImage actual = PngReader.read(png);
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= p.path("png").path("recommended_tolerance").asInt(1), caseName + " PNG level diff " + worst);
        String params = PngReader.text(png).get("parameters");
        assertTrue(params.contains("Mask blur: 0"), params);
        assertTrue(params.contains("Mask: " + p.path("mask_png").asText()), params);
        assertTrue(params.contains("Denoising strength: "), params);
    }

    /** An RGBA copy of a golden init image, transparent in a square: the --mask alpha input. */
    private Path rgbaInit(int x0, int y0, int size) throws IOException {
        Path src = cases().getFirst();
        PngImage img = PngReader.read(src.resolveSibling(json(src).path("params").path("input_image_png").asText()));
        java.awt.image.BufferedImage bi = new java.awt.image.BufferedImage(img.width(), img.height(),
                java.awt.image.BufferedImage.TYPE_INT_ARGB);
        for (int y = 0; y < img.height(); y++) {
            for (int x = 0; x < img.width(); x++) {
                boolean hole = x >= x0 && x < x0 + size && y >= y0 && y < y0 + size;
                int a = hole ? 0 : 255;
                bi.setRGB(x, y, a << 24 | img.value(x, y, 0) << 16 | img.value(x, y, 1) << 8 | img.value(x, y, 2));
            }
        }
        Path out = dir.resolve("rgba.png");
        javax.imageio.ImageIO.write(bi, "png", out.toFile());
        return out;
    }

    @Test
    void alphaMaskWithPasteBackKeepsTheUnmaskedPixelsExactly() throws Exception {
        Path init = rgbaInit(16, 16, 24);
        Path png = dir.resolve("alpha.png");
        CliTests.Result r = CliTests.run("generate", "-m", CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors")
                .toString(), "-p", "a cat", "--steps", "2", "-s", "7", "-i", init.toString(), "--mask", "alpha",
                "--mask-grow", "2", "--paste-back", "-o", png.toString(), "-q");
        assertEquals(0, r.code(), r.err());
        PngImage original = PngReader.read(init);
        PngImage out = PngReader.read(png);
        int changedInside = 0;
        for (int y = 0; y < out.height(); y++) {
            for (int x = 0; x < out.width(); x++) {
                // the hole grown by 2 (tapered): everything 3+ pixels away is the original
                boolean near = x >= 13 && x < 43 && y >= 13 && y < 43;
                for (int c = 0; c < 3; c++) {
                    if (!near) {
                        assertEquals(original.value(x, y, c), out.value(x, y, c), "pixel " + x + "," + y);
                    } else if (x >= 16 && x < 40 && y >= 16 && y < 40 && original.value(x, y, c) != out.value(x, y, c)) {
                        changedInside++;
                    }
                }
            }
        }
        assertTrue(changedInside > 0, "the masked area was repainted");
        Map<String, String> text = PngReader.text(png);
        assertTrue(text.get("parameters").contains("Mask: alpha, Mask grow: 2"), text.get("parameters"));
        assertTrue(text.get("parameters").contains("Inpaint paste back: true"), text.get("parameters"));
    }

    @Test
    void outpaintExtendsTheCanvas() throws Exception {
        Path src = cases().getFirst();
        Path init = src.resolveSibling(json(src).path("params").path("input_image_png").asText());
        PngImage original = PngReader.read(init);
        Path png = dir.resolve("out.png");
        CliTests.Result r = CliTests.run("generate", "-m", CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors")
                .toString(), "-p", "a cat", "--steps", "2", "-s", "7", "-i", init.toString(), "--outpaint",
                "8,0,16,8", "--feather", "4", "--paste-back", "-o", png.toString(), "-q");
        assertEquals(0, r.code(), r.err());
        PngImage out = PngReader.read(png);
        assertEquals(original.width() + 24, out.width());
        assertEquals(original.height() + 8, out.height());
        // far from the padded sides (>= feather) the original pixels stay
        assertEquals(original.value(original.width() / 2, 0, 0), out.value(8 + original.width() / 2, 0, 0));
        assertTrue(PngReader.text(png).get("parameters").contains("Outpaint: 8,0,16,8, Outpaint feather: 4"));
    }

    @Test
    void badInpaintFlagsAreOneLineErrors() throws Exception {
        Path src = cases().getFirst();
        Path init = src.resolveSibling(json(src).path("params").path("input_image_png").asText());
        String model = CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors").toString();
        assertError("--outpaint takes four pixel margins", "generate", "-m", model, "-i", init.toString(),
                "--outpaint", "8,8", "-o", dir.resolve("a.png").toString());
        assertError("need --mask or --outpaint", "generate", "-m", model, "-i", init.toString(), "--mask-blur", "4",
                "-o", dir.resolve("b.png").toString());
        assertError("has no transparency", "generate", "-m", model, "-i", init.toString(), "--mask", "alpha",
                "-o", dir.resolve("c.png").toString(), "--steps", "1");
        assertError("mask file not found", "generate", "-m", model, "-i", init.toString(), "--mask",
                dir.resolve("missing.png").toString(), "-o", dir.resolve("d.png").toString());
        assertError("need an init image", "generate", "-m", model, "--mask", init.toString(), "-o",
                dir.resolve("e.png").toString());
        assertError("multiples of 8", "generate", "-m", model, "-i", init.toString(), "--outpaint", "3,0,0,0",
                "-o", dir.resolve("f.png").toString());
    }

    private static void assertError(String expected, String... args) {
        CliTests.Result r = CliTests.run(args);
        assertTrue(r.code() != 0, "exit code for " + String.join(" ", args));
        assertTrue(r.err().contains(expected), "expected '" + expected + "' in: " + r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
    }
}

package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code jdiffusion generate} with flags only reproduces the three diffusers cases (seed 100, the
 * manifest's prompt, size, steps and cfg): the saved latent within the manifest's tolerance, the PNG within 2 levels.
 */
class GenerateCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());

    @TempDir
    Path dir;

    record Run(int exit, String out, String err) {
    }

    static Path golden() {
        return CliTests.golden();
    }

    static Run cli(String... args) {
        CliTests.Result r = CliTests.run(args);
        return new Run(r.code(), r.out(), r.err());
    }

    /** Runs the case through the CLI with the flags given plus those read from its manifest, then compares. */
    private void reproduce(String caseName, String... flags) throws Exception {
        Path manifest = golden().resolve(caseName + ".json");
        JsonNode m = JSON.readTree(manifest.toFile());
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        String model = p.path("model").asText().contains("tiny-sdxl") ? "tiny-sdxl-fp16" : "tiny-sd1-fp16";
        Path png = dir.resolve(caseName + ".png");
        Path latent = dir.resolve(caseName + ".safetensors");
        List<String> args = new ArrayList<>(List.of("generate", "-m", golden().resolve("models/" + model
                + ".safetensors").toString(), "-p", call.path("prompt").asText(), "--steps",
                call.path("num_inference_steps").asText(), "-s", "100", "-o", png.toString(), "--save-latent",
                latent.toString(), "-q"));
        if (call.hasNonNull("negative_prompt")) {
            args.addAll(List.of("-n", call.get("negative_prompt").asText()));
        }
        if (call.has("strength")) {
            args.addAll(List.of("-i", golden().resolve(p.path("input_image_png").asText()).toString(), "--denoise",
                    call.get("strength").asText()));
        } else {
            args.addAll(List.of("-W", p.path("size_hw").get(1).asText(), "-H", p.path("size_hw").get(0).asText()));
        }
        args.addAll(List.of(flags));
        Run r = cli(args.toArray(String[]::new));
        assertEquals(0, r.exit(), caseName + ": " + r.err());
        assertTrue(r.err().contains("seed: 100"), r.err());
        assertTrue(r.out().contains("wrote " + png), r.out());

        JsonNode lat = m.path("outputs").path("latents_final");
        double atol = lat.path("tolerance").path("atol").asDouble();
        try (SafeTensors golden = SafeTensors.open(manifest.resolveSibling(caseName + ".safetensors"));
             SafeTensors ours = SafeTensors.open(latent)) {
            float[] expected = golden.floats(lat.get("tensor").asText());
            float[] actual = ours.floats("latent");
            assertEquals(expected.length, actual.length, caseName + " latent size");
            for (int i = 0; i < expected.length; i++) {
                double d = Math.abs(expected[i] - actual[i]);
                if (!(d <= atol)) {
                    throw new AssertionError(caseName + " latent[" + i + "]: expected " + expected[i] + ", got "
                            + actual[i] + " (atol " + atol + ")");
                }
            }
            List<Integer> shape = new ArrayList<>();
            lat.get("shape").forEach(n -> shape.add(n.asInt()));
            assertEquals(shape, java.util.Arrays.stream(ours.info("latent").dims()).boxed().toList());
        }
        PngImage expected = PngReader.read(golden().resolve(p.path("png").path("file").asText()));
        PngImage actual = PngReader.read(png);
        assertEquals(expected.width(), actual.width());
        assertEquals(expected.height(), actual.height());
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= 2, caseName + " PNG differs by " + worst + " levels");
        Map<String, String> text = PngReader.text(png);
        assertTrue(text.get("parameters").contains("Seed: 100"), text.get("parameters"));
        assertTrue(text.get("prompt").contains("\"KSampler\""), text.get("prompt"));
    }

    @Test
    void pipeSd1Txt2imgEuler() throws Exception {
        reproduce("pipe_sd1_txt2img_euler", "--sampler", "euler", "--scheduler", "leading", "--cfg",
                guidance("pipe_sd1_txt2img_euler"));
    }

    @Test
    void pipeSdxlLightningEulerTrailing() throws Exception {
        reproduce("pipe_sdxl_lightning_euler_trailing", "--sampler", "euler", "--scheduler", "trailing", "--cfg", "1");
    }

    @Test
    void pipeSd1Img2imgEuler() throws Exception {
        reproduce("pipe_sd1_img2img_euler", "--sampler", "euler", "--scheduler", "leading", "--cfg",
                guidance("pipe_sd1_img2img_euler"));
    }

    @Test
    void pipeSd1Txt2imgLoraWithTheLoraFlag() throws Exception {
        JsonNode lora = JSON.readTree(golden().resolve("pipe_sd1_txt2img_lora.json").toFile()).path("params")
                .path("lora");
        reproduce("pipe_sd1_txt2img_lora", "--sampler", "euler", "--scheduler", "leading", "--cfg",
                guidance("pipe_sd1_txt2img_lora"), "--lora",
                golden().resolve(lora.path("file").asText()) + ":" + lora.path("scale").asText());
    }

    private static String guidance(String caseName) throws Exception {
        return JSON.readTree(golden().resolve(caseName + ".json").toFile()).path("params").path("call")
                .path("guidance_scale").asText();
    }

    @Test
    void badInputIsOneLineWithoutStackTraceAndWritesNothing() throws Exception {
        String model = golden().resolve("models/tiny-sd1-fp16.safetensors").toString();
        Path out = dir.resolve("bad.png");
        String[][] cases = {
            {"-W", "65"}, {"-H", "4100"}, {"--steps", "0"}, {"--cfg", "-2"}, {"--denoise", "0"},
            {"--sampler", "nope"}, {"--scheduler", "nope"}, {"-i", dir.resolve("missing.png").toString()},
            {"--prediction", "q"}, {"-s", "abc"}, {"--save-latent", dir.resolve("missing/dir/x.st").toString()},
            {"-W", "abc"}, {"--batch", "0"}, {"--clip-skip", "0"}, {"--unet", dir.resolve("u.safetensors").toString()},
        };
        for (String[] c : cases) {
            List<String> args = new ArrayList<>(List.of("generate", "-m", model, "-p", "x", "-o", out.toString(), "-q"));
            args.addAll(List.of(c));
            Run r = cli(args.toArray(String[]::new));
            assertTrue(r.exit() != 0, String.join(" ", c) + " must fail");
            String[] lines = r.err().strip().split("\n");
            String last = lines[lines.length - 1];
            assertTrue(last.startsWith("jdiffusion: error: "), String.join(" ", c) + " -> " + r.err());
            assertTrue(!r.err().contains("\tat "), "no stack trace: " + r.err());
            assertTrue(!Files.exists(out), "nothing written for " + String.join(" ", c));
        }
    }

    @Test
    void randomSeedIsPrintedAndAMissingModelIsOneLine() {
        Run ok = cli("generate", "-m", golden().resolve("models/tiny-sd1-fp16.safetensors").toString(), "-W", "64",
                "-H", "64", "--steps", "1", "-o", dir.resolve("r.png").toString(), "-q");
        assertEquals(0, ok.exit(), ok.err());
        assertTrue(ok.err().matches("(?s)seed: \\d+\n.*"), ok.err());
        Run bad = cli("generate", "-m", "/nonexistent/model.safetensors", "-q");
        assertEquals("jdiffusion: error: model file not found: /nonexistent/model.safetensors", bad.err().strip());
    }
}

package jdiffusion.cli;

import static jdiffusion.cli.LightningCli.JSON;
import static jdiffusion.cli.LightningCli.cli;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.pipeline.GenerateRequest;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code generate --control}: every diffusers ControlNet pipeline case ({@code pipe_*controlnet*} with a
 * {@code call}) reproduced from flags only (latent within the manifest's tolerance, PNG within its recommended
 * levels, the A1111 ControlNet line in the PNG); flag parsing; a file that is not a ControlNet gets a one-line error.
 */
class ControlNetCliTest {
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?\\.safetensors)");

    @TempDir
    Path dir;

    @TestFactory
    Stream<DynamicTest> diffusersControlNetCasesFromFlags() throws Exception {
        List<Path> manifests;
        try (Stream<Path> files = Files.walk(LightningCli.golden().resolve("controlnet"))) {
            manifests = files.filter(p -> p.getFileName().toString().matches("pipe_.*controlnet.*\\.json")).sorted()
                    .toList();
        }
        List<DynamicTest> tests = new ArrayList<>();
        for (Path m : manifests) {
            if (JSON.readTree(m.toFile()).path("params").has("call")) {
                tests.add(DynamicTest.dynamicTest(m.getFileName().toString().replace(".json", ""), () -> reproduce(m)));
            }
        }
        assertFalse(tests.isEmpty(), "no diffusers ControlNet case");
        return tests.stream();
    }

    private static String file(String param) {
        Matcher mm = MODEL.matcher(param);
        assertTrue(mm.find(), "no models/ file in " + param);
        return LightningCli.model(mm.group(1)).toString();
    }

    private void reproduce(Path manifestFile) throws Exception {
        JsonNode m = JSON.readTree(manifestFile.toFile());
        JsonNode p = m.path("params");
        JsonNode call = p.path("call");
        String name = m.path("case").asText();
        Path png = dir.resolve(name + ".png");
        Path latent = dir.resolve(name + ".safetensors");
        JsonNode cn = p.path("controlnet_model");
        String cnFile = file(cn.has("ldm_layout") ? cn.get("ldm_layout").asText() : cn.elements().next().asText());
        String control = cnFile + ":" + manifestFile.resolveSibling(p.path("hint_png").asText()) + ":"
                + call.path("controlnet_conditioning_scale").asText("1.0");
        if (call.has("control_guidance_start") || call.has("control_guidance_end")) {
            control += ":" + call.path("control_guidance_start").asText("0.0") + ":"
                    + call.path("control_guidance_end").asText("1.0");
        }
        List<String> args = new ArrayList<>(List.of("generate", "-m", file(p.path("model").asText()),
                "-p", call.path("prompt").asText(), "--steps", call.path("num_inference_steps").asText(),
                "--cfg", call.path("guidance_scale").asText(), "-s", p.path("generator_seed").asText(),
                "-W", p.path("size_hw").get(1).asText(), "-H", p.path("size_hw").get(0).asText(),
                "--sampler", "euler", "--scheduler", p.path("scheduler_config").path("timestep_spacing").asText(),
                "--control", control, "-o", png.toString(), "--save-latent", latent.toString(), "-q"));
        assertEquals("EulerDiscreteScheduler", p.path("scheduler_class").asText());
        if (call.hasNonNull("negative_prompt")) {
            args.addAll(List.of("-n", call.get("negative_prompt").asText()));
        }
        LightningCli.Run r = cli(args.toArray(String[]::new));
        assertEquals(0, r.exit(), name + " " + args + ": " + r.err());
        JsonNode lat = m.path("outputs").path("latents_final");
        try (SafeTensors golden = SafeTensors.open(manifestFile.resolveSibling(name + ".safetensors"));
             SafeTensors mine = SafeTensors.open(latent)) {
            float[] expected = golden.floats(lat.get("tensor").asText());
            float[] actual = mine.floats("latent");
            double worst = 0;
            for (int i = 0; i < expected.length; i++) {
                worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
            }
            assertTrue(worst <= lat.path("tolerance").path("atol").asDouble(), name + " latent differs by " + worst);
        }
        PngImage expected = PngReader.read(manifestFile.resolveSibling(p.path("png").path("file").asText()));
        PngImage actual = PngReader.read(png);
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= p.path("png").path("recommended_tolerance").asInt(1), name + " PNG differs by " + worst);
        Map<String, String> text = PngReader.text(png);
        String stem = Path.of(cnFile).getFileName().toString().replace(".safetensors", "");
        assertTrue(text.get("parameters").contains("ControlNet 0: \"Module: none, Model: " + stem + ", Weight: "),
                text.get("parameters"));
        assertTrue(text.get("prompt").contains("ControlNetApplyAdvanced"), text.get("prompt"));
    }

    @Test
    void controlFlagParsing() {
        GenerateRequest.ControlSpec a = ControlOptions.parse("cn.safetensors:hint.png", "none", 0.4, 0.8);
        assertEquals(Path.of("cn.safetensors"), a.model());
        assertEquals(Path.of("hint.png"), a.image());
        assertEquals(1.0, a.strength());
        assertEquals(0.0, a.start());
        assertEquals(1.0, a.end());
        GenerateRequest.ControlSpec b = ControlOptions.parse("/m/cn.safetensors:/h/hint.png:0.8:0.25:0.75", "canny",
                0.3, 0.6);
        assertEquals(Path.of("/h/hint.png"), b.image());
        assertEquals(0.8, b.strength());
        assertEquals(0.25, b.start());
        assertEquals(0.75, b.end());
        assertEquals("canny", b.module());
        assertEquals(0.3, b.low());
        GenerateRequest.ControlSpec c = ControlOptions.parse("C:\\m\\cn.safetensors:C:\\h\\hint.png:0.5", "none", 0.4,
                0.8);
        assertEquals(Path.of("C:\\m\\cn.safetensors"), c.model());
        assertEquals(Path.of("C:\\h\\hint.png"), c.image());
        assertEquals(0.5, c.strength());
        assertThrows(CliException.class, () -> ControlOptions.parse("cn.safetensors:hint.png:0.5:0.2", "none", 0.4, 0.8));
        assertThrows(CliException.class, () -> ControlOptions.parse("cn.safetensors", "none", 0.4, 0.8));
    }

    @Test
    void notAControlNetGetsAOneLineError() throws Exception {
        Path bad = dir.resolve("evil.safetensors");
        byte[] header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes();
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + header.length + 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header).putFloat(1f);
        Files.write(bad, b.array());
        Path garbage = dir.resolve("garbage.safetensors");
        Files.write(garbage, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
        Path hint = LightningCli.golden().resolve("controlnet/pipe_sd1_controlnet_euler.hint.png");
        for (Path f : List.of(bad, garbage)) {
            LightningCli.Run r = cli("generate", "-m", LightningCli.model("tiny-sd1-fp16.safetensors").toString(),
                    "-W", "64", "-H", "64", "--steps", "1", "-s", "1", "-q", "--control", f + ":" + hint);
            assertNotEquals(0, r.exit());
            List<String> errors = r.err().lines().filter(l -> l.startsWith("jdiffusion: error:")).toList();
            assertEquals(1, errors.size(), r.err());
            assertTrue(errors.getFirst().contains(f.getFileName().toString()), r.err());
        }
        LightningCli.Run r = cli("generate", "-m", LightningCli.model("tiny-sd1-fp16.safetensors").toString(),
                "-q", "--control", LightningCli.model("tiny-sdxl-controlnet-diffusers-fp16.safetensors") + ":" + hint);
        assertNotEquals(0, r.exit());
        assertTrue(r.err().contains("is for SDXL but the model is SD1"), r.err());
    }
}

package jdiffusion.cli;

import static jdiffusion.cli.LightningCli.JSON;
import static jdiffusion.cli.LightningCli.cli;
import static jdiffusion.cli.LightningCli.golden;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 5's golden cases from the command line with flags only: every {@code pipe_*} manifest (diffusers reference)
 * whose params name a LoRA ({@code --lora FILE:SCALE}) or a UNet file replacing the checkpoint's ({@code --unet
 * FILE}) is run with the manifest's prompt, negative prompt, size, steps, guidance and timestep spacing; the saved
 * latent must match within the manifest's tolerance and the PNG within 2 levels.
 */
class LightningCliGoldenTest {
    private static final Pattern MODEL_FILE = Pattern.compile("models/[A-Za-z0-9_.-]+\\.safetensors");
    /** diffusers scheduler classes and the sampler that runs them under a diffusers spacing. */
    private static final Map<String, String> SAMPLERS = Map.of("EulerDiscreteScheduler", "euler",
            "EulerAncestralDiscreteScheduler", "euler_ancestral", "HeunDiscreteScheduler", "heun");
    private static final long DEFAULT_SEED = 100; // the public manifests' noise is torch.manual_seed(100)

    @TempDir
    Path dir;

    @TestFactory
    Stream<DynamicTest> loraAndUnetCasesReproduceFromFlags() throws IOException {
        List<Path> manifests;
        try (Stream<Path> files = Files.list(golden())) {
            manifests = files.filter(p -> p.getFileName().toString().matches("pipe_.*\\.json")).sorted().toList();
        }
        List<DynamicTest> tests = new ArrayList<>();
        for (Path m : manifests) {
            JsonNode params = JSON.readTree(m.toFile()).path("params");
            if (params.has("call") && (params.has("lora") || unetFile(params) != null)) {
                String name = m.getFileName().toString().replace(".json", "");
                tests.add(DynamicTest.dynamicTest(name, () -> reproduce(m)));
            }
        }
        // the public set has pipe_sd1_txt2img_lora, pipe_sdxl_txt2img_lora and pipe_sdxl_lightning_unet_diffusers
        assertFalse(tests.isEmpty(), "no pipe_* manifest with a LoRA or a UNet file in " + golden());
        return tests.stream();
    }

    /** The files the manifest's model description names: the checkpoint first, then a replacing UNet if any. */
    private static List<String> modelFiles(JsonNode params) {
        List<String> files = new ArrayList<>();
        Matcher matcher = MODEL_FILE.matcher(params.path("model").asText());
        while (matcher.find()) {
            files.add(matcher.group());
        }
        return files;
    }

    private static String unetFile(JsonNode params) {
        String text = params.path("model").asText();
        if (!text.contains("UNet replaced by")) {
            return null;
        }
        List<String> files = modelFiles(params);
        return files.size() > 1 ? files.getLast() : null;
    }

    /** The named file, or its fp16 twin where only that ships ("or the fp16 file: identical values"). */
    private static Path shipped(String relative) {
        Path p = golden().resolve(relative);
        if (!Files.exists(p) && relative.contains("fp32")) {
            p = golden().resolve(relative.replace("fp32", "fp16"));
        }
        return p;
    }

    private void reproduce(Path manifestFile) throws Exception {
        JsonNode manifest = JSON.readTree(manifestFile.toFile());
        JsonNode p = manifest.path("params");
        JsonNode call = p.path("call");
        String caseName = manifest.path("case").asText();
        Path png = dir.resolve(caseName + ".png");
        Path latent = dir.resolve(caseName + ".safetensors");
        List<String> args = new ArrayList<>(List.of("generate", "-m", shipped(modelFiles(p).getFirst()).toString(),
                "-p", call.path("prompt").asText(), "--steps", call.path("num_inference_steps").asText(),
                "--cfg", call.path("guidance_scale").asText(), "-s", Long.toString(p.path("seed").asLong(DEFAULT_SEED)),
                "-o", png.toString(), "--save-latent", latent.toString(), "-q"));
        args.addAll(schedulerFlags(p));
        if (call.hasNonNull("negative_prompt")) {
            args.addAll(List.of("-n", call.get("negative_prompt").asText()));
        }
        if (call.has("strength")) {
            args.addAll(List.of("-i", golden().resolve(p.path("input_image_png").asText()).toString(), "--denoise",
                    call.get("strength").asText()));
        } else {
            args.addAll(List.of("-W", p.path("size_hw").get(1).asText(), "-H", p.path("size_hw").get(0).asText()));
        }
        String unet = unetFile(p);
        if (unet != null) {
            args.addAll(List.of("--unet", shipped(unet).toString()));
        }
        JsonNode loras = p.path("lora");
        for (JsonNode l : loras.isArray() ? loras : List.of(loras)) {
            if (!l.isMissingNode()) {
                args.addAll(List.of("--lora", shipped(l.path("file").asText()) + ":" + l.path("scale").asText()));
            }
        }
        LightningCli.Run r = cli(args.toArray(String[]::new));
        assertEquals(0, r.exit(), caseName + " " + args + ": " + r.err());
        assertTrue(r.out().contains("wrote " + png), r.out());
        compareLatent(manifest, manifestFile.resolveSibling(manifest.path("file").asText(caseName + ".safetensors")),
                latent, caseName);
        comparePng(golden().resolve(p.path("png").path("file").asText()), png, caseName);
    }

    /** --sampler from the scheduler class, --scheduler the diffusers spacing; Karras sigmas have no flag here. */
    private static List<String> schedulerFlags(JsonNode p) {
        String cls = p.path("scheduler_class").asText();
        String sampler = SAMPLERS.get(cls);
        if (sampler == null) {
            throw new AssertionError("no sampler flag for the reference's " + cls);
        }
        JsonNode config = p.path("scheduler_config");
        assertFalse(config.path("use_karras_sigmas").asBoolean(false), "Karras sigmas have no diffusers flag");
        return List.of("--sampler", sampler, "--scheduler", config.path("timestep_spacing").asText());
    }

    private static void compareLatent(JsonNode manifest, Path goldenTensors, Path ours, String caseName)
            throws Exception {
        JsonNode lat = manifest.path("outputs").path("latents_final");
        double atol = lat.path("tolerance").path("atol").asDouble();
        try (SafeTensors golden = SafeTensors.open(goldenTensors); SafeTensors mine = SafeTensors.open(ours)) {
            float[] expected = golden.floats(lat.get("tensor").asText());
            float[] actual = mine.floats("latent");
            List<Integer> shape = new ArrayList<>();
            lat.get("shape").forEach(n -> shape.add(n.asInt()));
            assertEquals(shape, Arrays.stream(mine.info("latent").dims()).boxed().toList(), caseName + " latent shape");
            double worst = 0;
            int at = -1;
            for (int i = 0; i < expected.length; i++) {
                double d = Math.abs(expected[i] - actual[i]);
                if (!(d <= worst)) {
                    worst = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
                    at = i;
                }
            }
            assertTrue(worst <= atol, caseName + " latent[" + at + "] differs by " + worst + " (atol " + atol + ")");
        }
    }

    private static void comparePng(Path goldenPng, Path ours, String caseName) throws IOException {
        PngImage expected = PngReader.read(goldenPng);
        PngImage actual = PngReader.read(ours);
        assertEquals(expected.width(), actual.width(), caseName + " width");
        assertEquals(expected.height(), actual.height(), caseName + " height");
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= 2, caseName + " PNG differs by " + worst + " levels");
    }
}

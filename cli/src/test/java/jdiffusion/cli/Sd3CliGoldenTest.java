package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The SD3.5 pipeline cases from the command line with flags only: {@code generate -m tiny-sd35 ...} with the
 * manifest's prompts, size, steps, guidance, seed, sampler and scheduler (a diffusers spacing for the diffusers
 * cases, ComfyUI's for {@code pipe_comfy_*}), {@code --no-t5} where the reference ran without T5 and {@code
 * --clip-heads} for the tiny CLIPs; the saved latent matches the manifest's final latents and the PNG the reference's.
 * Also {@code info} on the SD3 file.
 */
class Sd3CliGoldenTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @TestFactory
    Stream<DynamicTest> sd35PipelineCasesFromFlags() throws IOException {
        List<Path> manifests;
        try (Stream<Path> files = Files.walk(CliTests.golden().resolve("sd35"))) {
            manifests = files.filter(p -> p.getFileName().toString().matches("pipe_(comfy_)?sd35.*\\.json"))
                    .sorted().toList();
        }
        assertTrue(!manifests.isEmpty(), "no pipe_*sd35* manifests");
        return manifests.stream().map(m -> DynamicTest.dynamicTest(m.getFileName().toString().replace(".json", ""),
                () -> reproduce(m)));
    }

    static int heads(String clip) throws IOException {
        return JSON.readTree(CliTests.golden().resolve("sd35/textenc_sd35_" + clip + ".json").toFile())
                .path("params").path("config").path("num_attention_heads").asInt();
    }

    private void reproduce(Path manifestFile) throws Exception {
        JsonNode manifest = JSON.readTree(manifestFile.toFile());
        JsonNode p = manifest.path("params");
        String name = manifest.path("case").asText();
        boolean comfy = name.startsWith("pipe_comfy_");
        Path png = dir.resolve(name + ".png");
        Path latent = dir.resolve(name + ".safetensors");
        String model = p.path("model").asText().split(" ")[0];
        List<String> args = new ArrayList<>(List.of("generate", "-m", CliTests.golden().resolve(model).toString(),
                "-s", p.path(comfy ? "seed" : "generator_seed").asText(), "-o", png.toString(),
                "--save-latent", latent.toString(), "-q", "--clip-heads", heads("clip_l") + "," + heads("clip_g")));
        if (comfy) {
            args.addAll(List.of("-p", p.path("prompt").asText(), "-n", p.path("negative").asText(), "-W",
                    p.path("width").asText(), "-H", p.path("height").asText(), "--steps", p.path("steps").asText(),
                    "--cfg", p.path("cfg").asText(), "--sampler", p.path("sampler_name").asText(), "--scheduler",
                    p.path("scheduler").asText(), "--shift", p.path("model_sampling").path("shift").asText()));
        } else {
            JsonNode call = p.path("call");
            args.addAll(List.of("-p", call.path("prompt").asText(), "-n", call.path("negative_prompt").asText(),
                    "-W", call.path("width").asText(), "-H", call.path("height").asText(), "--steps",
                    call.path("num_inference_steps").asText(), "--cfg", call.path("guidance_scale").asText(),
                    "--sampler", "euler", "--scheduler", "linspace", "--shift",
                    p.path("scheduler_config").path("shift").asText(), "--max-sequence-length",
                    call.path("max_sequence_length").asText("256")));
            if (manifest.path("description").asText().contains("text_encoder_3=None")) {
                args.add("--no-t5");
            }
        }
        CliTests.Result r = CliTests.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), name + " " + args + ": " + r.err());
        assertTrue(r.out().contains("wrote " + png), r.out());
        JsonNode fin = manifest.path("outputs").path("latents_final");
        try (SafeTensors ours = SafeTensors.open(latent);
             SafeTensors ref = SafeTensors.open(manifestFile.resolveSibling(name + ".safetensors"))) {
            float[] a = ours.floats("latent");
            float[] e = ref.floats(fin.path("tensor").asText());
            assertEquals(e.length, a.length, name + " latent size");
            double atol = fin.path("tolerance").path("atol").asDouble();
            for (int i = 0; i < e.length; i++) {
                assertTrue(Math.abs(e[i] - a[i]) <= atol, name + " latent[" + i + "]: " + a[i] + " vs " + e[i]);
            }
        }
        PngImage expected = PngReader.read(manifestFile.resolveSibling(p.path("png").path("file").asText()));
        PngImage actual = PngReader.read(png);
        int worst = 0;
        for (int i = 0; i < expected.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((expected.rgb()[i] & 0xFF) - (actual.rgb()[i] & 0xFF)));
        }
        assertTrue(worst <= p.path("png").path("recommended_tolerance").asInt(2), name + " PNG differs by " + worst);
    }

    @Test
    void infoReportsAnSd3File() {
        CliTests.Result r = CliTests.run("info", CliTests.golden().resolve("models/tiny-sd35-fp16.safetensors")
                .toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("SD3 checkpoint (SD3.5 Medium (MMDiT-X))"), r.out());
        assertTrue(r.out().contains("2 joint blocks, hidden 128, 2 heads"), r.out());
        assertTrue(r.out().matches("(?s).*mmdit\\s+1,237,824\\s+F16.*"), r.out());
        CliTests.Result j = CliTests.run("info", "--json", CliTests.golden().resolve(
                "models/tiny-sd35-fp16.safetensors").toString());
        assertEquals(0, j.code(), j.err());
        assertTrue(j.out().contains("\"family\" : \"SD3\""), j.out());
    }
}

package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * ComfyUI's VAELoader('taesd' / 'taesdxl') + VAEDecode / VAEEncode on the taesd goldens: the name is listed once
 * both files are in models/vae_approx, VAEDecode of {@code in.comfy_raw_latent} gives {@code comfy_image01},
 * VAEEncode of the image gives {@code comfy_raw_latent}.
 */
class TaesdNodesGoldenTest {
    @TempDir
    Path base;

    @TestFactory
    Stream<DynamicTest> comfyCases() {
        return Golden.manifestsIn("taesd", "taesd_").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m) + " comfyui nodes", () -> run(m)));
    }

    private void run(Path manifest) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        String loaderName = params.get("comfyui").get("loader").asText().replaceAll(".*'(.*)'.*", "$1");
        Path dir = base.resolve(Golden.caseName(manifest));
        ModelPaths paths = ModelPaths.of(dir);
        Path approx = paths.folders("vae_approx").getFirst();
        Path dec = Golden.dir().resolve(params.get("model_files").get("comfyui_decoder").asText());
        Files.copy(dec, approx.resolve(dec.getFileName()));
        assertFalse(Nodes.get("VAELoader").input("vae_name").choices().list(paths).contains(loaderName),
                "listed without its encoder");
        Path enc = Golden.dir().resolve(params.get("model_files").get("comfyui_encoder").asText());
        Files.copy(enc, approx.resolve(enc.getFileName()));
        List<String> choices = Nodes.get("VAELoader").input("vae_name").choices().list(paths);
        assertTrue(choices.contains(loaderName), choices.toString());
        try (ModelCache cache = new ModelCache(1L << 30); SafeTensors t = Golden.tensors(manifest)) {
            NodeContext ctx = new NodeContext("1", "p", paths, cache, null, null, ExecutionListener.NONE,
                    new NodeContext.Interrupt());
            Object vae = Nodes.get("VAELoader").function().run(Map.of("vae_name", loaderName), ctx).outputs()
                    .getFirst();
            if (json.get("inputs").has("comfy_raw_latent")) {
                JsonNode in = json.get("inputs").get("comfy_raw_latent");
                int[] s = Golden.shape(in);
                Latent l = new Latent(t.floats(in.get("tensor").asText()), s[0], s[1], s[2], s[3]);
                Image img = (Image) Nodes.get("VAEDecode").function().run(Map.of("samples", l, "vae", vae), ctx)
                        .outputs().getFirst();
                JsonNode out = json.get("outputs").get("comfy_image01");
                assertEquals(Golden.shape(out)[2], img.height());
                Golden.assertClose(Golden.caseName(manifest) + " VAEDecode", t.floats(out.get("tensor").asText()),
                        img.pixels(), out.get("tolerance").get("atol").asDouble());
            } else {
                JsonNode in = json.get("inputs").get("image01");
                int[] s = Golden.shape(in);
                Image img = new Image(t.floats(in.get("tensor").asText()), s[0], s[2], s[3]);
                Latent l = (Latent) Nodes.get("VAEEncode").function().run(Map.of("pixels", img, "vae", vae), ctx)
                        .outputs().getFirst();
                JsonNode out = json.get("outputs").get("comfy_raw_latent");
                assertEquals(Golden.shape(out)[3], l.width());
                Golden.assertClose(Golden.caseName(manifest) + " VAEEncode", t.floats(out.get("tensor").asText()),
                        l.samples(), out.get("tolerance").get("atol").asDouble());
            }
        }
    }
}

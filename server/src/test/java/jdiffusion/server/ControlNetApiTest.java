package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The A1111 ControlNet extension API: model and module lists, and {@code pipe_comfy_sd1_controlnet} (ComfyUI's
 * ControlNetApplyAdvanced, euler + normal) reproduced through {@code /sdapi/v1/txt2img} with one
 * {@code alwayson_scripts.controlnet} unit: the same PNG within the manifest's tolerance. Bad units are 400s.
 */
class ControlNetApiTest {
    @TempDir
    Path tmp;

    @Test
    void txt2imgWithAControlNetUnitReproducesTheComfyCase() throws Exception {
        Path golden = ServerFixture.golden().resolve("controlnet");
        JsonNode m = new ObjectMapper().readTree(golden.resolve("pipe_comfy_sd1_controlnet.json").toFile());
        JsonNode p = m.path("params");
        Path base = ServerFixture.baseDir(tmp);
        Files.createDirectories(base.resolve("models/controlnet"));
        String cnFile = Path.of(p.path("controlnet_model").path("file").asText()).getFileName().toString();
        Files.copy(ServerFixture.golden().resolve("models").resolve(cnFile), base.resolve("models/controlnet")
                .resolve(cnFile));
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base))) {
            ServerFixture.Client client = new ServerFixture.Client(server.port(), null);
            String stem = cnFile.replace(".safetensors", "");
            assertEquals("[\"" + stem + "\"]", client.get("/controlnet/model_list").json().path("model_list")
                    .toString());
            assertTrue(client.get("/controlnet/module_list").json().path("module_list").toString().contains("canny"));

            ObjectNode req = ServerFixture.JSON.createObjectNode();
            req.put("prompt", p.path("prompt").asText());
            req.put("negative_prompt", p.path("negative").asText());
            req.put("steps", p.path("steps").asInt());
            req.put("cfg_scale", p.path("cfg").asDouble());
            req.put("width", p.path("width").asInt());
            req.put("height", p.path("height").asInt());
            req.put("seed", p.path("seed").asLong());
            req.put("sampler_name", p.path("sampler_name").asText());
            req.put("scheduler", p.path("scheduler").asText());
            ObjectNode unit = req.putObject("alwayson_scripts").putObject("controlnet").putArray("args").addObject();
            unit.put("image", Base64.getEncoder().encodeToString(Files.readAllBytes(
                    golden.resolve(p.path("hint_png").asText()))));
            unit.put("module", "none");
            unit.put("model", stem + " [0123abcd]");
            unit.put("weight", p.path("strength").asDouble());
            unit.put("guidance_start", p.path("start_percent").asDouble());
            unit.put("guidance_end", p.path("end_percent").asDouble());
            ServerFixture.Response r = client.post("/sdapi/v1/txt2img", req);
            assertEquals(200, r.status(), r.body());
            BufferedImage ours = ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(
                    r.json().path("images").get(0).asText())));
            BufferedImage expected = ImageIO.read(golden.resolve(p.path("png").path("files").get(0).asText()).toFile());
            int worst = 0;
            for (int y = 0; y < expected.getHeight(); y++) {
                for (int x = 0; x < expected.getWidth(); x++) {
                    int a = expected.getRGB(x, y);
                    int b = ours.getRGB(x, y);
                    for (int s = 0; s < 24; s += 8) {
                        worst = Math.max(worst, Math.abs((a >> s & 0xFF) - (b >> s & 0xFF)));
                    }
                }
            }
            assertTrue(worst <= p.path("png").path("recommended_tolerance").asInt(1), "PNG differs by " + worst);

            unit.put("model", "no_such_controlnet");
            ServerFixture.Response bad = client.post("/sdapi/v1/txt2img", req);
            assertEquals(400, bad.status());
            assertTrue(bad.body().contains("not in models/controlnet"), bad.body());
            unit.put("model", stem);
            unit.put("module", "openpose");
            bad = client.post("/sdapi/v1/txt2img", req);
            assertEquals(400, bad.status());
            assertTrue(bad.body().contains("module 'openpose' is not supported"), bad.body());
        }
    }
}

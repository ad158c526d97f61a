package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * GET /jdiffusion/models: the family of each checkpoint and the scale of each upscale model, read from the files
 * (SDXL, SD3.5, SD1 and ESRGAN x2 / Real-ESRGAN x4 / Compact x4 goldens); a file that is not a model is listed with a
 * null family or scale and a one-line error instead of failing the whole answer.
 */
class PageModelRoutesTest {
    @TempDir
    Path tmp;

    @Test
    void familiesAndScalesFromTheFiles() throws Exception {
        Path base = ServerFixture.baseDir(tmp);
        Path golden = ServerFixture.golden().resolve("models");
        Path ckpts = base.resolve("models/checkpoints");
        Files.copy(golden.resolve("tiny-sdxl-fp16.safetensors"), ckpts.resolve("tiny-sdxl-fp16.safetensors"));
        Files.copy(golden.resolve("tiny-sd35-fp16.safetensors"), ckpts.resolve("tiny-sd35-fp16.safetensors"));
        Files.write(ckpts.resolve("truncated.safetensors"), new byte[] {1, 2, 3});
        Path ups = Files.createDirectories(base.resolve("models/upscale_models"));
        for (String f : new String[] {"tiny-esrgan-old-x2-fp16.safetensors", "tiny-esrgan-realesrgan-x4.pth",
                "tiny-esrgan-compact-x4-fp16.safetensors"}) {
            Files.copy(golden.resolve(f), ups.resolve(f));
        }
        Files.copy(golden.resolve("tiny-sd1-fp16.safetensors"), ups.resolve("not-an-upscaler.safetensors"));
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base))) {
            JsonNode body = new ServerFixture.Client(server.port(), null).get("/jdiffusion/models").json();
            JsonNode c = body.path("checkpoints");
            assertEquals(4, c.size(), body.toString());
            assertEquals("tiny-sd1-fp16.safetensors", c.at("/0/name").asText());
            assertEquals("SD1", c.at("/0/family").asText());
            assertEquals("SD3", c.at("/1/family").asText());
            assertEquals("SDXL", c.at("/2/family").asText());
            assertEquals("truncated.safetensors", c.at("/3/name").asText());
            assertTrue(c.at("/3/family").isNull(), body.toString());
            assertTrue(!c.at("/3/error").asText().isBlank() && !c.at("/3/error").asText().contains("\n"));
            JsonNode u = body.path("upscale_models");
            assertEquals(4, u.size(), body.toString());
            assertEquals("not-an-upscaler.safetensors", u.at("/0/name").asText());
            assertTrue(u.at("/0/scale").isNull(), body.toString());
            assertTrue(u.at("/0/error").asText().contains("not a known upscale model"), body.toString());
            assertEquals("Compact", u.at("/1/architecture").asText(), body.toString());
            assertEquals(4, u.at("/1/scale").asInt());
            assertEquals(2, u.at("/2/scale").asInt());
            assertEquals("ESRGAN", u.at("/2/architecture").asText());
            assertEquals(4, u.at("/3/scale").asInt()); // the .pth, read by the safe pickle reader
            assertTrue(!body.toString().contains(tmp.toString()), "server paths are not shown: " + body);
        }
    }
}

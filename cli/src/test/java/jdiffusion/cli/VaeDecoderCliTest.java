package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.model.Taesd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code generate --vae-decoder taesd|FILE}: the PNG is TAESD's decode of the saved (model-space) latent, found in
 * vae_approx beside the model or named as a file (diffusers layout); a missing file is a one-line error.
 */
class VaeDecoderCliTest {
    @TempDir
    Path dir;

    private static Path model(String name) {
        return CliTests.golden().resolve("models").resolve(name);
    }

    private void check(String modelFile, String decoderArg, Path taesdFile, int w, int h) throws Exception {
        Path png = dir.resolve(modelFile + decoderArg.length() + ".png");
        Path lat = dir.resolve(modelFile + decoderArg.length() + ".safetensors");
        CliTests.Result r = CliTests.run("generate", "-m", model(modelFile).toString(), "-p", "a red cube",
                "--steps", "2", "-W", String.valueOf(w), "-H", String.valueOf(h), "-s", "7", "-q",
                "--vae-decoder", decoderArg, "--save-latent", lat.toString(), "-o", png.toString());
        assertEquals(0, r.code(), r.err());
        PngImage img = PngReader.read(png);
        assertEquals(w, img.width());
        assertEquals(h, img.height());
        float[] latent;
        try (SafeTensors st = SafeTensors.open(lat)) {
            latent = st.floats("latent");
        }
        float[] x = Taesd.open(taesdFile).decode(latent, 1, h / 8, w / 8);
        int worst = 0;
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < h; y++) {
                for (int xx = 0; xx < w; xx++) {
                    float v = Math.min(1f, Math.max(0f, x[(c * h + y) * w + xx]));
                    worst = Math.max(worst, Math.abs(Math.round(v * 255f) - img.value(xx, y, c)));
                }
            }
        }
        assertTrue(worst <= 1, "PNG differs from TAESD's decode by " + worst + " levels");
    }

    @Test
    void taesdFromVaeApproxBesideTheModel() throws Exception {
        check("tiny-sd1-fp16.safetensors", "taesd", model("vae_approx/taesd_decoder.safetensors"), 96, 64);
        check("tiny-sdxl-fp16.safetensors", "taesd", model("vae_approx/taesdxl_decoder.safetensors"), 64, 96);
    }

    @Test
    void aDiffusersFile() throws Exception {
        Path f = model("tiny-taesd-diffusers-fp16.safetensors");
        check("tiny-sd1-fp16.safetensors", f.toString(), f, 64, 64);
    }

    @Test
    void aMissingFileIsAOneLineError() {
        CliTests.Result r = CliTests.run("generate", "-m", model("tiny-sd1-fp16.safetensors").toString(), "-p", "x",
                "--steps", "1", "-W", "64", "-H", "64", "-q", "--vae-decoder", dir.resolve("none.safetensors").toString(),
                "-o", dir.resolve("x.png").toString());
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("none.safetensors"), r.err());
    }
}

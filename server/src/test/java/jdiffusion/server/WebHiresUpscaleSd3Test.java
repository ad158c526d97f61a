package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.model.upscale.UpscaleModel;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.HiresFix;
import jdiffusion.pipeline.ImageUpscale;
import jdiffusion.pipeline.ProgressListener;
import jdiffusion.workflow.Sd3Nodes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The page's hires fix, gallery upscale action and SD3.5 workflow in headless Chromium: a hires generation (latent
 * and upscale-model upscalers) ends at the scaled size and queues exactly the workflow the CLI's hires fix records
 * (pipeline/HiresFix, run here as the library) with the same pixels; the upscale button runs the chosen model on a
 * gallery image (the model's scale, the pixels of ImageUpscale on that image); an SD3.5 checkpoint switches the page to
 * the SD3 workflow, which reproduces the golden ComfyUI SD3.5 case on the tiny checkpoint.
 */
class WebHiresUpscaleSd3Test {
    private static final String X4 = "tiny-esrgan-realesrgan-x4-fp16.safetensors";
    private static final String X2 = "tiny-esrgan-old-x2-fp16.safetensors";
    private static final String SD35 = "tiny-sd35-fp16.safetensors";

    @TempDir
    Path tmp;

    @Test
    void hiresFixAndTheUpscaleAction() throws Exception {
        Path base = ServerFixture.baseDir(tmp);
        Path models = Files.createDirectories(base.resolve("models/upscale_models"));
        for (String f : new String[] {X4, X2}) {
            Files.copy(ServerFixture.golden().resolve("models").resolve(f), models.resolve(f));
        }
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base))) {
            ServerFixture.Client client = new ServerFixture.Client(server.port(), null);
            JsonNode listed = client.get("/jdiffusion/models").json();
            assertEquals("SD1", listed.at("/checkpoints/0/family").asText(), listed.toString());
            assertEquals(2, listed.at("/upscale_models/0/scale").asInt(), listed.toString()); // sorted: old-x2 first
            assertEquals(4, listed.at("/upscale_models/1/scale").asInt(), listed.toString());
            WebDriver driver = WebPageTest.chromiumDriver();
            try {
                JavascriptExecutor js = (JavascriptExecutor) driver;
                driver.get("http://127.0.0.1:" + server.port() + "/");
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(60));
                wait.until(d -> !new Select(d.findElement(By.id("hires-upscaler"))).getOptions().isEmpty());
                wait.until(d -> d.findElement(By.id("connection")).getText().equals("connected"));
                type(driver, "prompt", "a lighthouse");
                type(driver, "negative", "fog");
                type(driver, "width", "64");
                type(driver, "height", "72");
                type(driver, "steps", "2");
                type(driver, "cfg", "4");
                type(driver, "seed", "9");
                new Select(driver.findElement(By.id("sampler"))).selectByValue("euler");
                new Select(driver.findElement(By.id("scheduler"))).selectByValue("karras");
                driver.findElement(By.id("hires-enable")).click();
                type(driver, "hires-scale", "2.5");
                new Select(driver.findElement(By.id("hires-upscaler"))).selectByValue("latent-area");
                type(driver, "hires-steps", "3");
                type(driver, "hires-denoise", "0.55");
                driver.findElement(By.id("generate")).click();
                WebDriverWait slow = new WebDriverWait(driver, Duration.ofMinutes(3));
                waitForResults(slow, 1, 160); // latent 8 x 2.5 = 20; 9 x 2.5 = 22.5 -> 22 (half to even) -> 176
                assertEquals(176L, js.executeScript("return document.querySelector('#gallery .result img').naturalHeight;"));
                String params = driver.findElement(By.cssSelector("#gallery .result .params")).getText();
                assertTrue(params.contains("hires ×2.5 latent-area, 3 steps, denoise 0.55"), params);
                sameAsTheLibrary(client, base, new HiresFix(2.5, "latent-area", 3, 0.55), 64, 72);
                type(driver, "hires-scale", "1");
                driver.findElement(By.id("hires-enable")).click();
                driver.findElement(By.cssSelector("#gallery .result .reuse")).click();
                assertTrue(driver.findElement(By.id("hires-enable")).isSelected(), "reuse: hires enabled");
                assertEquals("2.5", driver.findElement(By.id("hires-scale")).getAttribute("value"));
                assertEquals("3", driver.findElement(By.id("hires-steps")).getAttribute("value"));
                assertEquals("0.55", driver.findElement(By.id("hires-denoise")).getAttribute("value"));
                assertEquals("latent-area", new Select(driver.findElement(By.id("hires-upscaler")))
                        .getFirstSelectedOption().getAttribute("value"));

                // an upscale model whose scale (4) overshoots the target: ImageScale lanczos to it
                type(driver, "hires-scale", "2");
                type(driver, "hires-steps", "0");
                new Select(driver.findElement(By.id("hires-upscaler"))).selectByValue(X4);
                driver.findElement(By.id("generate")).click();
                waitForResults(slow, 2, 128);
                sameAsTheLibrary(client, base, new HiresFix(2, models.resolve(X4).toString(), null, 0.55), 64, 72);
                // a model whose scale is the target's: no ImageScale
                new Select(driver.findElement(By.id("hires-upscaler"))).selectByValue(X2);
                driver.findElement(By.id("generate")).click();
                waitForResults(slow, 3, 128);
                sameAsTheLibrary(client, base, new HiresFix(2, models.resolve(X2).toString(), null, 0.55), 64, 72);

                // the upscale action on the newest gallery image, with the x4 model
                driver.findElement(By.id("hires-enable")).click();
                new Select(driver.findElement(By.id("upscale-model"))).selectByValue(X4);
                String source = driver.findElement(By.cssSelector("#gallery .result img")).getAttribute("alt");
                driver.findElement(By.cssSelector("#gallery .result .upscale")).click();
                waitForResults(slow, 4, 512);
                String upParams = driver.findElement(By.cssSelector("#gallery .result .params")).getText();
                assertTrue(upParams.contains("upscale") && upParams.contains(X4), upParams);
                String upName = driver.findElement(By.cssSelector("#gallery .result img")).getAttribute("alt");
                PngImage in = PngReader.read(base.resolve("output").resolve(source));
                PngImage want = ImageUpscale.upscale(UpscaleModel.open(models.resolve(X4)), in, 512, 32);
                PngImage got = PngReader.read(base.resolve("output").resolve(upName));
                assertEquals(4 * in.width(), got.width());
                assertEquals(4 * in.height(), got.height());
                assertTrue(worst(want, got) <= 1, "upscaled pixels differ by " + worst(want, got));
            } catch (RuntimeException | AssertionError e) {
                throw new AssertionError("page said: " + pageText(driver), e);
            } finally {
                driver.quit();
            }
        }
    }

    @Test
    void sd35CheckpointGetsTheSd3Workflow() throws Exception {
        Path golden = ServerFixture.golden();
        JsonNode manifest = ServerFixture.JSON.readTree(golden.resolve("sd35/pipe_comfy_sd35_euler_simple.json")
                .toFile());
        JsonNode p = manifest.path("params");
        Path base = ServerFixture.baseDir(tmp);
        Files.copy(golden.resolve("models").resolve(SD35), base.resolve("models/checkpoints").resolve(SD35));
        // the checkpoint's three text encoders as the separate files TripleCLIPLoader takes (HF names, 16-bit kept)
        Path encoders = Files.createDirectories(base.resolve("models/text_encoders"));
        try (SafeTensors ckpt = SafeTensors.open(golden.resolve("models").resolve(SD35))) {
            for (String[] e : new String[][] {{"clip_l", "clip_l.safetensors"}, {"clip_g", "clip_g.safetensors"},
                    {"t5xxl", "t5xxl_fp16.safetensors"}}) {
                String prefix = "text_encoders." + e[0] + ".transformer.";
                SafeTensorsWriter w = SafeTensorsWriter.to(encoders.resolve(e[1]));
                for (String n : ckpt.names()) {
                    if (n.startsWith(prefix)) {
                        w.addFrom(ckpt, n, n.substring(prefix.length()), ckpt.info(n).dtype());
                    }
                }
                w.write();
            }
        }
        // the tiny CLIPs' head counts cannot be read from their shapes (golden README): from the encoder cases
        Sd3Nodes.setClipHeads(heads(golden, "clip_l"), heads(golden, "clip_g"));
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base))) {
            JsonNode listed = new ServerFixture.Client(server.port(), null).get("/jdiffusion/models").json();
            assertEquals("SD3", listed.at("/checkpoints/1/family").asText(), listed.toString());
            WebDriver driver = WebPageTest.chromiumDriver();
            try {
                JavascriptExecutor js = (JavascriptExecutor) driver;
                driver.get("http://127.0.0.1:" + server.port() + "/");
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(60));
                wait.until(d -> new Select(d.findElement(By.id("checkpoint"))).getOptions().size() == 2);
                wait.until(d -> d.findElement(By.id("connection")).getText().equals("connected"));
                assertTrue(!driver.findElement(By.id("sd3-options")).isDisplayed(), "SD3 options shown for SD1");
                new Select(driver.findElement(By.id("checkpoint"))).selectByValue(SD35);
                wait.until(d -> d.findElement(By.id("sd3-options")).isDisplayed());
                assertEquals("4.5", driver.findElement(By.id("cfg")).getAttribute("value"));
                assertEquals("simple", new Select(driver.findElement(By.id("scheduler"))).getFirstSelectedOption()
                        .getAttribute("value"));
                assertEquals("euler", new Select(driver.findElement(By.id("sampler"))).getFirstSelectedOption()
                        .getAttribute("value"));
                type(driver, "prompt", p.path("prompt").asText());
                type(driver, "negative", p.path("negative").asText());
                type(driver, "width", p.path("width").asText());
                type(driver, "height", p.path("height").asText());
                type(driver, "steps", p.path("steps").asText());
                type(driver, "cfg", p.path("cfg").asText());
                type(driver, "seed", p.path("seed").asText());
                type(driver, "batch", p.path("batch").asText());
                type(driver, "sd3-shift", p.path("model_sampling").path("shift").asText());
                new Select(driver.findElement(By.id("sampler"))).selectByValue(p.path("sampler_name").asText());
                new Select(driver.findElement(By.id("scheduler"))).selectByValue(p.path("scheduler").asText());
                driver.findElement(By.id("generate")).click();
                WebDriverWait slow = new WebDriverWait(driver, Duration.ofMinutes(3));
                waitForResults(slow, 1, p.path("width").asInt());
                String params = driver.findElement(By.cssSelector("#gallery .result .params")).getText();
                assertTrue(params.contains("SD3 shift") && params.contains(SD35), params);
                String name = driver.findElement(By.cssSelector("#gallery .result img")).getAttribute("alt");
                PngImage got = PngReader.read(base.resolve("output").resolve(name));
                PngImage want = PngReader.read(golden.resolve("sd35").resolve(p.path("png").path("file").asText()));
                assertEquals(want.width(), got.width());
                assertEquals(want.height(), got.height());
                int tolerance = p.path("png").path("recommended_tolerance").asInt(2);
                assertTrue(worst(want, got) <= tolerance, "SD3.5 page image differs from the golden by "
                        + worst(want, got));

                // the same image with the encoders from three files (TripleCLIPLoader), T5 chosen in the selector
                new Select(driver.findElement(By.id("sd3-clip-l"))).selectByValue("clip_l.safetensors");
                new Select(driver.findElement(By.id("sd3-clip-g"))).selectByValue("clip_g.safetensors");
                new Select(driver.findElement(By.id("sd3-t5"))).selectByValue("t5xxl_fp16.safetensors");
                driver.findElement(By.id("generate")).click();
                waitForResults(slow, 2, p.path("width").asInt());
                String triple = driver.findElement(By.cssSelector("#gallery .result .params")).getText();
                assertTrue(triple.contains("T5 t5xxl_fp16.safetensors"), triple);
                String name2 = driver.findElement(By.cssSelector("#gallery .result img")).getAttribute("alt");
                PngImage got2 = PngReader.read(base.resolve("output").resolve(name2));
                assertTrue(worst(want, got2) <= tolerance, "SD3.5 page image (TripleCLIPLoader) differs from the"
                        + " golden by " + worst(want, got2));
                assertEquals(Boolean.TRUE, js.executeScript("const p = buildPrompt(settings());"
                        + " return p['17'].class_type === 'TripleCLIPLoader' && p['6'].inputs.clip[0] === '17';"));
                for (String id : new String[] {"sd3-clip-l", "sd3-clip-g", "sd3-t5"}) {
                    new Select(driver.findElement(By.id(id))).selectByValue("");
                }
                Object nodes = js.executeScript("return Object.values(buildPrompt(settings()))"
                        + ".map(n => n.class_type).sort().join(',');");
                assertEquals("CLIPTextEncode,CLIPTextEncode,CheckpointLoaderSimple,EmptySD3LatentImage,KSampler,"
                        + "ModelSamplingSD3,SaveImage,VAEDecode", nodes);
                // hires fix on SD3: the latent enlarged and a second pass on the same ModelSamplingSD3 model
                driver.findElement(By.id("hires-enable")).click();
                type(driver, "hires-scale", "1.5");
                new Select(driver.findElement(By.id("hires-upscaler"))).selectByValue("latent-bicubic");
                type(driver, "hires-steps", "2");
                driver.findElement(By.id("generate")).click();
                int hiresWidth = (int) Math.rint(p.path("width").asInt() / 8 * 1.5) * 8;
                waitForResults(slow, 3, hiresWidth);
                assertTrue(driver.findElement(By.cssSelector("#gallery .result .params")).getText()
                        .contains("hires ×1.5 latent-bicubic"));
                driver.findElement(By.id("hires-enable")).click();
                // a T5 file alone cannot stand in for the checkpoint's encoders: one clear message, nothing queued
                Object refused = js.executeScript("const s = settings(); s.sd3.t5 = 't5.safetensors';"
                        + " try { buildPrompt(s); return 'built'; } catch (e) { return e.message; }");
                assertTrue(String.valueOf(refused).startsWith("SD3 text encoders:"), String.valueOf(refused));
            } catch (RuntimeException | AssertionError e) {
                throw new AssertionError("page said: " + pageText(driver), e);
            } finally {
                driver.quit();
            }
        } finally {
            Sd3Nodes.setClipHeads(0, 0);
        }
    }

    /** The page's text for a failure message; the browser's own failure when it cannot say (a crashed tab). */
    private static String pageText(WebDriver driver) {
        try {
            return driver.findElement(By.tagName("body")).getText();
        } catch (RuntimeException e) {
            return "(no page: " + e.getMessage().lines().findFirst().orElse("") + ")";
        }
    }

    private static int heads(Path golden, String clip) throws Exception {
        return ServerFixture.JSON.readTree(golden.resolve("sd35/textenc_sd35_" + clip + ".json").toFile())
                .path("params").path("config").path("num_attention_heads").asInt();
    }

    /** Waits for the gallery to hold n results, the newest an image of the given width. */
    private static void waitForResults(WebDriverWait wait, int n, int width) {
        wait.until(d -> d.findElements(By.cssSelector("#gallery .result")).size() == n
                && Boolean.TRUE.equals(((JavascriptExecutor) d).executeScript(
                        "const i = document.querySelector('#gallery .result img');"
                                + " return !!i && i.complete && i.naturalWidth === " + width + ";")));
    }

    /**
     * The newest prompt the page queued is the workflow the library's hires fix records in its PNG for the same
     * settings, and its image has the library's pixels.
     */
    private void sameAsTheLibrary(ServerFixture.Client client, Path base, HiresFix hires, int width, int height)
            throws Exception {
        JsonNode history = client.get("/history").json();
        JsonNode newest = null;
        for (JsonNode entry : history) {
            if (newest == null || entry.at("/prompt/0").asLong() > newest.at("/prompt/0").asLong()) {
                newest = entry;
            }
        }
        assertTrue(newest != null, "no history");
        Path png = tmp.resolve("library-" + System.nanoTime() + ".png");
        var lib = HiresFix.generate(GenerateRequest.builder(base.resolve("models/checkpoints").resolve(ServerFixture.SD1))
                .prompt("a lighthouse").negativePrompt("fog").size(width, height).steps(2).cfg(4.0).sampler("euler")
                .scheduler("karras").seed(9L).output(png).build(), hires, ProgressListener.NONE,
                CancellationToken.none());
        JsonNode want = ServerFixture.JSON.readTree(PngReader.text(png).get("prompt"));
        JsonNode got = newest.at("/prompt/2");
        assertEquals(normalized(want), normalized(got), "page workflow vs the CLI's hires workflow");
        JsonNode image = null;
        for (JsonNode out : newest.path("outputs")) {
            image = out.path("images").path(0);
        }
        PngImage page = PngReader.read(base.resolve("output").resolve(image.path("filename").asText()));
        PngImage library = lib.images().getFirst();
        assertEquals(library.width(), page.width());
        assertEquals(library.height(), page.height());
        assertTrue(worst(library, page) <= 1, "page image vs library hires fix: " + worst(library, page));
    }

    /** Numbers compared as numbers (1 and 1.0 alike); no _meta. */
    private static JsonNode normalized(JsonNode n) {
        if (n.isNumber()) {
            return JsonNodeFactory.instance.numberNode(n.decimalValue().stripTrailingZeros());
        }
        if (n.isArray()) {
            ArrayNode a = JsonNodeFactory.instance.arrayNode();
            n.forEach(e -> a.add(normalized(e)));
            return a;
        }
        if (n.isObject()) {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getKey().equals("_meta")) {
                    o.set(e.getKey(), normalized(e.getValue()));
                }
            }
            return o;
        }
        return n;
    }

    private static int worst(PngImage a, PngImage b) {
        int worst = 0;
        for (int i = 0; i < a.rgb().length; i++) {
            worst = Math.max(worst, Math.abs((a.rgb()[i] & 0xFF) - (b.rgb()[i] & 0xFF)));
        }
        return worst;
    }

    private static void type(WebDriver driver, String id, String text) {
        WebElement e = driver.findElement(By.id(id));
        e.clear();
        e.sendKeys(text);
    }
}

package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.interactions.Actions;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The page's mask painter in headless Chromium: pick an init image, paint a stroke, inpaint (the mask reaches the
 * server as the image's alpha through /upload/mask and runs InpaintModelConditioning), then outpaint a border.
 */
class WebInpaintTest {
    @TempDir
    Path tmp;

    @Test
    void paintAMaskAndInpaintThenOutpaint() throws Exception {
        Path base = ServerFixture.baseDir(tmp);
        Path init = ServerFixture.golden().resolve("inpaint/pipe_sd1_inpaint_legacy4ch.input.png").toAbsolutePath();
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base))) {
            WebDriver driver = chromium();
            try {
                driver.get("http://127.0.0.1:" + server.port() + "/");
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(60));
                wait.until(d -> !new Select(d.findElement(By.id("checkpoint"))).getOptions().isEmpty());
                wait.until(d -> d.findElement(By.id("connection")).getText().equals("connected"));
                type(driver, "width", "64");
                type(driver, "height", "64");
                type(driver, "steps", "2");
                type(driver, "seed", "5");
                type(driver, "denoise", "1");
                driver.findElement(By.id("init-image")).sendKeys(init.toString());
                wait.until(d -> d.findElement(By.id("mask-editor")).isDisplayed());
                wait.until(d -> ((Number) ((JavascriptExecutor) d).executeScript(
                        "return document.getElementById('mask-canvas').width;")).intValue() == 64);
                WebElement canvas = driver.findElement(By.id("mask-canvas"));
                new Actions(driver).moveToElement(canvas, -20, -20).clickAndHold().moveByOffset(30, 30)
                        .release().perform();
                assertEquals(Boolean.TRUE, ((JavascriptExecutor) driver).executeScript("return maskPainted();"));
                driver.findElement(By.id("generate")).click();
                WebDriverWait slow = new WebDriverWait(driver, Duration.ofMinutes(3));
                slow.until(d -> Boolean.TRUE.equals(((JavascriptExecutor) d).executeScript(
                        "const i = document.querySelector('#gallery .result img');"
                                + " return !!i && i.complete && i.naturalWidth > 0;")));
                String params = driver.findElement(By.cssSelector("#gallery .result .params")).getText();
                assertTrue(params.contains("inpaint"), params);
                Path mask;
                try (Stream<Path> files = Files.list(base.resolve("input"))) {
                    mask = files.filter(f -> f.getFileName().toString().startsWith("mask-")).findFirst().orElseThrow();
                }
                BufferedImage merged = ImageIO.read(mask.toFile());
                int transparent = 0;
                for (int y = 0; y < merged.getHeight(); y++) {
                    for (int x = 0; x < merged.getWidth(); x++) {
                        if (merged.getRGB(x, y) >>> 24 < 128) {
                            transparent++;
                        }
                    }
                }
                assertTrue(transparent > 0 && transparent < 64 * 64, "painted pixels: " + transparent);

                // outpaint 16 pixels on the right
                driver.findElement(By.id("mask-clear")).click();
                type(driver, "pad-right", "16");
                driver.findElement(By.id("generate")).click();
                slow.until(d -> d.findElements(By.cssSelector("#gallery .result img")).size() == 2
                        && Boolean.TRUE.equals(((JavascriptExecutor) d).executeScript(
                                "const i = document.querySelector('#gallery .result img');"
                                        + " return i.complete && i.naturalWidth === 80;")));
                String outpaint = driver.findElement(By.cssSelector("#gallery .result .params")).getText();
                assertTrue(outpaint.contains("outpaint 0,0,16,0"), outpaint);
            } catch (RuntimeException | AssertionError e) {
                throw new AssertionError("page said: " + driver.findElement(By.tagName("body")).getText(), e);
            } finally {
                driver.quit();
            }
        }
    }

    private static void type(WebDriver driver, String id, String text) {
        WebElement e = driver.findElement(By.id(id));
        e.clear();
        e.sendKeys(text);
    }

    private static WebDriver chromium() throws Exception {
        Method m = WebPageTest.class.getDeclaredMethod("chromium");
        m.setAccessible(true);
        return (WebDriver) m.invoke(null);
    }
}

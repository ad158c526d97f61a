package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The web page in real headless Chromium (Debian's chromium + chromium-driver, which ./run-tests installs): with a token
 * on the server, open the page, fill the form, generate with the tiny SD1 checkpoint, see the progress bar and the
 * preview frames, find the result in the gallery, reuse its settings, cancel a running prompt from the queue, and
 * save a screenshot under server/target/.
 */
class WebPageTest {
    private static final String TOKEN = "page-token";

    @TempDir
    Path tmp;

    @Test
    void generateFromThePageAndSeeProgressAndTheGallery() throws Exception {
        Path base = ServerFixture.baseDir(tmp);
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base).withAuthToken(TOKEN))) {
            WebDriver driver = chromium();
            try {
                driver.get("http://127.0.0.1:" + server.port() + "/?token=" + TOKEN);
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(60));
                wait.until(d -> !new Select(d.findElement(By.id("checkpoint"))).getOptions().isEmpty());
                assertEquals(ServerFixture.SD1, new Select(driver.findElement(By.id("checkpoint")))
                        .getFirstSelectedOption().getText());
                wait.until(d -> d.findElement(By.id("connection")).getText().equals("connected"));

                type(driver, "prompt", "a lighthouse at dusk");
                type(driver, "negative", "blurry");
                type(driver, "width", "32");
                type(driver, "height", "32");
                type(driver, "steps", "3");
                type(driver, "cfg", "5");
                type(driver, "seed", "7");
                new Select(driver.findElement(By.id("sampler"))).selectByValue("euler");
                new Select(driver.findElement(By.id("scheduler"))).selectByValue("karras");
                driver.findElement(By.id("add-lora")).click();
                driver.findElement(By.cssSelector(".lora-strength")).clear();
                driver.findElement(By.cssSelector(".lora-strength")).sendKeys("0.5");
                driver.findElement(By.id("generate")).click();

                WebDriverWait slow = new WebDriverWait(driver, Duration.ofMinutes(3));
                slow.until(d -> Boolean.TRUE.equals(((JavascriptExecutor) d).executeScript(
                        "const i = document.querySelector('#gallery .result img');"
                                + " return !!i && i.complete && i.naturalWidth > 0;")));
                assertEquals("3", driver.findElement(By.id("progress")).getAttribute("data-seen"),
                        "progress reached the last step");
                int frames = Integer.parseInt(driver.findElement(By.id("preview")).getAttribute("data-frames"));
                assertTrue(frames >= 1, "preview frames shown: " + frames);
                WebElement card = driver.findElement(By.cssSelector("#gallery .result"));
                String params = card.findElement(By.className("params")).getText();
                assertTrue(params.contains("seed 7") && params.contains("a lighthouse at dusk")
                        && params.contains(ServerFixture.SD1_LORA), params);
                Long width = (Long) ((JavascriptExecutor) driver).executeScript(
                        "return document.querySelector('#gallery .result img').naturalWidth;");
                assertEquals(32L, width);
                screenshot(driver, "webpage.png");

                type(driver, "seed", "99");
                type(driver, "steps", "20");
                card.findElement(By.className("reuse")).click();
                assertEquals("7", driver.findElement(By.id("seed")).getAttribute("value"));
                assertEquals("3", driver.findElement(By.id("steps")).getAttribute("value"));
                assertEquals("karras", new Select(driver.findElement(By.id("scheduler")))
                        .getFirstSelectedOption().getText());

                // img2img: an init image picked in the form is uploaded, then encoded
                driver.findElement(By.id("init-image")).sendKeys(ServerFixture.golden()
                        .resolve("pipe_sd1_img2img_euler.input.png").toAbsolutePath().toString());
                type(driver, "steps", "2");
                type(driver, "denoise", "0.6");
                driver.findElement(By.id("generate")).click();
                slow.until(d -> d.findElements(By.cssSelector("#gallery .result img")).size() == 2
                        && Boolean.TRUE.equals(((JavascriptExecutor) d).executeScript(
                                "const i = document.querySelector('#gallery .result img');"
                                        + " return i.complete && i.naturalWidth === 32;")));
                String img2img = driver.findElement(By.cssSelector("#gallery .result .params")).getText();
                assertTrue(img2img.contains("img2img 0.6"), img2img);
                assertTrue(Files.isRegularFile(base.resolve("input/pipe_sd1_img2img_euler.input.png")));
                driver.findElement(By.id("clear-image")).click();

                // a long prompt, cancelled from the queue while it runs
                type(driver, "steps", "400");
                driver.findElement(By.id("generate")).click();
                slow.until(d -> !d.findElements(By.cssSelector("#queue li .cancel")).isEmpty()
                        && Integer.parseInt(d.findElement(By.id("progress")).getAttribute("value").split("\\.")[0])
                        >= 1 && d.findElement(By.id("progress")).getAttribute("max").startsWith("400"));
                driver.findElement(By.cssSelector("#queue li .cancel")).click();
                slow.until(d -> !d.findElements(By.cssSelector("#gallery .result.failed")).isEmpty());
                assertTrue(driver.findElement(By.cssSelector("#gallery .result.failed")).getText()
                        .contains("execution_interrupted"));
                screenshot(driver, "webpage-cancelled.png");
            } catch (RuntimeException | AssertionError e) {
                screenshot(driver, "webpage-failure.png");
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

    private static void screenshot(WebDriver driver, String name) throws Exception {
        ((JavascriptExecutor) driver).executeScript("window.scrollTo(0, 0);");
        Path shot = ((org.openqa.selenium.TakesScreenshot) driver).getScreenshotAs(OutputType.FILE).toPath();
        Path target = Path.of("target").resolve(name);
        Files.createDirectories(target.getParent());
        Files.copy(shot, target, StandardCopyOption.REPLACE_EXISTING);
        assertTrue(Files.size(target) > 1000);
    }

    /** Debian's chromium and chromedriver, named explicitly so Selenium never tries to download a browser. */
    private static WebDriver chromium() {
        return chromiumDriver();
    }

    /** Headless Chromium through Debian's chromedriver (also the ComfyUI front end test's). */
    static ChromeDriver chromiumDriver() {
        Path browser = firstExisting(List.of("/usr/bin/chromium", "/usr/bin/chromium-browser"));
        Path driverBinary = firstExisting(List.of("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"));
        ChromeOptions options = new ChromeOptions();
        options.setBinary(browser.toFile());
        options.addArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000");
        ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(driverBinary.toFile())
                .usingAnyFreePort().build();
        return new ChromeDriver(service, options);
    }

    private static Path firstExisting(List<String> candidates) {
        for (String c : candidates) {
            if (Files.isExecutable(Path.of(c))) {
                return Path.of(c);
            }
        }
        throw new AssertionError("none of " + candidates + " is installed: apt-get install chromium chromium-driver"
                + " (./run-tests installs them when run as root)");
    }
}

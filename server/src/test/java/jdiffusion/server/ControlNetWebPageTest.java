package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The web page's ControlNet section in headless Chromium: pick the tiny SD1 ControlNet and a hint image, preview the
 * canny-processed hint, generate, and find a result whose stored workflow applied the ControlNet.
 */
class ControlNetWebPageTest {
    @TempDir
    Path tmp;

    @Test
    void generateWithAControlNetFromThePage() throws Exception {
        Path base = ServerFixture.baseDir(tmp);
        Files.createDirectories(base.resolve("models/controlnet"));
        String cn = "tiny-sd1-controlnet-fp16.safetensors";
        Files.copy(ServerFixture.golden().resolve("models").resolve(cn), base.resolve("models/controlnet").resolve(cn));
        Path hint = ServerFixture.golden().resolve("controlnet/pipe_sd1_controlnet_euler.hint.png").toAbsolutePath();
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base))) {
            WebDriver driver = chromium();
            try {
                driver.get("http://127.0.0.1:" + server.port() + "/");
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(60));
                wait.until(d -> new Select(d.findElement(By.id("cn-model"))).getOptions().size() == 2);
                new Select(driver.findElement(By.id("cn-model"))).selectByValue(cn);
                driver.findElement(By.id("cn-image")).sendKeys(hint.toString());
                new Select(driver.findElement(By.id("cn-module"))).selectByValue("canny");
                type(driver, "cn-strength", "0.8");
                type(driver, "cn-end", "0.7");
                driver.findElement(By.id("cn-preview-button")).click();
                WebDriverWait slow = new WebDriverWait(driver, Duration.ofMinutes(3));
                slow.until(d -> Boolean.TRUE.equals(((JavascriptExecutor) d).executeScript(
                        "const i = document.getElementById('cn-preview');"
                                + " return i.dataset.ready === '1' && i.complete && i.naturalWidth === 64;")));
                type(driver, "width", "64");
                type(driver, "height", "64");
                type(driver, "steps", "2");
                type(driver, "seed", "3");
                driver.findElement(By.id("generate")).click();
                slow.until(d -> Boolean.TRUE.equals(((JavascriptExecutor) d).executeScript(
                        "const i = document.querySelector('#gallery .result img');"
                                + " return !!i && i.complete && i.naturalWidth === 64;")));
                assertEquals(1, driver.findElements(By.cssSelector("#gallery .result")).size(),
                        "the hint preview is not a gallery result");
                String id = driver.findElement(By.cssSelector("#gallery .result")).getAttribute("data-prompt-id");
                JsonNode prompt = new ServerFixture.Client(server.port(), null).get("/history/" + id).json()
                        .path(id).path("prompt").get(2);
                String text = prompt.toString();
                assertTrue(text.contains("\"ControlNetApplyAdvanced\"") && text.contains("\"Canny\"")
                        && text.contains(cn), text);
            } finally {
                driver.quit();
            }
        }
    }

    private static void type(WebDriver driver, String id, String text) {
        var e = driver.findElement(By.id(id));
        e.clear();
        e.sendKeys(text);
    }

    private static WebDriver chromium() {
        Path browser = first(List.of("/usr/bin/chromium", "/usr/bin/chromium-browser"));
        Path driverBinary = first(List.of("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"));
        ChromeOptions options = new ChromeOptions();
        options.setBinary(browser.toFile());
        options.addArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000");
        return new ChromeDriver(new ChromeDriverService.Builder().usingDriverExecutable(driverBinary.toFile())
                .usingAnyFreePort().build(), options);
    }

    private static Path first(List<String> candidates) {
        for (String c : candidates) {
            if (Files.isExecutable(Path.of(c))) {
                return Path.of(c);
            }
        }
        throw new AssertionError("none of " + candidates + " is installed: apt-get install chromium chromium-driver");
    }
}

package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * ComfyUI's own front end (the shared build of ComfyUI_frontend, see CONTRACT.md beside it) served by
 * {@code serve --front-end-root} and driven in headless Chromium: it boots against jdiffusion, runs its default
 * workflow switched to the tiny checkpoint (and a small size, few steps), shows the image on the Save Image node and
 * the job in its job history panel, and no page error or unhandled rejection happens on the way.
 */
class ComfyFrontEndTest {
    @TempDir
    Path tmp;

    static Path frontEnd() {
        return ServerFixture.golden().resolveSibling("comfyui-frontend").resolve("dist");
    }

    @Test
    void comfyUisFrontEndRunsTheDefaultWorkflow() throws Exception {
        runTheDefaultWorkflow(null);
    }

    /**
     * The same on a server with --auth-token: the user opens /?token=T once; the front end, which knows nothing of
     * the token, fetches its assets, calls the API and opens the websocket with the cookie that visit left.
     */
    @Test
    void comfyUisFrontEndWorksOnAServerWithAToken() throws Exception {
        runTheDefaultWorkflow("front-end-token");
    }

    private void runTheDefaultWorkflow(String token) throws Exception {
        Path dist = frontEnd();
        Assumptions.assumeTrue(Files.isRegularFile(dist.resolve("index.html")),
                "no ComfyUI front end build at " + dist + ": skipped");
        Path base = ServerFixture.baseDir(tmp);
        // a returning user: the default graph rather than the new user's template browser
        Files.createDirectories(base.resolve("user/default"));
        Files.writeString(base.resolve("user/default/comfy.settings.json"),
                "{\"Comfy.TutorialCompleted\": true, \"Comfy.InstalledVersion\": \"1.44.17\"}");
        ServerConfig config = token == null ? ServerFixture.config(base)
                : ServerFixture.config(base).withAuthToken(token);
        try (JDiffusionServer server = JDiffusionServer.start(config, new ServeOptions(dist, "auto"))) {
            ChromeDriver driver = WebPageTest.chromiumDriver();
            try {
                driver.executeCdpCommand("Page.addScriptToEvaluateOnNewDocument", Map.of("source",
                        "window.__errors = [];"
                                + "window.addEventListener('error', e => window.__errors.push('error: ' + e.message));"
                                + "window.addEventListener('unhandledrejection', e => window.__errors.push("
                                + "'rejection: ' + (e.reason && (e.reason.stack || e.reason.message) || e.reason)));"));
                driver.get("http://127.0.0.1:" + server.port() + "/" + (token == null ? "" : "?token=" + token));
                JavascriptExecutor js = driver;
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(120));
                wait.until(d -> Boolean.TRUE.equals(js.executeScript(
                        "return !!(window.app && window.app.graph && window.app.graph._nodes.length >= 7"
                                + " && window.app.graph._nodes.some(n => n.type === 'SaveImage'));")));
                // the default workflow, switched to the tiny checkpoint, a small latent and two steps
                Object switched = js.executeScript("""
                        const g = window.app.graph;
                        const w = (n, name) => n.widgets.find(x => x.name === name);
                        const ckpt = g._nodes.find(n => n.type === 'CheckpointLoaderSimple');
                        w(ckpt, 'ckpt_name').value = arguments[0];
                        const latent = g._nodes.find(n => n.type === 'EmptyLatentImage');
                        w(latent, 'width').value = 64; w(latent, 'height').value = 64;
                        const ks = g._nodes.find(n => n.type === 'KSampler');
                        w(ks, 'steps').value = 2;
                        // every node on screen (the canvas draws, and so loads images, only for visible nodes)
                        window.app.canvas.ds.scale = 0.6;
                        window.app.canvas.ds.offset = [0, 0];
                        window.app.canvas.setDirty(true, true);
                        return w(ckpt, 'ckpt_name').options.values;
                        """, ServerFixture.SD1);
                assertTrue(String.valueOf(switched).contains(ServerFixture.SD1), "checkpoint list: " + switched);
                driver.findElement(By.cssSelector("[data-testid=queue-button]")).click();

                WebDriverWait slow = new WebDriverWait(driver, Duration.ofMinutes(3));
                slow.until(d -> !server.store().history(0).isEmpty());
                new WebDriverWait(driver, Duration.ofSeconds(30)).until(d -> Boolean.TRUE.equals(js.executeScript("""
                        const save = window.app.graph._nodes.find(n => n.type === 'SaveImage');
                        return !!(save.imgs && save.imgs.length > 0 && save.imgs[0].complete
                                  && save.imgs[0].naturalWidth === 64);
                        """)));
                String src = (String) js.executeScript(
                        "return window.app.graph._nodes.find(n => n.type === 'SaveImage').imgs[0].src;");
                assertTrue(src.contains("/api/view?") && src.contains("type=output"), src);
                assertEquals(1, server.store().history(0).size());
                screenshot(driver, token == null ? "comfy-frontend.png" : "comfy-frontend-token.png");

                // the queue panel (expanded from the "active" button) lists the finished job, from /api/jobs
                js.executeScript("""
                        const t = document.querySelector('[data-testid=queue-overlay-toggle]')
                            || [...document.querySelectorAll('button')].find(b => /active/.test(b.textContent));
                        t.click();
                        """);
                slow.until(d -> Boolean.TRUE.equals(js.executeScript("""
                        const list = document.querySelector('[data-testid=job-assets-list]');
                        return !!list && [...list.querySelectorAll('img')].some(i => i.src.includes('ComfyUI_00001_.png')
                                 && i.complete && i.naturalWidth > 0);
                        """)));
                screenshot(driver, "comfy-frontend-jobs.png");
                Object errors = js.executeScript("return window.__errors;");
                assertEquals(List.of(), errors, "page errors");
            } catch (RuntimeException | AssertionError e) {
                screenshot(driver, "comfy-frontend-failure.png");
                System.err.println("front end state: " + ((JavascriptExecutor) driver).executeScript("""
                        const save = window.app.graph._nodes.find(n => n.type === 'SaveImage');
                        return JSON.stringify({imgs: save.imgs && save.imgs.map(i => [i.src, i.complete, i.naturalWidth]),
                          domImgs: [...document.querySelectorAll('img')].map(i => [i.src, i.naturalWidth]),
                          outputs: window.app.nodeOutputs, id: save.id, widgets: (save.widgets || []).map(w => [w.name, w.type, typeof w.value]), previews: window.app.nodePreviewImages, anyImgs: window.app.graph._nodes.filter(n => n.imgs).map(n => n.id), size: save.size, res: performance.getEntriesByType('resource').filter(r => r.name.includes('view')).map(r => r.name + ' ' + r.responseStatus), ws: window.app.api && window.app.api.socket && window.app.api.socket.readyState, url: window.app.api && window.app.api.socket && window.app.api.socket.url, cid: window.app.api && window.app.api.clientId});
                        """));
                Object errors = ((JavascriptExecutor) driver).executeScript("return window.__errors;");
                throw new AssertionError("page errors " + errors + "; page said: "
                        + driver.findElement(By.tagName("body")).getText(), e);
            } finally {
                driver.quit();
            }
        }
    }

    private static void screenshot(ChromeDriver driver, String name) throws Exception {
        Path shot = driver.getScreenshotAs(OutputType.FILE).toPath();
        Path target = Path.of("target").resolve(name);
        Files.createDirectories(target.getParent());
        Files.copy(shot, target, StandardCopyOption.REPLACE_EXISTING);
    }
}

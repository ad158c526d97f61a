package jdiffusion.server;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Third-party client libraries from the npm registry for the client tests: each lives in a test resource folder
 * {@code clients/NAME/} with a package.json that pins it, its package-lock.json and the script that drives it. It is
 * installed with {@code npm ci --ignore-scripts} (exactly the locked versions, no install script run) into
 * {@code target/npm-NAME} once, and again when the lock file changes. Without node / npm, or when the registry
 * cannot be reached, the test is skipped with the reason (as the openai client test is).
 */
final class NpmClients {
    private NpmClients() {
    }

    /** Installs clients/NAME (files: package.json, package-lock.json and the given scripts) and returns its folder. */
    static Path install(String name, String... scripts) throws IOException, InterruptedException {
        Assumptions.assumeTrue(runs("node", "--version"), "node is not installed: skipping the " + name + " client");
        Path dir = Path.of("target/npm-" + name).toAbsolutePath();
        Files.createDirectories(dir);
        byte[] lock = resource(name, "package-lock.json");
        Path lockFile = dir.resolve("package-lock.json");
        boolean current = Files.isDirectory(dir.resolve("node_modules")) && Files.isRegularFile(lockFile)
                && java.util.Arrays.equals(Files.readAllBytes(lockFile), lock);
        if (!current) {
            Assumptions.assumeTrue(runs("npm", "--version"), "npm is not installed: skipping the " + name + " client");
            Files.write(dir.resolve("package.json"), resource(name, "package.json"));
            Files.write(lockFile, lock);
            Process p = new ProcessBuilder("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
                    .directory(dir.toFile()).redirectErrorStream(true).start();
            String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            boolean done = p.waitFor(300, TimeUnit.SECONDS);
            if (!done || p.exitValue() != 0) {
                Files.deleteIfExists(lockFile); // tried again next time
                Assumptions.abort("npm could not install the " + name + " client (offline?): skipping. " + log);
            }
        }
        for (String s : scripts) {
            Files.write(dir.resolve(s), resource(name, s));
        }
        return dir;
    }

    /** Runs node SCRIPT ARGS in workDir; returns the last line of stdout, failing with stderr when it exits non-0. */
    static String node(Path dir, String script, Path workDir, long timeoutSeconds, String... args)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("node", dir.resolve(script).toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(workDir.toFile()).redirectError(workDir.resolve("stderr.txt")
                .toFile()).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(script + " did not finish in " + timeoutSeconds + " s: " + out);
        }
        String err = Files.readString(workDir.resolve("stderr.txt"));
        if (p.exitValue() != 0) {
            throw new AssertionError(script + " failed (exit " + p.exitValue() + "): " + err + out);
        }
        return out.strip().lines().reduce((a, b) -> b).orElseThrow(() -> new AssertionError(
                script + " printed nothing: " + err));
    }

    private static byte[] resource(String name, String file) throws IOException {
        try (InputStream in = NpmClients.class.getResourceAsStream("/clients/" + name + "/" + file)) {
            if (in == null) {
                throw new IOException("test resource clients/" + name + "/" + file + " is missing");
            }
            return in.readAllBytes();
        }
    }

    static boolean runs(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}

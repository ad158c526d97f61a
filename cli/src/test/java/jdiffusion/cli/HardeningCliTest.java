package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 16 on the command line: a FIFO as model, VAE, LoRA or init image (items 2), bounded -t (3), LoRA strength
 * errors (8), a negative seed (14), the launcher with -Xmx1g (13). Each is one line and a non-zero exit.
 */
class HardeningCliTest {
    @TempDir
    static Path dir;
    static Path fifo;
    static String model;

    @BeforeAll
    static void setUp() throws Exception {
        fifo = dir.resolve("pipe.safetensors");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start().waitFor());
        model = CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors").toString();
    }

    private static CliTests.Result fails(String expected, String... args) {
        CliTests.Result r = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> CliTests.run(args));
        assertNotEquals(0, r.code(), r.err());
        assertTrue(r.err().contains(expected), String.join(" ", args) + " -> " + r.err());
        assertTrue(r.err().strip().lines().filter(l -> l.startsWith("jdiffusion: error:")).count() == 1
                && !r.err().contains("\tat "), r.err());
        return r;
    }

    @Test
    void fifoIsRefusedEverywhere() {
        String o = dir.resolve("out.png").toString();
        fails("FIFO (named pipe)", "info", fifo.toString());
        fails("FIFO (named pipe)", "generate", "-m", fifo.toString(), "-o", o, "-q");
        fails("FIFO (named pipe)", "generate", "-m", model, "--vae", fifo.toString(), "-o", o, "-q");
        fails("FIFO (named pipe)", "generate", "-m", model, "--lora", fifo.toString(), "-o", o, "-q");
        fails("FIFO (named pipe)", "generate", "-m", model, "-i", fifo.toString(), "-o", o, "-q");
        fails("FIFO (named pipe)", "run", fifo.toString());
    }

    @Test
    void threadsAreBounded() {
        String o = dir.resolve("out.png").toString();
        fails("threads must be 1..", "generate", "-m", model, "-t", "10000", "-o", o, "-q");
        fails("threads must be 1..", "run", "-t", "10000", dir.resolve("missing.json").toString());
        fails("threads must be 1..", "serve", "-t", "10000", "--port", "0", "--base-dir", dir.toString());
    }

    @Test
    void loraStrengthErrorsNameTheStrength() {
        String o = dir.resolve("out.png").toString();
        String lora = CliTests.golden().resolve("models/tiny-sd1-lora-kohya.safetensors").toString();
        fails("strength 'abc' is not a number", "generate", "-m", model, "--lora", lora + ":abc", "-o", o, "-q");
        fails("is not a finite number", "generate", "-m", model, "--lora", lora + ":NaN", "-o", o, "-q");
        fails("3 strengths given", "generate", "-m", model, "--lora", lora + ":1:2:3", "-o", o, "-q");
        fails("empty strength", "generate", "-m", model, "--lora", lora + ":", "-o", o, "-q");
        fails("out of range", "generate", "-m", model, "--lora", lora + ":1e30", "-o", o, "-q");
    }

    @Test
    void negativeSeedIsRefused() {
        fails("seed must be between 0 and 18446744073709551615, got -1", "generate", "-m", model, "-s", "-1", "-o",
                dir.resolve("out.png").toString(), "-q");
    }

    @Test
    void nonFinitePromptWeightFailsBeforeGenerating() {
        fails("not a finite number", "generate", "-m", model, "-p", "a (cat:1e400)", "-W", "64", "-H", "64",
                "--steps", "1", "-o", dir.resolve("w.png").toString(), "-q");
    }

    @Test
    void softMaxHeapFollowsTheEffectiveMaximum() {
        assertEquals(1L << 30, Main.softMaxHeap(2L << 30, 1L << 30));
        assertEquals(2L << 30, Main.softMaxHeap(2L << 30, 8L << 30));
        assertEquals(2L << 30, Main.parseSize("2g"));
        assertEquals(512L << 20, Main.parseSize("512M"));
        long set = Main.applySoftMaxHeap("2g");
        assertEquals(Math.min(2L << 30, Runtime.getRuntime().maxMemory()), set);
    }

    /** The launcher's own JVM flags, with -Xmx1g added, start a JVM (the old fixed 2g soft limit did not). */
    @Test
    void launcherFlagsStartWithOneGigabyteHeap() throws Exception {
        Path root = Path.of(System.getProperty("jdiffusion.root", System.getProperty("user.dir") + "/.."));
        // the JVM flags the launcher would use (its dry run prints them one per line, up to -jar)
        ProcessBuilder dry = new ProcessBuilder("bash", root.resolve("jdiffusion").toString(), "info");
        dry.environment().put("JDIFFUSION_LAUNCHER_DRY_RUN", "1");
        dry.environment().put("JAVA_HOME", System.getProperty("java.home"));
        dry.environment().remove("JDIFFUSION_JAVA_OPTS");
        Process launcher = dry.start();
        List<String> flags = new String(launcher.getInputStream().readAllBytes()).lines().toList();
        assertEquals(0, launcher.waitFor());
        assertTrue(flags.contains("-jar"), "the launcher's java command line: " + flags);
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String flag : flags.subList(0, flags.indexOf("-jar"))) {
            if (!flag.contains("SharedArchive") && !flag.startsWith("-Xlog:cds")) { // no archive written by a test
                cmd.add(flag);
            }
        }
        cmd.add("-Xmx1g");
        cmd.add("-version");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), cmd + "\n" + out);
    }
}

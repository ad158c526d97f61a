package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The launcher's heap plan: header to bytes, the rule's phases, the user's flags, and the launcher passing them on. */
class HeapPlanTest {
    static final long GB = 1L << 30;
    static final long RAM_DEFAULT = 48 * GB; // a default maximum well above every plan here

    @TempDir
    Path tmp;

    private static Path tinySd1() {
        return CliTests.golden().resolve("models/tiny-sd1-fp16.safetensors");
    }

    private static HeapPlan.Work plan(String... generateArgs) throws Exception {
        String[] args = new String[generateArgs.length + 1];
        args[0] = "generate";
        System.arraycopy(generateArgs, 0, args, 1, generateArgs.length);
        return HeapPlan.work(args, RAM_DEFAULT);
    }

    @Test
    void headerBytesFollowHowEachTensorSitsOnTheHeap() throws Exception {
        Path f = tmp.resolve("parts.safetensors");
        SafeTensorsWriter.to(f)
                .add("conv.weight", DType.F16, new long[] {8, 4, 3, 3}, new float[288]) // packed in 16 bits: 576
                .add("conv.bias", DType.F16, new long[] {8}, new float[8]) // widened: 32
                .add("proj.weight", DType.F32, new long[] {16, 8}, new float[128]) // fp32 stays fp32: 512
                .add("token_embedding.weight", DType.F16, new long[] {100, 8}, new float[800]) // a table: 3200
                .add("q.weight", DType.BF16, new long[] {4, 4}, new float[16]) // 32
                .write();
        HeapPlan.Sizes s = new HeapPlan.Sizes(false);
        s.addFile(HeapPlan.Part.UNET, f);
        assertEquals(576 + 32 + 512 + 3200 + 32, s.unet);
        assertEquals(800 * 4, s.largest, "the largest tensor, read as floats once while loading");
        HeapPlan.Sizes nat = new HeapPlan.Sizes(true);
        nat.addFile(HeapPlan.Part.UNET, f);
        assertEquals(32 + 3200, nat.unet, "native bf16: GEMM weights off the heap, the rest as floats");
        assertEquals(1, HeapPlan.heapBytesPerValue("t5.q.weight", DType.F8_E4M3, 2, false));
    }

    @Test
    void tinyCheckpointWeightsCountEveryComponentAndFp32TwinDoubles() throws Exception {
        HeapPlan.Work fp16 = plan("-m", tinySd1().toString(), "-p", "x");
        assertNotNull(fp16);
        long fileBytes = Files.size(tinySd1());
        // the heap holds the file's 16-bit tensors, some widened: at least the tensors' bytes, at most twice
        assertTrue(fp16.weights() > fileBytes * 9 / 10 && fp16.weights() < fileBytes * 2,
                fp16.weights() + " for a file of " + fileBytes);
        assertTrue(fp16.unet() > 0 && fp16.text() > 0 && fp16.vae() > 0);
        Path twin = tmp.resolve("tiny-sd1-fp32.safetensors");
        try (SafeTensors src = SafeTensors.open(tinySd1())) {
            SafeTensorsWriter.convert(src, twin, DType.F32, false);
        }
        HeapPlan.Work fp32 = plan("-m", twin.toString(), "-p", "x");
        assertTrue(fp32.unet() > fp16.unet() * 3 / 2 && fp32.unet() <= fp16.unet() * 2,
                "fp32 weights stay fp32: " + fp32.unet() + " against " + fp16.unet());
    }

    @Test
    void sd3CheckpointsCountTheirMmditTextEncodersAndVae() throws Exception {
        HeapPlan.Work w = plan("-m", CliTests.golden().resolve("models/tiny-sd35-fp16.safetensors").toString(), "-p", "x");
        assertNotNull(w);
        assertTrue(w.unet() > 0 && w.text() > 0 && w.vae() > 0, w.toString());
        long cells = (1024 / 8 + 1) * (1024 / 8 + 1);
        assertEquals(HeapPlan.SAMPLE_BASE + cells * 2 * HeapPlan.SAMPLE_PER_CELL, w.sample(), "SD3 samples at 1024");
    }

    @Test
    void neverBelowTheWeightsAndTheLargestPhaseWins() {
        HeapPlan.Work w = new HeapPlan.Work(1000 * HeapPlan.MB, 300 * HeapPlan.MB, 100 * HeapPlan.MB, 0, 10, 0,
                1, 1, GB, true);
        assertEquals(1400 * HeapPlan.MB + 10 + HeapPlan.MARGIN, HeapPlan.heapBytes(w), "loading is the largest");
        HeapPlan.Work sampling = new HeapPlan.Work(1000 * HeapPlan.MB, 300 * HeapPlan.MB, 100 * HeapPlan.MB, 0, 0, 0,
                700 * HeapPlan.MB, 1, GB, true);
        // the text encoders are freed before sampling: 1000 + 100 + 700
        assertEquals(1800 * HeapPlan.MB + HeapPlan.MARGIN, HeapPlan.heapBytes(sampling));
        HeapPlan.Work decode = new HeapPlan.Work(1000 * HeapPlan.MB, 300 * HeapPlan.MB, 100 * HeapPlan.MB,
                50 * HeapPlan.MB, 0, 0, 0, 2000 * HeapPlan.MB, GB, true);
        // the UNet is freed before the decode; a ControlNet stays
        assertEquals(2150 * HeapPlan.MB + HeapPlan.MARGIN, HeapPlan.heapBytes(decode));
    }

    @Test
    void activationsScaleWithSizeBatchHiresAndControlNets() throws Exception {
        String m = tinySd1().toString();
        HeapPlan.Work base = plan("-m", m, "-p", "x");
        HeapPlan.Work big = plan("-m", m, "-p", "x", "-W", "1024", "-H", "1024");
        HeapPlan.Work batch = plan("-m", m, "-p", "x", "-b", "4");
        HeapPlan.Work hires = plan("-m", m, "-p", "x", "--hires-scale", "2");
        // four times the pixels: four times the per-cell part of sampling
        assertEquals(4.0, (double) (big.sample() - HeapPlan.SAMPLE_BASE) / (base.sample() - HeapPlan.SAMPLE_BASE), 0.1);
        assertEquals(4.0, (double) (batch.sample() - HeapPlan.SAMPLE_BASE) / (base.sample() - HeapPlan.SAMPLE_BASE),
                0.01);
        assertEquals(big.sample(), hires.sample(), "the hires pass samples at twice the size");
        assertTrue(batch.decode() > 3 * base.decode(), "a batch decodes in one go");
        assertTrue(HeapPlan.heapBytes(big) > HeapPlan.heapBytes(base));
        assertEquals(0, base.encode());
        // img2img: all weights plus the encoder's working set, at the init image's size; inpainting keeps the default
        String init = CliTests.golden().resolve("pipe_sd1_img2img_euler.input.png").toString();
        HeapPlan.Work img2img = plan("-m", m, "-p", "x", "-i", init);
        assertTrue(img2img.encode() > 0);
        assertTrue(img2img.measured());
        assertTrue(HeapPlan.heapBytes(img2img) >= img2img.unet() + img2img.text() + img2img.vae() + img2img.encode());
        assertNull(plan("-m", m, "-p", "x", "-i", init, "--mask", init));
        assertFalse(HeapPlan.measured("SD1", 1, 768, 768, 0, 0, false, true), "img2img measured up to 512x512");
        Path cn = CliTests.golden().resolve("models/tiny-sd1-controlnet-fp16.safetensors");
        HeapPlan.Work control = plan("-m", m, "-p", "x", "--control", cn + ":" + "hint.png");
        assertTrue(control.control() > 0);
        assertTrue(control.sample() > base.sample());
    }

    @Test
    void decodeInTilesIsBoundedByTheBudgetTheDefaultHeapGives() throws Exception {
        String m = tinySd1().toString();
        HeapPlan.Work small = HeapPlan.work(new String[] {"generate", "-m", m, "-W", "4096", "-H", "4096"}, 6 * GB);
        assertEquals(2 * GB, small.vaeBudget());
        long image = 2L * 3 * 4096 * 4096 * 4;
        assertTrue((small.decode() - image) / HeapPlan.DECODE_LIVE_TENSORS * HeapPlan.VAE_LIVE_TENSORS <= 2 * GB,
                "tiles fit the budget");
        HeapPlan.Work large = HeapPlan.work(new String[] {"generate", "-m", m, "-W", "4096", "-H", "4096"}, RAM_DEFAULT);
        assertEquals(HeapPlan.VAE_BUDGET_CAP, large.vaeBudget());
        // the tile Vae.fewestTiles picks, with 250 floats per pixel (1000 bytes): a latent of 64 cells never tiles
        HeapPlan.Widest perPixel = (w, h) -> w * h * 250;
        long live = HeapPlan.DECODE_LIVE_TENSORS;
        long[] budgets = {1, 2_000_000_000L * 5, 1_000_000_000L * 5, 100_000_000L * 5, 200_000_000L * 5};
        assertEquals(512L * 512 * 1000 * live, HeapPlan.decodeBytes(perPixel, 512, 512, budgets[0]));
        assertEquals(1024L * 1024 * 1000 * live, HeapPlan.decodeBytes(perPixel, 1024, 1024, budgets[1]), "whole");
        // 128 cells in two tiles overlapping by 8: 68 cells = 544 pixels
        assertEquals(544L * 544 * 1000 * live, HeapPlan.decodeBytes(perPixel, 1024, 1024, budgets[2]));
        // 128 cells in three tiles: 48 <= 64 cells, so ComfyUI's 512-pixel tiles
        assertEquals(512L * 512 * 1000 * live, HeapPlan.decodeBytes(perPixel, 1024, 1024, budgets[3]));
        // a wide image: tiles as tall as the image where it is short
        assertEquals(544L * 256 * 1000 * live, HeapPlan.decodeBytes(perPixel, 1024, 256, budgets[4]));
    }

    @Test
    void theUsersOwnHeapFlagsWinAndThePlanNeverExceedsTheDefault() throws Exception {
        String[] args = {"generate", "-m", tinySd1().toString(), "-p", "x"};
        String planned = HeapPlan.flags(args, "-XX:+UseZGC -Dfoo=1", RAM_DEFAULT);
        Matcher mx = Pattern.compile("^-Xmx(\\d+)m -XX:MaxDirectMemorySize=(\\d+) -Djdiffusion\\.vaeTilingBudget=(\\d+)$")
                .matcher(planned);
        assertTrue(mx.matches(), planned);
        assertEquals(HeapPlan.heapBytes(HeapPlan.work(args, RAM_DEFAULT)),
                Long.parseLong(mx.group(1)) * HeapPlan.MB, HeapPlan.MB);
        // native memory (bf16 weights) keeps the default heap's cap: SDXL bf16 failed under the planned heap's
        assertEquals(RAM_DEFAULT, Long.parseLong(mx.group(2)));
        for (String user : List.of("-Xmx3g", "-XX:MaxRAMPercentage=50", "-XX:MaxHeapSize=4g", "-XX:MaxRAM=8g",
                "-Dx=1 -Xmx900m")) {
            assertEquals("", HeapPlan.flags(args, user, RAM_DEFAULT), user);
        }
        assertEquals("", HeapPlan.flags(args, null, 100 * HeapPlan.MB), "at or above the default: keep the default");
        assertEquals("", HeapPlan.flags(new String[] {"serve"}, null, RAM_DEFAULT));
        assertEquals("", HeapPlan.flags(new String[] {"generate", "--bogus"}, null, RAM_DEFAULT));
        assertEquals("", HeapPlan.flags(new String[] {"generate", "-m", tinySd1().toString(), "--hires-scale", "2",
            "--hires-upscaler", "x4.safetensors"}, null, RAM_DEFAULT), "an upscale model: not modelled");
        assertNull(HeapPlan.work(new String[] {"generate", "--help"}, RAM_DEFAULT));
        // only the kinds of run measured under the plan get one; the others keep the default heap
        String m = tinySd1().toString();
        assertTrue(HeapPlan.work(args, RAM_DEFAULT).measured());
        for (String[] more : List.of(new String[] {"-W", "1024", "-H", "1024"}, new String[] {"-b", "2"},
                new String[] {"--hires-scale", "2"})) {
            List<String> a = new ArrayList<>(List.of(args));
            a.addAll(List.of(more));
            assertTrue(HeapPlan.flags(a.toArray(String[]::new), null, RAM_DEFAULT).startsWith("-Xmx"), a.toString());
        }
        for (String[] more : List.of(new String[] {"-W", "1024", "-H", "1024", "-b", "2"},
                new String[] {"--hires-scale", "2.5"}, new String[] {"--control", m + ":hint.png"},
                new String[] {"--lora", m})) {
            List<String> a = new ArrayList<>(List.of(args));
            a.addAll(List.of(more));
            assertEquals("", HeapPlan.flags(a.toArray(String[]::new), null, RAM_DEFAULT), a.toString());
        }
        assertTrue(HeapPlan.measured("SDXL", 1, 1024, 1024, 0, 0, false));
        assertFalse(HeapPlan.measured("SDXL", 2, 1024, 1024, 0, 0, false));
        assertFalse(HeapPlan.measured("SDXL", 1, 1024, 1024, 0, 0, true));
        assertTrue(HeapPlan.measured("SD1", 1, 1024, 1024, 0, 0, false));
        assertTrue(HeapPlan.measured("SD1", 1, 1024, 1024, 0, 0, true));
        assertTrue(HeapPlan.measured("SD2", 2, 512, 512, 0, 0, false));
        assertFalse(HeapPlan.measured("SD1", 2, 1024, 1024, 0, 0, false));
        assertFalse(HeapPlan.measured("SD1", 1, 512, 512, 1, 0, false));
        assertFalse(HeapPlan.measured("SD1", 1, 512, 512, 0, 1, false));
        assertFalse(HeapPlan.measured("SD3", 1, 1024, 1024, 0, 0, false));
    }

    @Test
    void bf16ShrinksTheHeapOnlyWhereTheNativePathRuns() throws Exception {
        HeapPlan.Work fp32 = plan("-m", tinySd1().toString(), "-p", "x");
        HeapPlan.Work bf16 = plan("-m", tinySd1().toString(), "-p", "x", "--precision", "bf16");
        boolean nativeBf16 = jdiffusion.tensor.Precision.describe(jdiffusion.tensor.Precision.BF16).startsWith("bf16");
        if (nativeBf16) {
            assertTrue(bf16.unet() < fp32.unet() / 2, bf16.unet() + " against " + fp32.unet());
        } else {
            assertEquals(fp32.unet(), bf16.unet(), "fp32 fallback: the weights stay on the heap");
        }
    }

    /** Runs the launcher script without starting the program: the JVM's arguments, one per line. */
    private List<String> launch(String javaOpts, String... args) throws IOException, InterruptedException {
        Path root = Path.of(System.getProperty("jdiffusion.root", System.getProperty("user.dir") + "/.."));
        List<String> cmd = new ArrayList<>(List.of("bash", root.resolve("jdiffusion").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(false);
        pb.environment().put("JDIFFUSION_LAUNCHER_DRY_RUN", "1");
        pb.environment().put("JDIFFUSION_HEAP_PLAN_CLASSPATH", System.getProperty("java.class.path"));
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        if (javaOpts == null) {
            pb.environment().remove("JDIFFUSION_JAVA_OPTS");
        } else {
            pb.environment().put("JDIFFUSION_JAVA_OPTS", javaOpts);
        }
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out + new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
        return out.lines().toList();
    }

    @Test
    void launcherPassesTheUsersHeapThroughUnchanged() throws Exception {
        String m = tinySd1().toString();
        List<String> user = launch("-Xmx1234m -XX:+AlwaysPreTouch", "generate", "-m", m, "-p", "x");
        assertEquals(List.of("-Xmx1234m"), user.stream().filter(a -> a.startsWith("-Xmx")).toList(), user.toString());
        assertTrue(user.contains("-XX:+AlwaysPreTouch"));
        assertFalse(user.stream().anyMatch(a -> a.startsWith("-Djdiffusion.vaeTilingBudget")));
        assertEquals(List.of("generate", "-m", m, "-p", "x"), user.subList(user.size() - 5, user.size()));

        List<String> planned = launch(null, "generate", "-m", m, "-p", "x");
        List<String> xmx = planned.stream().filter(a -> a.startsWith("-Xmx")).toList();
        assertEquals(1, xmx.size(), planned.toString());
        long expected = HeapPlan.heapBytes(HeapPlan.work(new String[] {"generate", "-m", m, "-p", "x"},
                HeapPlan.defaultMaxHeap()));
        assertEquals((expected + HeapPlan.MB - 1) / HeapPlan.MB + "m", xmx.getFirst().substring(4));
        assertTrue(planned.indexOf(xmx.getFirst()) < planned.indexOf("-jar"));

        List<String> other = launch(null, "info", m);
        assertFalse(other.stream().anyMatch(a -> a.startsWith("-Xmx")), "only generate is planned");
    }
}

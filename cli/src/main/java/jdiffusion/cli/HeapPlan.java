package jdiffusion.cli;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TensorInfo;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Precision;
import picocli.CommandLine;

/**
 * The maximum heap for one {@code generate} run, sized from the work before the JVM that runs it starts (the launcher
 * runs this first and passes what it prints to that JVM). ZGC commits fresh memory for each large activation rather
 * than reusing the small pieces the models left free, until the heap reaches its maximum; with the default maximum
 * (75% of RAM) the resident set of an SD1.5 image drifted 0.8-1.5 GB above what the work needs. A maximum close to
 * the work keeps it there.
 *
 * <p>The rule: the largest of the run's phases, plus {@link #MARGIN}:
 * <ul>
 * <li>loading: every model's weights as they sit on the heap (GEMM and convolution weights in the 16 or 8 bits the
 * file stores them, float32 files in float32, norms, biases and embeddings widened to float32; under a native bf16
 * path the GEMM weights live off the heap) plus the largest tensor widened once and the LoRA files' tensors;</li>
 * <li>img2img: all weights plus {@link #ENCODE_LIVE_TENSORS} times the VAE's widest activation;</li>
 * <li>sampling: the weights less the text encoders (a one-shot run frees them) plus {@link #SAMPLE_BASE} and
 * {@link #SAMPLE_PER_CELL} per latent cell per image of the guided batch (twice the batch; ControlNets half as much
 * again each), at the largest size sampled (the hires fix's);</li>
 * <li>VAE decode: the weights less the UNet and text encoders (freed before it) plus {@link #DECODE_LIVE_TENSORS}
 * times the decoder's widest activation, for the whole image or for the tile {@code Vae} will pick.</li>
 * </ul>
 * The decode's tiling budget follows the maximum heap, so the plan also fixes the budget the default heap would have
 * given ({@code -Djdiffusion.vaeTilingBudget}): a smaller heap never changes the image. Nothing is printed (the
 * launcher's default applies) when the user gave a heap size of their own, for commands other than {@code generate}
 * and for work it does not model (inpainting, an upscale model in the hires fix) or has not been measured under (see
 * {@link #measured}), when anything cannot be read (the
 * run itself reports it) and when the plan would reach the default maximum.
 */
public final class HeapPlan {
    static final long MB = 1L << 20;
    /** Fixed room above the largest phase: ZGC needs free pages to keep collecting without stalls. */
    static final long MARGIN = 512 * MB;
    /** Room for the sampler's per-step arrays whatever the size (latents, conditioning, scheduler state). */
    static final long SAMPLE_BASE = 256 * MB;
    /** Live UNet / MMDiT activations and scratch per latent cell per image of the guided batch. */
    static final long SAMPLE_PER_CELL = 48L << 10;
    /** Mirrors {@code VaeTiling.LIVE_TENSORS}: the decoder's tiling decision, in units of its widest activation. */
    static final int VAE_LIVE_TENSORS = 5;
    /**
     * What a VAE decode really holds, in units of its widest activation: activations, the convolutions' per-thread
     * scratch, the reused norm outputs and the Winograd transforms (about 1.3 widest for the SD VAEs). Measured on
     * an SD1.5 512x512 decode (widest 268 MB) with a collection at every block: at most 1.51 GB in use with the VAE's
     * weights (0.33 GB), i.e. 4.4 widest; it ran under -Xmx1800m (2.0 GB resident). Until the Winograd scratch pool
     * was fixed (it kept one buffer per chunk, 1.6 GB after one full-resolution convolution) this took 14.
     */
    static final int DECODE_LIVE_TENSORS = 6;
    /**
     * The same for the encoder (img2img), counted at the decoder's widest activation: since the Winograd fix (and the
     * encoder's own reused norm outputs) an SD1.5 512x512 img2img ran under -Xmx2968m at 3.12 GiB resident; before,
     * it failed under -Xmx6208m with 14.
     */
    static final int ENCODE_LIVE_TENSORS = 6;
    /** The VAE's default tiling budget's ceiling ({@code VaeTiling.auto()}). */
    static final long VAE_BUDGET_CAP = 3L << 30;
    /** The launcher's default maximum heap, in percent of RAM ({@code -XX:MaxRAMPercentage}). */
    static final int DEFAULT_RAM_PERCENT = 75;

    private static final Pattern VAE_BLOCK = Pattern.compile(
            "(?:^|\\.)(decoder\\.up|encoder\\.down)\\.(\\d+)\\.block\\.\\d+\\.conv[12]\\.weight$");

    private HeapPlan() {
    }

    /** Prints the JVM flags for the command line given (one line), or nothing. Never fails: the default then applies. */
    public static void main(String[] args) {
        try {
            String flags = flags(args, System.getenv("JDIFFUSION_JAVA_OPTS"), defaultMaxHeap());
            if (!flags.isEmpty()) {
                System.out.println(flags);
            }
        } catch (Throwable t) {
            if (System.getenv("JDIFFUSION_DEBUG") != null) {
                t.printStackTrace();
            }
        }
    }

    /** The launcher's default maximum heap: 75% of the RAM this process may use (a container's limit included). */
    static long defaultMaxHeap() {
        var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean();
        return os.getTotalMemorySize() / 100 * DEFAULT_RAM_PERCENT;
    }

    /** Whether the user's JVM options size the heap themselves (then they are left to decide). */
    static boolean userSizesHeap(String javaOpts) {
        if (javaOpts == null) {
            return false;
        }
        for (String o : javaOpts.trim().split("\\s+")) {
            if (o.startsWith("-Xmx") || o.startsWith("-XX:MaxHeapSize") || o.startsWith("-XX:MaxRAM")
                    || o.startsWith("-XX:InitialRAM") || o.startsWith("-XX:MinRAM") || o.startsWith("-XX:MaxRAMFraction")
                    || o.startsWith("-XX:SoftMaxHeapSize") || o.startsWith("-Djdiffusion.vaeTilingBudget")) {
                return true;
            }
        }
        return false;
    }

    /**
     * The flags for a command line: "-Xmx..m -XX:MaxDirectMemorySize=.. -Djdiffusion.vaeTilingBudget=.." or "" to
     * keep the default.
     */
    static String flags(String[] args, String javaOpts, long defaultMax) throws Exception {
        if (userSizesHeap(javaOpts)) {
            return "";
        }
        Work work = work(args, defaultMax);
        if (work == null) {
            return "";
        }
        long heap = heapBytes(work);
        if (System.getenv("JDIFFUSION_DEBUG") != null) {
            System.err.println("heap plan: " + work + " -> " + (heap >> 20) + " MB (default " + (defaultMax >> 20)
                    + " MB)" + (work.measured() ? "" : "; not applied: this kind of run is not measured under it"));
        }
        if (!work.measured()) {
            return "";
        }
        if (heap >= defaultMax) {
            return "";
        }
        // native memory (oneDNN's bf16 weights, FFM allocations) is capped by MaxDirectMemorySize, which defaults to
        // the maximum heap: keep the default heap's cap (SDXL under --precision bf16 holds 5 GB of native weights)
        return "-Xmx" + ((heap + MB - 1) / MB) + "m -XX:MaxDirectMemorySize=" + defaultMax
                + " -Djdiffusion.vaeTilingBudget=" + work.vaeBudget();
    }

    /**
     * What a run needs to hold, in bytes. Weights are split by when they are freed; activations are per phase.
     *
     * @param unet        the UNet / MMDiT and ControlNets (kept through sampling; ControlNets also through the decode)
     * @param text        the text encoders (freed after encoding)
     * @param vae         the VAE (kept to the end)
     * @param control     ControlNet weights (kept to the end)
     * @param loadExtra   transient load memory: the largest tensor widened, LoRA tensors
     * @param encode      the VAE encoder's activations (img2img / inpaint; 0 for txt2img)
     * @param sample      the sampler's activations at the largest size sampled
     * @param decode      the VAE decoder's activations (whole or per tile)
     * @param vaeBudget   the tiling budget the default heap gives the VAE decoder
     * @param measured    whether runs of this kind passed under the plan (see {@link #measured}); others keep the default
     */
    record Work(long unet, long text, long vae, long control, long loadExtra, long encode, long sample, long decode,
                long vaeBudget, boolean measured) {
        long weights() {
            return unet + text + vae + control;
        }
    }

    /** The maximum heap for the work: its largest phase plus the margin, never below the weights. */
    static long heapBytes(Work w) {
        long load = w.weights() + w.loadExtra();
        long encode = w.weights() + w.encode();
        long sample = w.unet() + w.vae() + w.control() + w.sample();
        long decode = w.vae() + w.control() + w.decode();
        return Math.max(Math.max(load, encode), Math.max(sample, decode)) + MARGIN;
    }

    /** The work of a {@code generate} command line, or null when it is not one this plan models. */
    static Work work(String[] args, long defaultMax) throws Exception {
        CommandLine cl = new CommandLine(new Main());
        CommandLine.ParseResult parsed;
        try {
            parsed = cl.parseArgs(args);
        } catch (CommandLine.ParameterException e) {
            return null; // the run reports it
        }
        if (!parsed.hasSubcommand() || !(parsed.subcommand().commandSpec().userObject() instanceof GenerateCommand g)
                || parsed.subcommand().isUsageHelpRequested() || parsed.subcommand().isVersionHelpRequested()) {
            return null;
        }
        return work(g, defaultMax);
    }

    static Work work(GenerateCommand g, long defaultMax) throws Exception {
        // inpainting keeps the default: not measured under a plan (img2img is, see measured)
        if (g.model == null || g.inpaint.mask != null || g.inpaint.outpaint != null
                || g.hires.scale != null && g.hires.upscaler != null && !g.hires.upscaler.startsWith("latent")) {
            return null;
        }
        boolean nativeBf16 = g.precision.precision != null && Precision.parse(g.precision.precision) == Precision.BF16
                && Precision.describe(Precision.BF16).startsWith("bf16");
        Sizes s = new Sizes(nativeBf16);
        String family;
        List<String> vaeNames = new ArrayList<>();
        if (jdiffusion.pipeline.Sd3Models.isSd3File(g.model)) {
            family = "SD3";
            try (SafeTensors f = SafeTensors.open(g.model)) {
                for (TensorInfo t : f.tensors().values()) {
                    if (t.name().startsWith("model_ema.")) {
                        continue;
                    }
                    boolean isVae = t.name().startsWith("first_stage_model.") || t.name().startsWith("vae.");
                    boolean isText = t.name().startsWith("text_encoders.") || t.name().startsWith("conditioner.")
                            || t.name().startsWith("cond_stage_model.");
                    s.add(isVae ? Part.VAE : isText ? Part.TEXT : Part.UNET, t.name(), t.dtype(), t.shape());
                    if (isVae) {
                        vaeNames.add(t.name());
                    }
                }
            }
            for (Path extra : new Path[] {g.sd3.clipL, g.sd3.clipG, g.sd3.noT5 ? null : g.sd3.t5}) {
                if (extra != null) {
                    s.addFile(Part.TEXT, extra);
                }
            }
        } else {
            try (Checkpoint opened = Checkpoint.open(g.model)) {
                Checkpoint ckpt = opened;
                if (g.unet != null) {
                    ckpt = ckpt.withUnet(g.unet);
                }
                if (g.vae != null) {
                    ckpt = ckpt.withVae(g.vae);
                }
                try {
                    family = ckpt.family().name();
                    s.addAll(Part.UNET, ckpt.unet());
                    s.addAll(Part.VAE, ckpt.vae());
                    vaeNames.addAll(ckpt.vae().names());
                    for (Weights te : ckpt.textEncoders()) {
                        s.addAll(Part.TEXT, te);
                    }
                } finally {
                    if (ckpt != opened) {
                        ckpt.close();
                    }
                }
            }
        }
        for (String c : g.control.controls) {
            s.addFile(Part.CONTROL, ControlOptions.parse(c, "none", 0.4, 0.8).model());
        }
        for (String l : g.loras) {
            s.addFile(Part.LOAD, jdiffusion.lora.LoraSpec.parse(l).file(), 2);
        }

        int size = switch (family) {
            case "SDXL", "SD3" -> 1024;
            case "SD2" -> 768;
            default -> 512;
        };
        int[] init = g.initImage != null && (g.width == null || g.height == null) ? pngSize(g.initImage) : null;
        int width = g.width != null ? g.width : init != null ? init[0] : size;
        int height = g.height != null ? g.height : init != null ? init[1] : size;
        double scale = g.hires.scale == null ? 1 : Math.max(1, g.hires.scale);
        long outW = (long) Math.ceil(width * scale);
        long outH = (long) Math.ceil(height * scale);
        int batch = Math.max(1, g.batch);

        long cells = (outW / 8 + 1) * (outH / 8 + 1);
        long sample = SAMPLE_BASE + cells * 2 * batch * SAMPLE_PER_CELL * (2 + g.control.controls.size()) / 2;
        long vaeBudget = Math.min(VAE_BUDGET_CAP, defaultMax / 3);
        long decode = decodeBytes((tw, th) -> widest(vaeNames, s.shapes, "decoder.up", batch, tw, th), outW, outH,
                vaeBudget);
        decode += 2L * batch * 3 * outW * outH * 4; // the decoded image and its NCHW copy
        boolean encodes = g.initImage != null || g.inpaint.mask != null;
        // the encoder is counted as wide as the decoder (its own widest is half the decoder's for the SD VAEs)
        long encode = encodes ? Math.max(widest(vaeNames, s.shapes, "encoder.down", batch, width, height),
                widest(vaeNames, s.shapes, "decoder.up", batch, width, height)) * 4 * ENCODE_LIVE_TENSORS : 0;
        return new Work(s.unet, s.text, s.vae, s.control, s.load + s.largest, encode, sample, decode, vaeBudget,
                measured(family, batch, outW, outH, g.control.controls.size(), g.loras.size(), g.hires.scale != null,
                        encodes));
    }

    /** The decoder's widest activation (floats) for an image of w x h pixels. */
    interface Widest {
        long of(long w, long h);
    }

    /** Latent tile size and overlap of {@code VaeTiling.auto()} (512 pixels, 64 overlapping). */
    static final int VAE_TILE = 64;
    static final int VAE_OVERLAP = 8;

    /**
     * The decoder's memory ({@link #DECODE_LIVE_TENSORS} widest activations) as {@code Vae.decode} will run under
     * AUTO tiling with this budget: the whole image when a latent of 64 x 64 cells or less or when it fits the budget
     * ({@code VaeTiling.LIVE_TENSORS} widest activations), else the tile {@code Vae.fewestTiles} picks (the fewest
     * tiles that fit, never below 512 pixels).
     */
    static long decodeBytes(Widest widest, long w, long h, long budget) {
        long whole = widest.of(w, h);
        long lh = h / 8;
        long lw = w / 8;
        if (lh <= VAE_TILE && lw <= VAE_TILE || whole * 4 * VAE_LIVE_TENSORS <= budget) {
            return whole * 4 * DECODE_LIVE_TENSORS;
        }
        long size = Math.max(lh, lw);
        for (int n = 2; ; n++) {
            long tile = (size + (long) (n - 1) * VAE_OVERLAP + n - 1) / n;
            if (tile <= VAE_TILE) {
                return widest.of(Math.min(VAE_TILE, lw) * 8, Math.min(VAE_TILE, lh) * 8) * 4 * DECODE_LIVE_TENSORS;
            }
            long t = widest.of(Math.min(tile, lw) * 8, Math.min(tile, lh) * 8);
            if (t * 4 * VAE_LIVE_TENSORS <= budget) {
                return t * 4 * DECODE_LIVE_TENSORS;
            }
        }
    }

    /**
     * The kinds of run measured to pass under the plan (full-size random checkpoints, fp16): SD1/SD2 txt2img of at
     * most 1024x1024 pixels in all (the hires fix's final size; batch 2 at 512x512 counts 2 x 512 x 512): SD1.5
     * 512x512 3 of 3 runs at 3.09 GiB resident, 1024x1024 at 4.25 GiB, the hires fix 2x from 512 at 4.25 GiB, batch 2
     * at 3.90 GiB; SDXL, one image of at most 1024x1024 (fp32 and bf16). Before the Winograd scratch fix planned
     * heaps failed for SD1.5 at 1024x1024 and the hires fix, so everything not measured keeps the default heap until
     * it is: larger images and batches, SDXL batches and hires fix, ControlNets, LoRAs, SD3.
     */
    static boolean measured(String family, int batch, long w, long h, int controls, int loras, boolean hires) {
        return measured(family, batch, w, h, controls, loras, hires, false);
    }

    /** {@link #measured} for a run that encodes an init image (img2img: SD1/SD2, at most 512x512 pixels in all). */
    static boolean measured(String family, int batch, long w, long h, int controls, int loras, boolean hires,
                            boolean encodes) {
        if (controls > 0 || loras > 0 || family.equals("SD3")) {
            return false;
        }
        if (family.equals("SDXL")) {
            return batch == 1 && !hires && !encodes && w * h <= 1024L * 1024;
        }
        return batch * w * h <= (encodes ? 512L * 512 : 1024L * 1024);
    }

    /** Widest activation (floats) of the VAE's decoder or encoder at an image of w x h pixels, from its conv shapes. */
    static long widest(List<String> vaeNames, java.util.Map<String, long[]> shapes, String part, int batch, long w,
                       long h) {
        long pixels = (long) batch * w * h;
        long widest = 256 * pixels; // the SD VAEs' full-resolution input when the names say nothing
        boolean found = false;
        long best = 0;
        for (String n : vaeNames) {
            Matcher m = VAE_BLOCK.matcher(n);
            long[] shape = shapes.get(n);
            if (!m.find() || !m.group(1).equals(part) || shape == null || shape.length != 4) {
                continue;
            }
            int level = Integer.parseInt(m.group(2));
            long ch = Math.max(shape[0], shape[1]);
            best = Math.max(best, ch * (pixels >> (2 * Math.min(level, 20))));
            found = true;
        }
        return found ? best : widest;
    }

    /** Width and height from a PNG's header; anything else is for the run to report. */
    static int[] pngSize(Path png) throws IOException {
        try (InputStream in = Files.newInputStream(png)) {
            byte[] b = in.readNBytes(24);
            if (b.length < 24 || (b[0] & 0xFF) != 0x89 || b[1] != 'P' || b[2] != 'N' || b[3] != 'G') {
                throw new IOException(png + ": not a PNG");
            }
            int w = ((b[16] & 0xFF) << 24) | ((b[17] & 0xFF) << 16) | ((b[18] & 0xFF) << 8) | (b[19] & 0xFF);
            int h = ((b[20] & 0xFF) << 24) | ((b[21] & 0xFF) << 16) | ((b[22] & 0xFF) << 8) | (b[23] & 0xFF);
            return new int[] {w, h};
        }
    }

    enum Part { UNET, TEXT, VAE, CONTROL, LOAD }

    /** Heap bytes per part, as the models will hold them. */
    static final class Sizes {
        final boolean nativeBf16;
        final java.util.Map<String, long[]> shapes = new java.util.HashMap<>();
        long unet;
        long text;
        long vae;
        long control;
        long load;
        /** The largest tensor widened to float32 (a model reads each tensor as floats before packing it). */
        long largest;

        Sizes(boolean nativeBf16) {
            this.nativeBf16 = nativeBf16;
        }

        void addAll(Part part, Weights w) {
            for (String n : w.names()) {
                int[] dims = w.shape(n);
                long[] shape = new long[dims.length];
                for (int i = 0; i < dims.length; i++) {
                    shape[i] = dims[i];
                }
                add(part, n, w.dtype(n), shape);
            }
        }

        void addFile(Part part, Path file) throws Exception {
            addFile(part, file, 1);
        }

        /** Every tensor of a file (a ControlNet, a LoRA, a separate text encoder), times a factor. */
        void addFile(Part part, Path file, int times) throws Exception {
            try (SafeTensors f = SafeTensors.open(file)) {
                for (TensorInfo t : f.tensors().values()) {
                    for (int i = 0; i < times; i++) {
                        add(part, t.name(), t.dtype(), t.shape());
                    }
                }
            }
        }

        void add(Part part, String name, DType dtype, long[] shape) {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            shapes.put(name, shape);
            largest = Math.max(largest, n * 4);
            long bytes = n * heapBytesPerValue(name, dtype, shape.length, nativeBf16);
            switch (part) {
                case UNET -> unet += bytes;
                case TEXT -> text += bytes;
                case VAE -> vae += bytes;
                case CONTROL -> control += bytes;
                case LOAD -> load += n * 4;
            }
        }
    }

    /**
     * Heap bytes per value of a tensor: GEMM and convolution weights (rank 4, or rank 2 named *.weight that is not an
     * embedding table) keep the file's 16 or 8 bits, or go off the heap under native bf16; everything else is float32.
     */
    static int heapBytesPerValue(String name, DType dtype, int rank, boolean nativeBf16) {
        String lower = name.toLowerCase(Locale.ROOT);
        boolean gemm = rank == 4 || rank == 2 && lower.endsWith(".weight") && !lower.contains("embed");
        if (!gemm) {
            return 4;
        }
        if (nativeBf16) {
            return 0;
        }
        return switch (dtype) {
            case F16, BF16 -> 2;
            case F8_E4M3, F8_E5M2 -> 1;
            default -> 4;
        };
    }
}

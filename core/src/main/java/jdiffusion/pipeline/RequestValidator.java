package jdiffusion.pipeline;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;

/**
 * Checks a request before anything is loaded or written, so a bad value costs nothing and leaves no file behind.
 * Every failure is a {@link GenerateException} with one line naming the field, the value and what is allowed.
 */
public final class RequestValidator {
    public static final int MIN_SIZE = 64;
    public static final int MAX_SIZE = 4096;
    public static final int MAX_STEPS = 1000;
    public static final int MAX_BATCH = 64;

    private RequestValidator() {
    }

    /** Validates every field; returns the decoded init image (null for txt2img) so it is read only once. */
    public static PngImage validate(GenerateRequest r) {
        requireFile("model", r.model());
        if (r.unet() != null) {
            requireFile("UNet", r.unet());
        }
        if (r.vae() != null) {
            requireFile("VAE", r.vae());
        }
        for (GenerateRequest.LoraSpec lora : r.loras()) {
            requireFile("LoRA", lora.file());
            if (!Double.isFinite(lora.strength()) || !Double.isFinite(lora.clipStrength())) {
                throw new GenerateException("LoRA strength must be a finite number, got " + lora.strength());
            }
        }
        for (String text : new String[] {r.prompt(), r.negativePrompt()}) {
            if (text != null) {
                try {
                    jdiffusion.text.PromptParser.parse(text); // weights are checked here, before any model loads
                } catch (IllegalArgumentException e) {
                    throw new GenerateException(e.getMessage());
                }
            }
        }
        ControlSpecs.validate(r.controls());
        if (r.embeddings() != null && !java.nio.file.Files.isDirectory(r.embeddings())) {
            throw new GenerateException("embeddings folder " + r.embeddings() + " is not a directory");
        }
        checkSize("width", r.width());
        checkSize("height", r.height());
        if (r.steps() != null && (r.steps() < 1 || r.steps() > MAX_STEPS)) {
            throw new GenerateException("steps must be between 1 and " + MAX_STEPS + ", got " + r.steps());
        }
        if (r.cfg() != null && (!Double.isFinite(r.cfg()) || r.cfg() < 0)) {
            throw new GenerateException("cfg must be a number >= 0, got " + r.cfg());
        }
        if (!(r.denoise() > 0 && r.denoise() <= 1)) {
            throw new GenerateException("denoise must be in (0, 1], got " + r.denoise());
        }
        if (r.batch() < 1 || r.batch() > MAX_BATCH) {
            throw new GenerateException("batch must be between 1 and " + MAX_BATCH + ", got " + r.batch());
        }
        if (r.clipSkip() != null && (r.clipSkip() < 1 || r.clipSkip() > 48)) {
            throw new GenerateException("clip skip must be between 1 (last layer) and the text encoder's layer count,"
                    + " got " + r.clipSkip());
        }
        if (r.threads() != null && jdiffusion.tensor.Parallel.threadsProblem(r.threads()) != null) {
            throw new GenerateException(jdiffusion.tensor.Parallel.threadsProblem(r.threads()));
        }
        Names.checkSampler(r.sampler() == null ? Defaults.SAMPLER : r.sampler());
        String scheduler = r.scheduler() == null ? Defaults.SCHEDULER : r.scheduler();
        Names.checkScheduler(scheduler);
        if (Names.isDiffusersSpacing(scheduler) && r.initImage() == null && r.denoise() < 1 && r.schedule() == null) {
            throw new GenerateException("denoise " + r.denoise() + " without an init image needs a ComfyUI scheduler"
                    + " (diffusers' text-to-image has no strength; '" + scheduler + "' is a diffusers spacing)");
        }
        checkInpaint(r);
        if (r.output() != null) {
            requireWritableFolder("output", r.output());
        }
        if (r.saveLatent() != null) {
            requireWritableFolder("latent output", r.saveLatent());
        }
        return r.initImage() == null ? null : readInitImage(r);
    }

    private static void checkInpaint(GenerateRequest r) {
        GenerateRequest.Inpaint in = r.inpaint();
        if (in == null) {
            return;
        }
        if (r.initImage() == null) {
            throw new GenerateException("a mask or outpaint margins need an init image (-i)");
        }
        if (in.mask() != null && in.maskFromAlpha()) {
            throw new GenerateException("give either a mask file or the init image's alpha as the mask, not both");
        }
        if (in.mask() != null) {
            requireFile("mask", in.mask());
        }
        if (in.mask() == null && !in.maskFromAlpha() && in.outpaint() == null) {
            throw new GenerateException("inpainting needs a mask (a file or 'alpha') or outpaint margins");
        }
        if (Math.abs(in.grow()) > MAX_SIZE) {
            throw new GenerateException("mask grow must be between -" + MAX_SIZE + " and " + MAX_SIZE + " pixels, got "
                    + in.grow());
        }
        if (!Double.isFinite(in.blur()) || in.blur() < 0 || in.blur() > 256) {
            throw new GenerateException("mask blur must be between 0 and 256 pixels, got " + in.blur());
        }
        GenerateRequest.Outpaint o = in.outpaint();
        if (o != null) {
            for (int v : new int[] {o.left(), o.top(), o.right(), o.bottom()}) {
                if (v < 0 || v > MAX_SIZE) {
                    throw new GenerateException("outpaint margins must be between 0 and " + MAX_SIZE + " pixels, got "
                            + o.left() + "," + o.top() + "," + o.right() + "," + o.bottom());
                }
            }
            if (o.feather() < 0 || o.feather() > MAX_SIZE) {
                throw new GenerateException("outpaint feather must be between 0 and " + MAX_SIZE + ", got "
                        + o.feather());
            }
        }
    }

    private static void checkSize(String what, Integer v) {
        if (v == null) {
            return;
        }
        if (v < MIN_SIZE || v > MAX_SIZE) {
            throw new GenerateException(what + " must be between " + MIN_SIZE + " and " + MAX_SIZE + ", got " + v);
        }
        if (v % 8 != 0) {
            throw new GenerateException(what + " must be a multiple of 8, got " + v + " (try " + (v / 8 * 8) + " or "
                    + (v / 8 * 8 + 8) + ")");
        }
    }

    private static PngImage readInitImage(GenerateRequest r) {
        PngImage img;
        try {
            if (r.inpaint() != null && r.inpaint().maskFromAlpha()) {
                PngReader.Rgba rgba = PngReader.readRgba(r.initImage());
                if (rgba.alpha() == null) {
                    throw new GenerateException("mask 'alpha': init image " + r.initImage() + " has no transparency"
                            + " (alpha channel)");
                }
                img = rgba.rgb();
            } else {
                img = PngReader.read(r.initImage());
            }
        } catch (IOException e) {
            throw new GenerateException("init image " + e.getMessage());
        }
        GenerateRequest.Outpaint o = r.inpaint() == null ? null : r.inpaint().outpaint();
        int w = img.width() + (o == null ? 0 : o.left() + o.right());
        int h = img.height() + (o == null ? 0 : o.top() + o.bottom());
        String size = w + "x" + h;
        if (w % 8 != 0 || h % 8 != 0 || w < MIN_SIZE || h < MIN_SIZE || w > MAX_SIZE || h > MAX_SIZE) {
            throw new GenerateException("init image " + r.initImage() + " is " + img.width() + "x" + img.height()
                    + (o == null ? "" : " (" + size + " with the outpaint margins)") + "; width and height must be"
                    + " multiples of 8 between " + MIN_SIZE + " and " + MAX_SIZE);
        }
        if ((r.width() != null && r.width() != w) || (r.height() != null && r.height() != h)) {
            throw new GenerateException("init image " + r.initImage() + " is " + size + " but the requested size is "
                    + (r.width() == null ? w : r.width()) + "x"
                    + (r.height() == null ? h : r.height()) + " (omit --width/--height to use the image's)");
        }
        return img;
    }

    static void requireFile(String what, Path p) {
        if (p == null) {
            throw new GenerateException(what + " file is required");
        }
        if (!Files.exists(p)) {
            throw new GenerateException(what + " file not found: " + p);
        }
        if (Files.isDirectory(p)) {
            throw new GenerateException(what + " file is a directory: " + p);
        }
        if (!Files.isReadable(p)) {
            throw new GenerateException(what + " file is not readable: " + p);
        }
        String bad = jdiffusion.io.RegularFiles.problem(p);
        if (bad != null) {
            throw new GenerateException(what + " file " + p + ": " + bad);
        }
    }

    static void requireWritableFolder(String what, Path file) {
        Path dir = file.toAbsolutePath().getParent();
        if (Files.isDirectory(file)) {
            throw new GenerateException(what + " path is a directory, expected a file name: " + file);
        }
        if (Files.exists(file)) {
            String bad = jdiffusion.io.RegularFiles.problem(file);
            if (bad != null && !bad.startsWith("file is not readable")) {
                // a device such as /dev/full would otherwise get a numbered file beside it
                throw new GenerateException(what + " path " + file + " " + bad + "; give a file name");
            }
        }
        if (dir == null || !Files.isDirectory(dir)) {
            throw new GenerateException(what + " folder does not exist: " + dir);
        }
        if (!Files.isWritable(dir)) {
            throw new GenerateException(what + " folder is not writable: " + dir);
        }
    }
}

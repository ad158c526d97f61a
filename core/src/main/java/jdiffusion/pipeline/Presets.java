package jdiffusion.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Settings for distilled few-step models, filled into the fields of a request that the user left unset (explicit
 * flags always win):
 * <ul>
 * <li>{@code lightning} (SDXL-Lightning checkpoint, UNet or LoRA): euler + sgm_uniform, cfg 1, the step count from
 * the UNet, LoRA or checkpoint file name ({@code 1step}, {@code 2step}, {@code 4step}, {@code 8step}), else 4;</li>
 * <li>{@code lcm} (LCM-LoRA): lcm + sgm_uniform, 4 steps, cfg 1.5;</li>
 * <li>{@code turbo} (SD-Turbo, SDXL-Turbo): euler_ancestral + sgm_uniform, 1 step, cfg 1, 512x512;</li>
 * <li>{@code sd35-turbo} (SD3.5 Large Turbo): euler + sgm_uniform, 4 steps, cfg 1.</li>
 * </ul>
 */
public final class Presets {
    /** "4step", "8steps", "2-step" as a word of a file name; the digits are the step count. */
    private static final Pattern STEPS_NAME = Pattern.compile("(?i)(?<![0-9])(\\d{1,2})[-_]?steps?(?![a-z0-9])");
    static final int LIGHTNING_DEFAULT_STEPS = 4;

    private Presets() {
    }

    public enum Preset {
        LIGHTNING, LCM, TURBO, SD35_TURBO;

        /** Case-insensitive name; an unknown one is an {@link IllegalArgumentException} naming the valid ones. */
        public static Preset parse(String name) {
            for (Preset p : values()) {
                if (p.label().equalsIgnoreCase(name.trim())) {
                    return p;
                }
            }
            throw new IllegalArgumentException("unknown --preset '" + name + "'; valid: lightning, lcm, turbo,"
                    + " sd35-turbo");
        }

        public String label() {
            return name().toLowerCase(Locale.ROOT).replace('_', '-');
        }
    }

    /**
     * The request with the preset's choices in its unset fields, and one line telling the user what was chosen.
     *
     * @param summary e.g. "preset lightning: euler + sgm_uniform, 2 steps (from sdxl_lightning_2step_lora.safetensors),
     *                cfg 1"; a value the user gave is shown with "(yours)"
     */
    public record Applied(GenerateRequest request, String summary) {
    }

    /** A step count read from a file name, and the file it came from. */
    public record StepsHint(int steps, Path file) {
    }

    public static Applied apply(Preset preset, GenerateRequest r) {
        GenerateRequest.Builder b = r.toBuilder();
        List<String> said = new ArrayList<>();
        String sampler = preset == Preset.LCM ? "lcm" : preset == Preset.TURBO ? "euler_ancestral" : "euler";
        b.sampler(choose(r.sampler(), sampler));
        b.scheduler(choose(r.scheduler(), "sgm_uniform"));
        said.add(shown(r.sampler(), sampler) + " + " + shown(r.scheduler(), "sgm_uniform"));
        said.add(steps(preset, r, b));
        double cfg = preset == Preset.LCM ? 1.5 : 1.0;
        b.cfg(r.cfg() != null ? r.cfg() : cfg);
        said.add("cfg " + shown(r.cfg() == null ? null : number(r.cfg()), number(cfg)));
        if (preset == Preset.TURBO && !r.isImg2Img()) {
            b.width(r.width() != null ? r.width() : 512).height(r.height() != null ? r.height() : 512);
            said.add("size " + shown(r.width() == null ? null : r.width().toString(), "512") + "x"
                    + shown(r.height() == null ? null : r.height().toString(), "512"));
        }
        return new Applied(b.build(), "preset " + preset.label() + ": " + String.join(", ", said));
    }

    /** Sets the step count the preset chooses (unless given) and says which. */
    private static String steps(Preset preset, GenerateRequest r, GenerateRequest.Builder b) {
        if (r.steps() != null) {
            return r.steps() + " steps (yours)";
        }
        if (preset != Preset.LIGHTNING) {
            int n = preset == Preset.LCM || preset == Preset.SD35_TURBO ? 4 : 1;
            b.steps(n);
            return n + (n == 1 ? " step" : " steps");
        }
        Optional<StepsHint> hint = stepsFromNames(r);
        int n = hint.map(StepsHint::steps).orElse(LIGHTNING_DEFAULT_STEPS);
        b.steps(n);
        return n + (n == 1 ? " step" : " steps") + hint.map(h -> " (from " + h.file().getFileName() + ")")
                .orElse(" (no step count in the file names)");
    }

    /** The step count in the UNet file name, else a LoRA file name (in order), else the checkpoint's name. */
    public static Optional<StepsHint> stepsFromNames(GenerateRequest r) {
        List<Path> files = new ArrayList<>();
        if (r.unet() != null) {
            files.add(r.unet());
        }
        r.loras().forEach(l -> files.add(l.file()));
        files.add(r.model());
        for (Path f : files) {
            Optional<Integer> n = stepsInName(f.getFileName().toString());
            if (n.isPresent()) {
                return Optional.of(new StepsHint(n.get(), f));
            }
        }
        return Optional.empty();
    }

    /** "sdxl_lightning_8step_unet.safetensors" -> 8; names without a (positive) count -> empty. */
    static Optional<Integer> stepsInName(String name) {
        Matcher m = STEPS_NAME.matcher(name);
        while (m.find()) {
            int n = Integer.parseInt(m.group(1));
            if (n > 0) {
                return Optional.of(n);
            }
        }
        return Optional.empty();
    }

    private static String choose(String given, String preset) {
        return given != null ? given : preset;
    }

    private static String shown(String given, String preset) {
        return given != null ? given + " (yours)" : preset;
    }

    private static String number(double v) {
        return v == Math.rint(v) ? String.valueOf((long) v) : String.valueOf(v);
    }
}
